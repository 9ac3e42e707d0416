"""Job handlers used only by tests (registered in tests/settings.py)."""

import logging
import os
import time

from django.db import connection
from django.tasks import task

from documents.models import Document
from jobs.context import Snooze


@task(takes_context=True)
def explode(context, **payload):
    """Raises an exception whose message must never reach the API."""
    raise RuntimeError("password=hunter2 in /srv/secret.py")


@task(takes_context=True)
def flaky(context, fail_times: int = 1):
    """Fails its first ``fail_times`` attempts, then succeeds."""
    if context.attempt <= fail_times:
        raise RuntimeError(f"flaky attempt {context.attempt}")
    return {"attempt": context.attempt}


@task(takes_context=True)
def record(context, sleep: float = 0.0):
    """Records each execution in the ``test_job_executions`` table (created by the test),
    so tests can prove every job ran exactly once."""
    if sleep:
        time.sleep(sleep)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO public.test_job_executions (job_id, worker_id, pid) VALUES (%s, %s, %s)",
            [context.job_id, context.worker_id, os.getpid()],
        )
    return {"pid": os.getpid()}


@task(takes_context=True)
def block(context, seconds: float = 30.0):
    """Runs for ``seconds`` without ever looking at cancellation (a misbehaving handler)."""
    time.sleep(seconds)
    return {"blocked": seconds}


@task(takes_context=True)
def crash_once(context, seconds: float = 60.0):
    """Hangs on its first attempt (long enough to be killed), succeeds on later ones."""
    if context.attempt == 1:
        time.sleep(seconds)
    return {"attempt": context.attempt}


@task(takes_context=True)
def record_attempt(context, sleep: float = 0.0):
    """Records each execution with its attempt in ``public.fault_executions`` (created by
    tests/faults), so a retry after a crash can be told apart from a duplicate run."""
    if sleep:
        time.sleep(sleep)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO public.fault_executions (job_id, attempt, worker_id, pid)"
            " VALUES (%s, %s, %s, %s)",
            [context.job_id, context.attempt, context.worker_id, os.getpid()],
        )
    return {"attempt": context.attempt}


@task(takes_context=True)
def cluster_work(context, tenant: str, sleep: float = 0.0):
    """Writes a Document titled ``<tenant>:<job id>:<attempt>`` into the schema the handler
    runs in (``tenant`` is the submitting client's, so a row in another schema is a misplaced
    write), and records the execution like ``record_attempt``."""
    Document.objects.create(title=f"{tenant}:{context.job_id}:{context.attempt}")
    return record_attempt.func(context, sleep=sleep)


@task(takes_context=True)
def snooze_once(context, seconds: float = 1.0, times: int = 1):
    """Snoozes for ``seconds`` its first ``times`` runs (a provider's 429), then records its
    execution like ``record``."""
    if context.job.snoozes < times:
        raise Snooze(seconds)
    return record.func(context)


@task(takes_context=True)
def record_units(context, size: int = 1, sleep: float = 0.0):
    """``record`` for a job weighed by its payload's ``size`` (flow control's units)."""
    return record.func(context, sleep=sleep)


@task(takes_context=True)
def chatty(context, lines: int = 3, fail_first: bool = False, message: str = "line"):
    """Logs ``lines`` lines ``<message> <n> of attempt <a>`` through its own logger (kept
    with the job, tests/jobs/test_job_logs.py), then fails its first attempt if asked."""
    log = logging.getLogger("tests.chatty")
    for number in range(1, lines + 1):
        log.info("%s %d of attempt %d", message, number, context.attempt)
    if fail_first and context.attempt == 1:
        raise RuntimeError("first attempt fails")
    return {"logged": lines}
