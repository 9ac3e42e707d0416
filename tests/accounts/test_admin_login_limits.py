"""The admin login spends the budgets of ``POST /api/auth/token``: one per client IP and one
per username across both. Driven through the real form: a GET for the page and its CSRF
token, then a POST, as a browser does, with CSRF checks enforced."""

import re
from unittest import mock

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.backends import ModelBackend
from django.test import Client

from tests.conftest import TENANTS, client_for
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/"
LIMITED = "Too many log-in attempts. Try again in"
WRONG_PASSWORD = "Please enter the correct username and password for a staff account."


def admin_login(username: str, password: str = PASSWORD, *, ip: str = "192.0.2.1"):
    """Log in through the admin's form from a fresh browser at ``ip``."""
    browser = Client(enforce_csrf_checks=True, HTTP_HOST=django_settings.PUBLIC_HOST)
    page = browser.get(LOGIN, REMOTE_ADDR=ip)
    assert page.status_code == 200
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)[1]
    response = browser.post(
        LOGIN,
        {
            "csrfmiddlewaretoken": token,
            "username": username,
            "password": password,
            "next": "/admin/",
        },
        REMOTE_ADDR=ip,
    )
    response.logged_in = "_auth_user_id" in browser.session
    return response


def api_login(username: str, password: str = PASSWORD, *, ip: str = "192.0.2.1"):
    return client_for(host=TENANTS["acme"]).post(
        "/api/auth/token",
        {"username": username, "password": password},
        format="json",
        REMOTE_ADDR=ip,
    )


def assert_limited_page(response) -> None:
    """The login page again, with the message, as a 429 with Retry-After."""
    assert response.status_code == 429
    assert response["Content-Type"].startswith("text/html")
    assert 1 <= int(response["Retry-After"]) <= 60
    assert LIMITED in response.text
    assert 'id="login-form"' in response.text
    assert not response.logged_in


@pytest.fixture
def budgets(settings):
    """A small budget per username, a large one per IP (tests of the IP budget lower it)."""
    settings.AUTH_LOGIN_USERNAME_RATE = "3/m"
    settings.AUTH_LOGIN_IP_RATE = "100/m"
    return settings


def test_a_spent_username_refuses_the_right_password_without_checking_it(budgets, superuser):
    for _ in range(3):
        response = admin_login("admin", "wrong")
        assert (response.status_code, response.logged_in) == (200, False)
        assert WRONG_PASSWORD in response.text

    with mock.patch.object(
        ModelBackend, "authenticate", autospec=True, side_effect=ModelBackend.authenticate
    ) as authenticate:
        response = admin_login("admin", ip="192.0.2.2")  # the right password, another address
        assert authenticate.call_count == 0  # no password was hashed
    assert_limited_page(response)
    assert_limited_page(admin_login("ADMIN", ip="192.0.2.3"))  # case makes no new username


def test_api_failures_spend_the_admin_budget_and_admin_failures_the_apis(budgets, carol, acme):
    for _ in range(3):
        assert api_login("carol", "wrong").status_code == 401
    assert_limited_page(admin_login("carol"))

    UserFactory(username="dave", tenant=acme, is_staff=True)
    for _ in range(3):
        assert admin_login("dave", "wrong").status_code == 200
    response = api_login("dave")
    assert (response.status_code, response.json()["code"]) == (429, "rate_limited")


def test_the_admin_and_the_api_share_the_per_ip_budget(budgets, superuser, carol):
    budgets.AUTH_LOGIN_IP_RATE = "4/m"
    budgets.AUTH_LOGIN_USERNAME_RATE = "100/m"
    ip = "198.51.100.7"
    assert api_login("carol", "wrong", ip=ip).status_code == 401
    assert api_login("nobody", "wrong", ip=ip).status_code == 401
    assert admin_login("admin", "wrong", ip=ip).status_code == 200
    assert admin_login("somebody", "wrong", ip=ip).status_code == 200

    assert_limited_page(admin_login("admin", ip=ip))
    assert api_login("carol", ip=ip).status_code == 429
    # Another address has its own budget.
    response = admin_login("admin", ip="198.51.100.8")
    assert (response.status_code, response["Location"], response.logged_in) == (
        302,
        "/admin/",
        True,
    )
