"""Security test fixtures: staff users and admin clients on the public host, token
helpers, and login requests from chosen client addresses."""

import pytest
from django.conf import settings as django_settings
from django.test import Client

from jobs.api.realtime.longpoll import listener
from tests.conftest import client_for
from tests.factories import PASSWORD, UserFactory


@pytest.fixture(autouse=True)
def _stop_longpoll_listener():
    """A long poll starts this process's LISTEN connection; it must not outlive the test
    database (it would block DROP DATABASE)."""
    yield
    listener.stop()


@pytest.fixture
def carol(public_tenant, acme):
    """Staff of acme: may use the admin, for acme's jobs only."""
    return UserFactory(username="carol", tenant=acme, is_staff=True)


@pytest.fixture
def admin_client_of():
    """A Django client logged in on the public host (where the admin lives) as ``user``."""

    def make(user) -> Client:
        client = Client(HTTP_HOST=django_settings.PUBLIC_HOST)
        client.force_login(user)
        return client

    return make


def login(host: str, username: str, password: str = PASSWORD, **extra):
    """``POST /api/auth/token`` on ``host``; ``extra`` are WSGI environ keys such as
    ``REMOTE_ADDR`` or ``HTTP_X_FORWARDED_FOR``."""
    return client_for(host=host).post(
        "/api/auth/token",
        {"username": username, "password": password},
        format="json",
        **extra,
    )
