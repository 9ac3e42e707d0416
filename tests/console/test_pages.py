"""The HTML pages over Django's test client: what the console module is handed, the CSP
that keeps it free of inline code, and the platform's front page."""

import json
import re

import pytest
from django.contrib.staticfiles import finders
from django.test import Client

from jobs.registry import job_types

pytestmark = pytest.mark.django_db


@pytest.fixture
def console_page(acme):
    return Client(HTTP_HOST="acme.localhost").get("/")


def test_console_lists_every_registered_type_with_a_json_sample(console_page):
    assert console_page.status_code == 200
    html = console_page.content.decode()
    options = re.findall(r'<option value="([^"]+)" data-sample="([^"]*)"', html)
    assert [name for name, _ in options] == sorted(job_types())
    samples = {name: json.loads(sample.replace("&quot;", '"')) for name, sample in options}
    assert samples["demo.sleep"] == {"seconds": 10}
    assert all(isinstance(sample, dict) for sample in samples.values())


def test_console_hands_the_module_its_api_as_json_not_code(console_page):
    html = console_page.content.decode()
    config = re.search(r'<script id="console-config" type="application/json">(.*?)</script>', html)
    api = json.loads(config.group(1))["api"]
    assert api["token"] == "/api/auth/token"
    assert api["jobs"] == "/api/jobs"
    scripts = re.findall(r"<script([^>]*)>", html)
    # Only data blocks and external modules: nothing for the CSP to allow inline.
    assert sorted(scripts) == [
        ' id="console-config" type="application/json"',
        ' type="module" src="/static/console/console.js"',
    ]
    assert not re.search(r"<[^>]*\s(on[a-z]+|style)=", html)  # no inline handlers or styles


def test_console_is_served_under_a_strict_content_security_policy(console_page):
    policy = console_page["Content-Security-Policy"]
    assert "default-src 'none'" in policy
    assert "script-src 'self'" in policy
    assert "connect-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy


def test_console_assets_are_found_by_staticfiles():
    for name in ("console/console.js", "console/console.css", "console/favicon.svg"):
        assert finders.find(name), name


def test_console_is_per_tenant(acme, globex):
    assert "Log in to Acme" in Client(HTTP_HOST="acme.localhost").get("/").content.decode()
    assert "Log in to Globex" in Client(HTTP_HOST="globex.localhost").get("/").content.decode()


def test_platform_front_page_links_to_admin_and_api_docs(public_tenant):
    response = Client(HTTP_HOST="localhost").get("/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'href="/admin/"' in html
    assert 'href="/api/docs"' in html
    assert "console.js" not in html
    assert "script-src 'self'" in response["Content-Security-Policy"]


def test_pages_answer_get_and_head_only(acme):
    client = Client(HTTP_HOST="acme.localhost")
    assert client.head("/").status_code == 200
    response = client.post("/", {"username": "alice"})
    assert response.status_code in (403, 405)  # CSRF or method: never a login by form post
