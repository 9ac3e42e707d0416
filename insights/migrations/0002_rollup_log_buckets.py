"""The rollup's histograms become sparse, in log-scale buckets of 2% relative error
(``insights.models.bucket_of``): a JSON object of bucket index → runs instead of an array of
13 counts in fixed buckets (0.1 s, 0.25 s, … 3,600 s, and above).

Rows are converted in place, not cleared, so the counts of completed and failed runs (and
their totals in the histograms) stay exact over the 30 days the dashboard shows: each old
bucket's runs move to the new bucket of that old bucket's middle (0.05 s for (0, 0.1],
0.175 s for (0.1, 0.25], …; just above 3,600 s for the open one). Quantiles of minutes counted
before this migration stay as coarse as they were recorded; new runs are counted finely.
The reverse puts each new bucket's runs back into the old bucket that holds its reading.
"""

import math

from django.db import migrations

# As of this migration (``insights.models`` may move on; these must not).
OLD_BOUNDS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600)
GAMMA = 1.02 / 0.98
MIN_SECONDS, MAX_SECONDS = 0.001, 100 * 86_400.0


def _bucket_of(seconds: float) -> int:
    clamped = min(max(seconds, MIN_SECONDS), MAX_SECONDS)
    return math.ceil(math.log(clamped) / math.log(GAMMA))


def _new_buckets() -> list[int]:
    """Per old bucket, the new one its runs move to: that of its middle, and for the open
    one, the first new bucket above 3,600 s (it reads 3,718 s)."""
    lowers = (0, *OLD_BOUNDS[:-1])
    middles = [(low + high) / 2 for low, high in zip(lowers, OLD_BOUNDS, strict=True)]
    return [*map(_bucket_of, middles), _bucket_of(OLD_BOUNDS[-1]) + 1]


SLOT_TO_BUCKET = ", ".join(f"({slot}, '{bucket}')" for slot, bucket in enumerate(_new_buckets()))
SLOT_BOUNDS = ", ".join(f"({slot}, {bound})" for slot, bound in enumerate(OLD_BOUNDS))


def _to_object(column: str) -> str:
    return f"""CASE WHEN jsonb_typeof({column}) = 'array' THEN (
        SELECT COALESCE(jsonb_object_agg(slot.bucket, ({column}->>slot.position)::bigint),
                        jsonb_build_object())
        FROM (VALUES {SLOT_TO_BUCKET}) AS slot(position, bucket)
        WHERE COALESCE(({column}->>slot.position)::bigint, 0) > 0
    ) ELSE {column} END"""


def _to_array(column: str) -> str:
    last = len(OLD_BOUNDS)
    return f"""CASE WHEN jsonb_typeof({column}) = 'object' THEN (
        SELECT jsonb_agg(COALESCE(per_slot.runs, 0) ORDER BY slots.position)
        FROM generate_series(0, {last}) AS slots(position)
        LEFT JOIN (
            SELECT old.position, SUM(bucket.value::bigint) AS runs
            FROM jsonb_each_text({column}) AS bucket,
            LATERAL (
                SELECT COALESCE(MIN(bounds.position), {last}) AS position
                FROM (VALUES {SLOT_BOUNDS}) AS bounds(position, bound)
                WHERE bounds.bound >= 2 * power({GAMMA}, bucket.key::int) / ({GAMMA} + 1)
            ) AS old
            GROUP BY old.position
        ) AS per_slot ON per_slot.position = slots.position
    ) ELSE {column} END"""


FORWARD = f"""UPDATE public.job_rollup SET
    wait_buckets = {_to_object("wait_buckets")}, run_buckets = {_to_object("run_buckets")}"""
BACKWARD = f"""UPDATE public.job_rollup SET
    wait_buckets = {_to_array("wait_buckets")}, run_buckets = {_to_array("run_buckets")}"""


class Migration(migrations.Migration):
    dependencies = [("insights", "0001_initial")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
