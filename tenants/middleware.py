"""Routes each request to its tenant by Host (problem JSON when it can't), and keeps the
admin's session middleware to the platform host."""

from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.core.exceptions import DisallowedHost
from django.db import connection
from django_tenants.middleware.main import TenantMainMiddleware
from django_tenants.utils import remove_www

from core.problems import ProblemCode, problem_response
from tenants.resolution import tenant_for_host


class TenantMiddleware(TenantMainMiddleware):
    """django-tenants' routing, with JSON answers for unknown and inactive tenants.

    Hosts are matched case-insensitively (``ACME.localhost`` is ``acme.localhost``). An
    unknown host gets 404 (never the public site or another tenant); a host of an
    inactive tenant gets 403 before any view runs.
    """

    @staticmethod
    def hostname_from_request(request):
        return remove_www(request.get_host().split(":")[0].lower())

    def get_tenant(self, domain_model, hostname):
        tenant = tenant_for_host(hostname)
        if tenant is None:
            raise domain_model.DoesNotExist(hostname)
        return tenant

    def no_tenant_found(self, request, hostname):
        return problem_response(
            request,
            status_code=404,
            code=ProblemCode.UNKNOWN_HOST,
            detail="No tenant is served at this host.",
        )

    def process_request(self, request):
        try:
            request.get_host()
        except DisallowedHost:
            return problem_response(
                request,
                status_code=400,
                code=ProblemCode.INVALID_HOST,
                detail="The Host header is not allowed.",
            )
        response = super().process_request(request)
        if response is not None:
            return response
        if not request.tenant.is_active:
            return problem_response(
                request,
                status_code=403,
                code=ProblemCode.TENANT_INACTIVE,
                detail="This tenant is inactive.",
            )
        return None

    def process_response(self, request, response):
        # Leave the connection on the public schema, so nothing that runs after a request
        # on this thread (tests, management code, the next request's lookups) inherits
        # the tenant's search_path.
        connection.set_schema_to_public()
        return response


class _PlatformHostOnly:
    """Runs the middleware it is mixed into only for the platform host (the public schema,
    where the admin lives); on tenant hosts the request goes straight on.

    Tenant hosts serve the API, authenticated by JWT, and the console, a static page that
    logs in through the API: neither uses a session, a session user or messages, so a
    tenant-host request reads no session, sets no session cookie and has no lazy
    ``request.user``. Place after the tenant middleware. Subclasses of Django's classes, so
    the admin's system checks still find them.
    """

    async_capable = False

    def __call__(self, request):
        tenant = getattr(request, "tenant", None)
        if tenant is not None and tenant.is_platform:
            return super().__call__(request)
        return self.get_response(request)


class PlatformSessionMiddleware(_PlatformHostOnly, SessionMiddleware):
    """Django's sessions, on the platform host only."""


class PlatformAuthenticationMiddleware(_PlatformHostOnly, AuthenticationMiddleware):
    """Django's ``request.user`` from the session, on the platform host only."""


class PlatformMessageMiddleware(_PlatformHostOnly, MessageMiddleware):
    """Django's messages (the admin's notices), on the platform host only."""
