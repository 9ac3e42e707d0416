"""Every raw SQL statement of the engine, side by side: the claim, the attempt history, the
outcomes (complete, fail, time out), the heartbeat (with the worker registry), the reaper
and its dry run, cleanup, and the poll. ``jobs.services`` and ``jobs.selectors`` (and the
fan-out) send them; each statement is guarded by the state it expects (compare-and-set),
and its times are PostgreSQL's ``now()``, never a worker's clock.

Statements over ``job_queue`` and ``job_attempt`` name the tables unqualified (the public
schema, on the search path), except the poll and the fan-out's routing read, which run
without django-tenants' ``SET search_path`` and name ``{table}``: ``public_table`` fills
it in.
"""

from django.db import connection
from django_tenants.utils import get_public_schema_name

from jobs.conditions import REACHABLE_JOBS_SQL
from jobs.models import FIXED_REPRESENTED_COLUMNS, REPRESENTED_COLUMNS, Job


def public_table(name: str) -> str:
    """``name`` in the public schema, quoted for the statements that run without a
    search path."""
    return f"{connection.ops.quote_name(get_public_schema_name())}.{name}"


# --- the claim ---------------------------------------------------------------------------

# The distinct tenants that have pending jobs, by a loose index scan over the claim index:
# one probe per tenant instead of reading every pending row.
PENDING_TENANTS_CTE = """
WITH RECURSIVE pending_tenants AS (
    (SELECT tenant_id FROM job_queue WHERE status = 'pending' ORDER BY tenant_id LIMIT 1)
    UNION ALL
    SELECT (SELECT j.tenant_id FROM job_queue j
            WHERE j.status = 'pending' AND j.tenant_id > p.tenant_id
            ORDER BY j.tenant_id LIMIT 1)
    FROM pending_tenants p WHERE p.tenant_id IS NOT NULL
)"""

# Claiming, fair across tenants. ``pending_tenants`` walks the distinct tenants that have
# pending jobs with a loose index scan (one index probe per tenant, not one per row);
# ``tenant_load`` keeps the active, unpaused ones (a scalar subquery: one primary-key probe
# each, where a join could read the whole tenant table; a deactivated or paused tenant's
# jobs stay pending) and counts their running jobs (under flow control, with the tenant's
# plan and overrides, which admission needs and the claim without limits does not); for
# each tenant and unpaused queue two LATERALs take its next runnable jobs straight off the
# claim index (highest priority first) and off the ageing index (longest waiting first),
# skipping rows other workers hold, jobs of paused types and jobs whose budgets are spent
# ({blocked_filter}). Each pick's effective priority is its priority plus one per
# JOBS_PRIORITY_AGEING_SECONDS waited, at most 100 (docs/flow.md "Priority ageing"). Picks
# are then ordered by the tenant's load after taking them (running + turn), so the tenant
# with the fewest running jobs goes first and a newcomer overtakes a flooding tenant at the
# next free slot. Priority orders a tenant's own jobs and breaks ties between tenants, but
# can never make one tenant starve another. Rows locked and not claimed are released at
# COMMIT.
_PICK = """
    SELECT j.id, j.priority, j.run_at, j.created_at, j.limit_keys, j.limit_units
    FROM job_queue j
    WHERE j.tenant_id = lane.tenant_id AND j.queue = lane.queue
      AND j.status = 'pending' AND j.run_at <= now()
      AND j.type <> ALL(lane.paused_types) {blocked_filter}
    ORDER BY {order}
    LIMIT {per_tenant_limit}
    FOR UPDATE SKIP LOCKED"""
_LANE_PICKS = """SELECT lane.tenant_id, lane.running{lane_figures}, picked.*
    FROM lanes lane CROSS JOIN LATERAL ({pick}) picked"""
_CANDIDATES = """{pending_tenants},
tenant_load AS (
    SELECT t.tenant_id,
           (SELECT count(*) FROM job_queue r
            WHERE r.tenant_id = t.tenant_id AND r.status = 'processing') AS running{figures}
    FROM pending_tenants t
    CROSS JOIN LATERAL (SELECT tt.is_active, tt.plan FROM tenants_tenant tt
                        WHERE tt.id = t.tenant_id) tenant
    WHERE t.tenant_id IS NOT NULL {tenant_filter} AND tenant.is_active
      AND NOT EXISTS (SELECT 1 FROM flow_pause p
                      WHERE p.scope = 'tenant' AND p.target = t.tenant_id::text)
),
{blocked_cte}
lanes AS (
    SELECT load.*, wanted.queue, {blocked_keys} AS blocked_keys,
           (SELECT coalesce(array_agg(p.target), '{{}}') FROM flow_pause p
            WHERE p.scope = 'type') AS paused_types
    FROM tenant_load load
    CROSS JOIN unnest(%(queues)s::text[]) AS wanted(queue)
    WHERE NOT EXISTS (SELECT 1 FROM flow_pause p
                      WHERE p.scope = 'queue' AND p.target = wanted.queue)
),
by_priority AS ({by_priority}),
by_age AS ({by_age}),
picks AS (
    SELECT DISTINCT ON (id) *,
           least(100, priority + floor(extract(epoch FROM now() - run_at)
                                       / %(ageing)s)) AS effective
    FROM (SELECT * FROM by_priority UNION ALL SELECT * FROM by_age) both_orders
    ORDER BY id
),
candidates AS (
    SELECT picks.*, running + row_number() OVER (
               PARTITION BY tenant_id ORDER BY effective DESC, run_at, created_at) AS turn
    FROM picks
)"""
# What admission needs of a tenant (flow control only): its plan and its overrides.
_TENANT_FIGURES = """, tenant.plan,
           (SELECT jsonb_object_agg(o."limit", o.figures) FROM flow_limit_override o
            WHERE o.tenant_id = t.tenant_id) AS overrides"""
_BY_PRIORITY = "j.priority DESC, j.run_at, j.created_at"
_BY_AGE = "j.run_at, j.created_at"
_CANDIDATE_ORDER = "turn, effective DESC, run_at, created_at"


def _candidates(*, capped: bool, limited: bool) -> str:
    """The candidates CTE: ``capped`` (JOBS_MAX_RUNNING_PER_TENANT): only the tenants
    locked by ``LOCK_PENDING_TENANTS``, at most their free slots each; ``limited`` (flow
    control's limits are in use): ``blocked`` holds the keys of spent budgets, picks skip
    jobs that take one, and each carries its tenant's plan and overrides."""
    per_tenant_limit = (
        "GREATEST(0, LEAST(%(limit)s, %(cap)s - lane.running))" if capped else "%(limit)s"
    )
    blocked_filter = "AND NOT (j.limit_keys && lane.blocked_keys)" if limited else ""
    pick = {"per_tenant_limit": per_tenant_limit, "blocked_filter": blocked_filter}
    lane_figures = ", lane.plan, lane.overrides" if limited else ""
    return _CANDIDATES.format(
        pending_tenants=PENDING_TENANTS_CTE,
        figures=_TENANT_FIGURES if limited else "",
        tenant_filter="AND t.tenant_id = ANY(%(tenants)s)" if capped else "",
        blocked_cte=BLOCKED_BUDGETS_CTE if limited else "",
        blocked_keys="(SELECT keys FROM blocked)" if limited else "'{}'::text[]",
        by_priority=_LANE_PICKS.format(
            pick=_PICK.format(order=_BY_PRIORITY, **pick), lane_figures=lane_figures
        ),
        by_age=_LANE_PICKS.format(
            pick=_PICK.format(order=_BY_AGE, **pick), lane_figures=lane_figures
        ),
    )


# The budgets that are spent as of this statement (no unit running free, or no token; read
# once, so the spent budgets and the wait for the next token agree): a hint that lets the
# picks skip jobs that could not be admitted, returned so that the claim's last round trip
# marks them throttled (``MARK_THROTTLED``). It locks no budget: a lock held from here
# would be held across the network, and, taken out of key order, could deadlock two
# claims. The admission itself (``ADMIT_AND_TAKE``) decides under the budgets' row locks.
BLOCKED_BUDGETS_CTE = """running_units AS (
    SELECT held.key, sum(held.units) AS units FROM job_queue r,
           unnest(r.limit_keys, r.limit_units) AS held(key, units)
    WHERE r.status = 'processing' GROUP BY held.key
),
budgets_now AS MATERIALIZED (
    SELECT b.key, b.concurrency, b.rate, coalesce(u.units, 0) AS running,
           least(b.burst, b.tokens + b.rate * extract(
               epoch FROM statement_timestamp() - b.refreshed_at)) AS tokens
    FROM flow_budget b LEFT JOIN running_units u ON u.key = b.key
),
blocked AS (
    SELECT coalesce(array_agg(key), '{}') AS keys FROM budgets_now
    WHERE running >= concurrency OR tokens < 1
),
refill AS (
    SELECT min((1 - tokens) / rate) AS seconds FROM budgets_now WHERE rate > 0 AND tokens < 1
),"""

# Claimed rows (those in ``chosen``) become processing under a lease, and each opens its
# attempt.
_TAKE_CTES = """
claimed AS (
    UPDATE job_queue AS job
    SET status = 'processing', worker_id = %(worker_id)s, attempts = job.attempts + 1,
        started_at = now(), updated_at = now(), cancel_requested = false,
        lease_expires_at = now() + make_interval(secs => %(lease)s),
        progress = NULL, progress_message = ''
    FROM chosen
    WHERE job.id = chosen.id
    RETURNING job.*
),
opened AS (
    INSERT INTO job_attempt (job_id, number, worker_id, started_at, outcome, error, traceback)
    SELECT claimed.id, claimed.attempts, %(worker_id)s, claimed.started_at, '', '', ''
    FROM claimed
)"""
_TAKE = f"""{_TAKE_CTES}
SELECT * FROM claimed
"""  # noqa: S608 - composed of constant SQL only

# With JOBS_MAX_RUNNING_PER_TENANT the claim takes two statements. The first takes a
# transaction-scoped advisory lock on each tenant with pending jobs (skipping tenants
# another claimer holds), so claims of one tenant are serialised; the second, whose
# snapshot starts after the locks are held and so sees every committed claim, counts the
# tenant's running jobs and takes at most its free slots. The cap is therefore strict.
LOCK_PENDING_TENANTS = f"""{PENDING_TENANTS_CTE}
SELECT tenant_id FROM pending_tenants
WHERE tenant_id IS NOT NULL
  AND pg_try_advisory_xact_lock(hashtextextended('job_queue.claim:' || tenant_id, 0))
"""  # noqa: S608 - composed of constant SQL only


def _claim_statement(*, capped: bool) -> str:
    return f"""{_candidates(capped=capped, limited=False)},
chosen AS (SELECT id FROM candidates ORDER BY {_CANDIDATE_ORDER} LIMIT %(limit)s),{_TAKE}"""  # noqa: S608 - composed of constant SQL only


# The columns of a job the claim takes, beyond those every row of CANDIDATES has.
_CLAIMED_COLUMNS = [
    field.column
    for field in Job._meta.concrete_fields
    if field.column not in ("id", "tenant_id", "limit_keys", "limit_units")
]


def _candidates_statement(*, capped: bool) -> str:
    # Rows: (id, tenant_id, limit_keys, limit_units, plan, overrides, refill, taken, the
    # other columns of a taken job); the last row, with no job, carries the refill and the
    # spent budgets' keys (in ``limit_keys``). ``place`` numbers the candidates in claim order,
    # ``budgeted`` counts those up to it that take a budget: the ones before the first
    # such, up to the limit, are admitted whatever the budgets say, so they are taken here;
    # the others are returned for admission only if those taken leave room.
    taken_columns = ", ".join(_CLAIMED_COLUMNS)
    no_job = ", ".join("NULL" for _ in _CLAIMED_COLUMNS)
    return f"""{_candidates(capped=capped, limited=True)},
guard AS (
    SELECT set_config('idle_in_transaction_session_timeout', %(idle_timeout)s, true)
),
ordered AS (
    SELECT candidates.*, row_number() OVER claim_order AS place,
           count(*) FILTER (WHERE limit_keys <> '{{}}') OVER claim_order AS budgeted
    FROM candidates
    WINDOW claim_order AS (ORDER BY {_CANDIDATE_ORDER}, id ROWS UNBOUNDED PRECEDING)
),
chosen AS (SELECT id FROM ordered WHERE budgeted = 0 AND place <= %(limit)s),{_TAKE_CTES}
SELECT id, tenant_id, limit_keys, limit_units, NULL::text AS plan, NULL::jsonb AS overrides,
       NULL::float8 AS refill, true AS taken, {taken_columns}
FROM claimed
UNION ALL
(SELECT id, tenant_id, limit_keys, limit_units, plan, overrides, NULL, false, {no_job}
 FROM ordered WHERE budgeted > 0 AND (SELECT count(*) FROM chosen) < %(limit)s
 ORDER BY place LIMIT %(limit)s * 2)
UNION ALL
SELECT NULL, NULL, blocked.keys, NULL, NULL, NULL, seconds, false, {no_job}
FROM refill CROSS JOIN blocked CROSS JOIN guard"""  # noqa: S608 - composed of constant SQL only


# The one-statement claim, when no job type consumes a limit of flow control: the first
# ``%(limit)s`` candidates become the worker's, with their attempts opened. Capped: under
# JOBS_MAX_RUNNING_PER_TENANT, after LOCK_PENDING_TENANTS.
CLAIM = _claim_statement(capped=False)
CAPPED_CLAIM = _claim_statement(capped=True)
# Flow control's first claim statement. It takes the candidates that come, in claim order,
# before any that consumes a limit (up to ``%(limit)s``): admission could refuse none of
# them, so a claim of jobs without limits is this one statement, as without flow control.
# Then the rest of the candidates, locked, in claim order, with their budgets and their
# tenant's plan and overrides, for admission (``ADMIT_AND_TAKE``); then one row with no
# id: the seconds until the first spent rate budget has a token again (NULL: none). It also
# bounds how long the transaction may sit idle (%(idle_timeout)s ms): a worker cut off
# between the claim's statements, holding its candidates' row locks (other claims skip
# those jobs) and, in a capped claim, its tenants' locks and then its budgets' until its
# COMMIT, loses its session then instead of when the network gives up on it.
CANDIDATES = _candidates_statement(capped=False)
CAPPED_CANDIDATES = _candidates_statement(capped=True)


# Flow control's admission and take, one statement: ``flow_admit`` (a function of migration
# 0030) locks the budgets of %(keys)s in key order, counts their running units in a
# snapshot that starts once the locks are held, admits up to %(free)s of the candidates
# %(ids)s in claim order within the figures given (what each takes: %(taken_by)s,
# %(taken_budgets)s, %(taken_units)s) and writes the budgets' tokens and throttled flags;
# the admitted jobs are taken. Rows: the seconds until a rate budget that
# held a job back has a token again (NULL: none did), whether the row is a job taken (none
# taken: one row, with no job), the job's columns. Sent with the claim's COMMIT, so the
# budgets' locks are held for no network round trip.
ADMIT_AND_TAKE = f"""
WITH admission AS MATERIALIZED (
    SELECT job_id, retry_in
    FROM flow_admit(%(ids)s::uuid[], %(taken_by)s::int[], %(taken_budgets)s::int[],
                    %(taken_units)s::int[], %(keys)s::text[], %(concurrency)s::int[],
                    %(rate)s::float8[], %(burst)s::float8[], %(free)s)
),
chosen AS (SELECT job_id AS id FROM admission WHERE job_id IS NOT NULL),{_TAKE_CTES}
SELECT admission.retry_in, claimed.id IS NOT NULL AS taken, claimed.*
FROM admission LEFT JOIN claimed ON true
WHERE admission.job_id IS NULL
"""  # noqa: S608 - composed of constant SQL only
# The budgets the claim's first statement found spent (%(blocked)s), marked throttled
# (what the poll's ``waiting`` reads) in its last round trip, right before its COMMIT:
# unless an admission has refreshed one since this transaction began (it wrote the flag
# itself then), and skipping rows another claim holds, so it never waits for a lock.
MARK_THROTTLED = """
UPDATE flow_budget SET throttled = true
WHERE key IN (SELECT key FROM flow_budget
              WHERE key = ANY(%(blocked)s::text[]) AND NOT throttled AND refreshed_at < now()
              FOR UPDATE SKIP LOCKED)
"""
# Wake the workers serving a queue (the payload) after an enqueue.
NOTIFY_WORKERS = "SELECT pg_notify(%s, %s)"
# The enqueue's per-tenant lock, held to COMMIT, under which the quota counts.
LOCK_TENANT_QUOTA = "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))"

# --- the attempt history -------------------------------------------------------------------

# Close a worker's open attempts with how its runs ended.
CLOSE_ATTEMPTS = """
UPDATE job_attempt AS attempt
SET finished_at = now(), outcome = ended.outcome, error = ended.error,
    traceback = ended.traceback, exception_class = ended.exception_class
FROM unnest(%s::uuid[], %s::int[], %s::text[], %s::text[], %s::text[], %s::text[])
     AS ended(job_id, number, outcome, error, traceback, exception_class)
WHERE attempt.job_id = ended.job_id AND attempt.number = ended.number
  AND attempt.worker_id = %s AND attempt.finished_at IS NULL
"""
# Delete the open attempts of runs handed back (no attempt).
DROP_ATTEMPTS = """
DELETE FROM job_attempt AS attempt USING unnest(%s::uuid[], %s::int[]) AS back(job_id, number)
WHERE attempt.job_id = back.job_id AND attempt.number = back.number
  AND attempt.worker_id = %s AND attempt.finished_at IS NULL
"""
# Close the current attempt of each job the reaper took, with its outcome and error.
CLOSE_REAPED_ATTEMPTS = """
UPDATE job_attempt AS attempt
SET finished_at = now(), outcome = reaped.outcome, error = reaped.error
FROM unnest(%s::uuid[], %s::text[], %s::text[]) AS reaped(job_id, outcome, error), job_queue job
WHERE attempt.job_id = reaped.job_id AND job.id = reaped.job_id
  AND attempt.number = job.attempts AND attempt.finished_at IS NULL
"""

# --- outcomes of a run -----------------------------------------------------------------------

# Record many handlers' results of one worker, each guarded: owned, no cancel requested;
# the attempts of the jobs completed are closed in the same statement.
COMPLETE = """
WITH completed AS (
    UPDATE job_queue AS job
    SET status = 'completed', result = done.result, completed_at = now(), updated_at = now(),
        lease_expires_at = NULL, progress = 100
    FROM unnest(%(ids)s::uuid[], %(results)s::jsonb[]) AS done(id, result)
    WHERE job.id = done.id AND job.status = 'processing' AND job.worker_id = %(worker_id)s
      AND NOT job.cancel_requested
    RETURNING job.id, job.attempts
),
closed AS (
    UPDATE job_attempt AS attempt
    SET finished_at = now(), outcome = 'completed', error = '', traceback = '',
        exception_class = ''
    FROM completed
    WHERE attempt.job_id = completed.id AND attempt.number = completed.attempts
      AND attempt.worker_id = %(worker_id)s AND attempt.finished_at IS NULL
)
SELECT id FROM completed
"""
# Record failed attempts of one worker, each guarded: owned, no cancel requested. Each job
# is pending after its backoff while attempts remain (and it may be retried), else failed.
FAIL = """
UPDATE job_queue AS job
SET status = CASE WHEN failed.retry AND job.attempts < job.max_attempts
                  THEN 'pending' ELSE 'failed' END,
    run_at = CASE WHEN failed.retry AND job.attempts < job.max_attempts
                  THEN now() + make_interval(secs => failed.backoff) ELSE job.run_at END,
    completed_at = CASE WHEN failed.retry AND job.attempts < job.max_attempts
                        THEN NULL ELSE now() END,
    error = failed.error, error_traceback = failed.traceback, worker_id = '',
    lease_expires_at = NULL, updated_at = now()
FROM unnest(%(ids)s::uuid[], %(errors)s::text[], %(tracebacks)s::text[],
            %(backoffs)s::float8[], %(retries)s::bool[])
     AS failed(id, error, traceback, backoff, retry)
WHERE job.id = failed.id AND job.status = 'processing' AND job.worker_id = %(worker_id)s
  AND NOT job.cancel_requested
RETURNING job.id, job.status
"""
# Hand a running job back for %(seconds)s at its handler's request (``Snooze``): pending,
# its attempt not counted, one more snooze; matches nothing past %(max_snoozes)s.
SNOOZE = """
UPDATE job_queue
SET status = 'pending', run_at = now() + make_interval(secs => %(seconds)s),
    attempts = attempts - 1, snoozes = snoozes + 1, worker_id = '', lease_expires_at = NULL,
    started_at = NULL, progress = NULL, progress_message = '', updated_at = now()
WHERE id = %(id)s AND status = 'processing' AND worker_id = %(worker_id)s
  AND NOT cancel_requested AND snoozes < %(max_snoozes)s
RETURNING id
"""
# A worker's heartbeat, one round trip: its row of the registry written (inserted the
# first time, and again if the reaper deleted it as expired; its start time kept), and
# the leases of the jobs it holds renewed; which were renewed, and their cancel flag.
WORKER_BEAT = """
WITH registered AS (
    INSERT INTO job_worker AS w (worker_id, host, pid, queues, pools, concurrency,
                                 running_job_ids, version, started_at, last_beat_at)
    VALUES (%(worker_id)s, %(host)s, %(pid)s, %(queues)s, %(pools)s, %(concurrency)s,
            %(job_ids)s, %(version)s, now(), now())
    ON CONFLICT (worker_id) DO UPDATE
    SET host = EXCLUDED.host, pid = EXCLUDED.pid, queues = EXCLUDED.queues,
        pools = EXCLUDED.pools, concurrency = EXCLUDED.concurrency,
        running_job_ids = EXCLUDED.running_job_ids, version = EXCLUDED.version,
        last_beat_at = now()
)
UPDATE job_queue SET lease_expires_at = now() + make_interval(secs => %(lease)s)
WHERE id = ANY(%(job_ids)s) AND status = 'processing' AND worker_id = %(worker_id)s
RETURNING id, cancel_requested
"""
# A worker's clean shutdown: its row of the registry deleted.
WORKER_DEREGISTER = "DELETE FROM job_worker WHERE worker_id = %s"
# The reaper's round: delete the rows of workers whose last beat is older than %s seconds.
WORKERS_EXPIRE = """
DELETE FROM job_worker WHERE last_beat_at < now() - make_interval(secs => %s)
RETURNING worker_id
"""

# --- the reaper ----------------------------------------------------------------------------

# The reaper's view of a processing job, as SQL over job_queue's columns. Both the reaper
# (``services.jobs_requeue_stale``) and its dry run (``STALE_PREVIEW``) are built from
# these. A timed-out job fails first; of the rest, an expired lease ends the job cancelled
# if its cancellation was requested, else sends it back to pending while attempts remain,
# else fails it (``jobs.models.ReaperError``).
REAP_TIMED_OUT = "started_at + make_interval(secs => timeout_seconds) < now()"
REAP_LEASE_EXPIRED = "lease_expires_at < now()"
REAP_CANCEL_REQUESTED = "cancel_requested"
REAP_ATTEMPTS_LEFT = "attempts < max_attempts"

# Expired leases: cancelled if requested, else pending while attempts remain, else failed
# with %(worker_lost)s.
REQUEUE_STALE = f"""
UPDATE job_queue
SET status = CASE WHEN {REAP_CANCEL_REQUESTED} THEN 'cancelled'
                  WHEN {REAP_ATTEMPTS_LEFT} THEN 'pending' ELSE 'failed' END,
    completed_at = CASE WHEN {REAP_ATTEMPTS_LEFT} AND NOT {REAP_CANCEL_REQUESTED}
                        THEN NULL ELSE now() END,
    error = CASE WHEN {REAP_CANCEL_REQUESTED} OR {REAP_ATTEMPTS_LEFT}
                 THEN error ELSE %(worker_lost)s END,
    worker_id = '', lease_expires_at = NULL, updated_at = now()
WHERE status = 'processing' AND {REAP_LEASE_EXPIRED}
RETURNING id, status
"""  # noqa: S608 - composed of constant SQL only

_TIME_OUT_UPDATE = """
UPDATE job_queue
SET status = 'failed', error = %(timed_out)s, completed_at = now(), worker_id = '',
    lease_expires_at = NULL, updated_at = now()
"""
# Fail every running job past its timeout with %(timed_out)s.
TIME_OUT = f"""{_TIME_OUT_UPDATE}
WHERE status = 'processing' AND {REAP_TIMED_OUT}
RETURNING id
"""
# The same, for one run of one worker (its worker gives up waiting for the handler).
TIME_OUT_RUN = f"""{_TIME_OUT_UPDATE}
WHERE id = %(job_id)s AND worker_id = %(worker_id)s AND status = 'processing'
  AND {REAP_TIMED_OUT}
RETURNING id
"""
# The reaper's dry run: its own conditions counted instead of applied. A NULL (no start
# time, no lease) is false, as in the reaper's WHERE.
STALE_PREVIEW = f"""
SELECT count(*) FILTER (WHERE timed_out),
       count(*) FILTER (WHERE reaped AND NOT cancelling AND attempts_left),
       count(*) FILTER (WHERE reaped AND NOT cancelling AND NOT attempts_left),
       count(*) FILTER (WHERE reaped AND cancelling)
FROM (
    SELECT timed_out, NOT timed_out AND lease_expired AS reaped, cancelling, attempts_left
    FROM (
        SELECT coalesce({REAP_TIMED_OUT}, false) AS timed_out,
               coalesce({REAP_LEASE_EXPIRED}, false) AS lease_expired,
               {REAP_CANCEL_REQUESTED} AS cancelling,
               {REAP_ATTEMPTS_LEFT} AS attempts_left
        FROM job_queue WHERE status = 'processing'
    ) AS conditions
) AS running
"""  # noqa: S608 - composed of constant SQL only

# --- cleanup and operators --------------------------------------------------------------------

# One batch of finished jobs deleted (``{tenant_filter}``: empty, or one tenant's); rows
# others hold are skipped and each row's status is re-checked by the DELETE.
DELETE_FINISHED_BATCH = """
WITH doomed AS (
    SELECT id FROM job_queue
    WHERE status = ANY(%(statuses)s) AND completed_at < %(cutoff)s {tenant_filter}
    LIMIT %(batch_size)s
    FOR UPDATE SKIP LOCKED
)
DELETE FROM job_queue AS job USING doomed
WHERE job.id = doomed.id AND job.status = ANY(%(statuses)s)
RETURNING job.status
"""
# --- per-job logs ------------------------------------------------------------------------------

# Keep the lines runs logged (jobs.services.job_logs_keep), numbered from 1 per run in
# ``ordinals``: each job's up to ``max_lines`` with those it already has; its tenant is the
# job's, and a job deleted meanwhile takes none.
KEEP_LOG_LINES = """
WITH line AS (
    SELECT * FROM unnest(
        %(job_ids)s::uuid[], %(attempts)s::smallint[], %(ordinals)s::int[],
        %(logged_at)s::timestamptz[], %(levels)s::text[], %(loggers)s::text[], %(messages)s::text[]
    ) AS line(job_id, attempt, ordinal, logged_at, level, logger, message)
),
kept AS (
    SELECT job_id, count(*) AS lines FROM job_log
    WHERE job_id IN (SELECT job_id FROM line) GROUP BY job_id
)
INSERT INTO job_log (job_id, tenant_id, attempt, logged_at, level, logger, message)
SELECT line.job_id, job.tenant_id, line.attempt, line.logged_at, line.level, line.logger,
       line.message
FROM line
JOIN job_queue AS job ON job.id = line.job_id
LEFT JOIN kept ON kept.job_id = line.job_id
WHERE line.ordinal <= %(max_lines)s - coalesce(kept.lines, 0)
ORDER BY line.job_id, line.ordinal
"""
# The live queue per status and queue, with the oldest due pending job and the db's now.
LIVE_QUEUE = """
SELECT 'pending', queue, count(*),
       min(created_at) FILTER (WHERE run_at <= statement_timestamp()),
       statement_timestamp()
FROM job_queue WHERE status = 'pending' GROUP BY queue
UNION ALL
SELECT 'processing', queue, count(*), NULL, statement_timestamp()
FROM job_queue WHERE status = 'processing' GROUP BY queue
"""

# --- the poll ----------------------------------------------------------------------------------

# What a poll reads of the tenant's jobs matching ``{condition}`` (its parameters follow
# the tenant id) and their ETag's digest, computed by PostgreSQL from the represented
# columns; internal jobs excluded. ``{table}``: ``public_table("job_queue")``.
# A due pending job's ``waiting`` (why it is not running yet: paused or throttled, else
# NULL) is part of its representation and of the digest; ``{waiting}``:
# ``public_table("job_waiting")`` (migration 0024).
POLL_SELECTED = ("id", "tenant_id", "created_at", *FIXED_REPRESENTED_COLUMNS, *REPRESENTED_COLUMNS)
_WAITING = (
    "CASE WHEN status = 'pending' AND run_at <= now()"
    " THEN {waiting}(queue, type, tenant_id, limit_keys::text[]) END"
)
POLL = (
    f"SELECT {', '.join(POLL_SELECTED)}, waiting, "  # noqa: S608 - composed of constant SQL only
    f"md5(row({', '.join(REPRESENTED_COLUMNS)}, waiting)::text) AS representation_digest "
    f"FROM {{table}} CROSS JOIN LATERAL (SELECT {_WAITING} AS waiting) AS held "
    f"WHERE {REACHABLE_JOBS_SQL} AND {{condition}}"
)
# The tenant of a changed job, to route a notification (the fan-out).
JOB_TENANT = "SELECT tenant_id FROM {table} WHERE id = %s"
