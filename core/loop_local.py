"""One object per running event loop, made on first use and dropped once its loop has
closed.

For what schedules timers or callbacks on a loop (the fan-out hub, the streams' heartbeat
wheel, the grant checks): each loop (uvicorn's, or a test's) needs its own.
``LoopLocal(factory).get()`` returns the running loop's object, calling ``factory(loop)``
once per loop. Such an object holds its loop, so a weak key would keep both for ever: the
objects of closed loops are dropped instead when the next loop makes its own.
"""

import asyncio
import threading
from collections.abc import Callable


class LoopLocal[T]:
    def __init__(self, factory: Callable[[asyncio.AbstractEventLoop], T]):
        self._factory = factory
        self._by_loop: dict[asyncio.AbstractEventLoop, T] = {}
        self._lock = threading.Lock()  # loops of several threads may make theirs at once

    def get(self) -> T:
        """The running loop's object, made now if it has none (call it on the loop)."""
        loop = asyncio.get_running_loop()
        found = self._by_loop.get(loop)
        if found is None:
            with self._lock:
                for closed in [known for known in self._by_loop if known.is_closed()]:
                    del self._by_loop[closed]
                found = self._by_loop[loop] = self._factory(loop)
        return found
