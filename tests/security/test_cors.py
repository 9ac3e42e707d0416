"""CORS per tenant: only a tenant's own allowed origins get CORS answers, on its API; a
real preflight over HTTP, and a page on another origin in headless Chromium that submits
a job and polls it, reading the exposed headers."""

import http.client
import http.server
import json
import threading
from urllib.parse import urlsplit

import pytest
from django.core.exceptions import ValidationError

from accounts.tokens import tokens_for
from tenants.admin import TenantChangeForm
from tenants.models import normalize_origin
from tests.browser import chromium_page
from tests.console.conftest import worker  # noqa: F401 - the fixture
from tests.factories import UserFactory
from tests.helpers import admin_client_for

pytestmark = pytest.mark.django_db(transaction=True)

SPA = "https://app.example.com"
EXPOSED = {
    "etag",
    "retry-after",
    "ratelimit",
    "ratelimit-policy",
    "location",
    "x-request-id",
    "job-read-token",
}


def _request(live_server, host, method, path, headers=None):
    """One real HTTP request to the live server, with ``host`` as Host."""
    port = urlsplit(live_server.url).port
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, headers={"Host": f"{host}:{port}", **(headers or {})})
        response = conn.getresponse()
        response.read()
        return response
    finally:
        conn.close()


def _preflight(live_server, host, origin, path="/api/jobs"):
    return _request(
        live_server,
        host,
        "OPTIONS",
        path,
        {
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
        },
    )


@pytest.fixture
def acme_spa(acme, globex):
    acme.allowed_origins = [SPA]
    acme.save()
    globex.allowed_origins = ["https://globex-app.example.com"]
    globex.save()
    return acme


def test_a_preflight_from_an_allowed_origin_is_answered(live_server, acme_spa):
    response = _preflight(live_server, "acme.localhost", SPA)
    assert response.status == 200
    assert response.getheader("Access-Control-Allow-Origin") == SPA
    allowed = {h.strip() for h in response.getheader("Access-Control-Allow-Headers").split(",")}
    assert {"authorization", "content-type", "idempotency-key", "if-none-match"} <= allowed
    assert "POST" in response.getheader("Access-Control-Allow-Methods")
    assert response.getheader("Access-Control-Allow-Credentials") is None
    assert "origin" in response.getheader("Vary").lower()


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example.com",
        "https://globex-app.example.com",  # another tenant's origin
        "http://app.example.com",  # another scheme
        "https://app.example.com:8443",  # another port
        "null",
    ],
)
def test_a_preflight_from_any_other_origin_gets_no_cors_header(live_server, acme_spa, origin):
    response = _preflight(live_server, "acme.localhost", origin)
    assert response.getheader("Access-Control-Allow-Origin") is None
    assert response.getheader("Access-Control-Allow-Headers") is None


def test_the_api_answers_an_allowed_origin_with_the_exposed_headers(live_server, acme_spa):
    token = tokens_for(UserFactory(username="spa", tenant=acme_spa)).access_token
    response = _request(
        live_server,
        "acme.localhost",
        "GET",
        "/api/jobs",
        {"Origin": SPA, "Authorization": f"Bearer {token}"},
    )
    assert response.status == 200
    assert response.getheader("Access-Control-Allow-Origin") == SPA
    exposed = response.getheader("Access-Control-Expose-Headers")
    assert {name.strip().lower() for name in exposed.split(",")} == EXPOSED


def test_only_the_api_is_cors(live_server, acme_spa):
    response = _preflight(live_server, "acme.localhost", SPA, path="/healthz")
    assert response.getheader("Access-Control-Allow-Origin") is None


@pytest.mark.parametrize(
    ("written", "origin"),
    [
        ("https://App.Example.com", "https://app.example.com"),
        (" http://127.0.0.1:8080 ", "http://127.0.0.1:8080"),
        ("http://[::1]:3000", "http://[::1]:3000"),
    ],
)
def test_origins_are_normalised(written, origin):
    assert normalize_origin(written) == origin


@pytest.mark.parametrize(
    "bad",
    [
        "app.example.com",
        "https://app.example.com/",
        "https://app.example.com/path",
        "https://user@app.example.com",
        "ftp://app.example.com",
        "https://*.example.com",
        "null",
        "https://app.example.com:99999",
        "https://app.example.com?x=1",
    ],
)
def test_what_is_no_origin_is_refused(bad):
    with pytest.raises(ValidationError):
        normalize_origin(bad)


def test_the_tenant_admin_form_reads_one_origin_per_line(acme):
    form = TenantChangeForm(
        data={
            "name": "Acme",
            "is_active": "on",
            "allowed_origins": "https://App.example.com\n\nhttp://localhost:5173\n"
            "https://app.example.com",
        },
        instance=acme,
    )
    assert form.is_valid(), form.errors
    form.save()
    acme.refresh_from_db()
    assert acme.allowed_origins == ["https://app.example.com", "http://localhost:5173"]

    bad = TenantChangeForm(
        data={"name": "Acme", "allowed_origins": "https://ok.example.com\nnot an origin"},
        instance=acme,
    )
    assert not bad.is_valid()
    assert "not an origin" in str(bad.errors["allowed_origins"])


def test_the_tenant_admin_page_edits_allowed_origins(acme, public_tenant):
    admin = UserFactory(username="root", is_staff=True, is_superuser=True)
    page = admin_client_for(admin).get(f"/admin/tenants/tenant/{acme.pk}/change/")
    assert page.status_code == 200
    assert 'name="allowed_origins"' in page.content.decode()


_PAGE = """<!doctype html><meta charset="utf-8"><title>SPA</title><pre id="out"></pre>
<script>
const api = "{api}", token = "{token}";
const out = document.getElementById("out");
async function main() {{
  const submitted = await fetch(api + "/api/jobs", {{
    method: "POST",
    headers: {{"Authorization": "Bearer " + token, "Content-Type": "application/json",
               "Idempotency-Key": "spa-1"}},
    body: JSON.stringify({{type: "demo.echo", payload: {{from: "spa"}}}}),
  }});
  const location = submitted.headers.get("Location");
  let etag = null, job = await submitted.json(), polls = 0, notModified = 0;
  while (job.status !== "completed" && polls < 200) {{
    const headers = {{"Authorization": "Bearer " + token}};
    if (etag) headers["If-None-Match"] = etag;
    const poll = await fetch(api + location, {{headers}});
    polls++;
    if (poll.status === 304) {{ notModified++; }} else {{ job = await poll.json(); }}
    etag = poll.headers.get("ETag") || etag;
    if (job.status !== "completed") await new Promise(r => setTimeout(r, 100));
  }}
  out.textContent = JSON.stringify({{
    status: job.status, result: job.result, location, etag,
    rateLimit: submitted.headers.get("RateLimit"),
    requestId: submitted.headers.get("X-Request-ID"),
  }});
}}
main().catch(e => {{ out.textContent = "ERROR " + e; }});
</script>"""


class _Page(http.server.BaseHTTPRequestHandler):
    body = b""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


@pytest.fixture
def spa_server():
    """A page server on another origin (another port of 127.0.0.1)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_a_page_on_another_origin_submits_and_polls_in_chromium(
    live_server,
    acme,
    spa_server,
    worker,  # noqa: F811 - the fixture
):
    origin = f"http://127.0.0.1:{spa_server.server_address[1]}"
    acme.allowed_origins = [origin]
    acme.save()
    token = tokens_for(UserFactory(username="spa", tenant=acme)).access_token
    api = f"http://acme.localhost:{urlsplit(live_server.url).port}"
    _Page.body = _PAGE.format(api=api, token=token).encode()

    with chromium_page() as page:
        page.goto(origin + "/")
        page.wait_for_function(
            "document.getElementById('out').textContent.length > 0", timeout=30_000
        )
        text = page.locator("#out").text_content()
    assert not text.startswith("ERROR"), text
    seen = json.loads(text)
    assert seen["status"] == "completed"
    assert seen["result"] == {"echo": {"from": "spa"}}
    assert seen["location"].startswith("/api/jobs/")
    assert seen["etag"]
    assert seen["rateLimit"]
    assert seen["requestId"]


def test_a_page_on_an_origin_not_listed_cannot_call_the_api(live_server, acme, spa_server):
    acme.allowed_origins = ["https://somewhere-else.example.com"]
    acme.save()
    api = f"http://acme.localhost:{urlsplit(live_server.url).port}"
    _Page.body = _PAGE.format(api=api, token="x").encode()
    origin = f"http://127.0.0.1:{spa_server.server_address[1]}"
    with chromium_page() as page:
        page.goto(origin + "/")
        page.wait_for_function(
            "document.getElementById('out').textContent.length > 0", timeout=30_000
        )
        text = page.locator("#out").text_content()
        page.console_errors.clear()  # the browser reports the refused call
    assert text.startswith("ERROR TypeError"), text  # fetch refused: no CORS answer
