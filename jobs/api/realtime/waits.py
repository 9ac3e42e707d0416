"""The cap on concurrent waits: each tenant + user holds at most ``JOBS_MAX_WAITS_PER_USER``
long polls and event streams at once, across every process.

A slot is a member of a Redis sorted set per tenant + user, scored by when its lease ends;
taking one drops expired leases and counts the rest in one Lua script (one round trip),
so a process that dies without giving its slots back frees them when their leases end. A
long poll's lease covers its wait; a stream renews its lease at every heartbeat (the
streams of a loop whose heartbeats fall on the same tick, in one round trip).

Under WSGI a waiting long poll also blocks one of its process's threads, which plain
requests need too, so each process lets at most half of its threads wait at once
(``limit_thread_waits``, called by gunicorn's worker, config/gunicorn.conf.py); past that a
long poll answers at once, as a plain poll does (``take_thread``). A sync worker (one
thread) lets none wait: whoever long polls there polls.
"""

import math
import threading
import time
import uuid

from django.conf import settings
from django.core.cache import cache

from core.problems import RateLimited
from core.redis_cache import Script, client
from jobs.api.ratelimit import tenant_user_key

# Margin past a long poll's wait: the answer's read and sending it.
LEASE_MARGIN_SECONDS = 30

_ACQUIRE = Script("""
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  return redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2]
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return false
""")


def stream_lease_seconds() -> float:
    return max(60.0, 4 * settings.JOBS_EVENTS_HEARTBEAT_SECONDS)


class WaitSlot:
    """One of the caller's concurrent waits; ``release`` it when the wait ends."""

    def __init__(self, key: str, member: str):
        self.key = key
        self.member = member

    def release(self) -> None:
        client().zrem(self.key, self.member)


def renew_many(slots: list[WaitSlot], lease_seconds: float) -> None:
    """Extend many slots' leases to ``lease_seconds`` from now in one round trip (the
    streams whose heartbeat is due on the same tick); a slot already given back stays so."""
    expiry = time.time() + lease_seconds
    pipeline = client().pipeline(transaction=False)
    for slot in slots:
        pipeline.zadd(slot.key, {slot.member: expiry}, xx=True)
    pipeline.execute()


def release_many(slots: list[WaitSlot]) -> None:
    """Give back many slots in one round trip (the waiters a change has answered)."""
    pipeline = client().pipeline(transaction=False)
    for slot in slots:
        pipeline.zrem(slot.key, slot.member)
    pipeline.execute()


def acquire(request, *, lease_seconds: float) -> WaitSlot:
    """Take a wait slot for the request's tenant + user, or raise ``RateLimited`` (429,
    ``Retry-After``: when the oldest lease ends, at most ``JOBS_LONGPOLL_MAX_WAIT``)."""
    key = cache.make_key(f"waits:{tenant_user_key(request)}")
    member = uuid.uuid4().hex
    now = time.time()
    expiry = now + lease_seconds
    ttl = math.ceil(lease_seconds) + LEASE_MARGIN_SECONDS
    soonest = _ACQUIRE([key], [now, expiry, settings.JOBS_MAX_WAITS_PER_USER, member, ttl])
    if soonest is not None:
        wait = min(settings.JOBS_LONGPOLL_MAX_WAIT, math.ceil(float(soonest) - now))
        raise RateLimited(
            wait=max(1, wait),
            detail=f"At most {settings.JOBS_MAX_WAITS_PER_USER} long polls and event "
            "streams at once per user.",
        )
    return WaitSlot(key, member)


# None: no bound known (runserver's thread per request, the test client).
_thread_waits: threading.BoundedSemaphore | None = None


def limit_thread_waits(threads: int) -> None:
    """Let at most ``threads // 2`` of this process's ``threads`` block on long polls at
    once, so at least half of them, and at least one, are left for plain requests."""
    global _thread_waits
    _thread_waits = threading.BoundedSemaphore(threads // 2)


def take_thread() -> bool:
    """Whether this thread may block on a long poll; if so, ``give_thread`` when done."""
    return _thread_waits is None or _thread_waits.acquire(blocking=False)


def give_thread() -> None:
    if _thread_waits is not None:
        _thread_waits.release()
