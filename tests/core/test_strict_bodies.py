"""Every request body is read by one strict base (core.serializers.StrictSerializer): a
body that is not a JSON object, or one with fields the endpoint does not take, is a 400
problem whose errors name at most 10 unknown fields and count the rest, on the token
endpoints as on the jobs API."""

import pytest

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
