"""Problem-details (RFC 9457) exceptions and bodies, importable from anywhere.

Kept apart from ``core.errors`` (the DRF exception handler) so that authentication
classes can raise these without importing DRF's views.
"""

from http import HTTPStatus

from django.http import JsonResponse
from rest_framework import exceptions, status

PROBLEM_CONTENT_TYPE = "application/problem+json"


class Problem(exceptions.APIException):
    """An API error with an explicit status, stable ``code`` and human ``detail``."""

    def __init__(self, *, status_code: int, code: str, detail: str, headers=None):
        self.status_code = status_code
        self.headers = headers or {}
        super().__init__(detail=detail, code=code)


class DomainError(Exception):
    """An app's domain error that the API answers with a fixed status and ``code``.

    Apps subclass it (``jobs.exceptions``) so that ``core.errors`` can answer them without
    knowing them. ``public_detail`` is the client-safe message; unset, ``str(exc)`` is.
    """

    status_code = 400
    code = "invalid"
    public_detail: str | None = None

    def problem(self) -> Problem:
        return Problem(
            status_code=self.status_code,
            code=self.code,
            detail=self.public_detail or str(self),
        )


class RateLimited(exceptions.Throttled):
    """429 with ``Retry-After``; raised by the rate-limit check (never django-ratelimit's 403)."""

    default_code = "rate_limited"
    default_detail = "Too many requests."
    extra_detail_singular = extra_detail_plural = ""


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "payload_too_large"
    default_detail = "The request body is too large."


def problem_body(*, status_code: int, code: str, detail: str, request=None, errors=None):
    body = {
        "type": "about:blank",
        "title": HTTPStatus(status_code).phrase,
        "status": status_code,
        "detail": detail,
        "code": code,
        "request_id": getattr(request, "request_id", None),
    }
    if errors is not None:
        body["errors"] = errors
    return body


def problem_response(request, *, status_code: int, code: str, detail: str) -> JsonResponse:
    """A problem-details response for code paths outside DRF (middleware, URL handlers)."""
    return JsonResponse(
        problem_body(status_code=status_code, code=code, detail=detail, request=request),
        status=status_code,
        content_type=PROBLEM_CONTENT_TYPE,
    )
