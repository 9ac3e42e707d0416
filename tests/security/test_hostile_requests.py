"""Requests from outside the API schema, swept: every HTTP method on every API route,
hostile bytes in the headers the service reads, hand-made cursors (Hypothesis) and admin
changelist filters with foreign values. Schemathesis (test_fuzz.py) only generates what
the schema describes, so it never sends these.

Every answer must be below 500; an API error is problem JSON with a code; a refused
request (4xx) changes nothing: the same jobs in the same states, the same users, no token
revoked. A few rows also go over real HTTP, as raw bytes, to the live server.
"""

import io
import json
import socket
from base64 import b64encode, urlsafe_b64encode
from datetime import UTC, timedelta, timezone
from urllib.parse import urlencode

import pytest
from django.conf import settings as django_settings
from django.db.models import DateTimeField, JSONField
from django.test import Client
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from accounts.models import User
from accounts.tokens import tokens_for
from jobs.models import Job, JobStatus
from tenants.models import Tenant
from tests.factories import JobFactory, UserFactory

pytestmark = pytest.mark.django_db

ACME = "acme.localhost"
PUBLIC = django_settings.PUBLIC_HOST
PROBLEM = "application/problem+json"
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT", "FOO"]
# (host, path): every route of the API; {job} is one of alice's jobs.
ROUTES = [
    (ACME, "/api/auth/token"),
    (ACME, "/api/auth/token/refresh"),
    (ACME, "/api/auth/logout"),
    (ACME, "/api/jobs"),
    (ACME, "/api/jobs/{job}"),
    (ACME, "/api/jobs/{job}/cancel"),
    (ACME, "/api/schema"),
    (ACME, "/api/docs"),
    (PUBLIC, "/api/schema"),
    (PUBLIC, "/api/docs"),
]


@pytest.fixture
def world(acme, globex, public_tenant, settings):
    """alice of acme with a token and a processing job, bob of globex with a job, and a
    superuser; every rate limit lifted, so that a sweep's requests are answered, not 429."""
    settings.JOBS_API_RATE = "1000000/m"
    settings.AUTH_LOGIN_IP_RATE = "1000000/m"
    settings.AUTH_LOGIN_USERNAME_RATE = "1000000/m"
    settings.JOBS_LONGPOLL_MAX_WAIT = 1
    alice = UserFactory(username="alice", tenant=acme)
    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    JobFactory(tenant=globex, created_by=UserFactory(username="bob", tenant=globex))
    return {
        "alice": alice,
        "root": root,
        "token": str(tokens_for(alice).access_token),
        "job": JobFactory(tenant=acme, created_by=alice, status=JobStatus.PROCESSING),
    }


def _state():
    return (
        sorted(Job.objects.values_list("id", "tenant_id", "status", "cancel_requested")),
        sorted(User.objects.values_list("username", "tenant_id", "is_active", "password")),
        BlacklistedToken.objects.count(),
    )


def _fault(response, method: str, refused_changed_state: bool) -> str | None:
    """What is wrong with this answer to a hostile request, or None."""
    status = response.status_code
    if status >= 500:
        return f"{status}"
    if status >= 400 and method != "HEAD":
        if response.get("Content-Type") != PROBLEM:
            return f"{status} as {response.get('Content-Type')}"
        if not json.loads(response.content).get("code"):
            return f"{status} without a code"
    if status >= 400 and refused_changed_state:
        return f"{status}, and the state changed"
    allowed = {name.strip() for name in response.get("Allow", "").split(",")}
    if status == 405 and method in allowed:
        return f"405, yet Allow: {response.get('Allow')}"
    if method == "OPTIONS" and status == 200 and "OPTIONS" not in allowed:
        return f"200 to OPTIONS without it in Allow: {response.get('Allow')}"
    return None


def _request(method: str, host: str, path: str, *, body: bytes = b"{}", **extra):
    """``extra`` are WSGI environ keys; they override the defaults set here."""
    return Client(HTTP_HOST=host).generic(
        method, path, body, content_type="application/json", **extra
    )


def _sweep(cases) -> list:
    """Send each ``(label, method, host, path, body, extra)`` and list the faulty answers."""
    faults = []
    for label, method, host, path, body, extra in cases:
        before = _state()
        response = _request(method, host, path, body=body, **extra)
        fault = _fault(response, method, _state() != before)
        if fault:
            faults.append((label, method, path, fault))
    return faults


# --- every HTTP method on every route -------------------------------------------------------


@pytest.mark.parametrize(("host", "path"), ROUTES, ids=[f"{h} {p}" for h, p in ROUTES])
def test_every_method_on_every_route_is_answered_without_a_server_error(world, host, path):
    url = path.format(job=world["job"].id)
    auth = {"HTTP_AUTHORIZATION": f"Bearer {world['token']}"}
    cases = [(method, method, host, url, b"{}", auth) for method in METHODS]
    assert _sweep(cases) == []


# --- hostile bytes in headers ---------------------------------------------------------------

# Header values as a WSGI server hands them to Django: bytes decoded as Latin-1 (PEP 3333).
# NUL, CR and LF are left out: gunicorn and uvicorn (h11) refuse them in a header before
# Django sees the request (and Django's own request parsing raises on a NUL charset).
HOSTILE_BYTES = ["\x01", "\x08", "\x1b", "\x7f", "\x80", "\x9f", "\xa0", "\xb2", "\xe9", "\xff"]

_HEADER_ROUTES = [
    ("POST", "/api/jobs", b'{"type": "demo.echo"}'),
    ("POST", "/api/auth/token", b'{"username": "alice", "password": "wrong"}'),
    ("POST", "/api/auth/token/refresh", b'{"refresh": "not-a-token"}'),
    ("POST", "/api/auth/logout", b'{"refresh": "not-a-token"}'),
    ("POST", "/api/jobs/{job}/cancel", b""),
    ("GET", "/api/jobs", b""),
    ("GET", "/api/jobs/{job}", b""),
    ("GET", "/api/schema", b""),
    ("GET", "/api/docs", b""),
]


def _values(header: str, token: str) -> list[str]:
    """Hostile values of ``header``: each byte alone, inside a word, and where the header's
    own syntax puts it (after a token, in a port, in a charset…)."""
    values = [value for byte in HOSTILE_BYTES for value in (byte, f"a{byte}b")]
    specific = {
        "HTTP_AUTHORIZATION": lambda b: [f"Bearer {token}{b}", f"Bearer {b}", f"{b} {token}"],
        "HTTP_HOST": lambda b: [f"{ACME}{b}", f"{ACME}:{b}", f"{b}.{ACME}"],
        "HTTP_IDEMPOTENCY_KEY": lambda b: [f"key{b}", b * 255],
        "HTTP_IF_NONE_MATCH": lambda b: [f'"{b}"', f'W/"{b}"', f'"x", "{b}"', f"*{b}"],
        "CONTENT_TYPE": lambda b: [f"application/json; charset={b}", f"application/{b}json"],
        "CONTENT_LENGTH": lambda b: [f"1{b}", f"{b}2"],
        "HTTP_TRANSFER_ENCODING": lambda b: [f"chunked{b}", f"gzip, {b}"],
        "HTTP_ACCEPT": lambda b: [f"application/{b}json", f"*/*; q={b}"],
        "HTTP_X_FORWARDED_FOR": lambda b: [f"198.51.100.1{b}", f"{b}, 198.51.100.1"],
        "HTTP_X_REQUEST_ID": lambda b: [f"req-{b}"],
    }[header]
    values += [value for byte in HOSTILE_BYTES for value in specific(byte)]
    if header == "CONTENT_TYPE":  # codecs that are no text encodings, and odd ones
        values += [f"application/json; charset={name}" for name in _ODD_CHARSETS]
    if header == "CONTENT_LENGTH":  # digits that are not ASCII, or too many
        values += ["\u00b2", "\u0663", "\u00bd", "1" * 5000, "+1", "-1", "1_000", "0x10", " "]
    return values


_ODD_CHARSETS = ["zlib", "rot13", "hex", "base64", "bz2", "uu", "undefined", "utf-16", "idna"]
HEADERS = [
    "HTTP_AUTHORIZATION",
    "HTTP_HOST",
    "HTTP_IDEMPOTENCY_KEY",
    "HTTP_IF_NONE_MATCH",
    "CONTENT_TYPE",
    "CONTENT_LENGTH",
    "HTTP_TRANSFER_ENCODING",
    "HTTP_ACCEPT",
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_REQUEST_ID",
]


@pytest.mark.parametrize("header", HEADERS)
def test_hostile_header_bytes_are_answered_without_a_server_error(world, header):
    cases = []
    for value in _values(header, world["token"]):
        for method, path, body in _HEADER_ROUTES:
            extra = {"HTTP_AUTHORIZATION": f"Bearer {world['token']}", header: value}
            if header == "HTTP_TRANSFER_ENCODING":  # the body as the server de-chunked it
                extra.update(CONTENT_LENGTH="", **{"wsgi.input": io.BytesIO(body)})
            url = path.format(job=world["job"].id)
            cases.append((f"{header}={value[:40]!r}", method, ACME, url, body, extra))
    assert _sweep(cases) == []


# --- hand-made cursors ------------------------------------------------------------------------

_OFFSETS = st.one_of(st.integers(min_value=0, max_value=1000).map(str), st.text(max_size=8))
_REVERSES = st.one_of(st.sampled_from(["0", "1"]), st.text(max_size=4))
_UTC_TIMES = st.datetimes(timezones=st.just(UTC))  # what the API writes, read from the database
_OFFSET_TIMES = st.datetimes(
    timezones=st.builds(
        timezone, st.timedeltas(min_value=-timedelta(hours=23), max_value=timedelta(hours=23))
    )
)
_POSITIONS = st.one_of(
    _UTC_TIMES.map(str),
    _OFFSET_TIMES.map(str),  # offsets to the microsecond
    st.datetimes().map(str),  # naive
    st.text(max_size=40),  # includes NUL, "+", "%", "&", non-ASCII
    st.sampled_from(["garbage", "%00", "2026-01-01T00:00:00%00", "2026-01-01 00:00:00+00:00"]),
)


@st.composite
def cursors(draw):
    """``(cursor, valid)``: base64 of ``o=…&r=…&p=…`` built as DRF does (``valid``) or by
    hand, unescaped, with odd parts; or any text at all."""
    kind = draw(st.sampled_from(["drf", "hand-made", "text"]))
    if kind == "text":
        return draw(st.text(max_size=60)), False
    if kind == "drf":
        offset = draw(st.integers(min_value=0, max_value=1000))
        reverse = draw(st.sampled_from([0, 1]))
        position = draw(_UTC_TIMES)
        raw = urlencode({"o": offset, "r": reverse, "p": str(position)})
        return b64encode(raw.encode()).decode(), True
    parts = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["o", "r", "p", "x"]), st.one_of(_OFFSETS, _REVERSES, _POSITIONS)
            ),
            max_size=4,
        )
    )
    raw = "&".join(f"{name}={value}" for name, value in parts).encode()
    encoded = draw(st.sampled_from([b64encode, urlsafe_b64encode]))(raw).decode()
    if draw(st.booleans()):
        encoded = encoded.rstrip("=")
    return encoded, False


def test_a_hand_made_cursor_is_a_page_or_400_invalid_cursor(world):
    """Whatever ``?cursor=`` holds: 200, or 400 ``invalid_cursor``; and a cursor made as
    DRF makes them, with any UTC position, is always a page."""
    client = Client(HTTP_HOST=ACME, HTTP_AUTHORIZATION=f"Bearer {world['token']}")

    @given(case=cursors())
    @hypothesis_settings(
        max_examples=300,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case):
        cursor, valid = case
        response = client.get("/api/jobs", {"cursor": cursor})
        if valid:
            assert response.status_code == 200, response.content[:300]
        else:
            assert response.status_code in (200, 400), response.content[:300]
        if response.status_code == 400:
            assert response["Content-Type"] == PROBLEM
            assert response.json()["code"] == "invalid_cursor"

    check()


def test_the_next_link_of_a_page_still_works(world):
    """Control for the cursor checks: the cursors the API hands out are accepted."""
    alice = world["alice"]
    for _ in range(3):
        JobFactory(tenant=alice.tenant, created_by=alice)
    client = Client(HTTP_HOST=ACME, HTTP_AUTHORIZATION=f"Bearer {world['token']}")
    first = client.get("/api/jobs", {"page_size": 2}).json()
    second = client.get(first["next"])
    assert second.status_code == 200
    back = client.get(second.json()["previous"])
    assert [job["id"] for job in back.json()["results"]] == [job["id"] for job in first["results"]]


# --- admin changelist filters ------------------------------------------------------------------

_FOREIGN_VALUES = ["%00", "a%00b", "abc", "%C2%B2", "(", "99999999999999999999"]
# (changelist, model, its list filters' own parameters)
CHANGELISTS = [
    (
        "/admin/jobs/job/",
        Job,
        ["status__exact", "type", "tenant", "created_at__gte", "created_at__lt"],
    ),
    ("/admin/accounts/user/", User, ["tenant__id__exact", "tenant__isnull", "is_staff__exact"]),
    ("/admin/tenants/tenant/", Tenant, ["is_active__exact"]),
    ("/admin/token_blacklist/outstandingtoken/", OutstandingToken, []),
    ("/admin/token_blacklist/blacklistedtoken/", BlacklistedToken, []),
]


def _admin_parameters(model, list_filter_parameters: list[str]) -> list[str]:
    """The list filters' parameters, and every field of the model with a plain lookup, a
    pattern and a transform: Django accepts any lookup on a model's own fields."""
    fields = model._meta.concrete_fields
    lookups = [f"{field.name}{suffix}" for field in fields for suffix in ("", "__in", "__regex")]
    transforms = [
        f"{field.name}__year" if isinstance(field, DateTimeField) else f"{field.name}__key"
        for field in fields
        if isinstance(field, DateTimeField | JSONField)
    ]
    return list_filter_parameters + lookups + transforms


@pytest.mark.parametrize(
    ("changelist", "model", "list_filter_parameters"),
    CHANGELISTS,
    ids=[changelist for changelist, _, _ in CHANGELISTS],
)
def test_admin_filters_with_foreign_values_are_never_a_server_error(
    world, changelist, model, list_filter_parameters
):
    """Each is the list, Django's "invalid filter" redirect (``?e=1``), or 400 (a lookup
    the admin does not allow): never a 500, and nothing changes."""
    client = Client(HTTP_HOST=PUBLIC)
    client.force_login(world["root"])
    before = _state()
    faults = []
    for parameter in _admin_parameters(model, list_filter_parameters):
        for value in _FOREIGN_VALUES:
            response = client.get(f"{changelist}?{parameter}={value}")
            if response.status_code == 302 and response["Location"] == changelist + "?e=1":
                continue
            if response.status_code == 400 and response["Content-Type"] == PROBLEM:
                continue
            if response.status_code != 200:
                faults.append((parameter, value, response.status_code))
    assert faults == []
    assert _state() == before


# --- raw bytes over real HTTP -------------------------------------------------------------------

RAW_REQUESTS = {
    "non-ASCII digit in Content-Length": (
        b"POST /api/jobs HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
        b"Content-Type: application/json\r\nContent-Length: \xb2\r\n\r\n{}",
        400,
        "invalid_content_length",
    ),
    "charset that is no text encoding": (
        b"POST /api/jobs HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
        b"Content-Type: application/json; charset=zlib\r\nContent-Length: 2\r\n\r\n{}",
        400,
        "parse_error",
    ),
    "Latin-1 byte after the token": (
        b"GET /api/jobs HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\xff\r\n\r\n",
        401,
        "token_not_valid",
    ),
}


@pytest.mark.parametrize("name", RAW_REQUESTS)
def test_raw_header_bytes_over_http_get_a_problem_answer(live_server, world, name):
    template, status, code = RAW_REQUESTS[name]
    host, port = live_server.url.removeprefix("http://").rsplit(":", 1)
    request = template.replace(b"{host}", f"{ACME}:{port}".encode()).replace(
        b"{token}", world["token"].encode()
    )
    request = request.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1)
    before = _state()
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(request)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b" ", 2)[1] == str(status).encode(), answer[:300]
    assert f"Content-Type: {PROBLEM}".encode() in head
    assert json.loads(body)["code"] == code
    assert _state() == before
