"""What authorized a long-lived request (an event stream, a long poll), checked again while
it lasts: the access token's expiry, the tenant (its host still serves it, and it is
active) and the user (still of that tenant, and active).

The checks are the request path's own, through the same caches (``tenants.resolution``,
``accounts.authentication``): this process's copies, else Redis, else PostgreSQL.
Deactivating a user or a tenant drops those copies in every process at once, so a check
after the change sees it. A stream or a long poll checks before it sends anything and at
least every ``RECHECK_SECONDS`` while idle (at the token's expiry, if sooner).
"""

import logging
import time
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.db import Error as DatabaseError
from rest_framework.exceptions import APIException

from accounts.authentication import user_for_tenant
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
    user_id: int
    expires_at: float  # the access token's ``exp``

    @classmethod
    def of(cls, request) -> "Grant":
        """The grant of an authenticated API request (``request.auth``: its access token)."""
        return cls(
            hostname=TenantMiddleware.hostname_from_request(request),
            tenant_id=request.tenant.pk,
            user_id=request.user.pk,
            expires_at=float(request.auth["exp"]),
        )

    def recheck_in(self) -> float:
        """Seconds until the next check is due."""
        return max(0.0, min(RECHECK_SECONDS, self.expires_at - time.time()))

    def holds(self) -> bool:
        """Whether a new request with the same token would still be let in. Blocking; a
        database error counts as no (fail closed)."""
        if time.time() >= self.expires_at:
            return False
        try:
            tenant = tenant_for_host(self.hostname)
            if tenant is None or tenant.pk != self.tenant_id or not tenant.is_active:
                return False
            user_for_tenant(self.user_id, tenant)
        except APIException:  # 401/403 (Problem included)
            return False
        except DatabaseError:
            logger.warning("could not check a stream's authorization", exc_info=True)
            return False
        return True

    async def aholds(self) -> bool:
        return await sync_to_async(self.holds, thread_sensitive=False)()
