"""What a poll costs against the rate limit, and in Redis round trips: a poll naming the
ETags it holds is free when it gets its 304; ``If-None-Match: *`` holds no copy and is
charged like any poll; a check and its charge are one round trip."""

import re

import pytest

from tests.factories import JobFactory
from tests.jobs.api.round_trips import counted_round_trips

pytestmark = pytest.mark.django_db

_STATE = re.compile(r'^"jobs-api";r=(\d+);t=(\d+)$')


def _remaining(response) -> int:
    return int(_STATE.match(response["RateLimit"])[1])


def test_if_none_match_star_is_charged_like_any_poll(settings, alice_client, acme):
    settings.JOBS_API_RATE = "3/m"
    job = JobFactory(tenant=acme)
    assert _remaining(alice_client.get(f"/api/jobs/{job.id}")) == 2
    star = [alice_client.get(f"/api/jobs/{job.id}", HTTP_IF_NONE_MATCH="*") for _ in range(3)]
    assert [response.status_code for response in star] == [304, 304, 429]
    assert [_remaining(response) for response in star] == [1, 0, 0]


def test_a_poll_checks_and_charges_in_one_redis_round_trip(alice_client, acme, monkeypatch):
    job = JobFactory(tenant=acme)
    alice_client.get(f"/api/jobs/{job.id}")
    with counted_round_trips(monkeypatch) as counted:
        alice_client.get(f"/api/jobs/{job.id}")
    limiter = [sent for sent in counted.redis if b":rl:jobs-api:" in sent]
    assert len(limiter) == 1, limiter


def test_a_conditional_poll_of_a_changed_job_is_charged(settings, alice_client, acme):
    settings.JOBS_API_RATE = "3/m"
    job = JobFactory(tenant=acme)
    alice_client.get(f"/api/jobs/{job.id}")
    response = alice_client.get(f"/api/jobs/{job.id}", HTTP_IF_NONE_MATCH='"stale"')
    assert response.status_code == 200
    assert _remaining(response) == 1
