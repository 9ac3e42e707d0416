"""A username's login budget is reserved before the password is checked: wrong guesses sent
all at once, over real HTTP to the live server, get at most the budget's count of password
checks (counted by the server's hasher), on the API and on the admin's form alike; the rest
are refused with 429 unchecked. A successful login gives its unit back."""

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from django.conf import settings as django_settings
from django.contrib.auth.hashers import MD5PasswordHasher

from tests.conftest import TENANTS
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

BUDGET = 10
_checks = 0
_checks_lock = threading.Lock()


class CountingHasher(MD5PasswordHasher):
    """The tests' MD5 hasher, counting its password checks and slowed down, so that
    concurrent guesses are all in flight while the first ones are being checked."""

    def verify(self, password, encoded):
        global _checks
        with _checks_lock:
            _checks += 1
        time.sleep(0.5)
        return super().verify(password, encoded)


@pytest.fixture
def counted_checks(settings):
    """The number of password checks the server makes from now on."""
    global _checks
    settings.PASSWORD_HASHERS = [f"{__name__}.CountingHasher"]
    settings.AUTH_LOGIN_USERNAME_RATE = f"{BUDGET}/15m"
    settings.AUTH_LOGIN_IP_RATE = "1000/m"  # every guess comes from 127.0.0.1
    with _checks_lock:
        _checks = 0
    return lambda: _checks


def all_at_once(attempt, count: int) -> list[int]:
    """Run ``attempt()`` in ``count`` threads released together; their status codes."""
    start = threading.Barrier(count)

    def released():
        start.wait(timeout=30)
        return attempt()

    with ThreadPoolExecutor(count) as pool:
        return sorted(pool.map(lambda _: released(), range(count)))


def api_login(live_server, password: str) -> int:
    return requests.post(
        f"{live_server.url}/api/auth/token",
        json={"username": "alice", "password": password},
        headers={"Host": TENANTS["acme"]},
        timeout=60,
    ).status_code


def test_concurrent_wrong_guesses_on_the_api_check_at_most_the_budget(
    live_server, acme, counted_checks
):
    UserFactory(username="alice", tenant=acme)

    statuses = all_at_once(lambda: api_login(live_server, "wrong"), 25)

    assert counted_checks() <= BUDGET
    assert statuses.count(401) == counted_checks()
    assert statuses.count(429) == 25 - counted_checks()
    # Spent: the right password is refused too, without a check.
    assert api_login(live_server, PASSWORD) == 429
    assert counted_checks() <= BUDGET


def test_a_successful_login_gives_its_unit_back(live_server, acme, counted_checks):
    UserFactory(username="alice", tenant=acme)

    for _ in range(BUDGET + 5):
        assert api_login(live_server, PASSWORD) == 200
    for _ in range(BUDGET):
        assert api_login(live_server, "wrong") == 401
    assert api_login(live_server, PASSWORD) == 429


def test_concurrent_wrong_guesses_on_the_admin_form_check_at_most_the_budget(
    live_server, public_tenant, counted_checks
):
    UserFactory(username="admin", is_staff=True, is_superuser=True)
    login_url = f"{live_server.url}/admin/login/"

    def browser():
        """A session holding the login page's CSRF cookie and token, as a browser does."""
        session = requests.Session()
        session.headers["Host"] = django_settings.PUBLIC_HOST
        page = session.get(login_url, timeout=60)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)[1]
        return session, token

    browsers = iter([browser() for _ in range(20)])
    browsers_lock = threading.Lock()

    def guess():
        with browsers_lock:
            session, token = next(browsers)
        form = {"csrfmiddlewaretoken": token, "username": "admin", "password": "wrong"}
        return session.post(
            login_url, data=form, headers={"Referer": login_url}, timeout=60
        ).status_code

    statuses = all_at_once(guess, 20)

    assert counted_checks() <= BUDGET
    assert statuses.count(200) == counted_checks()  # the form again, "wrong password"
    assert statuses.count(429) == 20 - counted_checks()
