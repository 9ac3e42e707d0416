"""``flow_admit(candidate_ids, taken_by, taken_budgets, taken_units, budget_keys,
concurrencies, rates, bursts, free)``: flow control's admission, in the database (``jobs.sql.ADMIT_AND_TAKE`` calls it in the claim's
transaction; docs/flow.md "How the claim holds them").

Given the claim's candidates (locked by ``jobs.sql.CANDIDATES``), in claim order, what
each takes of the budgets that bind (``taken_by``, ``taken_budgets``, ``taken_units``: the
candidate's place from 1, the budget's place from 1 and the units, in claim order), and
those budgets' keys and figures (computed by the worker from its settings,
``jobs.flow.claim.admission_params``), it

1. locks those budgets in key order (so claimers never deadlock), creating missing ones
   full, writing the figures that apply now and refilling each rate budget's tokens for the
   time since its last claim (PostgreSQL's clock);
2. counts the units running on each, from the running jobs themselves, in a statement of
   its own: a VOLATILE function takes a fresh snapshot per statement, so this one starts
   after the locks are held and sees every committed claim (two workers never both take
   the last unit);
3. admits, in claim order, up to ``free`` candidates: a budget admits a job when its
   running units plus the job's stay within its concurrency (or nothing runs on it: a job
   larger than the budget runs alone) and it holds a token for each of the job's units (or
   is full: a larger job takes them all and leaves a debt); a job a budget refuses stays
   pending and marks that budget throttled;
4. writes each budget's tokens left and whether it left jobs waiting.

Rows: one per admitted job (``job_id``), in claim order, then one with no job whose
``retry_in`` is the seconds until a rate budget that held a job back has a token again
(NULL: none did). The budgets' locks are held from step 1 to the claim's COMMIT, which
travels in the same round trip: never across the network nor while the worker computes.

``ROWS 10``: a claim admits a few jobs, not the thousand the planner assumes of a
set-returning function, so the take joins them to ``job_queue`` by its primary key instead
of hashing the whole table (a sequential scan of every job, under the budgets' locks).

SECURITY INVOKER (the default): it runs with the worker's role and row security, as the
statements it replaces did; a fixed search path, set for the call only (no session state:
correct behind PgBouncer in transaction mode).
"""

from django.db import migrations

FLOW_ADMIT = """
CREATE FUNCTION flow_admit(candidate_ids uuid[], taken_by int[], taken_budgets int[],
                           taken_units int[], budget_keys text[], concurrencies int[],
                           rates float8[], bursts float8[], free int)
RETURNS TABLE (job_id uuid, retry_in float8)
LANGUAGE plpgsql VOLATILE ROWS 10 SET search_path = public, pg_temp AS $$
DECLARE
    budget_tokens float8[] := '{}';
    budget_running bigint[] := '{}';
    budget_throttled bool[] := array_fill(false, ARRAY[cardinality(budget_keys)]);
    admitted int := 0;
    wait float8;
    place int;
    pair int := 1;
    first_pair int;
    b int;
    taking int;
    needed float8;
    lacking bool;
BEGIN
    IF cardinality(budget_keys) > 0 THEN  -- else nothing binds: nothing to lock or count
        WITH locked AS (
            INSERT INTO flow_budget AS fb (key, concurrency, rate, burst, tokens, refreshed_at,
                                           throttled)
            SELECT f.key, f.concurrency, f.rate, f.burst, coalesce(f.burst, 0), clock_timestamp(),
                   false
            FROM unnest(budget_keys, concurrencies, rates, bursts) AS f(key, concurrency, rate, burst)
            ORDER BY f.key
            ON CONFLICT (key) DO UPDATE
            SET concurrency = EXCLUDED.concurrency, rate = EXCLUDED.rate, burst = EXCLUDED.burst,
                tokens = CASE WHEN EXCLUDED.rate IS NULL THEN 0 ELSE least(
                    EXCLUDED.burst,
                    fb.tokens + EXCLUDED.rate * greatest(0, extract(epoch FROM clock_timestamp()
                                                                            - fb.refreshed_at)))
                    END,
                refreshed_at = clock_timestamp()
            RETURNING fb.key, fb.tokens
        )
        SELECT coalesce(array_agg(locked.tokens ORDER BY given.ord), '{}') INTO budget_tokens
        FROM unnest(budget_keys) WITH ORDINALITY AS given(key, ord)
        JOIN locked ON locked.key = given.key;

        SELECT coalesce(array_agg(coalesce(used.units, 0) ORDER BY given.ord), '{}')
        INTO budget_running
        FROM unnest(budget_keys) WITH ORDINALITY AS given(key, ord)
        LEFT JOIN (
            SELECT held.key, sum(held.units) AS units FROM job_queue r,
                   unnest(r.limit_keys, r.limit_units) AS held(key, units)
            WHERE r.status = 'processing' AND held.key = ANY(budget_keys)
            GROUP BY held.key
        ) used ON used.key = given.key;
    END IF;

    FOR place IN 1 .. cardinality(candidate_ids) LOOP
        EXIT WHEN admitted = free;
        lacking := false;
        first_pair := pair;
        WHILE pair <= cardinality(taken_by) AND taken_by[pair] = place LOOP
            b := taken_budgets[pair];
            taking := taken_units[pair];
            needed := least(taking, bursts[b]);
            IF concurrencies[b] IS NOT NULL AND budget_running[b] > 0
               AND budget_running[b] + taking > concurrencies[b] THEN
                lacking := true;
                budget_throttled[b] := true;
            ELSIF rates[b] IS NOT NULL AND budget_tokens[b] < needed THEN
                lacking := true;
                budget_throttled[b] := true;
                wait := least(wait, (needed - budget_tokens[b]) / rates[b]);
            END IF;
            pair := pair + 1;
        END LOOP;
        CONTINUE WHEN lacking;
        FOR taken IN first_pair .. pair - 1 LOOP
            b := taken_budgets[taken];
            budget_running[b] := budget_running[b] + taken_units[taken];
            IF rates[b] IS NOT NULL THEN
                budget_tokens[b] := budget_tokens[b] - taken_units[taken];
            END IF;
        END LOOP;
        admitted := admitted + 1;
        job_id := candidate_ids[place];
        retry_in := NULL;
        RETURN NEXT;
    END LOOP;

    UPDATE flow_budget AS fb SET tokens = spent.tokens, throttled = spent.throttled
    FROM unnest(budget_keys, budget_tokens, budget_throttled) AS spent(key, tokens, throttled)
    WHERE fb.key = spent.key;

    job_id := NULL;
    retry_in := wait;
    RETURN NEXT;
END
$$;
"""


class Migration(migrations.Migration):
    dependencies = [("jobs", "0029_created_by_represented")]

    operations = [
        migrations.RunSQL(
            FLOW_ADMIT,
            "DROP FUNCTION IF EXISTS"
            " flow_admit(uuid[], int[], int[], int[], text[], int[], float8[], float8[], int);",
        )
    ]
