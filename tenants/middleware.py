"""Routes each request to its tenant by Host, answering problem JSON when it can't."""

from django.core.exceptions import DisallowedHost
from django.db import connection
from django_tenants.middleware.main import TenantMainMiddleware
from django_tenants.utils import remove_www

from config.problems import problem_response
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
            code="unknown_host",
            detail="No tenant is served at this host.",
        )

    def process_request(self, request):
        try:
            request.get_host()
        except DisallowedHost:
            return problem_response(
                request,
                status_code=400,
                code="invalid_host",
                detail="The Host header is not allowed.",
            )
        response = super().process_request(request)
        if response is not None:
            return response
        if not request.tenant.is_active:
            return problem_response(
                request, status_code=403, code="tenant_inactive", detail="This tenant is inactive."
            )
        return None

    def process_response(self, request, response):
        # Leave the connection on the public schema, so nothing that runs after a request
        # on this thread (tests, management code, the next request's lookups) inherits
        # the tenant's search_path.
        connection.set_schema_to_public()
        return response
