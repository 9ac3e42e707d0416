"""The Django Tasks contract, behaviour by behaviour as Django's Tasks documentation states
it, kept by JobQueueBackend and the worker: contexts, results, attempts, signals, async
tasks. Real worker loop, real PostgreSQL."""

from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from django.tasks import TaskResultStatus, task_backends
from django.tasks.signals import task_enqueued, task_finished, task_started
from django.utils import timezone
from django_tenants.utils import tenant_context

from jobs.backends import JobQueueBackend
from jobs.context import JobError
from jobs.models import Job
from tests import contract_tasks
from tests.jobs.test_engine import make_runnable, run_burst

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _contract_types(settings):
    settings.JOBS_TYPES = {
        "contract.plain": "tests.contract_tasks.plain",
        "contract.inspect": {"task": "tests.contract_tasks.inspect", "max_attempts": 2},
        "contract.double": "tests.contract_tasks.double",
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
        assert error.exception_class is JobError
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
    assert runs == [
        ("started", TaskResultStatus.RUNNING),
        ("finished", TaskResultStatus.READY),
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
