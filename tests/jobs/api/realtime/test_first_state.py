"""A job stream's first state is shared by the streams of the job that connect after it
(``fanout.first_state``): a reconnect storm reads each job once, not once per client. A
notification of the job, a lost listening connection, a read during which anything was
heard, another tenant and age all send the next stream to PostgreSQL again."""

import asyncio
import time
import uuid

import pytest
from django.db.backends.utils import CursorWrapper

from jobs.api.realtime import fanout
from jobs.api.realtime.fanout import Snapshot, listener
from jobs.models import Job, JobStatus
from tests.factories import JobFactory
from tests.jobs.api.asgi import asgi_get, auth_headers, run_app


def _snapshot(job_id, *, final=False) -> Snapshot:
    return Snapshot(job_id, '"e1"', b"{}", {}, final=final, waitable=not final)


def _first_event(auth, job) -> tuple[int, bytes]:
    async def scenario():
        gone = asyncio.Event()
        asyncio.get_running_loop().call_later(0.5, gone.set)
        return await asgi_get(f"/api/jobs/{job.id}/events", "", auth, disconnect=gone)

    status, _, body = run_app(scenario)
    return status, body.split(b"\n\n")[0]  # the first event (heartbeats may follow)


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
    reads = []
    execute = CursorWrapper._execute

    def counting(self, sql, params, *args):
        if sql.startswith("SELECT") and "job_queue" in sql:
            reads.append(sql)
        return execute(self, sql, params, *args)

    monkeypatch.setattr(CursorWrapper, "_execute", counting)

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


def test_a_final_state_or_one_read_under_wsgi_is_never_kept(monkeypatch, acme):
    job_id = uuid.uuid4()
    monkeypatch.setattr(fanout, "snapshot_of", lambda job: _snapshot(job_id, final=True))
    monkeypatch.setattr(fanout.selectors, "job_poll_get", lambda **kwargs: None)
    kept = []
    monkeypatch.setattr(listener, "keep_state", lambda *args: kept.append(args))
    fanout.first_state(acme, job_id, listener.seq)  # final: a deleted job must 404
    monkeypatch.setattr(fanout, "snapshot_of", lambda job: _snapshot(job_id))
    fanout.first_state(acme, job_id, None)  # WSGI: no listener
    assert kept == []
