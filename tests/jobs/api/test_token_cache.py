"""Access tokens verified once per process: a repeated poll does not decode its token again,
and a token past its expiry is refused all the same."""

import types
from datetime import timedelta

import pytest
from rest_framework_simplejwt import tokens as simplejwt_tokens
from rest_framework_simplejwt.authentication import JWTAuthentication

from accounts import authentication
from tests.factories import JobFactory

pytestmark = pytest.mark.django_db


def test_a_repeated_poll_does_not_verify_its_token_again(alice_client, acme, monkeypatch):
    job = JobFactory(tenant=acme)
    verified = []
    verify = JWTAuthentication.get_validated_token

    def counting(self, raw_token):
        verified.append(raw_token)
        return verify(self, raw_token)

    monkeypatch.setattr(JWTAuthentication, "get_validated_token", counting)
    for _ in range(3):
        assert alice_client.get(f"/api/jobs/{job.id}").status_code == 200
    assert len(verified) == 1


def test_a_verified_token_past_its_expiry_is_refused(alice_client, acme, monkeypatch, settings):
    job = JobFactory(tenant=acme)
    assert alice_client.get(f"/api/jobs/{job.id}").status_code == 200
    later = simplejwt_tokens.aware_utcnow() + settings.SIMPLE_JWT["ACCESS_TOKEN_LIFETIME"]
    later += timedelta(minutes=1)
    monkeypatch.setattr(simplejwt_tokens, "aware_utcnow", lambda: later)
    monkeypatch.setattr(authentication, "time", types.SimpleNamespace(time=later.timestamp))
    response = alice_client.get(f"/api/jobs/{job.id}")
    assert response.status_code == 401
    assert response.json()["code"] == "token_not_valid"
