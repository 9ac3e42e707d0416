"""Every request body is read by one strict base (core.serializers.StrictSerializer): a
body that is not a JSON object, or one with fields the endpoint does not take, is a 400
problem whose errors name at most 10 unknown fields and count the rest, on the token
endpoints as on the jobs API; so is a field, a job type's payload's included, whose value
is not of the JSON type the schema states, and nothing is stored."""

import pytest

from jobs.models import Job
from tests.conftest import client_for

PROBLEM = "application/problem+json"
ENDPOINTS = ["/api/auth/token", "/api/auth/token/refresh", "/api/auth/logout", "/api/jobs/batch"]


def _refused(response) -> dict:
    assert response.status_code == 400, response.content[:500]
    assert response["Content-Type"] == PROBLEM
    body = response.json()
    assert body["code"] == "invalid"
    return body["errors"]


@pytest.mark.parametrize("path", ENDPOINTS)
def test_unknown_fields_are_reported_up_to_ten_and_counted(alice, path):
    body = {f"field{n:05}": 1 for n in range(5000)}
    response = client_for(alice, host="acme.localhost").post(path, body, format="json")
    errors = _refused(response)
    assert len(response.content) < 2_000
    assert errors["non_field_errors"] == ["5000 unknown fields; the first 10 are listed."]
    assert sorted(name for name in errors if name != "non_field_errors") == [
        f"field{n:05}" for n in range(10)
    ]


@pytest.mark.parametrize("path", ENDPOINTS)
def test_a_body_that_is_no_object_is_refused_as_such(alice, path):
    response = client_for(alice, host="acme.localhost").post(path, [1, 2], format="json")
    assert _refused(response) == {"non_field_errors": ["Expected a JSON object."]}


# Each field of the JSON type its schema states: DRF's fields alone read "5" as 5, 5 as "5",
# false as 0 and a date, or a time without its offset, as a date-time.
MISTYPED = [
    ("/api/jobs", {"type": "demo.echo", "priority": "5"}, ["priority"]),
    ("/api/jobs", {"type": "demo.echo", "priority": True}, ["priority"]),
    ("/api/jobs", {"type": "demo.echo", "run_at": "2027-01-01"}, ["run_at"]),
    ("/api/jobs", {"type": "demo.echo", "run_at": "2027-01-01T10:00:00"}, ["run_at"]),
    ("/api/jobs", {"type": "demo.echo", "run_at": 1800000000}, ["run_at"]),
    ("/api/jobs", {"type": "ai_generation", "payload": {"prompt": 5}}, ["payload", "prompt"]),
    (
        "/api/jobs",
        {"type": "ai_generation", "payload": {"max_tokens": "5"}},
        ["payload", "max_tokens"],
    ),
    ("/api/jobs", {"type": "demo.sleep", "payload": {"seconds": "1"}}, ["payload", "seconds"]),
    ("/api/jobs", {"type": "demo.sleep", "payload": {"seconds": False}}, ["payload", "seconds"]),
    (
        "/api/jobs/batch",
        {"jobs": [{"type": "demo.echo"}, {"type": "demo.echo", "priority": "5"}]},
        ["jobs", "1", "priority"],
    ),
    ("/api/auth/token", {"username": 5, "password": "secret"}, ["username"]),
    ("/api/auth/token/refresh", {"refresh": 5}, ["refresh"]),
]


@pytest.mark.parametrize(("path", "body", "where"), MISTYPED)
def test_a_field_of_another_json_type_is_refused_and_nothing_stored(alice, path, body, where):
    response = client_for(alice, host="acme.localhost").post(path, body, format="json")
    errors = _refused(response)
    for name in where:
        errors = errors[name]
    assert isinstance(errors, list), errors
    assert errors[0].startswith("Must be"), errors
    assert not Job.objects.exists()


@pytest.mark.parametrize(
    ("body", "stored"),
    [
        ({"type": "demo.echo", "priority": 5.0}, {"priority": 5}),
        (
            {"type": "demo.echo", "run_at": "2027-01-31T09:30:00.25+02:00"},
            {"run_at": "2027-01-31T07:30:00.250000Z"},
        ),
        (
            {"type": "ai_generation", "payload": {"prompt": "a poem", "max_tokens": 7}},
            {"payload": {"prompt": "a poem", "max_tokens": 7}},
        ),
        ({"type": "demo.sleep", "payload": {"seconds": 1}}, {"payload": {"seconds": 1.0}}),
    ],
)
def test_values_of_their_json_type_are_taken(alice, settings, body, stored):
    settings.JOBS_MAX_RUN_AT_DAYS = 3650
    response = client_for(alice, host="acme.localhost").post("/api/jobs", body, format="json")
    assert response.status_code == 202, response.content[:500]
    assert {name: response.json()[name] for name in stored} == stored
