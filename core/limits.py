"""Bounds on what a client can send: body size, JSON depth and JSON values.

Two layers, because each alone has a gap:

- ``RequestBodyLimitMiddleware`` answers 413 before routing, authentication or any read
  when ``Content-Length`` announces more than ``MAX_REQUEST_BODY_BYTES``, and 400
  ``invalid_content_length`` when it is not ASCII digits. A body without
  ``Content-Length`` (``Transfer-Encoding: chunked``) is read here up to the limit and
  handed on with its length set, or refused with 413 (without this, Django under WSGI
  and DRF would silently see an empty body).
- ``BoundedJSONParser`` (DRF's parser for every API view) reads at most the limit + 1
  bytes itself, whatever the headers said, and refuses JSON that PostgreSQL or the rest of
  the code cannot take: nesting deeper than ``JSON_MAX_DEPTH`` (400 ``json_too_deep``),
  ``NaN``/``Infinity``/overflowing numbers, NUL characters, unpaired surrogates and
  bodies that do not decode in their declared charset (400 ``parse_error``). Each of these
  would otherwise end in a 500 (``RecursionError`` in the decoder, a ``jsonb`` or encoding
  error in the database, ``LookupError`` for ``charset=zlib``).

Django's ``DATA_UPLOAD_MAX_MEMORY_SIZE`` is set to the same limit for form posts (admin),
but it does not cover DRF's parsers, which read the stream directly.
"""

import json
import math
import re
from io import BytesIO

from django.conf import settings
from django.core.handlers.wsgi import WSGIRequest
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from core.problems import PayloadTooLarge, ProblemCode, problem_response

JSON_MAX_DEPTH = 32

# Content-Length is 1*DIGIT (RFC 9110), ASCII only: str.isdigit() would also accept "²"
# (which int() refuses) or "٣" (which it reads as 3).
_DIGITS = re.compile(r"[0-9]+")


def _too_large(request):
    limit = settings.MAX_REQUEST_BODY_BYTES
    return problem_response(
        request,
        status_code=413,
        code=ProblemCode.PAYLOAD_TOO_LARGE,
        detail=f"The request body is larger than {limit} bytes.",
    )


class RequestBodyLimitMiddleware:
    """413 for bodies over ``MAX_REQUEST_BODY_BYTES``, decided before any other work."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        limit = settings.MAX_REQUEST_BODY_BYTES
        announced = request.META.get("CONTENT_LENGTH", "").strip()
        if announced:
            if not _DIGITS.fullmatch(announced):
                return problem_response(
                    request,
                    status_code=400,
                    code=ProblemCode.INVALID_CONTENT_LENGTH,
                    detail="Content-Length must be a number of bytes.",
                )
            if _exceeds(announced, limit):
                return _too_large(request)
        elif request.META.get("HTTP_TRANSFER_ENCODING"):
            if not _buffer_unframed_body(request, limit):
                return _too_large(request)
        return self.get_response(request)


def _exceeds(digits: str, limit: int) -> bool:
    """Whether an ASCII-digit ``Content-Length`` is over ``limit``, decided without
    ``int()`` on thousands of digits (which it refuses)."""
    significant = digits.lstrip("0")
    return len(significant) > len(str(limit)) or int(significant or "0") > limit


def _buffer_unframed_body(request, limit: int) -> bool:
    """Read a body sent without ``Content-Length`` (at most ``limit`` + 1 bytes) and make
    it the request's body with its length set. False when it is over the limit."""
    if isinstance(request, WSGIRequest):
        # Django reads nothing without Content-Length; the server's input stream (gunicorn
        # de-chunks it) holds the body.
        source = request.META["wsgi.input"]
    else:
        # ASGI: Django has already buffered the whole body into a temporary file.
        source = request._stream
    body = source.read(limit + 1)
    if len(body) > limit:
        return False
    request._stream = BytesIO(body)
    request.META["CONTENT_LENGTH"] = str(len(body))
    return True


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number out of range: {text[:20]}")
    return value


def _check_values(data) -> None:
    """Raise ``ParseError`` for nesting over ``JSON_MAX_DEPTH`` or strings PostgreSQL
    cannot store (NUL, unpaired surrogates). Iterative: the depth is not yet known."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > JSON_MAX_DEPTH:
                raise _too_deep()
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if isinstance(key, str):
                    _check_string(key)
                stack.append((item, depth + 1))
        elif isinstance(value, str):
            _check_string(value)


def _check_string(value: str) -> None:
    if "\x00" in value:
        raise ParseError("JSON strings must not contain NUL characters (\\u0000).")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ParseError("JSON strings must be valid Unicode (unpaired surrogate).") from None


def _too_deep() -> ParseError:
    return ParseError(
        f"JSON nested deeper than {JSON_MAX_DEPTH} levels.", code=ProblemCode.JSON_TOO_DEEP
    )


class BoundedJSONParser(JSONParser):
    """DRF's JSON parser with the bounds of this module (see the module docstring)."""

    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        limit = settings.MAX_REQUEST_BODY_BYTES
        raw = stream.read(limit + 1)
        if len(raw) > limit:
            raise PayloadTooLarge()
        try:
            text = raw.decode(encoding)
        except (ValueError, LookupError) as exc:
            # ValueError is UnicodeDecodeError; LookupError is a charset that names a codec
            # but not a text encoding (``charset=zlib``).
            raise ParseError(f"JSON parse error - {exc}") from None
        return parse_json(text)


def parse_json(text: str):
    """``text`` parsed as JSON within this module's bounds (depth, finite numbers, strings
    PostgreSQL can store); ``ParseError`` otherwise. Also for JSON that reaches the service
    by other routes than the API (admin forms, management commands)."""
    try:
        data = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except RecursionError:  # the decoder's own recursion guard, far beyond our limit
        raise _too_deep() from None
    except ValueError as exc:  # includes over-long integers
        raise ParseError(f"JSON parse error - {exc}") from None
    _check_values(data)
    return data
