"""The API's shared OpenAPI parts: RFC 9457 problem details and response headers.

drf-spectacular infers operations from the DRF views; what it cannot infer (the error
documents, the headers) is described here once and used by each app's schema module
(``accounts.schema``, ``jobs.api.schema``).
"""

from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers

from core.problems import PROBLEM_CONTENT_TYPE, PROBLEM_TYPES_PATH, ProblemCode, codes_of
from core.serializers import StrictSerializer

# --- errors: RFC 9457 problem details ------------------------------------------------------


class ProblemSerializer(serializers.Serializer):
    """Every error of the API (``application/problem+json``)."""

    type = serializers.CharField(
        help_text="The problem type: a URI reference to the code's entry on the problems page "
        f"(`{PROBLEM_TYPES_PATH}#<code>`); resolve it against the request's URL."
    )
    title = serializers.CharField(help_text="The HTTP status phrase.")
    status = serializers.IntegerField()
    detail = serializers.CharField(help_text="Human-readable explanation.")
    code = serializers.ChoiceField(
        choices=[(code.value, code.description) for code in ProblemCode],
        help_text="Stable machine code; each belongs to one status.",
    )
    instance = serializers.CharField(required=False, help_text="The request's path.")
    request_id = serializers.CharField(allow_null=True, help_text="Also in X-Request-ID.")
    errors = serializers.DictField(
        child=serializers.JSONField(),
        required=False,
        help_text=f"Field validation errors (400 `{ProblemCode.INVALID}` only): field → messages.",
    )


def problem_description(status: int) -> str:
    """The codes of ``status`` (``core.problems.codes_of``) with their meanings, as a
    Markdown list; ``ValueError`` for a status no code has."""
    codes = codes_of(status)
    if not codes:
        raise ValueError(f"no ProblemCode has status {status}")
    return "\n".join(f"- `{code}`: {code.description}" for code in codes)


def problems(*statuses: int) -> dict:
    """``responses`` entries for the given error statuses, as problem details."""
    return {
        (status, PROBLEM_CONTENT_TYPE): OpenApiResponse(
            ProblemSerializer, description=problem_description(status)
        )
        for status in statuses
    }


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


# --- what every operation answers: postprocessing hook -------------------------------------

_REQUEST_ID_HEADER = {
    "description": "This request's id, also in problem documents and the server's logs.",
    "schema": {"type": "string"},
}
_RETRY_AFTER_503 = {
    "description": "Seconds to wait before retrying.",
    "schema": {"type": "integer"},
}


def _problem_response(status: int) -> dict:
    return {
        "description": problem_description(status),
        "content": {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


def every_operation_hook(result, generator, request, public):
    """SPECTACULAR_SETTINGS postprocessing hook: every operation documents 500 and 503 (any
    request can meet a bug or an outage; 503 with ``Retry-After``) and every response its
    ``X-Request-ID`` header (core.request_log sets it on all of them)."""
    for item in result.get("paths", {}).values():
        for operation in item.values():
            responses = operation["responses"]
            responses.setdefault("500", _problem_response(500))
            unavailable = responses.setdefault("503", _problem_response(503))
            unavailable.setdefault("headers", {}).setdefault("Retry-After", _RETRY_AFTER_503)
            for response in responses.values():
                response.setdefault("headers", {})["X-Request-ID"] = _REQUEST_ID_HEADER
    return result


RETRY_AFTER_429 = header(
    "Retry-After", "Seconds to wait before the next request.", [429], OpenApiTypes.INT
)


# --- strict request bodies -----------------------------------------------------------------


class StrictBodySchema(OpenApiSerializerExtension):
    """A ``StrictSerializer`` (and each of its subclasses) refuses unknown fields: its
    schema says ``additionalProperties: false``, and a list of nested serializers says its
    bounds (``min_length``, ``max_length``: ``minItems``, ``maxItems``)."""

    target_class = StrictSerializer
    match_subclasses = True

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_basic_serializer(self.target, direction)
        for name, field in self.target.fields.items():
            if isinstance(field, serializers.ListSerializer) and name in schema["properties"]:
                bounds = {"minItems": field.min_length, "maxItems": field.max_length}
                schema["properties"][name].update(
                    {key: value for key, value in bounds.items() if value is not None}
                )
        return {**schema, "additionalProperties": False}
