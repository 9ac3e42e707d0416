"""A job's first state is shared by the long polls and streams of the job that start after
it (``fanout.first_state``): a reconnect storm or a burst of long polls reads each job once,
not once per client, and answers as a read would. A notification of the job, a lost
listening connection, a read during which anything was heard, another tenant and age all
send the next request to PostgreSQL again."""

import asyncio
import json
import time
import uuid

import pytest

from jobs.api.realtime import fanout
from jobs.api.realtime.fanout import Snapshot, listener
from jobs.models import Job, JobStatus
from tests.factories import JobFactory
from tests.jobs.api.asgi import asgi_get, asgi_get_raw, auth_headers, run_app, shared_headers
from tests.jobs.api.round_trips import executed_statements

POLL_READ = "job_waiting"  # what a poll's read of a job holds (jobs.sql.POLL)


def _snapshot(job_id, *, final=False) -> Snapshot:
    return Snapshot(job_id, '"e1"', b"{}", {}, final=final, waitable=not final)


def _first_event(auth, job) -> tuple[int, bytes]:
    async def scenario():
        gone = asyncio.Event()
        asyncio.get_running_loop().call_later(0.5, gone.set)
        return await asgi_get(f"/api/jobs/{job.id}/events", "", auth, disconnect=gone)

    status, _, body = run_app(scenario)
    return status, body.split(b"\n\n")[0]  # the first event (heartbeats may follow)


def _long_poll(headers, job, if_none_match=None) -> tuple[int, list, bytes]:
    """One long poll of ``job`` whose client leaves after 0.3 s (a wait ends unanswered)."""

    async def scenario():
        gone = asyncio.Event()
        asyncio.get_running_loop().call_later(0.3, gone.set)
        held = {"If-None-Match": if_none_match} if if_none_match else {}
        return await asgi_get_raw(f"/api/jobs/{job.id}", "wait=20", {**headers, **held}, gone)

    return run_app(scenario)


def _heard(seq: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while listener.seq == seq:
        assert time.monotonic() < deadline, "the change was never heard"
        time.sleep(0.05)


@pytest.mark.django_db(transaction=True)
def test_streams_of_one_job_share_its_first_read_until_it_changes(monkeypatch, alice, acme):
    job = JobFactory(tenant=acme)
    auth = auth_headers(alice)
    listener.ensure_listening()
    time.sleep(0.5)  # the connection's own re-read signal (seq) has gone by
    reads = executed_statements(monkeypatch, POLL_READ)

    first = [_first_event(auth, job) for _ in range(3)]
    assert [status for status, _ in first] == [200] * 3
    assert first[0][1] == first[1][1] == first[2][1]
    assert b"event: job" in first[0][1]
    assert len(reads) == 1

    seq = listener.seq
    Job.objects.filter(pk=job.pk).update(status=JobStatus.PROCESSING, attempts=1)
    _heard(seq)
    status, body = _first_event(auth, job)
    assert status == 200
    assert len(reads) == 2
    assert b'"status":"processing"' in body.replace(b" ", b"")


@pytest.mark.django_db(transaction=True)
def test_a_state_is_kept_only_from_a_quiet_read_for_its_tenant_while_young_and_unheard(
    monkeypatch,
):
    listener.ensure_listening()
    job_id = uuid.uuid4()
    listener.keep_state(1, _snapshot(job_id), listener.seq - 1)  # something heard meanwhile
    assert listener.kept_state(1, job_id) is None

    listener.keep_state(1, _snapshot(job_id), listener.seq)
    assert listener.kept_state(1, job_id) is not None
    assert listener.kept_state(2, job_id) is None  # another tenant's request reads

    monkeypatch.setattr(fanout, "FIRST_STATE_SECONDS", 0.0)
    time.sleep(0.01)
    assert listener.kept_state(1, job_id) is None
    monkeypatch.undo()

    listener._deliver(str(job_id))  # a notification of the job
    assert listener.kept_state(1, job_id) is None
    listener.keep_state(1, _snapshot(job_id), listener.seq)
    listener._deliver(None)  # the listening connection was lost: nothing known
    assert listener.kept_state(1, job_id) is None


def test_a_state_is_kept_once_its_read_commits_never_when_final_or_unlistened(
    monkeypatch, acme, django_capture_on_commit_callbacks
):
    job_id = uuid.uuid4()
    monkeypatch.setattr(fanout.selectors, "job_poll_get", lambda **kwargs: None)
    kept = []
    monkeypatch.setattr(listener, "keep_state", lambda *args: kept.append(args))
    with django_capture_on_commit_callbacks(execute=True):
        monkeypatch.setattr(fanout, "snapshot_of", lambda job: _snapshot(job_id, final=True))
        fanout.first_state(acme, job_id, listener.seq)  # final: a deleted job must 404
        monkeypatch.setattr(fanout, "snapshot_of", lambda job: _snapshot(job_id))
        fanout.first_state(acme, job_id, None)  # a WSGI stream: no listener
        fanout.first_state(acme, job_id, listener.seq)
        assert kept == []  # not before the read's transaction commits
    assert [(tenant, snapshot.job_id) for tenant, snapshot, _ in kept] == [(acme.pk, job_id)]


@pytest.mark.django_db(transaction=True)
def test_long_polls_of_one_job_share_its_first_read_until_it_changes(monkeypatch, alice, acme):
    """A burst: each waits from the state the first one read, which sends PostgreSQL
    nothing more; once the job changed, the next long poll reads and answers at once."""
    job = JobFactory(tenant=acme)
    auth = auth_headers(alice)
    listener.ensure_listening()
    time.sleep(0.5)  # the connection's own re-read signal (seq) has gone by
    reads = executed_statements(monkeypatch, POLL_READ)

    status, headers, _ = _long_poll(auth, job, '"stale"')  # answered at once
    etag = dict(headers)["etag"]
    waited = [_long_poll(auth, job, etag) for _ in range(3)]
    assert (status, [answer[0] for answer in waited]) == (200, [None] * 3)  # all waited
    assert len(reads) == 1

    seq = listener.seq
    Job.objects.filter(pk=job.pk).update(status=JobStatus.PROCESSING, attempts=1)
    _heard(seq)
    reads.clear()
    status, headers, body = _long_poll(auth, job, etag)
    assert (status, len(reads)) == (200, 1)
    assert dict(headers)["etag"] != etag
    assert b'"status":"processing"' in body.replace(b" ", b"")


@pytest.mark.django_db(transaction=True)
def test_a_long_poll_answered_at_once_answers_as_a_plain_poll(monkeypatch, alice, acme):
    """Status, body and every header but the per-request ones (request id, rate limit):
    a 200 to a client whose copy is stale, read or from a kept state, and a finished job's
    304, which waits for nothing."""
    job = JobFactory(tenant=acme)
    auth = auth_headers(alice)
    listener.ensure_listening()
    time.sleep(0.5)
    reads = executed_statements(monkeypatch, POLL_READ)
    stale = {**auth, "If-None-Match": '"stale"'}
    polled = run_app(lambda: asgi_get_raw(f"/api/jobs/{job.id}", "", stale))
    long_polls = [_long_poll(auth, job, '"stale"') for _ in range(2)]
    assert len(reads) == 2  # the poll's and the first long poll's; the second's was kept
    for answer in long_polls:
        assert (answer[0], answer[2]) == (200, polled[2])
        assert shared_headers(answer[1]) == shared_headers(polled[1])

    seq = listener.seq
    Job.objects.filter(pk=job.pk).update(status=JobStatus.CANCELLED)
    _heard(seq)
    etag = dict(run_app(lambda: asgi_get_raw(f"/api/jobs/{job.id}", "", auth))[1])["etag"]
    current = {**auth, "If-None-Match": etag}
    polled = run_app(lambda: asgi_get_raw(f"/api/jobs/{job.id}", "", current))
    answer = _long_poll(auth, job, etag)
    assert answer[0] == polled[0] == 304
    assert shared_headers(answer[1]) == shared_headers(polled[1])
    assert "content-type" not in dict(answer[1])


@pytest.mark.django_db(transaction=True)
def test_another_tenants_long_poll_of_a_kept_job_reads_and_finds_nothing(
    monkeypatch, alice, bob, acme
):
    job = JobFactory(tenant=acme)
    listener.ensure_listening()
    time.sleep(0.5)
    etag = dict(_long_poll(auth_headers(alice), job, '"stale"')[1])["etag"]
    assert listener.kept_state(acme.pk, job.id) is not None
    reads = executed_statements(monkeypatch, POLL_READ)
    status, _, body = _long_poll({**auth_headers(bob), "Host": "globex.localhost"}, job, etag)
    assert (status, len(reads)) == (404, 1)
    problem = json.loads(body)
    assert (problem["status"], "payload" in problem) == (404, False)  # a missing job's
