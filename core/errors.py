"""One error contract: RFC 9457 problem details for every error the service returns.

``problem_exception_handler`` is DRF's exception handler; the ``*_view`` functions are
Django's handler404/handler500 for requests that never reach DRF (unknown URL or host).
Bodies never carry internals: an unexpected exception is logged with its traceback and
answered with a generic 500. Every ``code`` is a ``core.problems.ProblemCode``: an exception
whose code the enum lacks is a bug, answered with that 500.

An outage of PostgreSQL, of a pooler in front of it (PgBouncer, docs/pooler.md) or of Redis
is not a bug of the request: wherever it surfaces (a view, a middleware, the commit at the
end of a tenant-host request), the answer is 503 ``service_unavailable`` with
``Retry-After``, and the next request after the server is back succeeds without a restart
(CONN_HEALTH_CHECKS drops broken connections; redis-py reconnects). Redis being down fails
closed: the rate limits cannot count, so the requests they guard get 503 rather than going
unlimited (docs/security.md).
"""

import logging
import math
import sys

import psycopg
import redis
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import Http404
from rest_framework import exceptions
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import set_rollback

from core.problems import (
    PROBLEM_CONTENT_TYPE,
    DomainError,
    PayloadTooLarge,
    Problem,
    ProblemCode,
    RateLimited,
    problem_body,
    problem_response,
)

logger = logging.getLogger(__name__)

# What a client should wait before retrying after a 503 (seconds): a database restart or
# failover takes seconds, and clients that all retry at once would slow the recovery.
UNAVAILABLE_RETRY_AFTER = 5

# Errors that mean "the database cannot serve now" (connection refused or lost, server
# shutting down, statement or lock timeout, serialization failure), from Django's wrapper
# or from the driver used directly; and "Redis cannot serve now".
_DATABASE_UNAVAILABLE = (OperationalError, InterfaceError, psycopg.OperationalError)
# PostgreSQL gives every error it reports an SQLSTATE. A plain ``DatabaseError`` or an
# ``InternalError`` without one was made by the driver or by a pooler in between: the
# conversation with the server broke (PgBouncer stopped or restarting mid-query, a result
# that never came, "no more connections allowed", "server login failed", "pgbouncer cannot
# connect to server"). So is any error without one that names a pooler's or a lost
# connection's message, whatever class the driver gave it.
_DRIVER_LOST = (psycopg.DatabaseError, psycopg.InternalError)
_LOST_MESSAGES = (
    "pgbouncer",
    "no more connections allowed",
    "server login failed",
    "cannot connect to server",
    "query_wait_timeout",
    "server conn crashed",
    "server closed the connection",
    "connection to server",
)
_CACHE_UNAVAILABLE = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.ReadOnlyError,  # a replica after failover
)


def _database_unavailable(exc: BaseException | None) -> bool:
    if isinstance(exc, _DATABASE_UNAVAILABLE):
        return True
    # Django's wrapper (django.db.DatabaseError and subclasses) keeps the driver's error as
    # its cause; a DatabaseError Django raises itself has none and is not an outage.
    driver = exc if isinstance(exc, psycopg.Error) else getattr(exc, "__cause__", None)
    if not isinstance(driver, psycopg.DatabaseError) or driver.sqlstate:
        return False
    if type(driver) in _DRIVER_LOST:
        return True
    message = str(driver).lower()
    return any(lost in message for lost in _LOST_MESSAGES)


def _unavailable_dependency(exc: BaseException | None) -> str | None:
    if _database_unavailable(exc):
        return "database"
    if isinstance(exc, _CACHE_UNAVAILABLE):
        return "cache"
    return None


_UNAVAILABLE_DETAIL = "The service is temporarily unavailable; retry later."


def _service_unavailable() -> Problem:
    return Problem(
        status_code=503,
        code=ProblemCode.SERVICE_UNAVAILABLE,
        detail=_UNAVAILABLE_DETAIL,
        headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER)},
    )


def _log_unavailable(dependency: str, exc: BaseException, request) -> None:
    # One line, no traceback: during an outage every request ends here.
    logger.error(
        "%s unavailable: %s",
        dependency,
        str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
        extra={"request_id": getattr(request, "request_id", None)},
    )


def _translate(exc: Exception) -> Exception:
    """Map Django and domain exceptions onto DRF API exceptions, and DRF's own throttling
    onto ours (one 429 code)."""
    if isinstance(exc, exceptions.Throttled) and not isinstance(exc, RateLimited):
        return RateLimited(wait=exc.wait)
    if isinstance(exc, DomainError):
        return exc.problem()
    if isinstance(exc, Http404):
        return exceptions.NotFound(detail="Not found.", code=ProblemCode.NOT_FOUND)
    if isinstance(exc, RequestDataTooBig):
        return PayloadTooLarge()
    if isinstance(exc, DjangoPermissionDenied):
        return exceptions.PermissionDenied()
    return exc


def _first_code(codes) -> ProblemCode:
    """The code of an exception's first detail; ``ValueError`` when ``ProblemCode`` lacks
    it (a new code must be added there, with its description)."""
    while isinstance(codes, dict | list):
        if not codes:
            return ProblemCode.INVALID
        codes = next(iter(codes.values())) if isinstance(codes, dict) else codes[0]
    return ProblemCode(str(codes))


def problem_exception_handler(exc, context):
    request = context.get("request")
    if request is not None:
        # Problem details are JSON whatever the view renders otherwise (YAML, HTML).
        request.accepted_renderer = JSONRenderer()
        request.accepted_media_type = JSONRenderer.media_type
    dependency = _unavailable_dependency(exc)
    if dependency is not None:
        _log_unavailable(dependency, exc, request)
        exc = _service_unavailable()
    exc = _translate(exc)
    if not isinstance(exc, exceptions.APIException):
        logger.exception(
            "unhandled error", extra={"request_id": getattr(request, "request_id", None)}
        )
        set_rollback()
        body = problem_body(
            status_code=500,
            code=ProblemCode.SERVER_ERROR,
            detail="An unexpected error occurred.",
            request=request,
        )
        return Response(body, status=500, content_type=PROBLEM_CONTENT_TYPE)

    headers = dict(getattr(exc, "headers", None) or {})
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
        headers["Retry-After"] = str(max(1, math.ceil(exc.wait)))

    errors = None
    if isinstance(exc, exceptions.ValidationError):
        code = ProblemCode.INVALID
        errors = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        detail = "The request is invalid."
    elif isinstance(exc.detail, dict):
        # simplejwt's InvalidToken carries {"detail", "code", "messages"}: keep the first two.
        code = ProblemCode(str(exc.detail.get("code") or exc.default_code))
        detail = str(exc.detail.get("detail") or exc.default_detail)
    else:
        code = _first_code(exc.get_codes())
        detail = str(exc.detail)

    set_rollback()
    body = problem_body(
        status_code=exc.status_code, code=code, detail=detail, request=request, errors=errors
    )
    return Response(
        body, status=exc.status_code, headers=headers, content_type=PROBLEM_CONTENT_TYPE
    )


def bad_request_view(request, exception=None):
    return problem_response(
        request, status_code=400, code=ProblemCode.BAD_REQUEST, detail="Bad request."
    )


def permission_denied_view(request, exception=None):
    return problem_response(
        request,
        status_code=403,
        code=ProblemCode.PERMISSION_DENIED,
        detail="You do not have permission to perform this action.",
    )


def not_found_view(request, exception=None):
    return problem_response(
        request, status_code=404, code=ProblemCode.NOT_FOUND, detail="Not found."
    )


def server_error_view(request):
    """Django's handler500, called while the exception is being handled: an outage that
    surfaced outside DRF (a middleware, the request's commit) is a 503, not a 500."""
    exc = sys.exc_info()[1]
    dependency = _unavailable_dependency(exc)
    if dependency is not None:
        _log_unavailable(dependency, exc, request)
        response = problem_response(
            request,
            status_code=503,
            code=ProblemCode.SERVICE_UNAVAILABLE,
            detail=_UNAVAILABLE_DETAIL,
        )
        response["Retry-After"] = str(UNAVAILABLE_RETRY_AFTER)
        return response
    return problem_response(
        request,
        status_code=500,
        code=ProblemCode.SERVER_ERROR,
        detail="An unexpected error occurred.",
    )
