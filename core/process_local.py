"""One object per process, made on first use and made again in a forked child.

For what owns a thread or a connection (a listener, a subscriber): a child forked by
gunicorn or a test inherits the parent's object but not its thread, so it must build its
own. ``ProcessLocal(factory).get()`` returns this process's object, calling ``factory``
once per process (under a lock); ``take()`` hands it over and forgets it, so the next
``get()`` builds a new one.
"""

import os
import threading
from collections.abc import Callable


class ProcessLocal[T]:
    def __init__(self, factory: Callable[[], T]):
        self._factory = factory
        self._lock = threading.Lock()
        self._made: tuple[int, T] | None = None  # (pid, object)

    def get(self) -> T:
        """This process's object, made now if this process has none."""
        made = self._made
        if made is None or made[0] != os.getpid():
            with self._lock:
                made = self._made
                if made is None or made[0] != os.getpid():
                    made = self._made = (os.getpid(), self._factory())
        return made[1]

    def take(self) -> T | None:
        """This process's object, if one was made, no longer held (the next ``get()``
        makes a new one)."""
        with self._lock:
            made, self._made = self._made, None
        return made[1] if made is not None and made[0] == os.getpid() else None
