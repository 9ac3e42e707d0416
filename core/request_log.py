"""Request ids and the one JSON access-log line per request."""

import logging
import re
import time
import uuid

from core import log_context, tracing

logger = logging.getLogger("api.access")

# A client's X-Request-ID is logged (as client_request_id) only when it is short printable
# ASCII, so it can't flood or garble a log line; otherwise it is dropped.
_CLIENT_REQUEST_ID = re.compile(r"[\x20-\x7e]{1,128}")


def _client_request_id(request) -> str | None:
    supplied = request.headers.get("X-Request-ID", "")
    return supplied if _CLIENT_REQUEST_ID.fullmatch(supplied) else None


class RequestLogMiddleware:
    """Outermost middleware: gives each request a server-generated ``request.request_id``
    (also the response's ``X-Request-ID``) and logs one line with its outcome.

    A client-sent ``X-Request-ID`` is kept as ``request.client_request_id`` and logged
    beside it, never used as the request's id: a client cannot make its request look like
    another one in the logs. Placed before tenant routing so that even unknown-host answers
    are logged. Every record logged while the request is served carries its request id,
    tenant and user (``core.log_context``). With tracing on, the request is served inside
    its server span (``core.tracing``), the child of the client's ``traceparent``.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.request_id = uuid.uuid4().hex
        request.client_request_id = _client_request_id(request)
        started = time.perf_counter()
        with tracing.request_span(request):
            with log_context.bind_request(request):
                response = self.get_response(request)
            response["X-Request-ID"] = request.request_id
            logger.info(
                "request",
                extra={
                    **log_context.request_fields(request),
                    "client_request_id": request.client_request_id,
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                },
            )
        return response
