"""What authorized a long-lived request (an event stream, a long poll), checked again while
it lasts: the access token's expiry, the tenant (its host still serves it, and it is
active) and the user (still of that tenant, and active); for a job read token, which has
no user, its expiry and the tenant (``jobs.api.read_tokens``).

The checks are the request path's own, through the same caches (``tenants.resolution``,
``accounts.authentication``): this process's copies, else Redis, else PostgreSQL.
Deactivating a user or a tenant drops those copies in every process at once, so a check
after the change sees it. A stream or a long poll checks before it sends anything and at
least every ``RECHECK_SECONDS`` while idle (at the token's expiry, if sooner).

On an event loop an idle waiter does not wake to check: it registers its grant with the
loop's ``Revocations``, which checks every distinct grant once per tick of one shared grid
(one call to the thread pool for all of them, a few microseconds each from the in-memory
copies), ends the token's waiters at its expiry (a timer per distinct grant), and ends the
waiters of a grant that no longer holds. The checks asked for before sending run together
too: the ones asked for in one turn of the loop share one pool call (``aholds``).
"""

import asyncio
import logging
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

from django.db import Error as DatabaseError
from rest_framework.exceptions import APIException

from accounts.authentication import user_for_tenant
from core.loop_local import LoopLocal
from jobs.api.read_tokens import JobReader
from tenants.middleware import TenantMiddleware
from tenants.resolution import tenant_for_host

logger = logging.getLogger(__name__)

# How long an idle stream or long poll goes without checking: the bound, past the
# propagation of the change itself (one Redis round trip), on how long it outlives a
# deactivation.
RECHECK_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class Grant:
    """The authorization of one request, as its chain found it."""

    hostname: str
    tenant_id: int
    user_id: int | None  # None for a job read token
    expires_at: float  # the token's ``exp``

    @classmethod
    def of(cls, request) -> "Grant":
        """The grant of an authenticated API request (``request.auth``: its access token or
        job read token)."""
        return cls(
            hostname=TenantMiddleware.hostname_from_request(request),
            tenant_id=request.tenant.pk,
            user_id=None if isinstance(request.user, JobReader) else request.user.pk,
            expires_at=float(request.auth["exp"]),
        )

    def recheck_in(self) -> float:
        """Seconds until the next check is due: the next tick of the grid every
        ``RECHECK_SECONDS`` that all grants share, or the token's expiry if sooner."""
        now = time.time()
        return max(0.0, min(_next_tick(now), self.expires_at - now))

    def holds(self) -> bool:
        """Whether a new request with the same token would still be let in. Blocking; a
        database error counts as no (fail closed)."""
        if time.time() >= self.expires_at:
            return False
        try:
            tenant = tenant_for_host(self.hostname)
            if tenant is None or tenant.pk != self.tenant_id or not tenant.is_active:
                return False
            if self.user_id is not None:
                user_for_tenant(self.user_id, tenant)
        except APIException:  # 401/403 (Problem included)
            return False
        except DatabaseError:
            logger.warning("could not check a stream's authorization", exc_info=True)
            return False
        return True

    async def aholds(self) -> bool:
        """``holds()`` from the event loop, in one pool call with the other checks asked
        for in the same turn of the loop (one check for equal grants)."""
        return await asyncio.shield(_batch().holds(self))


def _next_tick(now: float) -> float:
    return RECHECK_SECONDS - now % RECHECK_SECONDS


def _check_all(grants: list[Grant]) -> list[bool]:
    return [grant.holds() for grant in grants]


class Revocations:
    """The grants of one event loop's idle waiters, checked together on the grid; the
    waiters of a grant that no longer holds (or whose token expires) are ended by calling
    the ``end`` they registered, on the loop. Waiters of equal grants cost one check."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self._ends: dict[Grant, set[Callable[[], None]]] = {}
        self._expiries: dict[Grant, asyncio.TimerHandle] = {}
        self._ticking: asyncio.Task | None = None

    @contextmanager
    def watch(self, grant: Grant, end: Callable[[], None]):
        """Call ``end`` (once) if ``grant`` stops holding within the block."""
        ends = self._ends.get(grant)
        if ends is None:
            ends = self._ends[grant] = set()
            expires_in = max(0.0, grant.expires_at - time.time())
            self._expiries[grant] = self.loop.call_later(expires_in, self._end, grant)
        ends.add(end)
        if self._ticking is None:
            self._ticking = self.loop.create_task(self._tick())
        try:
            yield
        finally:
            ends.discard(end)
            if not ends and self._ends.get(grant) is ends:
                del self._ends[grant]
                self._expiries.pop(grant).cancel()

    def watched(self) -> int:
        """Distinct grants watched (tests, metrics)."""
        return len(self._ends)

    def _end(self, grant: Grant) -> None:
        expiry = self._expiries.pop(grant, None)
        if expiry is not None:
            expiry.cancel()
        for end in self._ends.pop(grant, ()):
            end()

    async def _tick(self) -> None:
        try:
            while self._ends:
                await asyncio.sleep(_next_tick(time.time()))
                grants = list(self._ends)
                try:
                    held = await self.loop.run_in_executor(None, _check_all, grants)
                except Exception:  # fail closed, as a database error does
                    logger.warning("could not check idle waiters' grants", exc_info=True)
                    held = [False] * len(grants)
                for grant, holds in zip(grants, held, strict=True):
                    if not holds:
                        self._end(grant)
        finally:
            self._ticking = None


class _Batch:
    """The checks one event loop asks for in one turn, run together in its thread pool."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.due: dict[Grant, asyncio.Future] = {}

    def holds(self, grant: Grant) -> asyncio.Future:
        future = self.due.get(grant)
        if future is None:
            if not self.due:
                self.loop.call_soon(self._run)
            future = self.due[grant] = self.loop.create_future()
        return future

    def _run(self) -> None:
        due, self.due = self.due, {}
        checked = self.loop.run_in_executor(None, lambda: [grant.holds() for grant in due])

        def answer(checked) -> None:
            if checked.exception() is not None:
                for future in due.values():
                    future.set_exception(checked.exception())
                return
            for future, holds in zip(due.values(), checked.result(), strict=True):
                future.set_result(holds)

        checked.add_done_callback(answer)


_batches = LoopLocal(_Batch)


def _batch() -> _Batch:
    """The running event loop's ``_Batch``."""
    return _batches.get()


_revocations = LoopLocal(Revocations)


def revocations() -> Revocations:
    """The running event loop's ``Revocations``."""
    return _revocations.get()
