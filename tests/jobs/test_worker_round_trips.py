"""The worker's round trips to PostgreSQL on the hot path, counted at the protocol level.

Every Django connection the worker opens (main thread, runners, recorder, heartbeat) is
traced with libpq's protocol trace: each simple ``Query`` and each ``Sync`` is one round
trip, ``BEGIN`` and ``COMMIT`` included. The ``LISTEN`` connection is not counted (one
``LISTEN``, then notifications the server pushes). A regression to a claim or a write per
job (the drain measured 1.9 round trips a job before claims and results were batched)
fails the budget.
"""

import re
import tempfile

import pytest
from django.db import connection, connections
from psycopg import pq

from jobs.models import Job, JobStatus
from jobs.worker import Worker
from tests.jobs.test_engine import _flood

pytestmark = pytest.mark.django_db(transaction=True)

_ROUND_TRIP = re.compile(r"^F\t\d+\t(Query|Sync)\b")

# Start-up and shutdown (each connection's set-up, the reaper's round and the periodic
# work, the registry's beat and deregistration), whatever the number of jobs.
_FIXED = 60
# Per job of a drain: claims of many jobs each, results written many per statement.
_PER_JOB = 0.3


@pytest.fixture
def traced_connections(monkeypatch):
    """The protocol traces of every Django connection opened in the block, all threads."""
    traces = []
    wrapper = type(connections["default"])
    open_connection = wrapper.get_new_connection

    def traced(self, conn_params):
        opened = open_connection(self, conn_params)
        trace = tempfile.TemporaryFile("w+")
        opened.pgconn.trace(trace.fileno())
        opened.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
        traces.append(trace)
        return opened

    monkeypatch.setattr(wrapper, "get_new_connection", traced)
    yield traces
    for trace in traces:
        trace.close()


def _round_trips(traces) -> int:
    total = 0
    for trace in traces:
        trace.flush()
        trace.seek(0)
        total += sum(1 for line in trace if _ROUND_TRIP.match(line))
    return total


def test_a_drain_of_short_jobs_stays_within_its_round_trip_budget(acme, traced_connections):
    jobs = 400
    _flood(acme, jobs)
    Job.objects.update(type="demo.echo")
    connection.close()  # the worker's main thread opens a traced connection of its own

    finished = Worker(burst=True, concurrency=4, poll_interval=0.1).run()

    assert finished == jobs
    assert Job.objects.filter(status=JobStatus.COMPLETED).count() == jobs
    round_trips = _round_trips(traced_connections)
    assert round_trips <= _FIXED + _PER_JOB * jobs, round_trips
