"""Periodic work registers itself with the worker (jobs.periodic): the engine runs what the
features registered, each reaper round, without naming them."""

import pytest

from jobs import periodic
from jobs.worker import Worker

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_features_register_their_periodic_work():
    assert list(periodic.registered()) == ["schedules.tick", "webhooks.sweep"]


def test_the_worker_runs_registered_work_each_reaper_round(monkeypatch):
    calls = []
    monkeypatch.setattr(periodic, "_registered", dict(periodic.registered()))
    periodic.periodic("test.count")(lambda: calls.append("ran"))
    Worker(burst=True, poll_interval=0.05).run()  # reaps (and so runs it) at start-up
    assert calls == ["ran"]
