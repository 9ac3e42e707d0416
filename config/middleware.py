"""Request id and the one JSON access-log line per request."""

import logging
import re
import time
import uuid

logger = logging.getLogger("api.access")

# A client-supplied X-Request-ID is echoed only when it is short and plain, so it can't
# inject anything into logs or headers.
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestLogMiddleware:
    """Outermost middleware: assigns ``request.request_id`` and logs the outcome.

    Placed before tenant routing so that even unknown-host answers are logged.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        supplied = request.headers.get("X-Request-ID", "")
        request.request_id = supplied if _SAFE_REQUEST_ID.match(supplied) else uuid.uuid4().hex
        started = time.perf_counter()
        response = self.get_response(request)
        response["X-Request-ID"] = request.request_id
        tenant = getattr(request, "tenant", None)
        user = getattr(request, "user", None)
        logger.info(
            "request",
            extra={
                "request_id": request.request_id,
                "tenant": getattr(tenant, "schema_name", None),
                "user_id": getattr(user, "pk", None),
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
            },
        )
        return response
