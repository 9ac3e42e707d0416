"""Schemathesis fuzzing of every API operation against a live server started by the suite,
with all of Schemathesis's default checks (a valid request accepted, an invalid one refused,
no 5xx, documented statuses, content types, headers and bodies, stream events included),
and its stateful run over the links it infers (submit → poll, cancel, …).

For each operation of /api/schema, Hypothesis generates valid (positive) and invalid
(negative) requests from the schema; each is sent over real HTTP with alice's valid token
(but for a negative case that removed it) and acme's Host header. The streams are fuzzed
against uvicorn (``config.asgi``), the rest against pytest-django's live server. Valid
requests are sometimes pointed at real jobs (every state), real credentials and a real
cursor, so the 200/202/304/409 paths are fuzzed too, not only the 4xx ones.

What a static schema cannot say is supplied to valid requests as a client would: a cursor
is one a page returned, an ``Idempotency-Key`` is fresh (reusing one for another request is
a 422 by design), ``run_at`` is within ``JOBS_MAX_RUN_AT_DAYS`` of now, and a JSON string
holds no NUL character (``core.limits`` refuses one anywhere in a body).

Bounded: ``MAX_EXAMPLES`` per operation and mode, rate limits lifted, ``?wait`` capped at
1 second, a stream read for at most ``STREAM_SECONDS``.
"""

import uuid
from datetime import datetime, timedelta

import pytest
import requests
import schemathesis
from django.conf import settings
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core.parameters import ParameterLocation

from accounts.tokens import tokens_for
from jobs.models import JobStatus
from tests.factories import PASSWORD, JobFactory, UserFactory
from tests.helpers import start_uvicorn, stop_process, subprocess_env

MAX_EXAMPLES = 25
STREAM_SECONDS = 2
OPERATIONS = [
    "POST /api/auth/token",
    "POST /api/auth/token/refresh",
    "POST /api/auth/logout",
    "GET /api/me",
    "GET /api/jobs",
    "POST /api/jobs",
    "POST /api/jobs/batch",
    "GET /api/jobs/{id}",
    "GET /api/jobs/{id}/logs",
    "POST /api/jobs/{id}/cancel",
]
STREAMS = ["GET /api/events", "GET /api/jobs/{id}/events"]
HYPOTHESIS = {
    "max_examples": MAX_EXAMPLES,
    "deadline": None,
    "database": None,
    "suppress_health_check": list(HealthCheck),
}


def _serve(base_url: str, acme_host: str, alice) -> dict:
    """The schema as ``base_url`` serves it, with alice's headers, jobs of acme in every
    state and a cursor a page of them returned."""
    jobs = [JobFactory(tenant=alice.tenant, created_by=alice, status=s) for s in JobStatus]
    headers = {"Host": acme_host, "Authorization": f"Bearer {tokens_for(alice).access_token}"}
    response = requests.get(f"{base_url}/api/schema?format=json", headers=headers, timeout=10)
    response.raise_for_status()
    page = requests.get(f"{base_url}/api/jobs?page_size=1", headers=headers, timeout=10).json()
    return {
        "schema": schemathesis.openapi.from_dict(response.json()),
        "base_url": base_url,
        "headers": headers,
        "alice": alice,
        "job_ids": [str(job.id) for job in jobs],
        "cursor": page["next"].split("cursor=", 1)[1].split("&", 1)[0],
    }


@pytest.fixture
def lifted_limits(settings):
    settings.JOBS_API_RATE = "1000000/m"
    settings.AUTH_LOGIN_IP_RATE = "1000000/m"
    settings.AUTH_LOGIN_USERNAME_RATE = "1000000/m"
    settings.JOBS_LONGPOLL_MAX_WAIT = 1


@pytest.fixture
def api(live_server, lifted_limits, acme):
    """The live server (WSGI), alice's credentials and jobs of acme in every state."""
    port = live_server.url.rsplit(":", 1)[1]
    alice = UserFactory(username="alice", tenant=acme)
    return _serve(live_server.url, f"acme.localhost:{port}", alice)


@pytest.fixture
def asgi_api(transactional_db, acme):
    """uvicorn serving ``config.asgi`` on the test database, with the same data."""
    server = start_uvicorn(
        env=subprocess_env(
            CACHE_KEY_PREFIX=f"test-{uuid.uuid4().hex}",
            JOBS_API_RATE="1000000/m",
            AUTH_LOGIN_IP_RATE="1000000/m",
            AUTH_LOGIN_USERNAME_RATE="1000000/m",
            JOBS_LONGPOLL_MAX_WAIT="1",
        )
    )
    try:
        alice = UserFactory(username="alice", tenant=acme)
        yield _serve(f"http://127.0.0.1:{server.port}", f"acme.localhost:{server.port}", alice)
    finally:
        stop_process(server)


def _without_nul(value):
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, list):
        return [_without_nul(item) for item in value]
    if isinstance(value, dict):
        return {_without_nul(key): _without_nul(item) for key, item in value.items()}
    return value


def _within_horizon(job) -> None:
    """A ``run_at`` the server takes: at most ``JOBS_MAX_RUN_AT_DAYS`` from now (a day
    from now instead of a later one)."""
    if not isinstance(job, dict) or not isinstance(job.get("run_at"), str):
        return
    latest = timezone.now() + timedelta(days=settings.JOBS_MAX_RUN_AT_DAYS - 1)
    if datetime.fromisoformat(job["run_at"]) > latest:
        job["run_at"] = (timezone.now() + timedelta(days=1)).isoformat()


def _as_a_client_would(case, api) -> None:
    """What a valid request holds that the schema cannot say (the module's docstring)."""
    if isinstance(case.body, dict):
        case.body = _without_nul(case.body)
        jobs = case.body.get("jobs")
        for job in jobs if isinstance(jobs, list) else [case.body]:
            _within_horizon(job)
    if case.headers and "Idempotency-Key" in case.headers:
        case.headers["Idempotency-Key"] = uuid.uuid4().hex
    if case.query and "cursor" in case.query:
        case.query["cursor"] = api["cursor"]


def _use_real_objects(case, data, api) -> None:
    """Point some valid cases at what exists: real jobs, alice's password, her refresh
    token. Random ids and strings alone would only ever reach 404 and 401."""
    if not data.draw(st.booleans(), label="use real objects"):
        return
    if case.path_parameters and "id" in case.path_parameters:
        case.path_parameters["id"] = data.draw(st.sampled_from(api["job_ids"]), label="job")
    if isinstance(case.body, dict):
        if "password" in case.body:
            case.body.update(username="alice", password=PASSWORD)
        elif "refresh" in case.body:
            case.body["refresh"] = str(tokens_for(api["alice"]))


def _headers_for(case, api) -> dict:
    """Alice's headers, her token replacing any the case generated; only Host when a negative
    case removed Authorization on purpose: sent all the same, the case's invalid part would
    never reach the server, and with another mutation that serializes to nothing (an empty
    object in the query) a valid request would count as invalid data accepted."""
    removed = (
        case.meta is not None
        and case.meta.is_negative_at(ParameterLocation.HEADER)
        and "Authorization" not in (case.headers or {})
    )
    return {"Host": api["headers"]["Host"]} if removed else api["headers"]


def _fuzz(api, label, mode, **call) -> None:
    operation = api["schema"].find_operation_by_label(label)
    assert operation is not None, f"{label} is not in the schema"

    @given(case=operation.as_strategy(mode), data=st.data())
    @hypothesis_settings(**HYPOTHESIS)
    def fuzz(case, data):
        if mode == GenerationMode.POSITIVE:
            _as_a_client_would(case, api)
            _use_real_objects(case, data, api)
        case.call_and_validate(base_url=api["base_url"], headers=_headers_for(case, api), **call)

    fuzz()


@pytest.mark.slow
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize("label", OPERATIONS)
def test_operation_survives_fuzzing_and_matches_its_schema(api, label, mode):
    _fuzz(api, label, mode, timeout=10)


@pytest.mark.slow
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize("label", STREAMS)
def test_stream_survives_fuzzing_and_its_events_match_the_schema(asgi_api, label, mode):
    """Under ASGI; each stream is read for ``STREAM_SECONDS`` (it would not end by itself),
    every event it sent checked against ``JobEvent``."""
    _fuzz(asgi_api, label, mode, timeout=STREAM_SECONDS)


@pytest.mark.slow
def test_stateful_runs_over_the_inferred_links(asgi_api):
    """Schemathesis's stateful run under ASGI (streams included): sequences of calls that
    follow the links it infers (a submit's job polled, cancelled, streamed, …), every
    default check on each response."""
    api = asgi_api
    machine = api["schema"].as_state_machine()

    class Client(machine):
        def get_call_kwargs(self, case):
            timeout = STREAM_SECONDS if case.path.endswith("events") else 10
            headers = _headers_for(case, api)
            return {"base_url": api["base_url"], "headers": headers, "timeout": timeout}

        def before_call(self, case):
            if case.meta is None or case.meta.generation.mode == GenerationMode.POSITIVE:
                _as_a_client_would(case, api)

    Client.run(settings=hypothesis_settings(stateful_step_count=6, **HYPOTHESIS))
