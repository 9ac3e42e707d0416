"""Attacks as a table: (method, url, who, host) → the exact status and problem code.

Every row also checks that the attack changed nothing: the same jobs exist with the same
state, no token was revoked, no user was changed, and alice's answers never contain a
globex job's id. Rows that need a sequence of requests (rate-limit bypasses) follow the
table.
"""

# One attack per line: the table is read row by row, like a permissions matrix.
# ruff: noqa: E501

import json
import time
from base64 import b64encode, urlsafe_b64encode
from dataclasses import dataclass, field

import jwt
import pytest
from django.conf import settings
from django.http import HttpResponse
from django.test import Client
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken

from accounts.models import User
from accounts.tokens import JobReadToken, read_token_audience, tokens_for
from jobs.models import Job, JobStatus
from tests.factories import JobFactory, UserFactory
from tests.jobs.api.asgi import asgi_get, run_app
from tests.security.conftest import login

pytestmark = pytest.mark.django_db

HOSTS = {
    "acme": "acme.localhost",
    "globex": "globex.localhost",
    "public": "localhost",
    "unknown": "evil.localhost",  # allowed by ALLOWED_HOSTS, served by no tenant
    "disallowed": "evil.example.com",  # not in ALLOWED_HOSTS
}
ADMIN_JOBS = "/admin/jobs/job/"


@dataclass(frozen=True)
class Attack:
    name: str
    method: str
    url: str  # {acme_job}, {acme_sibling}, {acme_deleted}, {acme_internal}, {globex_job}
    # and {acme_tenant} are filled in
    who: str  # a bearer token kind (API), or a user logged in to the admin (public host)
    host: str
    status: int
    code: str | None = None  # the problem's code; None for non-problem answers
    body: dict | bytes | None = None
    headers: dict = field(default_factory=dict)
    location: str | None = None  # for redirects
    response_headers: dict = field(default_factory=dict)  # expected exactly
    settings: dict = field(default_factory=dict)  # Django settings for this row
    asgi: bool = False  # sent through the ASGI application in process (streams need it)


MASS_ASSIGNMENT = {
    "type": "demo.echo",
    "payload": {},
    "status": "completed",
    "tenant": 2,
    "tenant_id": 2,
    "created_by": 1,
    "result": {"document_id": "x"},
    "attempts": 0,
    "completed_at": "2020-01-01T00:00:00Z",
}


def cursor(raw: str) -> str:
    """A hand-made ``?cursor=`` value: DRF's cursors are base64 of ``o=…&r=…&p=…``."""
    return "/api/jobs?cursor=" + b64encode(raw.encode()).decode()


ATTACKS = [
    # --- broken object-level authorization: another tenant's jobs ---------------------------
    Attack("read another tenant's job", "GET", "/api/jobs/{globex_job}", "alice", "acme", 404, "not_found"),
    Attack("cancel another tenant's job", "POST", "/api/jobs/{globex_job}/cancel", "alice", "acme", 404, "not_found"),
    Attack("read another tenant's job's logs", "GET", "/api/jobs/{globex_job}/logs", "alice", "acme", 404, "not_found"),
    Attack("read logs with a replayed token", "GET", "/api/jobs/{globex_job}/logs", "alice", "globex", 403, "token_tenant_mismatch"),
    Attack("list shows only own tenant", "GET", "/api/jobs", "alice", "acme", 200),
    Attack("filter for another tenant's type", "GET", "/api/jobs?type=globex.only", "alice", "acme", 400, "invalid"),
    Attack("poll another tenant's job with ETag *", "GET", "/api/jobs/{globex_job}", "alice", "acme", 404, "not_found", headers={"HTTP_IF_NONE_MATCH": "*"}),
    Attack("long-poll another tenant's job", "GET", "/api/jobs/{globex_job}?wait=1", "alice", "acme", 404, "not_found"),
    # --- tokens ----------------------------------------------------------------------------
    Attack("replay a token on another tenant's host", "GET", "/api/jobs/{globex_job}", "alice", "globex", 403, "token_tenant_mismatch"),
    Attack("replay another tenant's token here", "GET", "/api/jobs/{acme_job}", "bob", "acme", 403, "token_tenant_mismatch"),
    Attack("cancel with a replayed token", "POST", "/api/jobs/{globex_job}/cancel", "alice", "globex", 403, "token_tenant_mismatch"),
    Attack("forged signature", "GET", "/api/jobs/{acme_job}", "forged", "acme", 401, "token_not_valid"),
    Attack("forged tenant claim", "GET", "/api/jobs/{globex_job}", "forged_globex", "globex", 401, "token_not_valid"),
    Attack("alg none", "GET", "/api/jobs/{acme_job}", "alg_none", "acme", 401, "token_not_valid"),
    Attack("expired token", "GET", "/api/jobs/{acme_job}", "expired", "acme", 401, "token_not_valid"),
    Attack("refresh token as access token", "GET", "/api/jobs/{acme_job}", "refresh", "acme", 401, "token_not_valid"),
    Attack("garbage token", "GET", "/api/jobs", "garbage", "acme", 401, "token_not_valid"),
    Attack("no token", "GET", "/api/jobs/{acme_job}", "anonymous", "acme", 401, "not_authenticated"),
    Attack("logs with no token", "GET", "/api/jobs/{acme_job}/logs", "anonymous", "acme", 401, "not_authenticated"),
    Attack("disabled user", "GET", "/api/jobs/{acme_job}", "disabled", "acme", 403, "user_inactive"),
    Attack("disabled user submits", "POST", "/api/jobs", "disabled", "acme", 403, "user_inactive", body={"type": "demo.echo"}),
    Attack("refresh another tenant's token", "POST", "/api/auth/token/refresh", "anonymous", "globex", 403, "token_tenant_mismatch", body={"refresh": "<alice refresh>"}),
    Attack("log out another tenant's token", "POST", "/api/auth/logout", "anonymous", "globex", 403, "token_tenant_mismatch", body={"refresh": "<alice refresh>"}),
    Attack("log in on another tenant's host", "POST", "/api/auth/token", "anonymous", "globex", 401, "invalid_credentials", body={"username": "alice", "password": "correct-horse-battery"}),
    # --- job read tokens (POST /api/jobs?read_token=true): acme_job's, and nothing else ----
    # Anywhere but its own job's poll, long poll and stream, a read token is answered exactly
    # as no token is (401 not_authenticated where no token gets it).
    Attack("read token reads its job (control)", "GET", "/api/jobs/{acme_job}", "read", "acme", 200),
    Attack("read token lists the tenant's jobs", "GET", "/api/jobs", "read", "acme", 401, "not_authenticated"),
    Attack("read token submits", "POST", "/api/jobs", "read", "acme", 401, "not_authenticated", body={"type": "demo.echo"}),
    Attack("read token submits a batch", "POST", "/api/jobs/batch", "read", "acme", 401, "not_authenticated", body={"jobs": [{"type": "demo.echo"}]}),
    Attack("read token cancels its job", "POST", "/api/jobs/{acme_job}/cancel", "read", "acme", 401, "not_authenticated"),
    Attack("read token reads its job's logs", "GET", "/api/jobs/{acme_job}/logs", "read", "acme", 401, "not_authenticated"),
    Attack("read token updates its job", "PATCH", "/api/jobs/{acme_job}", "read", "acme", 401, "not_authenticated", body={"status": "completed"}),
    Attack("read token reads another job of the tenant", "GET", "/api/jobs/{acme_sibling}", "read", "acme", 401, "not_authenticated"),
    Attack("read token long-polls another job", "GET", "/api/jobs/{acme_sibling}?wait=1", "read", "acme", 401, "not_authenticated"),
    Attack("read token streams another job", "GET", "/api/jobs/{acme_sibling}/events", "read", "acme", 401, "not_authenticated", asgi=True),
    Attack("read token reads an internal job", "GET", "/api/jobs/{acme_internal}", "read", "acme", 401, "not_authenticated"),
    Attack("read token reads another tenant's job", "GET", "/api/jobs/{globex_job}", "read", "acme", 401, "not_authenticated"),
    Attack("read token on another tenant's host", "GET", "/api/jobs/{acme_job}", "read", "globex", 401, "not_authenticated"),
    Attack("read token for another tenant's job there", "GET", "/api/jobs/{globex_job}", "read", "globex", 401, "not_authenticated"),
    Attack("read token streams on another tenant's host", "GET", "/api/jobs/{acme_job}/events", "read", "globex", 401, "not_authenticated", asgi=True),
    Attack("read token opens the tenant stream", "GET", "/api/events", "read", "acme", 401, "not_authenticated", asgi=True),
    Attack("read token as a refresh token", "POST", "/api/auth/token/refresh", "anonymous", "acme", 401, "token_not_valid", body={"refresh": "<read token>"}),
    Attack("read token to log out", "POST", "/api/auth/logout", "anonymous", "acme", 401, "token_not_valid", body={"refresh": "<read token>"}),
    Attack("read token in the refresh call's header", "POST", "/api/auth/token/refresh", "read", "acme", 400, "invalid", body={}),
    Attack("read token in the admin", "GET", ADMIN_JOBS, "read", "public", 302, location=f"/admin/login/?next={ADMIN_JOBS}"),
    Attack("read token on the platform host", "GET", "/api/jobs/{acme_job}", "read", "public", 404, "not_found"),
    Attack("expired read token", "GET", "/api/jobs/{acme_job}", "read_expired", "acme", 401, "not_authenticated"),
    Attack("expired read token streams", "GET", "/api/jobs/{acme_job}/events", "read_expired", "acme", 401, "not_authenticated", asgi=True),
    Attack("read token of a deleted job", "GET", "/api/jobs/{acme_deleted}", "read_deleted", "acme", 401, "not_authenticated"),
    Attack("read token of a deleted job streams", "GET", "/api/jobs/{acme_deleted}/events", "read_deleted", "acme", 401, "not_authenticated", asgi=True),
    Attack("read token with its job claim changed", "GET", "/api/jobs/{acme_sibling}", "read_tampered", "acme", 401, "not_authenticated"),
    Attack("read token with a forged signature", "GET", "/api/jobs/{acme_sibling}", "read_forged", "acme", 401, "not_authenticated"),
    Attack("read token with alg none", "GET", "/api/jobs/{acme_job}", "read_alg_none", "acme", 401, "not_authenticated"),
    Attack("read token for the users' audience", "GET", "/api/jobs/{acme_job}", "read_user_audience", "acme", 401, "token_not_valid"),
    Attack("user token for the read audience", "GET", "/api/jobs/{acme_job}", "user_read_audience", "acme", 401, "not_authenticated"),
    Attack("user token for the read audience lists", "GET", "/api/jobs", "user_read_audience", "acme", 401, "not_authenticated"),
    Attack("ask for a read token in the body", "POST", "/api/jobs", "alice", "acme", 400, "invalid", body={"type": "demo.echo", "read_token": True}),
    Attack("ask for a read token with a foreign value", "POST", "/api/jobs?read_token=yes", "alice", "acme", 400, "invalid", body={"type": "demo.echo"}),
    # --- hosts -------------------------------------------------------------------------------
    Attack("unknown tenant host", "GET", "/api/jobs", "alice", "unknown", 404, "unknown_host"),
    Attack("host outside ALLOWED_HOSTS", "GET", "/api/jobs", "alice", "disallowed", 400, "invalid_host"),
    Attack("the API on the platform host", "GET", "/api/jobs/{acme_job}", "alice", "public", 404, "not_found"),
    # --- path tricks --------------------------------------------------------------------------
    Attack("dot-dot to the admin", "GET", "/api/jobs/../admin/", "alice", "acme", 404, "not_found"),
    Attack("encoded dot-dot", "GET", "/api/jobs/%2e%2e/admin/", "alice", "acme", 404, "not_found"),
    Attack("encoded slash to cancel another tenant's job", "POST", "/api/jobs/{globex_job}%2Fcancel", "alice", "acme", 404, "not_found"),
    Attack("encoded slash, wrong method", "GET", "/api/jobs/{globex_job}%2Fcancel", "alice", "acme", 405, "method_not_allowed"),
    Attack("dot-dot as the id", "GET", "/api/jobs/%2e%2e", "alice", "acme", 400, "invalid_job_id"),
    Attack("trailing slash", "GET", "/api/jobs/{globex_job}/", "alice", "acme", 404, "not_found"),
    Attack("double slash", "GET", "//api/jobs/{globex_job}", "alice", "acme", 404, "not_found"),
    Attack("double slash inside", "GET", "/api//jobs/{globex_job}", "alice", "acme", 404, "not_found"),
    Attack("not a UUID", "GET", "/api/jobs/1 OR 1=1", "alice", "acme", 400, "invalid_job_id"),
    Attack("the admin on a tenant host", "GET", ADMIN_JOBS, "alice", "acme", 404, "not_found"),
    # --- the admin (public host) ---------------------------------------------------------------
    Attack("anonymous admin", "GET", ADMIN_JOBS, "anonymous", "public", 302, location=f"/admin/login/?next={ADMIN_JOBS}"),
    Attack("non-staff user in the admin", "GET", ADMIN_JOBS, "alice", "public", 302, location=f"/admin/login/?next={ADMIN_JOBS}"),
    Attack("acme staff opens a globex job", "GET", ADMIN_JOBS + "{globex_job}/change/", "carol", "public", 302, location="/admin/"),
    Attack("acme staff opens an acme job (control)", "GET", ADMIN_JOBS + "{acme_job}/change/", "carol", "public", 200),
    Attack("acme staff opens the user admin", "GET", "/admin/accounts/user/", "carol", "public", 403),
    Attack("acme staff opens revoked tokens", "GET", "/admin/token_blacklist/blacklistedtoken/", "carol", "public", 403),
    # --- mass assignment and methods -------------------------------------------------------------
    Attack("mass assignment on submit", "POST", "/api/jobs", "alice", "acme", 400, "invalid", body=MASS_ASSIGNMENT),
    Attack("update a job", "PATCH", "/api/jobs/{acme_job}", "alice", "acme", 405, "method_not_allowed", body={"status": "completed"}),
    Attack("replace a job", "PUT", "/api/jobs/{acme_job}", "alice", "acme", 405, "method_not_allowed", body={"type": "demo.echo"}),
    Attack("delete a job", "DELETE", "/api/jobs/{acme_job}", "alice", "acme", 405, "method_not_allowed"),
    Attack("log in as staff", "POST", "/api/auth/token", "anonymous", "acme", 400, "invalid", body={"username": "alice", "password": "x", "is_staff": True}),
    # --- hostile bodies ----------------------------------------------------------------------------
    Attack("oversized body", "POST", "/api/jobs", "alice", "acme", 413, "payload_too_large", body=b'{"type": "demo.echo", "payload": {"a": "' + b"x" * 300_000 + b'"}}'),
    Attack("oversized body, anonymous", "POST", "/api/auth/token", "anonymous", "acme", 413, "payload_too_large", body=b"{" + b" " * 300_000 + b"}"),
    Attack("deep JSON", "POST", "/api/jobs", "alice", "acme", 400, "json_too_deep", body=b'{"type": "demo.echo", "payload": {"a": ' + b"[" * 10_000 + b"]" * 10_000 + b"}}"),
    Attack("deep JSON at login", "POST", "/api/auth/token", "anonymous", "acme", 400, "json_too_deep", body=b"[" * 50_000 + b"]" * 50_000),
    Attack("NUL in the payload", "POST", "/api/jobs", "alice", "acme", 400, "parse_error", body=b'{"type": "demo.echo", "payload": {"a": "\\u0000"}}'),
    Attack("a charset that is no text encoding", "POST", "/api/jobs", "alice", "acme", 400, "parse_error", body={"type": "demo.echo"}, headers={"CONTENT_TYPE": "application/json; charset=zlib"}),
    # --- hand-made cursors ------------------------------------------------------------------------
    Attack("cursor position that is not a timestamp", "GET", cursor("o=0&r=0&p=garbage"), "alice", "acme", 400, "invalid_cursor"),
    Attack("cursor position with NUL", "GET", cursor("o=0&r=0&p=%00"), "alice", "acme", 400, "invalid_cursor"),
    Attack("cursor position with NUL after a timestamp", "GET", cursor("o=0&r=0&p=2026-01-01T00:00:00%00"), "alice", "acme", 400, "invalid_cursor"),
    Attack("cursor position with a raw +", "GET", cursor("o=0&r=0&p=2026-01-01 00:00:00+00:00"), "alice", "acme", 400, "invalid_cursor"),
    Attack("cursor position without a time zone", "GET", cursor("o=0&r=0&p=2026-01-01"), "alice", "acme", 400, "invalid_cursor"),
    Attack("cursor with a negative offset", "GET", cursor("o=-1&r=0"), "alice", "acme", 400, "invalid_cursor"),
    Attack("cursor that is not base64", "GET", "/api/jobs?cursor=%C3%A9", "alice", "acme", 400, "invalid_cursor"),
    Attack("a valid hand-made cursor (control)", "GET", cursor("o=0&r=0&p=2999-01-01 00:00:00%2B00:00"), "alice", "acme", 200),
    # --- methods ----------------------------------------------------------------------------------
    Attack("OPTIONS on the job list", "OPTIONS", "/api/jobs", "alice", "acme", 200, response_headers={"Allow": "GET, POST, HEAD, OPTIONS", "Content-Length": "0"}),
    Attack("OPTIONS on a job", "OPTIONS", "/api/jobs/{acme_job}", "alice", "acme", 200, response_headers={"Allow": "GET, HEAD, OPTIONS", "Content-Length": "0"}),
    Attack("OPTIONS on cancel", "OPTIONS", "/api/jobs/{acme_job}/cancel", "alice", "acme", 200, response_headers={"Allow": "POST, OPTIONS", "Content-Length": "0"}),
    Attack("OPTIONS on another tenant's cancel (control)", "OPTIONS", "/api/jobs/{globex_job}/cancel", "alice", "globex", 403, "token_tenant_mismatch"),
    Attack("OPTIONS on the docs page", "OPTIONS", "/api/docs", "alice", "acme", 405, "method_not_allowed", response_headers={"Allow": "GET, HEAD"}),
    # --- event streams (authorized as every route, refused on every method but GET, HEAD, OPTIONS) ---
    Attack("stream another tenant's job", "GET", "/api/jobs/{globex_job}/events", "alice", "acme", 404, "not_found", asgi=True),
    Attack("tenant stream without a token", "GET", "/api/events", "anonymous", "acme", 401, "not_authenticated", asgi=True),
    Attack("job stream with an expired token", "GET", "/api/jobs/{acme_job}/events", "expired", "acme", 401, "token_not_valid", asgi=True),
    Attack("tenant stream as a disabled user", "GET", "/api/events", "disabled", "acme", 403, "user_inactive", asgi=True),
    Attack("tenant stream with another tenant's token", "GET", "/api/events", "bob", "acme", 403, "token_tenant_mismatch", asgi=True),
    Attack("OPTIONS on the tenant stream", "OPTIONS", "/api/events", "alice", "acme", 200, response_headers={"Allow": "GET, HEAD, OPTIONS", "Content-Length": "0"}),
    Attack("write to the tenant stream", "POST", "/api/events", "alice", "acme", 405, "method_not_allowed", body={"type": "demo.echo"}),
    Attack("delete a job stream", "DELETE", "/api/jobs/{acme_job}/events", "alice", "acme", 405, "method_not_allowed"),
    # --- header bytes -----------------------------------------------------------------------------
    Attack("a non-ASCII digit in Content-Length", "POST", "/api/jobs", "alice", "acme", 400, "invalid_content_length", body={"type": "demo.echo"}, headers={"CONTENT_LENGTH": "\u00b2"}),
    Attack("a Content-Length of 5,000 digits", "POST", "/api/jobs", "alice", "acme", 413, "payload_too_large", body={"type": "demo.echo"}, headers={"CONTENT_LENGTH": "9" * 5000}),
    # --- admin changelist filters with foreign values --------------------------------------------------
    Attack("admin tenant filter that is not a number", "GET", ADMIN_JOBS + "?tenant=abc", "root", "public", 302, location=ADMIN_JOBS + "?e=1"),
    Attack("admin tenant filter with a non-ASCII digit", "GET", ADMIN_JOBS + "?tenant=%C2%B2", "root", "public", 302, location=ADMIN_JOBS + "?e=1"),
    Attack("admin type filter with NUL", "GET", ADMIN_JOBS + "?type=%00", "root", "public", 302, location=ADMIN_JOBS + "?e=1"),
    Attack("admin status filter with NUL", "GET", ADMIN_JOBS + "?status__exact=%00", "carol", "public", 302, location=ADMIN_JOBS + "?e=1"),
    Attack("admin field lookup with NUL", "GET", ADMIN_JOBS + "?worker_id=%00", "root", "public", 302, location=ADMIN_JOBS + "?e=1"),
    Attack("admin regex lookup", "GET", ADMIN_JOBS + "?type__regex=(", "root", "public", 400, "bad_request"),
    Attack("admin transform lookup", "GET", ADMIN_JOBS + "?created_at__year=99999999", "root", "public", 400, "bad_request"),
    Attack("admin tenant filter (control)", "GET", ADMIN_JOBS + "?tenant={acme_tenant}", "carol", "public", 200),
    Attack("admin user lookup with NUL", "GET", "/admin/accounts/user/?username=%00", "root", "public", 302, location="/admin/accounts/user/?e=1"),
    Attack("admin user regex lookup", "GET", "/admin/accounts/user/?username__regex=(", "root", "public", 400, "bad_request"),
    Attack("admin tenant lookup with NUL", "GET", "/admin/tenants/tenant/?name=%00", "root", "public", 302, location="/admin/tenants/tenant/?e=1"),
    Attack("admin token lookup with NUL", "GET", "/admin/token_blacklist/outstandingtoken/?jti=%00", "root", "public", 302, location="/admin/token_blacklist/outstandingtoken/?e=1"),
    # --- internal jobs (a webhook delivery of acme's): missing to acme's users and staff ------------
    Attack("list: internal jobs are left out", "GET", "/api/jobs?status=pending", "alice", "acme", 200),
    Attack("list filtered to an internal type", "GET", "/api/jobs?type=webhooks.deliver", "alice", "acme", 400, "invalid"),
    Attack("read an internal job", "GET", "/api/jobs/{acme_internal}", "alice", "acme", 404, "not_found"),
    Attack("long-poll an internal job", "GET", "/api/jobs/{acme_internal}?wait=1", "alice", "acme", 404, "not_found"),
    Attack("cancel an internal job", "POST", "/api/jobs/{acme_internal}/cancel", "alice", "acme", 404, "not_found"),
    Attack("read an internal job's logs", "GET", "/api/jobs/{acme_internal}/logs", "alice", "acme", 404, "not_found"),
    Attack("stream an internal job", "GET", "/api/jobs/{acme_internal}/events", "alice", "acme", 404, "not_found", asgi=True),
    Attack("acme staff opens an internal job", "GET", ADMIN_JOBS + "{acme_internal}/change/", "carol", "public", 302, location="/admin/"),
    Attack("acme staff filters for internal jobs", "GET", ADMIN_JOBS + "?internal=yes", "carol", "public", 200),
    Attack("acme staff looks internal jobs up by field", "GET", ADMIN_JOBS + "?internal__exact=1", "carol", "public", 200),
    Attack("admin internal filter with a foreign value", "GET", ADMIN_JOBS + "?internal=1", "root", "public", 302, location=ADMIN_JOBS + "?e=1"),
    # --- the batch route and the bounds of a submit --------------------------------------------------
    Attack("batch larger than the rate limit", "POST", "/api/jobs/batch", "alice", "acme", 422, "batch_too_large", body={"jobs": [{"type": "demo.echo"}] * 301}, settings={"JOBS_API_RATE": "300/m"}),
    Attack("batch of invalid jobs", "POST", "/api/jobs/batch", "alice", "acme", 400, "invalid", body={"jobs": [{"type": "nope", "status": "completed"}] * 200}),
    Attack("batch over the quota of unfinished jobs", "POST", "/api/jobs/batch", "alice", "acme", 409, "job_quota_exceeded", body={"jobs": [{"type": "demo.echo"}] * 2}, settings={"JOBS_MAX_UNFINISHED_PER_TENANT": 2}),
    Attack("submit over the quota of unfinished jobs", "POST", "/api/jobs", "alice", "acme", 409, "job_quota_exceeded", body={"type": "demo.echo"}, settings={"JOBS_MAX_UNFINISHED_PER_TENANT": 1}),
    Attack("submit with an empty Idempotency-Key", "POST", "/api/jobs", "alice", "acme", 400, "invalid_idempotency_key", body={"type": "demo.echo"}, headers={"HTTP_IDEMPOTENCY_KEY": ""}),
    Attack("submit for the year 9999", "POST", "/api/jobs", "alice", "acme", 400, "invalid", body={"type": "demo.echo", "run_at": "9999-12-31T00:00:00Z"}),
    Attack("schema with a newline as its version", "GET", "/api/schema?version=%0a", "anonymous", "acme", 200),
]  # fmt: skip


@pytest.fixture
def world(acme, globex, public_tenant):
    alice = UserFactory(username="alice", tenant=acme)
    bob = UserFactory(username="bob", tenant=globex)
    carol = UserFactory(username="carol", tenant=acme, is_staff=True)
    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    dave = UserFactory(username="dave", tenant=acme)
    acme_job = JobFactory(tenant=acme, created_by=alice)
    deleted = JobFactory(tenant=acme, created_by=alice, status=JobStatus.COMPLETED)
    deleted.delete()
    tokens = {
        "alice": str(tokens_for(alice).access_token),
        "bob": str(tokens_for(bob).access_token),
        "dave": str(tokens_for(dave).access_token),
        "alice_refresh": str(tokens_for(alice)),
        "read": str(JobReadToken.for_job(tenant_schema=acme.schema_name, job_id=acme_job.id)),
        "read_deleted": str(
            JobReadToken.for_job(tenant_schema=acme.schema_name, job_id=deleted.id)
        ),
    }
    dave.is_active = False
    dave.save()
    return {
        "users": {"alice": alice, "bob": bob, "carol": carol, "root": root},
        "acme": acme,
        "tokens": tokens,
        "acme_job": acme_job,
        "acme_sibling": JobFactory(tenant=acme, created_by=alice),
        "acme_deleted": deleted,
        "acme_internal": JobFactory(tenant=acme, type="webhooks.deliver", internal=True),
        "globex_job": JobFactory(tenant=globex, created_by=bob, type="globex.only"),
    }


def _bearer(who: str, tokens: dict, sibling=None) -> str | None:
    alice_claims = jwt.decode(tokens["alice"], options={"verify_signature": False})
    read_claims = jwt.decode(tokens["read"], options={"verify_signature": False})
    now = int(time.time())
    header, _, signature = tokens["read"].split(".")
    sibling_claims = {**read_claims, "job": str(sibling)}
    retargeted = urlsafe_b64encode(json.dumps(sibling_claims).encode()).decode().rstrip("=")
    return {
        "anonymous": None,
        "alice": tokens["alice"],
        "bob": tokens["bob"],
        "disabled": tokens["dave"],
        "refresh": tokens["alice_refresh"],
        "garbage": "not.a.jwt",
        "forged": jwt.encode(alice_claims, "an-attacker-key-of-32-bytes-or-more!!", "HS256"),
        "forged_globex": jwt.encode(
            {**alice_claims, "tenant": "globex"}, "an-attacker-key-of-32-bytes-or-more!!", "HS256"
        ),
        "alg_none": jwt.encode(alice_claims, None, algorithm="none"),
        "expired": jwt.encode(
            {**alice_claims, "iat": now - 400, "exp": now - 100}, settings.SECRET_KEY, "HS256"
        ),
        "read": tokens["read"],
        "read_deleted": tokens["read_deleted"],
        "read_expired": jwt.encode(
            {**read_claims, "iat": now - 400, "exp": now - 100}, settings.SECRET_KEY, "HS256"
        ),
        "read_tampered": f"{header}.{retargeted}.{signature}",
        "read_forged": jwt.encode(sibling_claims, "an-attacker-key-of-32-bytes-or-more!!", "HS256"),
        "read_alg_none": jwt.encode(read_claims, None, algorithm="none"),
        "read_user_audience": jwt.encode(
            {**read_claims, "aud": settings.JWT_AUDIENCE}, settings.SECRET_KEY, "HS256"
        ),
        "user_read_audience": jwt.encode(
            {**alice_claims, "aud": read_token_audience()}, settings.SECRET_KEY, "HS256"
        ),
    }[who]


def _snapshot():
    return {
        "jobs": sorted(
            Job.objects.values_list("id", "tenant_id", "status", "cancel_requested", "type")
        ),
        "revoked": BlacklistedToken.objects.count(),
        "users": sorted(
            User.objects.values_list("username", "tenant_id", "is_staff", "is_active", "password")
        ),
    }


def _send(attack: Attack, world) -> object:
    url = attack.url.format(
        acme_job=world["acme_job"].id,
        acme_sibling=world["acme_sibling"].id,
        acme_deleted=world["acme_deleted"].id,
        acme_internal=world["acme_internal"].id,
        globex_job=world["globex_job"].id,
        acme_tenant=world["acme"].pk,
    )
    if attack.asgi:
        return _send_asgi(url, {"Host": HOSTS[attack.host], **_auth(attack.who, world)})
    client = Client(HTTP_HOST=HOSTS[attack.host])
    extra = dict(attack.headers)
    if attack.host == "public" and attack.who in world["users"]:
        client.force_login(world["users"][attack.who])  # the admin uses sessions
    else:
        token = _bearer(attack.who, world["tokens"], world["acme_sibling"].id)
        if token:
            extra["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    body = attack.body
    if isinstance(body, dict):
        body = json.dumps(body).replace("<alice refresh>", world["tokens"]["alice_refresh"])
        body = body.replace("<read token>", world["tokens"]["read"])
    return client.generic(attack.method, url, body or b"", content_type="application/json", **extra)


def _auth(who: str, world) -> dict:
    token = _bearer(who, world["tokens"], world["acme_sibling"].id)
    return {"Authorization": f"Bearer {token}"} if token else {}


def _send_asgi(url: str, headers: dict) -> HttpResponse:
    """A GET through ``config.asgi.application`` in process, as a test client's response."""
    path, _, query = url.partition("?")
    status, response_headers, body = run_app(lambda: asgi_get(path, query, headers))
    response = HttpResponse(body, status=status, headers=response_headers)
    response.json = lambda: json.loads(body)
    return response


# ASGI rows read the world from another thread: it must be committed.
_ROWS = [
    pytest.param(attack, marks=pytest.mark.django_db(transaction=True)) if attack.asgi else attack
    for attack in ATTACKS
]


@pytest.mark.parametrize("attack", _ROWS, ids=[attack.name for attack in ATTACKS])
def test_attack(world, settings, attack):
    settings.JOBS_LONGPOLL_MAX_WAIT = 1
    for name, value in attack.settings.items():
        setattr(settings, name, value)
    before = _snapshot()
    response = _send(attack, world)

    assert response.status_code == attack.status, response.content[:500]
    if attack.code is not None:
        assert response["Content-Type"] == "application/problem+json"
        assert response.json()["code"] == attack.code
        assert "Traceback" not in response.content.decode()
    if attack.location is not None:
        assert response["Location"] == attack.location
    for name, value in attack.response_headers.items():
        assert response[name] == value, name
    # Nothing of globex's ever reaches anyone else, and the attack changed nothing. A problem
    # document's ``instance`` echoes the path the client itself sent, so it is left out.
    body = response.content.decode()
    if response.get("Content-Type") == "application/problem+json":
        body = json.dumps({k: v for k, v in response.json().items() if k != "instance"})
    if attack.who != "bob":
        assert str(world["globex_job"].id) not in body
    if attack.who != "root":  # only platform staff reach internal jobs
        assert str(world["acme_internal"].id) not in body
    assert _snapshot() == before


def test_the_list_and_filters_still_show_the_callers_own_jobs(world):
    """The control for the list rows above: they are empty of globex's jobs, not empty."""
    client = Client(
        HTTP_HOST=HOSTS["acme"], HTTP_AUTHORIZATION=f"Bearer {world['tokens']['alice']}"
    )
    listed = [job["id"] for job in client.get("/api/jobs").json()["results"]]
    assert listed == [str(world["acme_sibling"].id), str(world["acme_job"].id)]


def test_mass_assignment_names_every_refused_field(world):
    client = Client(
        HTTP_HOST=HOSTS["acme"], HTTP_AUTHORIZATION=f"Bearer {world['tokens']['alice']}"
    )
    response = client.post("/api/jobs", MASS_ASSIGNMENT, content_type="application/json")
    assert response.status_code == 400
    assert set(response.json()["errors"]) == set(MASS_ASSIGNMENT) - {"type", "payload"}


# --- rate-limit bypasses: sequences of requests -------------------------------------------------


def test_login_limit_cannot_be_bypassed_with_x_forwarded_for(world, settings):
    """Without TRUSTED_PROXIES, a new X-Forwarded-For per attempt is still one client."""
    settings.AUTH_LOGIN_IP_RATE = "3/m"
    statuses = [
        login(HOSTS["acme"], "alice", "wrong", HTTP_X_FORWARDED_FOR=f"198.51.100.{n}").status_code
        for n in range(4)
    ]
    assert statuses == [401, 401, 401, 429]


def test_login_limit_cannot_be_bypassed_by_rotating_tenant_hosts(world, settings):
    """The username counter has no tenant in its key: globex's host spends alice's budget."""
    settings.AUTH_LOGIN_USERNAME_RATE = "2/m"
    attempts = [
        login(host, "alice", "wrong", REMOTE_ADDR=f"192.0.2.{n}").status_code
        for n, host in enumerate((HOSTS["acme"], HOSTS["globex"], HOSTS["acme"]))
    ]
    assert attempts == [401, 401, 429]
    assert login(HOSTS["acme"], "alice", REMOTE_ADDR="192.0.2.99").status_code == 429


def test_jobs_api_limit_cannot_be_bypassed_with_x_forwarded_for(world, settings):
    """The jobs API is limited per tenant + user: addresses don't enter into it."""
    settings.JOBS_API_RATE = "2/m"
    client = Client(
        HTTP_HOST=HOSTS["acme"], HTTP_AUTHORIZATION=f"Bearer {world['tokens']['alice']}"
    )
    statuses = [
        client.get("/api/jobs", HTTP_X_FORWARDED_FOR=f"203.0.113.{n}", REMOTE_ADDR=f"192.0.2.{n}")
        for n in range(3)
    ]
    assert [response.status_code for response in statuses] == [200, 200, 429]
    assert statuses[-1]["Retry-After"]


def test_cancel_of_an_own_job_still_works(world):
    """Control for the cancel rows: the same request on one's own job succeeds."""
    client = Client(
        HTTP_HOST=HOSTS["acme"], HTTP_AUTHORIZATION=f"Bearer {world['tokens']['alice']}"
    )
    response = client.post(f"/api/jobs/{world['acme_job'].id}/cancel")
    assert response.status_code == 200
    assert Job.objects.get(pk=world["acme_job"].pk).status == JobStatus.CANCELLED
