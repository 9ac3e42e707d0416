"""Token lifecycle (RFC 8725) and brute-force limits of the login."""

import time
from datetime import timedelta

import jwt
import pytest
from django.conf import settings
from django.core.cache import cache
from rest_framework_simplejwt import tokens as simplejwt_tokens
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.utils import aware_utcnow

from accounts.authentication import _user_key
from accounts.tokens import tokens_for
from core.client_ip import client_ip_key
from tests.conftest import client_for
from tests.factories import PASSWORD, JobFactory
from tests.security.conftest import login

pytestmark = pytest.mark.django_db

ACME, GLOBEX = "acme.localhost", "globex.localhost"


def _claims(token: str) -> dict:
    return jwt.decode(
        token,
        settings.SECRET_KEY,
        algorithms=["HS256"],
        audience=settings.JWT_AUDIENCE,
        issuer=settings.JWT_ISSUER,
    )


def _get_jobs(token: str, host: str = ACME):
    client = client_for(host=host)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client.get("/api/jobs")


def _post(path: str, body, host: str = ACME):
    return client_for(host=host).post(path, body, format="json")


def _signed(claims: dict, **changes) -> str:
    """``claims`` with ``changes`` (None deletes), signed with the server's own key."""
    claims = {**claims, **changes}
    claims = {name: value for name, value in claims.items() if value is not None}
    return jwt.encode(claims, settings.SECRET_KEY, algorithm="HS256")


# --- claims: issuer, audience, algorithm, lifetime ------------------------------------------


def test_tokens_name_issuer_audience_and_tenant_and_access_lives_five_minutes(alice):
    body = login(ACME, "alice").json()
    access, refresh = _claims(body["access"]), _claims(body["refresh"])
    for claims in (access, refresh):
        assert claims["iss"] == "tenant-jobs"
        assert claims["aud"] == "tenant-jobs-api"
        assert claims["tenant"] == "acme"
    assert access["token_type"] == "access"
    assert access["exp"] - access["iat"] == 300
    assert jwt.get_unverified_header(body["access"])["alg"] == "HS256"


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"iss": None}, "no issuer"),
        ({"iss": "someone-else"}, "another issuer"),
        ({"aud": None}, "no audience"),
        ({"aud": "another-service"}, "another audience"),
        ({"exp": None}, "no expiry"),
        ({"exp": int(time.time()) - 1}, "expired a second ago"),
        ({"token_type": "refresh"}, "a refresh token"),
    ],
)
def test_access_token_with_bad_claims_is_401_even_when_signed_with_our_key(alice, change, why):
    good = str(tokens_for(alice).access_token)
    assert _get_jobs(good).status_code == 200
    forged = _signed(jwt.decode(good, options={"verify_signature": False}), **change)
    response = _get_jobs(forged)
    assert response.status_code == 401, why
    assert response.json()["code"] == "token_not_valid"


@pytest.mark.parametrize("algorithm", ["none", "HS512"])
def test_only_the_pinned_algorithm_is_accepted(alice, algorithm):
    claims = jwt.decode(str(tokens_for(alice).access_token), options={"verify_signature": False})
    key = None if algorithm == "none" else settings.SECRET_KEY
    token = jwt.encode(claims, key, algorithm=algorithm)
    assert jwt.get_unverified_header(token)["alg"] == algorithm
    assert _get_jobs(token).status_code == 401


# --- refresh rotation and revocation ---------------------------------------------------------


def test_refresh_rotates_and_the_old_refresh_token_cannot_be_reused(alice):
    first = login(ACME, "alice").json()["refresh"]
    response = _post("/api/auth/token/refresh", {"refresh": first})
    assert response.status_code == 200
    second = response.json()["refresh"]
    assert second != first
    assert _claims(second)["tenant"] == "acme"
    assert _get_jobs(response.json()["access"]).status_code == 200

    replay = _post("/api/auth/token/refresh", {"refresh": first})
    assert replay.status_code == 401
    assert replay.json()["code"] == "token_not_valid"
    assert _post("/api/auth/token/refresh", {"refresh": second}).status_code == 200


def test_a_refresh_chain_ends_one_refresh_lifetime_after_the_login(alice, monkeypatch):
    """Rotation keeps the login's expiry and the access token never outlives it, so a
    client cannot stay logged in by refreshing: logged in a lifetime minus a minute ago, the
    chain has a minute left however often it is refreshed, and is refused after it."""

    def token_clock_at(moment):  # when simplejwt issues and checks tokens
        monkeypatch.setattr(simplejwt_tokens, "aware_utcnow", lambda: moment)

    now = aware_utcnow()
    token_clock_at(now - settings.SIMPLE_JWT["REFRESH_TOKEN_LIFETIME"] + timedelta(minutes=1))
    refresh = login(ACME, "alice").json()["refresh"]
    end = _claims(refresh)["exp"]

    token_clock_at(now)
    for _ in range(2):
        response = _post("/api/auth/token/refresh", {"refresh": refresh})
        assert response.status_code == 200
        refresh, access = response.json()["refresh"], response.json()["access"]
        assert _claims(refresh)["exp"] == end
        assert _claims(access)["exp"] == end  # a minute left: less than an access lifetime
        assert _get_jobs(access).status_code == 200

    token_clock_at(now + timedelta(seconds=61))
    response = _post("/api/auth/token/refresh", {"refresh": refresh})
    assert response.status_code == 401
    assert response.json()["code"] == "token_not_valid"


def test_issuing_tokens_stores_nothing_and_only_revoked_ones_are_recorded(alice):
    refresh = login(ACME, "alice").json()["refresh"]
    assert not OutstandingToken.objects.exists()
    _post("/api/auth/token/refresh", {"refresh": refresh})
    (revoked,) = BlacklistedToken.objects.select_related("token")
    assert revoked.token.jti == _claims(refresh)["jti"]


def test_logout_revokes_the_refresh_token(alice):
    refresh = login(ACME, "alice").json()["refresh"]
    response = _post("/api/auth/logout", {"refresh": refresh})
    assert response.status_code == 204
    assert response.content == b""
    again = _post("/api/auth/token/refresh", {"refresh": refresh})
    assert again.status_code == 401
    assert _post("/api/auth/logout", {"refresh": refresh}).status_code == 401


@pytest.mark.parametrize("path", ["/api/auth/token/refresh", "/api/auth/logout"])
def test_refresh_and_logout_refuse_another_tenants_token(alice, globex, path):
    refresh = str(tokens_for(alice))
    response = _post(path, {"refresh": refresh}, host=GLOBEX)
    assert response.status_code == 403
    assert response.json()["code"] == "token_tenant_mismatch"
    assert not BlacklistedToken.objects.exists()
    assert _post("/api/auth/token/refresh", {"refresh": refresh}).status_code == 200


@pytest.mark.parametrize("path", ["/api/auth/token/refresh", "/api/auth/logout"])
def test_an_access_token_is_not_a_refresh_token(alice, path):
    access = str(tokens_for(alice).access_token)
    response = _post(path, {"refresh": access})
    assert response.status_code == 401
    assert response.json()["code"] == "token_not_valid"


# --- deactivated, deleted and moved users ----------------------------------------------------


def test_deactivation_drops_the_cached_user_and_refuses_the_next_request(alice, acme):
    job = JobFactory(tenant=acme)
    client = client_for(alice, host=ACME)
    assert client.get(f"/api/jobs/{job.id}").status_code == 200
    assert cache.get(_user_key(alice.pk)) is not None  # the next poll would read the cache
    alice.is_active = False
    alice.save()
    assert cache.get(_user_key(alice.pk)) is None
    response = client.get(f"/api/jobs/{job.id}")
    assert response.status_code == 403
    assert response.json()["code"] == "user_inactive"


def test_deactivated_user_cannot_refresh(alice):
    refresh = str(tokens_for(alice))
    alice.is_active = False
    alice.save()
    response = _post("/api/auth/token/refresh", {"refresh": refresh})
    assert response.status_code == 403
    assert response.json()["code"] == "user_inactive"
    assert not BlacklistedToken.objects.exists()


def test_deleted_user_cannot_refresh(alice, acme):
    refresh = str(tokens_for(alice))
    alice.delete()
    response = _post("/api/auth/token/refresh", {"refresh": refresh})
    assert response.status_code == 401
    assert response.json()["code"] == "user_not_found"


def test_user_moved_to_another_tenant_cannot_refresh(alice, globex):
    refresh = str(tokens_for(alice))
    alice.tenant = globex
    alice.save()
    response = _post("/api/auth/token/refresh", {"refresh": refresh})
    # 403 when the user row is visible from acme's host; with row-level security on users
    # it is not (it now belongs to globex), so the user is not found: 401.
    assert (response.status_code, response.json()["code"]) in {
        (403, "token_tenant_mismatch"),
        (401, "user_not_found"),
    }
    assert not BlacklistedToken.objects.exists()


# --- unknown fields on the auth endpoints ---------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/auth/token", {"username": "alice", "password": PASSWORD, "is_staff": True}),
        ("/api/auth/token/refresh", {"refresh": "x", "tenant": "globex"}),
        ("/api/auth/logout", {"refresh": "x", "all": True}),
    ],
)
def test_auth_endpoints_reject_unknown_fields(alice, path, body):
    response = _post(path, body)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    unknown = set(body) - {"username", "password", "refresh"}
    assert set(response.json()["errors"]) == unknown


# --- brute force: per username and per client IP ------------------------------------------------


def test_failed_logins_lock_the_username_across_tenant_hosts(alice, globex, settings):
    """Failures on any host count against the username; once spent, even the right password
    is refused with 429 before it is checked, on every host."""
    settings.AUTH_LOGIN_USERNAME_RATE = "3/m"
    assert login(ACME, "alice").status_code == 200  # a success costs nothing
    for host in (ACME, GLOBEX, GLOBEX):
        assert login(host, "alice", "wrong", REMOTE_ADDR="192.0.2.1").status_code == 401
    for host in (ACME, GLOBEX):
        response = login(host, "alice", REMOTE_ADDR="192.0.2.2")
        assert response.status_code == 429
        assert response["Content-Type"] == "application/problem+json"
        assert response.json()["code"] == "rate_limited"
        assert 1 <= int(response["Retry-After"]) <= 60
    # Case does not make a new username.
    assert login(ACME, "ALICE", "wrong", REMOTE_ADDR="192.0.2.3").status_code == 429


def test_login_attempts_are_limited_per_client_ip(alice, bob, settings):
    settings.AUTH_LOGIN_IP_RATE = "4/m"
    for username in ("alice", "alice", "nobody", "bob"):
        login(ACME, username, "wrong", REMOTE_ADDR="198.51.100.7")
    response = login(ACME, "alice", REMOTE_ADDR="198.51.100.7")
    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 1
    # Another address is not affected.
    assert login(ACME, "alice", REMOTE_ADDR="198.51.100.8").status_code == 200


def test_x_forwarded_for_is_ignored_without_a_trusted_proxy(alice, settings):
    settings.AUTH_LOGIN_IP_RATE = "2/m"
    settings.TRUSTED_PROXIES = []
    statuses = [
        login(ACME, "alice", "wrong", HTTP_X_FORWARDED_FOR=f"203.0.113.{n}").status_code
        for n in range(3)
    ]
    assert statuses == [401, 401, 429]


def test_behind_a_trusted_proxy_the_client_is_the_right_most_untrusted_address(alice, settings):
    settings.AUTH_LOGIN_IP_RATE = "2/m"
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    proxy = {"REMOTE_ADDR": "10.0.0.5"}
    # Distinct real clients behind the proxy have their own counters...
    for n in range(3):
        real = login(ACME, "alice", "wrong", HTTP_X_FORWARDED_FOR=f"203.0.113.{n}", **proxy)
        assert real.status_code == 401
    # ...but one client can't escape its counter by prepending addresses of its choice.
    forged = [
        login(
            ACME, "alice", "wrong", HTTP_X_FORWARDED_FOR=f"1.2.3.{n}, 203.0.113.9", **proxy
        ).status_code
        for n in range(3)
    ]
    assert forged == [401, 401, 429]


@pytest.mark.parametrize(
    ("remote", "forwarded", "trusted", "expected"),
    [
        ("192.0.2.1", "", [], "192.0.2.1"),
        ("192.0.2.1", "203.0.113.1", [], "192.0.2.1"),
        ("10.0.0.1", "203.0.113.1", ["10.0.0.0/8"], "203.0.113.1"),
        ("10.0.0.1", "6.6.6.6, 203.0.113.1, 10.0.0.2", ["10.0.0.0/8"], "203.0.113.1"),
        ("10.0.0.1", "garbage, 10.0.0.2", ["10.0.0.0/8"], "10.0.0.2"),
        ("10.0.0.1", "", ["10.0.0.0/8"], "10.0.0.1"),
        ("10.0.0.1", "10.0.0.3, 10.0.0.2", ["10.0.0.0/8"], "10.0.0.3"),
        ("10.0.0.1", "[2001:db8::1]:443", ["10.0.0.0/8"], "2001:db8::/64"),
        ("2001:db8:1:2:3:4:5:6", "", [], "2001:db8:1:2::/64"),
        ("::ffff:192.0.2.9", "", [], "192.0.2.9"),
        ("", "203.0.113.1", [], "unknown"),
    ],
)
def test_client_ip_key(rf, settings, remote, forwarded, trusted, expected):
    settings.TRUSTED_PROXIES = trusted
    request = rf.get("/", REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=forwarded)
    assert client_ip_key(request) == expected


def test_login_limit_fails_closed_without_redis(alice, settings):
    """A counter that can't be read refuses logins rather than allowing unlimited guesses:
    503 with Retry-After (docs/security.md), as in the jobs API; never a 200 or a 500."""
    settings.CACHES = {
        **settings.CACHES,
        "default": {
            **settings.CACHES["default"],
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"socket_connect_timeout": 0.2},
        },
    }
    response = login(ACME, "alice")
    assert (response.status_code, response.json()["code"]) == (503, "service_unavailable")
    assert int(response["Retry-After"]) >= 1
