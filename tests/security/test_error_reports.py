"""Django's technical 500 page (DEBUG) masks connection strings and passwords
(core/reporting.py): DATABASE_URL, REDIS_URL, the cache's LOCATION and the database's
PASSWORD, whether they appear among the settings or in request.META (under runserver,
META holds the whole environment)."""

import sys

import pytest
from django.test import RequestFactory
from django.views.debug import technical_500_response

DB_SECRET = "db-secret-5a1f0e"
REDIS_SECRET = "redis-secret-9c2e77"
DATABASE_URL = f"postgres://app:{DB_SECRET}@db.internal:5432/app"
REDIS_URL = f"redis://:{REDIS_SECRET}@redis.internal:6379/0"


@pytest.fixture
def secrets_in_settings(settings, monkeypatch):
    settings.DEBUG = True
    settings.DATABASE_URL = DATABASE_URL
    settings.REDIS_URL = REDIS_URL
    settings.CACHES = {
        **settings.CACHES,
        "default": {**settings.CACHES["default"], "LOCATION": REDIS_URL},
    }
    # In place: replacing DATABASES would disturb the test database's connection.
    monkeypatch.setitem(settings.DATABASES["default"], "PASSWORD", DB_SECRET)


@pytest.mark.parametrize("accept", ["text/html", "text/plain"])
def test_the_debug_500_page_masks_connection_strings_and_passwords(secrets_in_settings, accept):
    request = RequestFactory().get(
        "/boom", HTTP_ACCEPT=accept, DATABASE_URL=DATABASE_URL, REDIS_URL=REDIS_URL
    )
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        response = technical_500_response(request, *sys.exc_info())

    page = response.content.decode()
    assert response.status_code == 500
    assert response["Content-Type"].startswith(accept)
    # The debug page itself, with its settings and META, values masked.
    assert "RuntimeError" in page
    assert "DATABASE_URL" in page
    assert "REDIS_URL" in page
    assert "LOCATION" in page
    assert "********************" in page
    assert DB_SECRET not in page
    assert REDIS_SECRET not in page
