"""The statements of flow control's staff side (``jobs.flow.services``, ``jobs.flow.selectors``),
named, with a line of purpose each. The claim's own statements are in ``jobs.sql``."""

# Pause a queue, type or tenant unless it is paused already: the new row's id, or no row.
PAUSE = """
INSERT INTO flow_pause (scope, target, reason, paused_by)
VALUES (%s, %s, %s, %s)
ON CONFLICT (scope, target) DO NOTHING
RETURNING id
"""

# Each budget's use now: the budgets with a row (``flow_budget``) and the keys given (the
# global limits and overridden budgets that may have none yet), ``%(tenant_id)s`` NULL for
# every tenant's or one tenant's id for its own and the global ones. Columns: key, running
# units (of processing jobs, counted as admission's ``flow_admit`` counts them, but for
# every key), due pending jobs taking it, whether it has a row, its rate tokens now (NULL:
# no rate, or no row yet) and whether the last claim that looked at it left jobs waiting
# on it.
LIMIT_USAGE = """
WITH running AS (
    SELECT held.key, sum(held.units) AS units FROM job_queue r,
           unnest(r.limit_keys, r.limit_units) AS held(key, units)
    WHERE r.status = 'processing' GROUP BY held.key
),
waiting AS (
    SELECT held.key, count(*) AS jobs FROM job_queue w, unnest(w.limit_keys) AS held(key)
    WHERE w.status = 'pending' AND w.run_at <= now() AND w.limit_keys <> '{}'
    GROUP BY held.key
),
budget_keys AS (
    SELECT key FROM flow_budget UNION SELECT unnest(%(keys)s::text[])
)
SELECT k.key, coalesce(r.units, 0), coalesce(w.jobs, 0), b.key IS NOT NULL,
       least(b.burst, b.tokens + b.rate * greatest(0, extract(
           epoch FROM clock_timestamp() - b.refreshed_at))),
       coalesce(b.throttled, false)
FROM budget_keys k
LEFT JOIN flow_budget b ON b.key = k.key
LEFT JOIN running r ON r.key = k.key
LEFT JOIN waiting w ON w.key = k.key
WHERE %(tenant_id)s::bigint IS NULL OR position(':' IN k.key) = 0
   OR split_part(k.key, ':', 2) = %(tenant_id)s::bigint::text
ORDER BY k.key
"""
