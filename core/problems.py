"""Problem-details (RFC 9457) exceptions and bodies, importable from anywhere.

Kept apart from ``core.errors`` (the DRF exception handler) so that authentication
classes can raise these without importing DRF's views.

``ProblemCode`` is the one list of the ``code`` values a client can get, each with its
status and a one-line meaning; the OpenAPI schema (``core.openapi``) is made from it, and
``problem_body``, where every problem document is built, refuses any other code.
"""

from enum import StrEnum
from http import HTTPStatus

from django.http import JsonResponse
from rest_framework import exceptions, status

PROBLEM_CONTENT_TYPE = "application/problem+json"


class ProblemCode(StrEnum):
    """Every problem ``code`` the service emits, with its HTTP ``status`` and ``description``.

    Codes of DRF's and simplejwt's own exceptions are here too (``not_authenticated``,
    ``token_not_valid``…): they reach clients through ``core.errors`` unchanged.
    """

    def __new__(cls, value: str, status: int, description: str):
        member = str.__new__(cls, value)
        member._value_ = value
        member.status = status
        member.description = description
        return member

    INVALID = "invalid", 400, "A field is invalid or unknown: see `errors`."
    PARSE_ERROR = "parse_error", 400, "The body is not JSON that the service can store."
    JSON_TOO_DEEP = "json_too_deep", 400, "The JSON body is nested deeper than the limit."
    INVALID_JOB_ID = "invalid_job_id", 400, "The job id in the path is not a UUID."
    INVALID_WAIT = "invalid_wait", 400, "`?wait=` is not a whole number of seconds in range."
    INVALID_CURSOR = "invalid_cursor", 400, "`?cursor=` is not one this API returned."
    INVALID_IDEMPOTENCY_KEY = (
        "invalid_idempotency_key",
        400,
        "`Idempotency-Key` does not match its documented pattern.",
    )
    INVALID_CONTENT_LENGTH = (
        "invalid_content_length",
        400,
        "`Content-Length` is not ASCII digits.",
    )
    INVALID_HOST = "invalid_host", 400, "The `Host` header is not allowed."
    BAD_REQUEST = "bad_request", 400, "A request the server cannot read."
    NOT_AUTHENTICATED = (
        "not_authenticated",
        401,
        "No token was sent (on /metrics: not the metrics token).",
    )
    BAD_AUTHORIZATION_HEADER = (
        "bad_authorization_header",
        401,
        "`Authorization` is not `Bearer <token>`.",
    )
    TOKEN_NOT_VALID = (
        "token_not_valid",
        401,
        "The token is forged, expired, revoked or of the wrong kind.",
    )
    AUTHENTICATION_FAILED = "authentication_failed", 401, "The credentials were refused."
    INVALID_CREDENTIALS = (
        "invalid_credentials",
        401,
        "Wrong username or password, or a user of another tenant.",
    )
    USER_NOT_FOUND = "user_not_found", 401, "The token's user no longer exists on this host."
    TOKEN_TENANT_MISMATCH = (
        "token_tenant_mismatch",
        403,
        "The token, or its user, belongs to another tenant.",
    )
    USER_INACTIVE = "user_inactive", 403, "The token's user is deactivated."
    TENANT_INACTIVE = "tenant_inactive", 403, "The host's tenant is deactivated."
    PERMISSION_DENIED = "permission_denied", 403, "Not allowed to do this."
    NOT_FOUND = (
        "not_found",
        404,
        "No such resource; another tenant's job is answered alike.",
    )
    UNKNOWN_HOST = "unknown_host", 404, "No tenant is served at this host."
    METHOD_NOT_ALLOWED = "method_not_allowed", 405, "The method is not allowed here."
    NOT_ACCEPTABLE = "not_acceptable", 406, "No answer in a media type the `Accept` allows."
    INVALID_TRANSITION = "invalid_transition", 409, "The job has already ended."
    JOB_QUOTA_EXCEEDED = (
        "job_quota_exceeded",
        409,
        "The jobs would give the tenant more unfinished jobs than "
        "`JOBS_MAX_UNFINISHED_PER_TENANT` allows: submit again once some have ended.",
    )
    PAYLOAD_TOO_LARGE = "payload_too_large", 413, "The body is larger than the service's limit."
    UNSUPPORTED_MEDIA_TYPE = (
        "unsupported_media_type",
        415,
        "The body is not `application/json`.",
    )
    IDEMPOTENCY_KEY_REUSED = (
        "idempotency_key_reused",
        422,
        "The `Idempotency-Key` was already used with a different request.",
    )
    BATCH_TOO_LARGE = (
        "batch_too_large",
        422,
        "The batch has more jobs than the rate limit allows in one window, so it can never be "
        "accepted: send at most that many jobs per batch.",
    )
    RATE_LIMITED = "rate_limited", 429, "Rate limited: retry after `Retry-After` seconds."
    SERVER_ERROR = "server_error", 500, "An unexpected error; the request id is logged."
    SERVICE_UNAVAILABLE = (
        "service_unavailable",
        503,
        "PostgreSQL or Redis cannot serve now: retry after `Retry-After` seconds.",
    )


PROBLEM_TYPES_PATH = "/api/docs/problems"
"""The page documenting every code (``core.problem_docs``), served on every host."""


def problem_type(code: ProblemCode) -> str:
    """The problem ``type`` of ``code``: a URI reference, the same on every host, to the
    code's entry on the problems page."""
    return f"{PROBLEM_TYPES_PATH}#{code.value}"


def codes_of(status: int) -> list[ProblemCode]:
    """The codes a problem of HTTP ``status`` can carry, in ``ProblemCode``'s order."""
    return [code for code in ProblemCode if code.status == status]


class Problem(exceptions.APIException):
    """An API error with an explicit status, stable ``code`` and human ``detail``."""

    def __init__(self, *, status_code: int, code: ProblemCode, detail: str, headers=None):
        self.status_code = status_code
        self.headers = headers or {}
        super().__init__(detail=detail, code=code)


class DomainError(Exception):
    """An app's domain error that the API answers with a fixed status and ``code``.

    Apps subclass it (``jobs.exceptions``) so that ``core.errors`` can answer them without
    knowing them. ``public_detail`` is the client-safe message; unset, ``str(exc)`` is.
    """

    status_code = 400
    code = ProblemCode.INVALID
    public_detail: str | None = None

    def problem(self) -> Problem:
        return Problem(
            status_code=self.status_code,
            code=self.code,
            detail=self.public_detail or str(self),
        )


class RateLimited(exceptions.Throttled):
    """429 with ``Retry-After``; raised by every rate-limit check (never a 403)."""

    default_code = ProblemCode.RATE_LIMITED
    default_detail = "Too many requests."
    extra_detail_singular = extra_detail_plural = ""


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = ProblemCode.PAYLOAD_TOO_LARGE
    default_detail = "The request body is too large."


def problem_body(
    *, status_code: int, code: ProblemCode, detail: str, request=None, errors=None
) -> dict:
    """The problem document. ``code`` must be a ``ProblemCode`` (or its value) of
    ``status_code``: anything else raises ``ValueError`` (a bug, answered 500), so no
    undocumented code reaches a client. ``type`` names the code's documentation
    (``problem_type``); ``instance`` is the request's path, when there is a request."""
    code = ProblemCode(code)
    if code.status != status_code:
        raise ValueError(f"{code!r} is a code of status {code.status}, not {status_code}")
    body = {
        "type": problem_type(code),
        "title": HTTPStatus(status_code).phrase,
        "status": status_code,
        "detail": detail,
        "code": code.value,
        "request_id": getattr(request, "request_id", None),
    }
    if request is not None:
        body["instance"] = request.path
    if errors is not None:
        body["errors"] = errors
    return body


def problem_response(request, *, status_code: int, code: ProblemCode, detail: str) -> JsonResponse:
    """A problem-details response for code paths outside DRF (middleware, URL handlers)."""
    return JsonResponse(
        problem_body(status_code=status_code, code=code, detail=detail, request=request),
        status=status_code,
        content_type=PROBLEM_CONTENT_TYPE,
    )
