"""Admin fixtures: a superuser, carol (staff of acme), and Django test clients logged in on
the public host, where the admin lives."""

import pytest
from django.conf import settings
from django.test import Client

from tests.factories import UserFactory


def admin_client_for(user) -> Client:
    client = Client(HTTP_HOST=settings.PUBLIC_HOST)
    client.force_login(user)
    return client


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Factories hash a password per user (one per job's creator); the default hasher's
    deliberate slowness would dominate these tests."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def superuser(public_tenant):
    return UserFactory(username="admin", is_staff=True, is_superuser=True)


@pytest.fixture
def carol(public_tenant, acme):
    return UserFactory(username="carol", tenant=acme, is_staff=True)


@pytest.fixture
def superuser_client(superuser):
    return admin_client_for(superuser)


@pytest.fixture
def carol_client(carol):
    return admin_client_for(carol)
