"""Schemathesis fuzzing of every API operation against a live server started by the suite.

For each operation of /api/schema, Hypothesis generates valid (positive) and invalid
(negative) requests from the schema; each is sent over real HTTP to pytest-django's live
server with alice's valid token and acme's Host header, and its response must be no 5xx,
have a documented status code and content type, and match the documented body and header
schemas. Valid requests are sometimes pointed at real jobs (every state) and real
credentials, so the 200/202/304/409 paths are fuzzed too, not only the 4xx ones.

Bounded: ``MAX_EXAMPLES`` per operation and mode, rate limits lifted, ``?wait`` capped at
1 second. Runs in ``make test`` (well under a minute).
"""

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.tokens import tokens_for
from jobs.models import JobStatus
from tests.factories import PASSWORD, JobFactory, UserFactory

MAX_EXAMPLES = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
OPERATIONS = [
    "POST /api/auth/token",
    "POST /api/auth/token/refresh",
    "POST /api/auth/logout",
    "GET /api/jobs",
    "POST /api/jobs",
    "POST /api/jobs/batch",
    "GET /api/jobs/{id}",
    "GET /api/jobs/{id}/logs",
    "POST /api/jobs/{id}/cancel",
]


@pytest.fixture
def api(live_server, settings, acme):
    """The live server, alice's credentials and jobs of acme in every state."""
    settings.JOBS_API_RATE = "1000000/m"
    settings.AUTH_LOGIN_IP_RATE = "1000000/m"
    settings.AUTH_LOGIN_USERNAME_RATE = "1000000/m"
    settings.JOBS_LONGPOLL_MAX_WAIT = 1
    alice = UserFactory(username="alice", tenant=acme)
    jobs = [JobFactory(tenant=acme, created_by=alice, status=status) for status in JobStatus]
    port = live_server.url.rsplit(":", 1)[1]
    headers = {
        "Host": f"acme.localhost:{port}",
        "Authorization": f"Bearer {tokens_for(alice).access_token}",
    }
    response = requests.get(
        f"{live_server.url}/api/schema?format=json", headers=headers, timeout=10
    )
    response.raise_for_status()
    return {
        "schema": schemathesis.openapi.from_dict(response.json()),
        "base_url": live_server.url,
        "headers": headers,
        "alice": alice,
        "job_ids": [str(job.id) for job in jobs],
    }


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


@pytest.mark.slow
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize("label", OPERATIONS)
def test_operation_survives_fuzzing_and_matches_its_schema(api, label, mode):
    operation = api["schema"].find_operation_by_label(label)
    assert operation is not None, f"{label} is not in the schema"

    @given(case=operation.as_strategy(mode), data=st.data())
    @hypothesis_settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case, data):
        if mode == GenerationMode.POSITIVE:
            _use_real_objects(case, data, api)
        case.call_and_validate(
            base_url=api["base_url"], headers=api["headers"], checks=CHECKS, timeout=10
        )

    fuzz()
