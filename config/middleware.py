"""Request ids, the one JSON access-log line per request, and the admin's middleware kept
to the platform host."""

import logging
import re
import time
import uuid

from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.utils.functional import SimpleLazyObject, empty
from django_tenants.utils import get_public_schema_name

logger = logging.getLogger("api.access")

# A client's X-Request-ID is logged (as client_request_id) only when it is short printable
# ASCII, so it can't flood or garble a log line; otherwise it is dropped.
_CLIENT_REQUEST_ID = re.compile(r"[\x20-\x7e]{1,128}")


def _client_request_id(request) -> str | None:
    supplied = request.headers.get("X-Request-ID", "")
    return supplied if _CLIENT_REQUEST_ID.fullmatch(supplied) else None


def _resolved_user_id(request):
    """The id of the user the request's own code identified, else None.

    The API's authentication (DRF) puts its user on ``request.user``; on the platform host
    Django's authentication middleware puts a lazy one there, which only the admin
    resolves. An unresolved one is left alone: resolving it here would read the session
    and the user after the request's transaction has ended.
    """
    user = vars(request).get("user")
    if isinstance(user, SimpleLazyObject) and user._wrapped is empty:
        return None
    return getattr(user, "pk", None)


class RequestLogMiddleware:
    """Outermost middleware: gives each request a server-generated ``request.request_id``
    (also the response's ``X-Request-ID``) and logs one line with its outcome.

    A client-sent ``X-Request-ID`` is kept as ``request.client_request_id`` and logged
    beside it, never used as the request's id: a client cannot make its request look like
    another one in the logs. Placed before tenant routing so that even unknown-host answers
    are logged.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.request_id = uuid.uuid4().hex
        request.client_request_id = _client_request_id(request)
        started = time.perf_counter()
        response = self.get_response(request)
        response["X-Request-ID"] = request.request_id
        tenant = getattr(request, "tenant", None)
        logger.info(
            "request",
            extra={
                "request_id": request.request_id,
                "client_request_id": request.client_request_id,
                "tenant": getattr(tenant, "schema_name", None),
                "user_id": _resolved_user_id(request),
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
            },
        )
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
        if tenant is not None and tenant.schema_name == get_public_schema_name():
            return super().__call__(request)
        return self.get_response(request)


class PlatformSessionMiddleware(_PlatformHostOnly, SessionMiddleware):
    """Django's sessions, on the platform host only."""


class PlatformAuthenticationMiddleware(_PlatformHostOnly, AuthenticationMiddleware):
    """Django's ``request.user`` from the session, on the platform host only."""


class PlatformMessageMiddleware(_PlatformHostOnly, MessageMiddleware):
    """Django's messages (the admin's notices), on the platform host only."""
