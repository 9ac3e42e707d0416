"""Database rows cached in this process and in the shared Redis, dropped everywhere on change.

``read_through`` serves a row from this process's memory, else from Redis, else loads and
caches it. ``forget`` (call it from the signals of every change) drops the entries at once
and, when the change's transaction commits, writes a short-lived tombstone in their place.
A request that read the old row before the commit either cached it before the commit (the
tombstone overwrites it) or tries after (``cache.add`` does not overwrite the tombstone);
while the tombstone lives, readers go to the database and cache nothing. A reader that
takes longer than ``CHANGED_SECONDS`` between its read and its write can still cache the
old row. If Redis is unreachable, reads fall back to the database (logged, never raised).

The in-process copies (at most ``LOCAL_SECONDS`` old) are what make a warm poll pay no
round trip for its tenant and user. Every ``forget`` publishes the dropped keys on Redis
(``CHANNEL``), at once and again after the commit, and a thread of each process
(``_Invalidations``) drops them from its memory as they arrive; a read that overlapped an
invalidation keeps nothing. The copies are used only while that thread is subscribed and
answering its pings: from the moment it is not (Redis down, connection lost, not yet
started) every copy is dropped and reads go to Redis as if there were none, until it is
subscribed again. Between a change's commit and its message reaching another process
(a Redis round trip), that process can still serve the old row.
"""

import logging
import threading
import time
from collections.abc import Callable, Iterable

from django.core.cache import cache
from django.db import transaction

from core import redis_cache
from core.process_local import ProcessLocal

logger = logging.getLogger(__name__)

_CHANGED = "changed"
CHANGED_SECONDS = 2
LOCAL_SECONDS = 30.0
CHANNEL = "row-cache-invalidations"


class _Invalidations:
    """This process's copies and the subscriber thread that keeps them honest."""

    PING_SECONDS = 2.0  # a subscription silent for two pings is taken for lost

    def __init__(self):
        self.copies: dict[str, tuple[float, object]] = {}  # full key → (expiry, value)
        self.epoch = 0  # bumped by every invalidation: a read spanning one keeps nothing
        self.live = False
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, name="row-cache", daemon=True)
        self.thread.start()

    def drop(self, keys) -> None:
        with self.lock:
            self.epoch += 1
            for key in keys:
                self.copies.pop(key, None)

    def _lost(self) -> None:
        with self.lock:
            self.live = False
            self.epoch += 1
            self.copies.clear()

    def _run(self) -> None:
        while True:
            try:
                self._listen()
            except Exception:
                logger.warning("row cache invalidations lost; not caching in memory", exc_info=True)
            self._lost()
            time.sleep(1)

    def _listen(self) -> None:
        pubsub = redis_cache.client().pubsub()
        try:
            pubsub.subscribe(CHANNEL)
            pinged = answered = time.monotonic()
            while True:
                message = pubsub.get_message(timeout=self.PING_SECONDS / 2)
                now = time.monotonic()
                if message is not None:
                    answered = now
                    if message["type"] == "subscribe":
                        self._lost()  # whatever was published before this is unknown
                        self.live = True
                    elif message["type"] == "message":
                        self.drop(message["data"].decode().split("\n"))
                if now - answered > 2 * self.PING_SECONDS:
                    return
                if now - pinged > self.PING_SECONDS:
                    pubsub.ping()
                    pinged = now
        finally:
            pubsub.close()


_invalidations = ProcessLocal(_Invalidations)  # started on first use (again in a forked child)


def read_through(key: str, load: Callable[[], object], timeout: float, *, label: str):
    """The value cached at ``key``, else ``load()``'s, cached for ``timeout`` seconds unless
    it is None or the key holds a tombstone. ``label`` names the cache in log lines."""
    local = _invalidations.get()
    full_key = cache.make_key(key)
    if local.live:
        copy = local.copies.get(full_key)
        if copy is not None and copy[0] > time.monotonic():
            return copy[1]
    epoch = local.epoch
    try:
        value = cache.get(key)
    except Exception:
        logger.warning("%s cache unavailable; reading the database", label, exc_info=True)
        value = _CHANGED
    if value is not None and value != _CHANGED:
        found = value
    else:
        found = load()
        if found is not None and value is None:
            try:
                cache.add(key, found, timeout)
            except Exception:
                logger.warning("%s cache unavailable; not caching", label, exc_info=True)
    if found is not None and value != _CHANGED:
        with local.lock:
            if local.live and local.epoch == epoch:
                expiry = time.monotonic() + min(timeout, LOCAL_SECONDS)
                local.copies[full_key] = (expiry, found)
    return found


def forget(keys: Iterable[str], *, label: str) -> None:
    """Drop ``keys`` now, here and in every process, and keep them out for
    ``CHANGED_SECONDS`` once the current transaction commits (at once outside one)."""
    keys = list(keys)
    if not keys:
        return
    full_keys = [cache.make_key(key) for key in keys]

    def drop_everywhere():
        _invalidations.get().drop(full_keys)
        try:
            redis_cache.client().publish(CHANNEL, "\n".join(full_keys))
        except Exception:
            logger.warning("%s cache unavailable; entry not dropped", label, exc_info=True)

    def keep_out():
        try:
            cache.set_many(dict.fromkeys(keys, _CHANGED), CHANGED_SECONDS)
        except Exception:
            logger.warning("%s cache unavailable; entry not dropped", label, exc_info=True)
        drop_everywhere()

    try:
        cache.delete_many(keys)
    except Exception:
        logger.warning("%s cache unavailable; entry not dropped", label, exc_info=True)
    drop_everywhere()
    transaction.on_commit(keep_out)
