"""Hostile input: oversized bodies (413), deep or unstorable JSON (400), bounded fields,
unknown fields; every refusal is problem JSON and stores nothing."""

import asyncio
import io
import json

import pytest
from django.conf import settings
from rest_framework.exceptions import ParseError

from core.limits import JSON_MAX_DEPTH, BoundedJSONParser
from core.problems import PayloadTooLarge
from jobs.models import Job
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

ACME = "acme.localhost"
LIMIT = 256 * 1024
PROBLEM = "application/problem+json"


def _post_raw(client, path: str, body: bytes, content_type="application/json", **extra):
    return client.generic("POST", path, body, content_type=content_type, **extra)


def _echo_body(size: int) -> bytes:
    """A valid ``demo.echo`` submission of exactly ``size`` bytes."""
    skeleton = json.dumps({"type": "demo.echo", "payload": {"blob": ""}}).encode()
    body = json.dumps({"type": "demo.echo", "payload": {"blob": "x" * (size - len(skeleton))}})
    assert len(body) == size
    return body.encode()


def _nested(depth: int) -> bytes:
    """A submission whose ``payload`` makes the whole body ``depth`` levels deep."""
    inner = "[" * (depth - 2) + "]" * (depth - 2)
    return f'{{"type": "demo.echo", "payload": {{"a": {inner}}}}}'.encode()


def _assert_problem(response, status: int, code: str):
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == PROBLEM
    assert response.json()["code"] == code


def test_default_limit_is_256_kib():
    assert settings.MAX_REQUEST_BODY_BYTES == LIMIT


# --- size ------------------------------------------------------------------------------------


def test_a_body_at_the_limit_is_accepted_and_one_byte_more_is_413(alice_client):
    accepted = _post_raw(alice_client, "/api/jobs", _echo_body(LIMIT))
    assert accepted.status_code == 202
    assert Job.objects.count() == 1
    refused = _post_raw(alice_client, "/api/jobs", _echo_body(LIMIT + 1))
    _assert_problem(refused, 413, "payload_too_large")
    assert Job.objects.count() == 1


@pytest.mark.parametrize("path", ["/api/jobs", "/api/auth/token", "/api/auth/logout"])
def test_an_announced_oversize_body_is_refused_before_authentication(acme, path):
    """No token: the 413 comes before the 401, so nothing is read, parsed or looked up."""
    response = _post_raw(client_for(host=ACME), path, b"{}", CONTENT_LENGTH=str(LIMIT + 1))
    _assert_problem(response, 413, "payload_too_large")


def test_an_oversize_body_on_the_public_host_is_413_too(public_tenant):
    response = _post_raw(
        client_for(host=settings.PUBLIC_HOST), "/admin/login/", b"", CONTENT_LENGTH="999999999"
    )
    _assert_problem(response, 413, "payload_too_large")


def test_a_malformed_content_length_is_400(acme):
    response = _post_raw(client_for(host=ACME), "/api/jobs", b"{}", CONTENT_LENGTH="12abc")
    _assert_problem(response, 400, "invalid_content_length")


def _chunked(body: bytes) -> dict:
    """WSGI environ of a request without Content-Length whose server de-chunked ``body``."""
    return {
        "CONTENT_LENGTH": "",
        "HTTP_TRANSFER_ENCODING": "chunked",
        "wsgi.input": io.BytesIO(body),
    }


def test_a_chunked_body_is_read_up_to_the_limit(alice_client):
    body = _echo_body(1000)
    accepted = _post_raw(alice_client, "/api/jobs", b"", **_chunked(body))
    assert accepted.status_code == 202
    assert Job.objects.get().payload == json.loads(body)["payload"]
    refused = _post_raw(alice_client, "/api/jobs", b"", **_chunked(_echo_body(LIMIT + 1)))
    _assert_problem(refused, 413, "payload_too_large")
    assert Job.objects.count() == 1


def test_a_chunked_oversize_body_under_asgi_is_413(acme):
    """Under ASGI (uvicorn) Django buffers the body before the middleware runs; the limit
    is still checked on what arrived, in chunks and without Content-Length."""
    from config.asgi import application

    chunks = [b"x" * 65536] * 5  # 320 KiB
    sent = []

    async def receive():
        if chunks:
            return {"type": "http.request", "body": chunks.pop(), "more_body": bool(chunks)}
        await asyncio.Event().wait()

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/jobs",
        "raw_path": b"/api/jobs",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", ACME.encode()),
            (b"content-type", b"application/json"),
            (b"transfer-encoding", b"chunked"),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }
    asyncio.run(application(scope, receive, send))
    assert sent[0]["status"] == 413
    body = json.loads(b"".join(message.get("body", b"") for message in sent[1:]))
    assert body["code"] == "payload_too_large"


def test_the_parser_enforces_the_limit_on_what_it_reads():
    """Whatever the headers said, the parser never reads more than the limit + 1 bytes."""
    stream = io.BytesIO(b"[" + b"1," * LIMIT + b"1]")
    with pytest.raises(PayloadTooLarge):
        BoundedJSONParser().parse(stream)
    assert stream.tell() == LIMIT + 1


# --- JSON depth and values -----------------------------------------------------------------------


def test_json_nesting_is_bounded_at_32_levels(alice_client):
    assert JSON_MAX_DEPTH == 32
    assert _post_raw(alice_client, "/api/jobs", _nested(32)).status_code == 202
    for depth in (33, 5000, 100_000):
        response = _post_raw(alice_client, "/api/jobs", _nested(depth))
        _assert_problem(response, 400, "json_too_deep")
    assert Job.objects.count() == 1


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b'{"type": "demo.echo", "payload": {"n": NaN}}', "NaN"),
        (b'{"type": "demo.echo", "payload": {"n": -Infinity}}', "Infinity"),
        (b'{"type": "demo.echo", "payload": {"n": 1e400}}', "float overflow"),
        (b'{"type": "demo.echo", "payload": {"n": ' + b"9" * 5000 + b"}}", "5000-digit integer"),
        (b'{"type": "demo.echo", "payload": {"s": "a\\u0000b"}}', "NUL in a string"),
        (b'{"type": "demo.echo", "payload": {"a\\u0000": 1}}', "NUL in a key"),
        (b'{"type": "demo.echo", "payload": {"s": "\\ud800"}}', "unpaired surrogate"),
        (b'{"type": "demo.echo", "payload": {"s": "\xff\xfe"}}', "invalid UTF-8"),
        (b'{"type": "demo.echo", "payload": {', "truncated"),
        (b"", "empty body"),
    ],
)
def test_json_postgresql_cannot_store_is_400_not_500(alice_client, body, why):
    response = _post_raw(alice_client, "/api/jobs", body)
    _assert_problem(response, 400, "parse_error" if body else "invalid")
    assert not Job.objects.exists(), why


@pytest.mark.parametrize("body", [b"[]", b'"a string"', b"42", b"null", b"true"])
@pytest.mark.parametrize("path", ["/api/jobs", "/api/auth/token", "/api/auth/logout"])
def test_a_body_that_is_not_an_object_is_400(alice_client, path, body):
    response = _post_raw(alice_client, path, body)
    _assert_problem(response, 400, "invalid")
    assert not Job.objects.exists()


@pytest.mark.parametrize("path", ["/api/jobs", "/api/auth/token"])
def test_a_body_that_is_not_json_is_415(alice_client, path):
    response = _post_raw(
        alice_client, path, b"type=demo.echo", content_type="application/x-www-form-urlencoded"
    )
    _assert_problem(response, 415, "unsupported_media_type")
    assert not Job.objects.exists()


# --- field bounds -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/jobs", {"type": "t" * 101}, "type"),
        ("/api/jobs", {"type": "demo.echo", "priority": 10**6}, "priority"),
        ("/api/jobs", {"type": "demo.echo", "payload": ["a"] * 10}, "payload"),
        ("/api/jobs", {"type": "ai_generation", "payload": {"prompt": "p" * 2001}}, "payload"),
        ("/api/auth/token", {"username": "u" * 151, "password": "x"}, "username"),
        ("/api/auth/token", {"username": "alice", "password": "x" * 1025}, "password"),
        ("/api/auth/token/refresh", {"refresh": "r" * 4097}, "refresh"),
        ("/api/auth/logout", {"refresh": "r" * 4097}, "refresh"),
    ],
)
def test_fields_are_bounded(alice_client, path, body, field):
    response = alice_client.post(path, body, format="json")
    _assert_problem(response, 400, "invalid")
    assert field in response.json()["errors"]
    assert not Job.objects.exists()


def test_idempotency_key_is_bounded(alice_client):
    response = alice_client.post(
        "/api/jobs", {"type": "demo.echo"}, format="json", HTTP_IDEMPOTENCY_KEY="k" * 256
    )
    _assert_problem(response, 400, "invalid_idempotency_key")
    assert not Job.objects.exists()


def test_the_parser_rejects_depth_before_values():
    """The depth bound holds inside the parser alone (any view that uses it)."""
    with pytest.raises(ParseError) as raised:
        BoundedJSONParser().parse(io.BytesIO(b"[" * 40 + b"]" * 40))
    assert raised.value.get_codes() == "json_too_deep"
