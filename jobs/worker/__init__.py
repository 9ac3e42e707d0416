"""The worker: claims jobs from PostgreSQL and runs them in threads, inside the job's tenant.
``Worker`` (``loops``) owns the threads, ``OutcomeWriter`` (``outcomes``) writes how each run
ended, ``parse_pools`` (``pools``) reads ``run_worker --queues``.

Delivery is at least once: a job runs again only if its worker lost it (crash, lease
expiry), never while its current run still owns it, because every outcome write is
guarded by ``worker_id`` and status (see ``jobs.services``).

How a run ended is decided, recorded and reported in one place, the outcome writer
(``Worker.outcomes``): one ``JobOutcome`` per run (claim), sent with ``job_finished``
and logged as ``job <outcome>``. Whichever ending of a run reaches it first wins; a later
one (a handler's result after its job was cancelled or handed back) changes nothing.

Threads, each with its own database connection (Django connections are per thread):

- the main thread waits for a ``NOTIFY`` (or the poll interval, or a freed slot), claims
  as many jobs as it has free slots (and, while jobs are short, some queued ahead) in one
  statement, and hands them to runners; it also runs the reaper (expired leases,
  timeouts) for the whole queue, at start-up and every ``JOBS_REAP_INTERVAL``;
- runner threads execute handlers, in pools: each pool has its own queues, concurrency
  and claims (``queues=["reports:2", "default:8"]``: two threads for ``reports``, eight for
  ``default``; queues named without a count share one pool of ``concurrency`` threads), so
  a flood in one queue never takes another queue's threads. A result or a failure goes to
- the recorder thread, which passes everything that has piled up to the outcome writer in
  one call (so the results are one guarded UPDATE, the failures another: one round trip
  for many short jobs; a runner never waits for its write); a snooze goes to the outcome
  writer at once;
- a heartbeat thread writes the worker's row of the worker registry (host, pid, pools,
  the jobs it holds, version, last beat; ``jobs.models.WorkerProcess``) and renews its
  leases, in one statement, and raises flags on the runs' contexts: cancellation
  requested, or job lost. A run to cancel is also handed to the recorder, which ends it
  ``cancelled`` within the heartbeat, whether or not its handler notices. The heartbeat
  writes no outcome.
"""

from jobs.worker.loops import Worker, default_worker_id
from jobs.worker.outcomes import OutcomeWriter
from jobs.worker.pools import parse_pools

__all__ = ["OutcomeWriter", "Worker", "default_worker_id", "parse_pools"]
