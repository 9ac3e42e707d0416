"""The Django Tasks contract, behaviour by behaviour as Django's Tasks documentation states
it, kept by JobQueueBackend and the worker: contexts, results, attempts, signals, async
tasks. Real worker loop, real PostgreSQL."""

import queue
import threading
import time
import uuid
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from django.db import connection
from django.tasks import TaskResultStatus, task_backends
from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
from django.tasks.signals import task_enqueued, task_finished, task_started
from django.utils import timezone
from django_tenants.utils import schema_context, tenant_context

from jobs import services
from jobs.backends import JobQueueBackend
from jobs.context import JobError
from jobs.models import Job, JobAttempt
from jobs.worker import Worker
from tests import contract_tasks
from tests.jobs.test_engine import make_runnable, run_burst, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _contract_types(settings):
    settings.JOBS_TYPES = {
        "contract.plain": "tests.contract_tasks.plain",
        "contract.inspect": {"task": "tests.contract_tasks.inspect", "max_attempts": 2},
        "contract.double": "tests.contract_tasks.double",
        "contract.fail": {"task": "tests.contract_tasks.fail", "max_attempts": 1},
        "contract.until_cancelled": "tests.contract_tasks.until_cancelled",
    }


@pytest.fixture
def received():
    """Every django.tasks signal sent, as (signal name, sender, status, task_result)."""
    seen = []

    def receiver(name):
        def record(sender, task_result, **kwargs):
            seen.append((name, sender, task_result.status, task_result))

        return record

    receivers = {
        "enqueued": receiver("enqueued"),
        "started": receiver("started"),
        "finished": receiver("finished"),
    }
    task_enqueued.connect(receivers["enqueued"])
    task_started.connect(receivers["started"])
    task_finished.connect(receivers["finished"])
    yield seen
    task_enqueued.disconnect(receivers["enqueued"])
    task_started.disconnect(receivers["started"])
    task_finished.disconnect(receivers["finished"])


class _GatedQueue(queue.Queue):
    """A worker's recorder queue that holds the recorder's first take until ``size``
    endings wait in it (10 s at most: then ``run_batched``'s check fails, rather than the
    recorder), so that they reach the outcome writer in one call."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size
        self.opened = False

    def get(self, block=True, timeout=None):
        if not self.opened:
            deadline = time.monotonic() + 10
            while self.qsize() < self.size and time.monotonic() < deadline:
                time.sleep(0.01)
            self.opened = True
        return super().get(block, timeout)


def batching_worker(results: int) -> tuple[Worker, list[set[str]]]:
    """A burst worker (4 runners, queues default and reports) whose first ``results``
    endings for the recorder reach the outcome writer in one call, and the job ids of each
    call of its outcome writer (filled as it runs)."""
    worker = Worker(burst=True, poll_interval=0.05, concurrency=4, queues=("default", "reports"))
    worker._completions = _GatedQueue(results)
    calls = []
    record = worker.outcomes.record

    def spy(endings):
        calls.append({str(run.job.id) for run, _ending in endings})
        record(endings)

    worker.outcomes.record = spy
    return worker, calls


def run_batched(results: int) -> list[set[str]]:
    """Run a ``batching_worker`` until idle; its outcome-writer calls, having checked that
    one took several runs."""
    worker, calls = batching_worker(results)
    worker.run()
    assert max(len(call) for call in calls) >= 2
    return calls


def finished(received) -> dict:
    """The task_finished payloads by result id, checking there is one per id."""
    payloads = [result for name, _s, _st, result in received if name == "finished"]
    by_id = {result.id: result for result in payloads}
    assert len(by_id) == len(payloads), "task_finished sent twice for one result"
    return by_id


def test_the_backend_declares_its_features():
    backend = task_backends["default"]
    assert isinstance(backend, JobQueueBackend)
    assert backend.supports_defer
    assert backend.supports_async_task
    assert backend.supports_get_result
    assert backend.supports_priority


def test_enqueue_returns_a_ready_result_and_sends_task_enqueued(acme, received):
    with tenant_context(acme):
        result = contract_tasks.plain.enqueue(colour="blue")
    assert result.status == TaskResultStatus.READY
    assert not result.is_finished
    assert result.kwargs == {"colour": "blue"}
    assert result.enqueued_at is not None
    assert (result.started_at, result.finished_at, result.worker_ids) == (None, None, [])
    assert result.attempts == 0
    with pytest.raises(ValueError, match="not finished"):
        _ = result.return_value
    assert [(name, sender, status) for name, sender, status, _ in received] == [
        ("enqueued", JobQueueBackend, TaskResultStatus.READY)
    ]
    assert received[0][3].id == result.id


def test_a_task_without_context_gets_its_arguments_only_and_refresh_reads_the_result(acme):
    with tenant_context(acme):
        result = contract_tasks.plain.enqueue(colour="blue")
        run_burst(worker_id="w-plain")
        result.refresh()
        assert result.status == TaskResultStatus.SUCCESSFUL
        assert result.is_finished
        assert result.return_value == {"got": {"colour": "blue"}}
        assert result.worker_ids == ["w-plain"]
        assert result.attempts == 1
        assert result.finished_at >= result.started_at >= result.enqueued_at
        assert result.last_attempted_at == result.started_at
        again = contract_tasks.plain.get_result(result.id)
    assert again.return_value == result.return_value


def test_a_context_is_a_task_context_with_its_result_and_attempt(acme):
    with tenant_context(acme):
        result = contract_tasks.inspect.enqueue()
        run_burst(worker_id="w-ctx")
        result.refresh()
    seen = result.return_value
    assert seen["is_task_context"]
    assert seen["id"] == result.id
    assert seen["status"] == TaskResultStatus.RUNNING
    assert (seen["attempt"], seen["attempts"], seen["worker_ids"]) == (1, 1, ["w-ctx"])
    assert seen["kwargs"] == {}


def test_attempts_worker_ids_and_errors_reflect_every_attempt(acme, received):
    with tenant_context(acme):
        result = contract_tasks.inspect.enqueue(fail_first=True)
        run_burst(worker_id="w-one")
        result.refresh()
        assert result.status == TaskResultStatus.READY  # to be run again
        assert result.worker_ids == ["w-one"]
        (error,) = result.errors
        assert error.exception_class is RuntimeError  # what the task raised
        assert "first attempt fails" in error.traceback
        make_runnable(Job.objects.get(pk=result.id))
        run_burst(worker_id="w-two")
        result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.worker_ids == ["w-one", "w-two"]
    assert result.attempts == 2
    assert len(result.errors) == 1  # the failed attempt's, kept
    seen = result.return_value
    assert (seen["attempt"], seen["attempts"], seen["worker_ids"]) == (2, 2, ["w-one", "w-two"])

    runs = [(name, status) for name, sender, status, _ in received if name != "enqueued"]
    assert runs == [  # no task_finished for the attempt to be retried
        ("started", TaskResultStatus.RUNNING),
        ("started", TaskResultStatus.RUNNING),
        ("finished", TaskResultStatus.SUCCESSFUL),
    ]
    assert {sender for _, sender, _, _ in received} == {JobQueueBackend}
    last = received[-1][3]
    assert last.return_value == seen
    assert last.worker_ids == ["w-one", "w-two"]
    assert len(received[2][3].errors) == 1  # the second start knows the first failure


def test_a_task_that_fails_for_good_is_failed_and_has_no_return_value(acme, received):
    with tenant_context(acme):
        result = contract_tasks.inspect.enqueue(fail_first=True)
        Job.objects.filter(pk=result.id).update(max_attempts=1)
        run_burst()
        result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert result.is_finished
    with pytest.raises(ValueError, match="Task failed"):
        _ = result.return_value
    assert received[-1][0:3] == ("finished", JobQueueBackend, TaskResultStatus.FAILED)


def test_an_async_def_task_runs_in_its_tenant(acme, received):
    with tenant_context(acme):
        result = contract_tasks.double.enqueue(n=21)
        run_burst()
        result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == {"n": 42, "schema": "acme", "attempt": 1}
    assert [name for name, *_ in received] == ["enqueued", "started", "finished"]


def test_aenqueue_and_aget_result_from_async_code_in_a_tenant(acme):
    """As in an async view: the tenant is set on the request's thread, where Django runs
    the backend's thread-sensitive calls."""

    async def scenario():
        result = await contract_tasks.plain.aenqueue(k=1)
        return await contract_tasks.plain.aget_result(result.id)

    with tenant_context(acme):
        fetched = async_to_sync(scenario)()
    assert fetched.status == TaskResultStatus.READY
    assert fetched.kwargs == {"k": 1}


def test_using_sets_priority_and_run_after(acme):
    later = timezone.now() + timedelta(hours=1)
    with tenant_context(acme):
        result = contract_tasks.plain.using(priority=7, run_after=later).enqueue()
    job = Job.objects.get(pk=result.id)
    assert (job.priority, job.run_at) == (7, later)
    assert run_burst() == 0  # not before run_after


# --- several runs in one outcome-writer batch (issue 19, items 6-12) --------------------


def test_each_run_of_one_outcome_batch_reports_its_own_ending(acme, received):
    with tenant_context(acme):
        ok = {contract_tasks.plain.enqueue(n=n).id: n for n in range(4)}
        bad = contract_tasks.fail.enqueue(kind="value", note="run-v").id
        refused = contract_tasks.fail.enqueue(kind="job", note="run-j").id
    # All six endings in one call of the outcome writer: waiting for the four results
    # alone raced the failures (a runner freed by a result may fail the next job before the
    # last result is queued, and the batch then held three results and a failure).
    calls = run_batched(results=len(ok) + 2)
    assert {*ok, bad, refused} in calls
    payloads = finished(received)
    for result_id, n in ok.items():
        assert payloads[result_id].status == TaskResultStatus.SUCCESSFUL
        assert payloads[result_id].return_value == {"got": {"n": n}}
        assert payloads[result_id].errors == []
    for result_id, note in ((bad, "run-v"), (refused, "run-j")):
        assert payloads[result_id].status == TaskResultStatus.FAILED
        (error,) = payloads[result_id].errors
        assert note in error.traceback


def test_a_result_and_a_cancellation_in_one_batch_each_report_their_own(acme, received, settings):
    settings.JOBS_HEARTBEAT_SECONDS = 0.1
    with tenant_context(acme):
        cancelled = contract_tasks.until_cancelled.enqueue().id
        done = contract_tasks.plain.enqueue(n=1).id
    worker, calls = batching_worker(results=2)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    wait_for(lambda: worker._completions.qsize() == 1)  # the result, held for the batch
    services.job_cancel(tenant=acme, job_id=uuid.UUID(cancelled))
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert {done, cancelled} in calls  # the result, then the heartbeat's cancellation
    payloads = finished(received)
    assert payloads[done].status == TaskResultStatus.SUCCESSFUL
    assert payloads[done].return_value == {"got": {"n": 1}}
    assert payloads[cancelled].status == TaskResultStatus.FAILED
    assert payloads[cancelled].errors == []


def test_a_task_error_names_the_exception_class_the_task_raised(acme, received):
    with tenant_context(acme):
        bad = contract_tasks.fail.enqueue(kind="value", note="v").id
        refused = contract_tasks.fail.enqueue(kind="job", note="j").id
        fillers = [contract_tasks.plain.enqueue(n=n).id for n in range(2)]
    run_batched(results=len(fillers))
    payloads = finished(received)
    with tenant_context(acme):
        stored = {
            result_id: contract_tasks.fail.get_result(result_id) for result_id in (bad, refused)
        }
    for result_id, cls in ((bad, ValueError), (refused, JobError)):
        for result in (payloads[result_id], stored[result_id]):
            (error,) = result.errors
            assert error.exception_class is cls
            assert error.exception_class_path == f"{cls.__module__}.{cls.__qualname__}"
    # What the API shows the client is unchanged: no internals for an unexpected exception.
    assert Job.objects.get(pk=bad).error == "internal error"
    assert Job.objects.get(pk=refused).error == "refused j"


def test_after_a_retry_started_at_is_the_first_attempts_start(acme, received):
    with tenant_context(acme):
        retried = contract_tasks.inspect.enqueue(fail_first=True).id
        for n in range(2):
            contract_tasks.plain.enqueue(n=n)
    run_batched(results=2)
    make_runnable(Job.objects.get(pk=retried))
    with tenant_context(acme):
        contract_tasks.plain.enqueue(n=2)
    run_batched(results=2)  # the retry's result and the filler's, together

    first, second = JobAttempt.objects.filter(job_id=retried).order_by("number")
    assert first.started_at < second.started_at
    payload = [result for *_, result in received if result.id == retried][-1]
    with tenant_context(acme):
        stored = contract_tasks.inspect.get_result(retried)
    for result in (payload, stored):
        assert result.status == TaskResultStatus.SUCCESSFUL
        assert result.started_at == first.started_at
        assert result.last_attempted_at == second.started_at
        assert result.attempts == 2
        assert len(result.errors) == 1
    starts = [result.id for name, _s, _st, result in received if name == "started"]
    assert starts.count(retried) == 2  # task_started: before each attempt


def test_task_finished_is_sent_only_for_a_final_result(acme, received):
    with tenant_context(acme):
        retried = contract_tasks.inspect.enqueue(fail_first=True).id
        Job.objects.filter(pk=retried).update(max_attempts=3)
        fillers = [contract_tasks.plain.enqueue(n=n).id for n in range(2)]
    run_batched(results=2)
    assert retried not in finished(received)  # READY, to run again: not finished
    make_runnable(Job.objects.get(pk=retried))
    with tenant_context(acme):
        fillers.append(contract_tasks.plain.enqueue(n=2).id)
    run_batched(results=2)
    outcomes = [(result.id, status) for name, _s, status, result in received if name == "finished"]
    assert sorted(outcomes) == sorted(
        (result_id, TaskResultStatus.SUCCESSFUL) for result_id in [*fillers, retried]
    )


def test_the_result_keeps_what_using_set(acme, received):
    earlier = timezone.now() - timedelta(seconds=30)
    with tenant_context(acme):
        chosen = contract_tasks.plain.using(priority=50, run_after=earlier).enqueue(n=1)
        plain = contract_tasks.plain.enqueue(n=2)
    assert (chosen.task.priority, chosen.task.run_after) == (50, earlier)
    run_batched(results=2)
    payloads = finished(received)
    with tenant_context(acme):
        stored = {r.id: contract_tasks.plain.get_result(r.id) for r in (chosen, plain)}
    for result in (payloads[chosen.id], stored[chosen.id]):
        assert (result.task.priority, result.task.run_after) == (50, earlier)
    for result in (payloads[plain.id], stored[plain.id]):
        assert (result.task.priority, result.task.run_after) == (0, None)


def test_a_task_can_use_any_queue_a_worker_serves(acme, received):
    with tenant_context(acme):
        reports = contract_tasks.plain.using(queue_name="reports").enqueue(n=1)
        default = contract_tasks.plain.enqueue(n=2)
        with pytest.raises(InvalidTask):  # bounded like the job's queue column
            contract_tasks.plain.using(queue_name="q" * 65).enqueue(n=3)
    assert Job.objects.get(pk=reports.id).queue == "reports"
    run_batched(results=2)
    payloads = finished(received)
    with tenant_context(acme):
        stored = contract_tasks.plain.get_result(reports.id)
    assert payloads[reports.id].task.queue_name == stored.task.queue_name == "reports"
    assert payloads[reports.id].return_value == {"got": {"n": 1}}
    assert payloads[default.id].task.queue_name == "default"
    assert Job.objects.count() == 2


def test_outside_a_tenant_a_result_does_not_exist(acme, public_tenant):
    with tenant_context(acme):
        results = [contract_tasks.plain.enqueue(n=n) for n in range(2)]
    run_batched(results=2)
    result = results[0]

    def lookups():
        yield lambda: contract_tasks.plain.get_result(result.id)
        yield result.refresh
        yield lambda: async_to_sync(contract_tasks.plain.aget_result)(result.id)
        yield async_to_sync(result.arefresh)

    for context in (schema_context("public"), tenant_context(public_tenant)):
        with context:
            for lookup in lookups():
                with pytest.raises(TaskResultDoesNotExist):
                    lookup()
    with tenant_context(acme):
        connection.set_schema_to_public()  # no tenant at all: the public schema's stand-in
        for lookup in lookups():
            with pytest.raises(TaskResultDoesNotExist):
                lookup()
