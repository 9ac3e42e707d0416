"""Database rows cached in the shared Redis, which a request racing a change cannot put back.

``read_through`` serves a row from the cache, else loads and caches it. ``forget`` (call it
from the signals of every change) drops the entries at once and, when the change's
transaction commits, writes a short-lived tombstone in their place. A request that read
the old row before the commit either cached it before the commit (the tombstone
overwrites it) or tries after (``cache.add`` does not overwrite the tombstone); while the
tombstone lives, readers go to the database and cache nothing. A reader that takes longer
than ``CHANGED_SECONDS`` between its read and its write can still cache the old row.
If Redis is unreachable, reads fall back to the database (logged, never raised).
"""

import logging
from collections.abc import Callable, Iterable

from django.core.cache import cache
from django.db import transaction

logger = logging.getLogger(__name__)

_CHANGED = "changed"
CHANGED_SECONDS = 2


def read_through(key: str, load: Callable[[], object], timeout: float, *, label: str):
    """The value cached at ``key``, else ``load()``'s, cached for ``timeout`` seconds unless
    it is None or the key holds a tombstone. ``label`` names the cache in log lines."""
    try:
        value = cache.get(key)
    except Exception:
        logger.warning("%s cache unavailable; reading the database", label, exc_info=True)
        value = _CHANGED
    if value is not None and value != _CHANGED:
        return value
    found = load()
    if found is not None and value is None:
        try:
            cache.add(key, found, timeout)
        except Exception:
            logger.warning("%s cache unavailable; not caching", label, exc_info=True)
    return found


def forget(keys: Iterable[str], *, label: str) -> None:
    """Drop ``keys`` now, and keep them out for ``CHANGED_SECONDS`` once the current
    transaction commits (at once outside a transaction)."""
    keys = list(keys)
    if not keys:
        return

    def keep_out():
        try:
            cache.set_many(dict.fromkeys(keys, _CHANGED), CHANGED_SECONDS)
        except Exception:
            logger.warning("%s cache unavailable; entry not dropped", label, exc_info=True)

    try:
        cache.delete_many(keys)
    except Exception:
        logger.warning("%s cache unavailable; entry not dropped", label, exc_info=True)
    transaction.on_commit(keep_out)
