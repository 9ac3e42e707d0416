"""Signals the worker sends, for metrics and other observers (never for state changes).

- ``job_started(sender=Worker, job=Job)``: a runner thread starts a handler. ``job``
  carries ``created_at``, ``run_at`` and ``started_at`` as claimed.
- ``job_finished(sender=Worker, job=Job, outcome=JobOutcome, duration=float)``: a run of
  the job ended, and the worker recorded how; exactly one per run (claim). ``duration`` is
  the handler's run time in seconds (so far, for a run ended while its handler runs; 0 for
  one that never started).
- ``jobs_finished(sender=Worker, runs=[(Job, JobOutcome, float), ...])``: the same runs,
  as ``(job, outcome, duration)``, once per call of the outcome writer that recorded any,
  after their ``job_finished``. For receivers that query or write: one round trip for the
  whole batch instead of one per run (the webhooks and the dashboard's rollup use it).

Receivers run in the worker's threads: keep them fast and never raise.

And one the ``cleanup_jobs`` command sends, for features that keep rows about jobs:

- ``jobs_cleaned(sender=Command, tenant=Tenant | ALL_TENANTS, before=datetime)``: finished
  jobs of ``tenant`` that ended before ``before`` were deleted. A receiver prunes its own
  rows as old (within its own rules) and returns one line for the operator, or None.
"""

from enum import StrEnum

from django.dispatch import Signal


class JobOutcome(StrEnum):
    """How a run of a job ended (``job_finished``'s ``outcome``, the worker's log line).

    A StrEnum: each member equals its string, so consumers of the strings keep working.
    """

    COMPLETED = "completed"  # the result is recorded
    FAILED = "failed"  # the failure is recorded and no attempt is left (or the type is unknown)
    RETRYING = "retrying"  # the failure is recorded; pending again after a backoff
    CANCELLED = "cancelled"  # cancellation was requested: ended cancelled, any result dropped
    TIMED_OUT = "timed_out"  # the reaper failed it for running past its timeout; result dropped
    LOST = "lost"  # taken from this worker (lease expired, then reaped); result dropped
    HANDED_BACK = "handed_back"  # the worker stopped: pending again, the attempt not counted
    SNOOZED = "snoozed"  # the handler asked to run later (Snooze): pending, attempt not counted


job_started = Signal()
job_finished = Signal()
jobs_finished = Signal()
jobs_cleaned = Signal()
