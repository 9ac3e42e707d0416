"""CORS per tenant, with django-cors-headers: the origins a tenant lists
(``Tenant.allowed_origins``, edited in the admin) may call that tenant's API, and no other.

django-cors-headers answers preflights and adds the CORS headers; its
``check_request_enabled`` signal lets the receiver below decide per request. Settings keep
every global list empty and ``CORS_URLS_REGEX`` matching nothing, so a request is CORS
only when this receiver says so: its ``Origin`` is one of its tenant's origins and its
path is under ``/api/``. Then a preflight is answered at once (200, no body) with the
allowed methods and headers (``Authorization`` among them); any other request gets
``Access-Control-Allow-Origin`` (the origin itself) and ``Access-Control-Expose-Headers``.
A preflight from any other origin gets no CORS header and goes on to the view like any
OPTIONS request, so the browser refuses the call. No credentials mode: the API uses bearer
tokens, never cookies.

The tenant is ``request.tenant``, set by the tenant routing middleware, which must come
before ``corsheaders.middleware.CorsMiddleware`` in ``MIDDLEWARE``.
"""

from corsheaders.signals import check_request_enabled
from django.dispatch import receiver

API_PREFIX = "/api/"


def origin_allowed(request) -> bool:
    """Whether ``request`` comes from one of its tenant's allowed origins, to its API."""
    origin = request.headers.get("Origin")
    tenant = getattr(request, "tenant", None)
    if not origin or tenant is None or not request.path_info.startswith(API_PREFIX):
        return False
    return origin in (getattr(tenant, "allowed_origins", None) or ())


@receiver(check_request_enabled, dispatch_uid="core.cors.origin_allowed")
def _enable_for_tenant_origins(sender, request, **kwargs) -> bool:
    return origin_allowed(request)
