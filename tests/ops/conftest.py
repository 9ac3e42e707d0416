"""Fixtures for operator tools: commands, health and metrics."""

import pytest
from django.conf import settings
from django.test import Client


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Factories hash a password per job creator; the default hasher would dominate."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def public_client(public_tenant):
    """An anonymous client on the platform host (admin, health, metrics)."""
    return Client(HTTP_HOST=settings.PUBLIC_HOST)
