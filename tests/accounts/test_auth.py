"""Login, refresh and the tenant binding of tokens."""

import jwt
import pytest
from django.conf import settings

from accounts.tokens import tokens_for
from tests.conftest import client_for
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


def _login(host, username, password=PASSWORD):
    return client_for(host=host).post(
        "/api/auth/token", {"username": username, "password": password}, format="json"
    )


def test_login_returns_tokens_bound_to_the_tenant(alice):
    response = _login("acme.localhost", "alice")
    assert response.status_code == 200
    body = response.json()
    for kind in ("access", "refresh"):
        claims = jwt.decode(
            body[kind], settings.SECRET_KEY, algorithms=["HS256"], audience=settings.JWT_AUDIENCE
        )
        assert claims["tenant"] == "acme"
        assert claims["user_id"] == str(alice.pk)


def test_login_token_works_on_its_own_host(alice):
    access = _login("acme.localhost", "alice").json()["access"]
    client = client_for(host="acme.localhost")
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    assert client.get("/api/jobs").status_code == 200


def test_wrong_password_is_401(alice):
    response = _login("acme.localhost", "alice", "wrong")
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "invalid_credentials"


def test_user_of_another_tenant_cannot_log_in_here(alice, globex):
    """Same 401 as a wrong password: the login form reveals nothing about other tenants."""
    response = _login("globex.localhost", "alice")
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_credentials"


def test_platform_staff_cannot_get_api_tokens(acme):
    UserFactory(username="root", tenant=None, is_staff=True, is_superuser=True)
    assert _login("acme.localhost", "root").status_code == 401


def test_inactive_user_cannot_log_in(acme):
    UserFactory(username="gone", tenant=acme, is_active=False)
    assert _login("acme.localhost", "gone").status_code == 401


def test_token_on_another_tenants_host_is_403_mismatch(alice, globex):
    client = client_for(alice, host="globex.localhost")
    response = client.get("/api/jobs")
    assert response.status_code == 403
    assert response.json()["code"] == "token_tenant_mismatch"


def test_inactive_user_token_is_refused_with_403(alice):
    client = client_for(alice, host="acme.localhost")
    alice.is_active = False
    alice.save()
    response = client.get("/api/jobs")
    assert response.status_code == 403
    assert response.json()["code"] == "user_inactive"


def test_inactive_tenant_is_refused_with_403(alice, acme):
    client = client_for(alice, host="acme.localhost")
    acme.is_active = False
    acme.save()
    try:
        response = client.get("/api/jobs")
        assert response.status_code == 403
        assert response.json()["code"] == "tenant_inactive"
        assert _login("acme.localhost", "alice").status_code == 403
    finally:
        acme.is_active = True
        acme.save()


def test_refresh_returns_a_new_access_token_for_the_tenant(alice):
    refresh = str(tokens_for(alice))
    response = client_for(host="acme.localhost").post(
        "/api/auth/token/refresh", {"refresh": refresh}, format="json"
    )
    assert response.status_code == 200
    claims = jwt.decode(
        response.json()["access"],
        settings.SECRET_KEY,
        algorithms=["HS256"],
        audience=settings.JWT_AUDIENCE,
    )
    assert claims["tenant"] == "acme"


def test_refresh_on_another_tenants_host_is_403(alice, globex):
    refresh = str(tokens_for(alice))
    response = client_for(host="globex.localhost").post(
        "/api/auth/token/refresh", {"refresh": refresh}, format="json"
    )
    assert response.status_code == 403
    assert response.json()["code"] == "token_tenant_mismatch"


def test_refresh_with_garbage_is_401(acme):
    response = client_for(host="acme.localhost").post(
        "/api/auth/token/refresh", {"refresh": "garbage"}, format="json"
    )
    assert response.status_code == 401


@pytest.mark.parametrize("path", ["/api/auth/token/refresh", "/api/auth/logout"])
@pytest.mark.parametrize("raw", ["\u001d", " ", "\t\n"])
def test_a_whitespace_refresh_token_is_an_invalid_token_not_a_blank_field(acme, path, raw):
    """The schema takes any non-empty string, so one of whitespace is a token that does
    not verify (401), as Schemathesis reads the schema; it was stripped to blank (400)."""
    response = client_for(host="acme.localhost").post(path, {"refresh": raw}, format="json")
    assert response.status_code == 401, response.content


@pytest.mark.parametrize("username", ["\u0085", " "])
def test_a_whitespace_username_is_unknown_credentials_not_a_blank_field(acme, username):
    """Schemathesis found "\u0085", which the schema takes and stripping made blank (400)."""
    response = client_for(host="acme.localhost").post(
        "/api/auth/token", {"username": username, "password": "x"}, format="json"
    )
    assert response.status_code == 401, response.content


def test_a_username_with_spaces_around_it_logs_in_as_django_s_login_form_does(alice):
    assert _login("acme.localhost", " alice\t").status_code == 200


def test_token_with_tenant_claim_forged_is_rejected(alice, globex):
    """Changing the claim breaks the signature; signing needs the server's key."""
    access = str(tokens_for(alice).access_token)
    claims = jwt.decode(access, options={"verify_signature": False})
    claims["tenant"] = "globex"
    forged = jwt.encode(claims, "an-attacker-key-that-is-not-the-servers-key", algorithm="HS256")
    client = client_for(host="globex.localhost")
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {forged}")
    assert client.get("/api/jobs").status_code == 401
