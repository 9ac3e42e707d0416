"""One error contract: RFC 9457 problem details for every error the service returns.

``problem_exception_handler`` is DRF's exception handler; the ``*_view`` functions are
Django's handler404/handler500 for requests that never reach DRF (unknown URL or host).
Bodies never carry internals: an unexpected exception is logged with its traceback and
answered with a generic 500.
"""

import logging
import math

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404
from django_ratelimit.exceptions import Ratelimited
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import set_rollback

from config.problems import (
    PROBLEM_CONTENT_TYPE,
    PayloadTooLarge,
    Problem,
    RateLimited,
    problem_body,
    problem_response,
)

logger = logging.getLogger(__name__)


def _translate(exc: Exception) -> Exception:
    """Map Django, django-ratelimit and domain exceptions onto DRF API exceptions."""
    from jobs.exceptions import IdempotencyConflict, InvalidTransition, JobNotFound

    if isinstance(exc, Ratelimited):
        return RateLimited(wait=getattr(exc, "retry_after", 60))
    if isinstance(exc, (Http404, JobNotFound)):
        return exceptions.NotFound(detail="Not found.", code="not_found")
    if isinstance(exc, InvalidTransition):
        return Problem(status_code=409, code="invalid_transition", detail=str(exc))
    if isinstance(exc, IdempotencyConflict):
        return Problem(
            status_code=422,
            code="idempotency_key_reused",
            detail="This Idempotency-Key was already used with a different request.",
        )
    if isinstance(exc, RequestDataTooBig):
        return PayloadTooLarge()
    if isinstance(exc, DjangoPermissionDenied):
        return exceptions.PermissionDenied()
    return exc


def _first_code(codes) -> str:
    while isinstance(codes, dict | list):
        if not codes:
            return "invalid"
        codes = next(iter(codes.values())) if isinstance(codes, dict) else codes[0]
    return str(codes)


def problem_exception_handler(exc, context):
    request = context.get("request")
    exc = _translate(exc)
    if not isinstance(exc, exceptions.APIException):
        logger.exception(
            "unhandled error", extra={"request_id": getattr(request, "request_id", None)}
        )
        set_rollback()
        body = problem_body(
            status_code=500,
            code="server_error",
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
        code = "invalid"
        errors = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        detail = "The request is invalid."
    elif isinstance(exc.detail, dict):
        # simplejwt's InvalidToken carries {"detail", "code", "messages"}: keep the first two.
        code = str(exc.detail.get("code") or exc.default_code)
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
    return problem_response(request, status_code=400, code="bad_request", detail="Bad request.")


def permission_denied_view(request, exception=None):
    return problem_response(
        request,
        status_code=403,
        code="permission_denied",
        detail="You do not have permission to perform this action.",
    )


def not_found_view(request, exception=None):
    return problem_response(request, status_code=404, code="not_found", detail="Not found.")


def server_error_view(request):
    return problem_response(
        request, status_code=500, code="server_error", detail="An unexpected error occurred."
    )
