"""The API's shared OpenAPI parts: RFC 9457 problem details and response headers.

drf-spectacular infers operations from the DRF views; what it cannot infer (the error
documents, the headers) is described here once and used by each app's schema module
(``accounts.schema``, ``jobs.api.schema``).
"""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers

from core.problems import PROBLEM_CONTENT_TYPE

# --- errors: RFC 9457 problem details ------------------------------------------------------


class ProblemSerializer(serializers.Serializer):
    """Every error of the API (``application/problem+json``)."""

    type = serializers.CharField(help_text='Always "about:blank": see `code`.')
    title = serializers.CharField(help_text="The HTTP status phrase.")
    status = serializers.IntegerField()
    detail = serializers.CharField(help_text="Human-readable explanation.")
    code = serializers.CharField(
        help_text="Stable machine code: invalid, parse_error, json_too_deep, invalid_job_id, "
        "invalid_wait, invalid_cursor, invalid_content_length, not_authenticated, "
        "token_not_valid, invalid_credentials, "
        "token_tenant_mismatch, user_inactive, tenant_inactive, unknown_host, not_found, "
        "invalid_transition, idempotency_key_reused, payload_too_large, "
        "unsupported_media_type, rate_limited…"
    )
    request_id = serializers.CharField(allow_null=True, help_text="Also in X-Request-ID.")
    errors = serializers.DictField(
        child=serializers.JSONField(),
        required=False,
        help_text="Field validation errors (400 `invalid` only): field → messages.",
    )


_PROBLEM_DESCRIPTIONS = {
    400: "Invalid request: `invalid` (see `errors`), `parse_error`, `json_too_deep`, "
    "`invalid_job_id`, `invalid_wait`, `invalid_cursor`, `invalid_idempotency_key`, "
    "`invalid_content_length`, `invalid_host`.",
    401: "No valid token (`not_authenticated`, `token_not_valid`), or wrong credentials "
    "(`invalid_credentials`).",
    403: "Token of another tenant (`token_tenant_mismatch`), inactive user (`user_inactive`) "
    "or tenant (`tenant_inactive`).",
    404: "Unknown host (`unknown_host`), or a job that does not exist or belongs to another "
    "tenant (`not_found`: the two are indistinguishable).",
    409: "The job has already ended (`invalid_transition`).",
    413: "Body larger than the service's limit (`payload_too_large`).",
    415: "Body that is not `application/json` (`unsupported_media_type`).",
    422: "Idempotency-Key already used with a different request (`idempotency_key_reused`).",
    429: "Rate limited (`rate_limited`): retry after `Retry-After` seconds.",
}


def problems(*codes: int) -> dict:
    """``responses`` entries for the given error statuses, as problem details."""
    return {
        (code, PROBLEM_CONTENT_TYPE): OpenApiResponse(
            ProblemSerializer, description=_PROBLEM_DESCRIPTIONS[code]
        )
        for code in codes
    }


NO_CONTENT = OpenApiResponse(description="Done; no body.")


NO_CONTENT = OpenApiResponse(description="Done; no body.")


def header(name: str, description: str, responses, type=str) -> OpenApiParameter:
    return OpenApiParameter(
        name,
        type,
        OpenApiParameter.HEADER,
        description=description,
        response=list(responses),
    )


def rate_limit_headers(*codes) -> list[OpenApiParameter]:
    return [
        header(
            "RateLimit-Policy",
            'The caller\'s quota (IETF draft): `"jobs-api";q=<requests>;w=<seconds>`.',
            codes,
        ),
        header(
            "RateLimit",
            'What is left (IETF draft): `"jobs-api";r=<remaining>;t=<seconds to reset>`.',
            codes,
        ),
    ]


RETRY_AFTER_429 = header(
    "Retry-After", "Seconds to wait before the next request.", [429], OpenApiTypes.INT
)
