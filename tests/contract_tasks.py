"""Tasks for tests/jobs/test_tasks_contract.py (registered there through JOBS_TYPES)."""

import asyncio
import time

from asgiref.sync import sync_to_async
from django.db import connection
from django.tasks import TaskContext, task

from jobs.context import JobError


@task
def plain(**payload):
    """Takes no context: called with its keyword arguments only."""
    return {"got": payload}


@task(takes_context=True)
def inspect(context, fail_first: bool = False):
    """Reports what it sees of its context; fails its first attempt when asked."""
    result = context.task_result
    seen = {
        "is_task_context": isinstance(context, TaskContext),
        "id": result.id,
        "status": result.status,
        "attempt": context.attempt,
        "attempts": result.attempts,
        "worker_ids": result.worker_ids,
        "kwargs": result.kwargs,
    }
    if fail_first and context.attempt == 1:
        raise RuntimeError("first attempt fails")
    return seen


@task(takes_context=True)
async def double(context, n: int):
    """An async def task: awaits, reads its tenant through sync_to_async."""
    await asyncio.sleep(0)
    schema = await sync_to_async(lambda: connection.tenant.schema_name)()
    return {"n": n * 2, "schema": schema, "attempt": context.attempt}


@task
def fail(kind: str, note: str = ""):
    """Raises ValueError (``kind="value"``) or JobError (``kind="job"``), ``note`` in the
    message, so each run's error can be told apart."""
    if kind == "value":
        raise ValueError(f"bad value {note}")
    raise JobError(f"refused {note}")


@task(takes_context=True)
def until_cancelled(context):
    """Runs until the worker flags it cancelled (10 s at most), then returns."""
    deadline = time.monotonic() + 10
    while not context.cancelled() and time.monotonic() < deadline:
        time.sleep(0.01)
    return {"stopped": context.cancelled()}
