"""Bounds of the jobs API (issue 19, items 4, 23 and 24): what a list item carries, which
``?type=`` a list takes, how far ahead ``run_at`` may be, how many unfinished jobs a tenant
may have, what an invalid batch costs and answers, a batch the rate limit can never admit,
and an ``Idempotency-Key`` sent empty.

Each refusal is problem JSON and stores nothing. The quota is also raced over real HTTP.
"""

import json
import socket
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import requests
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.tokens import tokens_for
from jobs.models import Job, JobStatus
from jobs.selectors import LIST_PAYLOAD_MAX_CHARS, LIST_RESULT_MAX_CHARS
from tests.conftest import TENANTS, client_for
from tests.factories import JobFactory

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"
ACME = TENANTS["acme"]


def _assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"] == PROBLEM
    body = response.json()
    assert body["code"] == code
    return body


def _batch(client, jobs: list, **headers):
    return client.post("/api/jobs/batch", {"jobs": jobs}, format="json", **headers)


# --- item 4: an Idempotency-Key sent empty ----------------------------------------------------


@pytest.mark.parametrize("path", ["/api/jobs", "/api/jobs/batch"])
def test_an_empty_idempotency_key_is_400_not_no_key(alice_client, path):
    body = {"type": "demo.echo"} if path == "/api/jobs" else {"jobs": [{"type": "demo.echo"}]}
    response = alice_client.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY="")
    _assert_problem(response, 400, "invalid_idempotency_key")
    assert not Job.objects.exists()


def _raw_submit(port: int, token: str, key_line: bytes) -> tuple[int, dict]:
    body = b'{"type": "demo.echo"}'
    request = (
        b"POST /api/jobs HTTP/1.1\r\nHost: " + f"{ACME}:{port}".encode() + b"\r\n"
        b"Authorization: Bearer " + token.encode() + b"\r\n"
        b"Content-Type: application/json\r\nContent-Length: " + str(len(body)).encode() + b"\r\n"
        + key_line + b"Connection: close\r\n\r\n" + body
    )  # fmt: skip
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, payload = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(payload)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("key_line", [b"Idempotency-Key:\r\n", b"Idempotency-Key:   \r\n"])
def test_an_empty_idempotency_key_over_http_is_400(live_server, alice, key_line):
    port = int(live_server.url.rsplit(":", 1)[1])
    token = str(tokens_for(alice).access_token)
    status, body = _raw_submit(port, token, key_line)
    assert (status, body["code"]) == (400, "invalid_idempotency_key")
    assert not Job.objects.exists()
    # The control: the same request with a key is accepted.
    status, body = _raw_submit(port, token, b"Idempotency-Key: k-1\r\n")
    assert status == 202, body


# --- item 23: what a list item carries --------------------------------------------------------


def test_a_list_item_leaves_out_a_long_result_and_the_poll_keeps_it(alice_client, alice):
    long_result = {"echo": {"blob": "x" * 200_000}}
    for _ in range(8):
        JobFactory(
            tenant=alice.tenant, created_by=alice, status=JobStatus.COMPLETED, result=long_result
        )
    short = JobFactory(
        tenant=alice.tenant, created_by=alice, status=JobStatus.COMPLETED, result={"n": 1}
    )
    response = alice_client.get("/api/jobs")
    assert response.status_code == 200
    assert len(response.content) < 16_000  # 8 long results were 1.6 MB
    items = {item["id"]: item for item in response.json()["results"]}
    assert items.pop(str(short.id))["result"] == {"n": 1}
    assert len(items) == 8
    for item in items.values():
        assert "result" not in item
        assert item["result_omitted"] is True
        assert "completed_at" in item
    # GET /api/jobs/{id} keeps its contract: the whole result.
    job_id = next(iter(items))
    assert alice_client.get(f"/api/jobs/{job_id}").json()["result"] == long_result


def test_a_result_at_the_bound_is_listed_and_one_more_character_is_not(alice_client, alice):
    """The bound counts the characters of the result's JSON text as PostgreSQL writes it."""
    skeleton = len('{"a": ""}')
    at_bound = {"a": "x" * (LIST_RESULT_MAX_CHARS - skeleton)}
    above = {"a": "x" * (LIST_RESULT_MAX_CHARS - skeleton + 1)}
    for result in (at_bound, above):
        JobFactory(tenant=alice.tenant, created_by=alice, status=JobStatus.COMPLETED, result=result)
    newer, older = alice_client.get("/api/jobs").json()["results"]
    assert "result_omitted" not in older
    assert older["result"] == at_bound
    assert newer["result_omitted"] is True


def test_a_list_reads_no_traceback_and_no_long_payload(alice_client, alice):
    """The list's query never names the traceback, and PostgreSQL sends a payload only when
    it is at most LIST_PAYLOAD_MAX_CHARS long: a long one is left out (payload_omitted)."""
    long = JobFactory(tenant=alice.tenant, created_by=alice, payload={"blob": "p" * 10_000})
    short = JobFactory(tenant=alice.tenant, created_by=alice, payload={"prompt": "Q3"})
    with CaptureQueriesContext(connection) as queries:
        response = alice_client.get("/api/jobs")
    assert response.status_code == 200
    assert len(response.content) < 4_000
    (page,) = [query["sql"] for query in queries.captured_queries if "job_queue" in query["sql"]]
    assert '"error_traceback"' not in page
    assert f'> {LIST_PAYLOAD_MAX_CHARS} THEN NULL ELSE "job_queue"."payload"' in page
    items = {item["id"]: item for item in response.json()["results"]}
    assert items[str(short.id)]["payload"] == {"prompt": "Q3"}
    assert "payload_omitted" not in items[str(short.id)]
    assert "payload" not in items[str(long.id)]
    assert items[str(long.id)]["payload_omitted"] is True
    assert alice_client.get(f"/api/jobs/{long.id}").json()["payload"] == long.payload


# --- item 23: ?type= ----------------------------------------------------------------------------


def test_an_unknown_type_filter_is_400(alice_client):
    body = _assert_problem(alice_client.get("/api/jobs?type=no.such.type"), 400, "invalid")
    assert "type" in body["errors"]


def test_a_type_filter_has_an_index_that_leads_with_tenant_and_type():
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, "job_queue")
    index = constraints["job_queue_tenant_type_idx"]
    assert index["columns"] == ["tenant_id", "type", "created_at", "id"]
    assert index["orders"] == ["ASC", "ASC", "DESC", "DESC"]


# --- item 23: the run_at horizon ----------------------------------------------------------------


@pytest.mark.parametrize("run_at", ["9999-12-31T00:00:00Z", "far"])
def test_a_run_at_beyond_the_horizon_is_400(alice_client, settings, run_at):
    if run_at == "far":
        ahead = timedelta(days=settings.JOBS_MAX_RUN_AT_DAYS, minutes=1)
        run_at = (timezone.now() + ahead).isoformat()
    body = {"type": "demo.echo", "run_at": run_at}
    refused = _assert_problem(alice_client.post("/api/jobs", body, format="json"), 400, "invalid")
    assert "run_at" in refused["errors"]
    refused = _assert_problem(_batch(alice_client, [{"type": "demo.echo"}, body]), 400, "invalid")
    assert "run_at" in refused["errors"]["jobs"]["1"]
    assert not Job.objects.exists()


def test_a_run_at_within_the_horizon_is_accepted(alice_client, settings):
    ahead = timedelta(days=settings.JOBS_MAX_RUN_AT_DAYS, minutes=-1)
    run_at = (timezone.now() + ahead).isoformat()
    response = alice_client.post(
        "/api/jobs", {"type": "demo.echo", "run_at": run_at}, format="json"
    )
    assert response.status_code == 202


# --- item 23: the quota of unfinished jobs ------------------------------------------------------


def test_the_quota_counts_unfinished_jobs_of_the_tenant(alice_client, alice, bob, settings):
    settings.JOBS_MAX_UNFINISHED_PER_TENANT = 3
    JobFactory(tenant=alice.tenant, created_by=alice, status=JobStatus.PROCESSING)
    for status in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED):
        JobFactory(tenant=alice.tenant, created_by=alice, status=status)  # not counted
    JobFactory.create_batch(2, tenant=bob.tenant, created_by=bob)  # not alice's tenant's
    assert alice_client.post("/api/jobs", {"type": "demo.echo"}, format="json").status_code == 202
    before = set(Job.objects.values_list("id", flat=True))
    # Two would make four: the whole batch is refused.
    refused = _batch(alice_client, [{"type": "demo.echo"}, {"type": "demo.echo"}])
    body = _assert_problem(refused, 409, "job_quota_exceeded")
    assert "3" in body["detail"]
    assert set(Job.objects.values_list("id", flat=True)) == before
    assert _batch(alice_client, [{"type": "demo.echo"}]).status_code == 202
    refused = alice_client.post("/api/jobs", {"type": "demo.echo"}, format="json")
    _assert_problem(refused, 409, "job_quota_exceeded")
    # globex is not alice's tenant: its quota is its own.
    bob_client = client_for(bob, host=TENANTS["globex"])
    assert bob_client.post("/api/jobs", {"type": "demo.echo"}, format="json").status_code == 202


def test_a_replay_at_the_quota_returns_its_job(alice_client, settings):
    """An idempotent replay creates nothing, so a full quota does not refuse it."""
    settings.JOBS_MAX_UNFINISHED_PER_TENANT = 1
    first = alice_client.post(
        "/api/jobs", {"type": "demo.echo"}, format="json", HTTP_IDEMPOTENCY_KEY="once"
    )
    again = alice_client.post(
        "/api/jobs", {"type": "demo.echo"}, format="json", HTTP_IDEMPOTENCY_KEY="once"
    )
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json()["id"] == first.json()["id"]


@pytest.mark.django_db(transaction=True)
def test_concurrent_submits_never_overshoot_the_quota(live_server, alice, settings):
    """24 single submits and 8 batches of 3, all at once over real HTTP, against a quota of
    10: exactly 10 jobs are stored, whatever the interleaving."""
    settings.JOBS_MAX_UNFINISHED_PER_TENANT = 10
    settings.JOBS_API_RATE = "1000000/m"
    port = live_server.url.rsplit(":", 1)[1]
    headers = {
        "Host": f"{ACME}:{port}",
        "Authorization": f"Bearer {tokens_for(alice).access_token}",
    }
    requests_ = [("/api/jobs", {"type": "demo.echo"})] * 24
    requests_ += [("/api/jobs/batch", {"jobs": [{"type": "demo.echo"}] * 3})] * 8

    def send(request):
        path, body = request
        return requests.post(f"{live_server.url}{path}", json=body, headers=headers, timeout=30)

    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(send, requests_))
    assert {answer.status_code for answer in answers} <= {202, 409}
    accepted = sum(
        len(answer.json().get("jobs", [None])) for answer in answers if answer.status_code == 202
    )
    assert accepted == Job.objects.count() == 10
    assert all(
        answer.json()["code"] == "job_quota_exceeded"
        for answer in answers
        if answer.status_code == 409
    )


# --- item 23: an invalid batch ------------------------------------------------------------------


def _remaining(response) -> int:
    return int(response["RateLimit"].split("r=")[1].split(";")[0])


def test_an_invalid_batch_reports_its_first_errors_and_their_count(alice_client, settings):
    settings.JOBS_API_RATE = "5000/m"
    jobs = [{"type": "no.such.type"}] * 998 + [{"type": "demo.echo"}, {"type": "demo.echo"}]
    response = _batch(alice_client, jobs)
    body = _assert_problem(response, 400, "invalid")
    # Every item's errors were 107 KB; now ten, each naming the registered types (the test
    # settings register many).
    assert len(response.content) < 6_000
    assert list(body["errors"]["jobs"]) == [str(index) for index in range(10)]
    assert body["errors"]["non_field_errors"] == [
        "998 of 1000 jobs are invalid; the errors of the first 10 are under jobs."
    ]
    # Checking 1,000 jobs costs 1,000 units, whether they pass or not.
    assert _remaining(response) == 4000
    assert not Job.objects.exists()


@pytest.mark.parametrize(("body", "code"), [(b'{"jobs": "all"}', "invalid"), (b"{", "parse_error")])
def test_a_body_that_is_no_batch_costs_one_unit(alice_client, settings, body, code):
    settings.JOBS_API_RATE = "50/m"
    response = alice_client.generic("POST", "/api/jobs/batch", body, "application/json")
    _assert_problem(response, 400, code)
    assert _remaining(response) == 49


def test_unknown_fields_are_reported_up_to_ten_and_counted(alice_client):
    body = {"type": "demo.echo", **{f"field{n:05}": 1 for n in range(5000)}}
    response = alice_client.post("/api/jobs", body, format="json")
    refused = _assert_problem(response, 400, "invalid")
    assert len(response.content) < 2_000
    assert refused["errors"]["non_field_errors"] == [
        "5000 unknown fields; the first 10 are listed."
    ]
    assert sorted(refused["errors"])[:10] == [f"field{n:05}" for n in range(10)]


# --- item 24: a batch larger than the rate limit ------------------------------------------------


def test_a_batch_larger_than_the_rate_limit_is_422_not_429(alice_client, settings):
    settings.JOBS_API_RATE = "300/m"
    response = _batch(alice_client, [{"type": "demo.echo"}] * 301)
    body = _assert_problem(response, 422, "batch_too_large")
    assert "Retry-After" not in response
    assert "at most 300 jobs per batch" in body["detail"]
    assert _remaining(response) == 299  # charged one unit, as any request
    assert not Job.objects.exists()
    # At the limit it is accepted, and then the partition is spent: 429 from then on.
    accepted = _batch(alice_client, [{"type": "demo.echo"}] * 299)
    assert accepted.status_code == 202
    assert _batch(alice_client, [{"type": "demo.echo"}]).status_code == 429


def test_a_batch_the_limit_admits_is_still_429_when_the_window_is_spent(alice_client, settings):
    """The control: a batch that fits the limit, but not what is left of it, may be retried."""
    settings.JOBS_API_RATE = "300/m"
    assert _batch(alice_client, [{"type": "demo.echo"}] * 200).status_code == 202
    response = _batch(alice_client, [{"type": "demo.echo"}] * 200)
    _assert_problem(response, 429, "rate_limited")
    assert int(response["Retry-After"]) > 0
    assert Job.objects.count() == 200
