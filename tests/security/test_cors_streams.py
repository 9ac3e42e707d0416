"""CORS for what a SPA sends beyond a plain call: ``Last-Event-ID`` when it reconnects a
stream and ``X-Request-ID`` (its own id for a request). A real preflight over HTTP, and a
page on another origin in headless Chromium that reads a job stream and polls, against a
real uvicorn (streams are served by the ASGI server)."""

import http.server
import json
import threading
import uuid

import httpx
import pytest

from accounts.tokens import tokens_for
from tests.browser import chromium_page
from tests.factories import JobFactory, UserFactory
from tests.helpers import start_uvicorn, stop_process

pytestmark = pytest.mark.django_db(transaction=True)

_PAGE = """<!doctype html><meta charset="utf-8"><title>SPA</title><pre id="out"></pre>
<script>
const api = "{api}", token = "{token}", job = "{job}";
async function main() {{
  const auth = {{"Authorization": "Bearer " + token}};
  const abort = new AbortController();
  const stream = await fetch(api + "/api/jobs/" + job + "/events", {{
    headers: {{...auth, "Accept": "text/event-stream", "Last-Event-ID": '"stale"'}},
    signal: abort.signal,
  }});
  const reader = stream.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  while (!buffer.includes("\\n\\n")) buffer += (await reader.read()).value;
  abort.abort();
  const poll = await fetch(api + "/api/jobs/" + job, {{
    headers: {{...auth, "X-Request-ID": "spa-poll-1"}},
  }});
  document.getElementById("out").textContent = JSON.stringify({{
    streamStatus: stream.status,
    event: buffer.slice(0, buffer.indexOf("\\n\\n")),
    pollStatus: poll.status,
    etag: poll.headers.get("ETag"),
    requestId: poll.headers.get("X-Request-ID"),
  }});
}}
main().catch(e => {{ document.getElementById("out").textContent = "ERROR " + e; }});
</script>"""


@pytest.fixture
def page_server():
    """Serves ``page_server.body`` at / on another origin (another port of 127.0.0.1)."""

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(server.body)))
            self.end_headers()
            self.wfile.write(server.body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    server.origin = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def api(acme, page_server):
    """A uvicorn on the test database, acme allowing the page server's origin."""
    acme.allowed_origins = [page_server.origin]
    acme.save()
    server = start_uvicorn()
    server.url = f"http://acme.localhost:{server.port}"  # Chromium resolves *.localhost
    yield server
    stop_process(server)


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/api/events", "authorization, last-event-id"),
        ("/api/jobs/{job}/events", "authorization, last-event-id, x-request-id"),
        ("/api/jobs/{job}", "authorization, if-none-match, x-request-id"),
        ("/api/jobs", "authorization, content-type, idempotency-key, x-request-id"),
    ],
)
def test_a_preflight_allows_the_headers_a_spa_sends(api, acme, page_server, path, headers):
    url = f"http://127.0.0.1:{api.port}" + path.format(job=uuid.uuid4())
    preflight = httpx.options(
        url,
        headers={
            "Host": "acme.localhost",
            "Origin": page_server.origin,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": headers,
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == page_server.origin
    allowed = {h.strip() for h in preflight.headers["access-control-allow-headers"].split(",")}
    assert {h.strip() for h in headers.split(",")} <= allowed


def test_a_page_on_another_origin_reads_a_stream_with_last_event_id_and_polls_with_a_request_id(
    api, acme, page_server
):
    job = JobFactory(tenant=acme)
    token = tokens_for(UserFactory(username="spa", tenant=acme)).access_token
    page_server.body = _PAGE.format(api=api.url, token=token, job=job.id).encode()
    with chromium_page() as page:
        page.goto(page_server.origin + "/")
        page.wait_for_function(
            "document.getElementById('out').textContent.length > 0", timeout=30_000
        )
        text = page.locator("#out").text_content()
    assert not text.startswith("ERROR"), text
    seen = json.loads(text)
    assert (seen["streamStatus"], seen["pollStatus"]) == (200, 200)
    assert f"id: {seen['etag']}" in seen["event"].split("\n")  # the stale id did not match
    assert seen["requestId"]  # the server's own id, exposed
