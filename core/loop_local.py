"""One object per running event loop, made on first use and dropped with its loop.

For what schedules timers or callbacks on a loop (the fan-out hub, the streams' heartbeat
wheel, the grant checks): each loop (uvicorn's, or a test's) needs its own.
``LoopLocal(factory).get()`` returns the running loop's object, calling ``factory(loop)``
once per loop; the loop is held weakly, so a closed loop's object goes with it.
"""

import asyncio
import weakref
from collections.abc import Callable


class LoopLocal[T]:
    def __init__(self, factory: Callable[[asyncio.AbstractEventLoop], T]):
        self._factory = factory
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, T] = (
            weakref.WeakKeyDictionary()
        )

    def get(self) -> T:
        """The running loop's object, made now if it has none (call it on the loop)."""
        loop = asyncio.get_running_loop()
        found = self._by_loop.get(loop)
        if found is None:
            found = self._by_loop[loop] = self._factory(loop)
        return found
