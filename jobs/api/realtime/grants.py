"""What authorized a long-lived request (an event stream, a long poll), checked again while
it lasts: the access token's expiry, the tenant (its host still serves it, and it is
active) and the user (still of that tenant, and active); for a job read token, which has
no user, its expiry and the tenant (``jobs.api.read_tokens``).

The checks are the request path's own, through the same caches (``tenants.resolution``,
``accounts.authentication``): this process's copies, else Redis, else PostgreSQL.
Deactivating a user or a tenant drops those copies in every process at once, so a check
after the change sees it. A stream or a long poll checks before it sends anything and at
least every ``RECHECK_SECONDS`` while idle (at the token's expiry, if sooner). Idle waiters
are due on one shared grid of ticks, so their checks run together: on an event loop, the
checks asked for in one turn run in one call to its thread pool (``aholds``), a few
microseconds each from the in-memory copies, instead of a thread hop each.
"""

import asyncio
import logging
import time
import weakref
from dataclasses import dataclass

from django.db import Error as DatabaseError
from rest_framework.exceptions import APIException

from accounts.authentication import user_for_tenant
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
        return max(0.0, min(RECHECK_SECONDS - now % RECHECK_SECONDS, self.expires_at - now))

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


_batches: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Batch]" = (
    weakref.WeakKeyDictionary()
)


def _batch() -> _Batch:
    loop = asyncio.get_running_loop()
    found = _batches.get(loop)
    if found is None:
        found = _batches[loop] = _Batch(loop)
    return found
