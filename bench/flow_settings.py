"""Settings of make bench's flow-control part (bench/flow.py): the project's settings, plus
the benchmark's job types (handlers in bench/flow_tasks.py) and the limits they consume.

Its workers and helpers run with ``DJANGO_SETTINGS_MODULE=bench.flow_settings``.
``BENCH_FLOW_CONTROL=off`` strips every job type's ``limits`` (the project's
``ai_generation`` included), so no type consumes a limit and the claim is the one
statement it was before flow control: the baseline of the cost-of-limits drain.
"""

import os

from config.settings import *  # noqa: F403
from config.settings import JOBS_LIMITS, JOBS_TYPES

# The rate limit whose starts per second the benchmark counts (bench/flow.py sets it).
BENCH_RATE_PER_SECOND = int(os.environ.get("BENCH_FLOW_RATE", "20"))

JOBS_LIMITS = {
    **JOBS_LIMITS,
    "bench_rate": {"scope": "global", "rate": f"{BENCH_RATE_PER_SECOND}/s"},
    # Attached to the drain's no-op jobs; its figures never bind there (at most 8 jobs
    # run at once, about 1,000 start per second): what a limit costs the claim, not what
    # it holds back.
    "bench_drain": {"scope": "global", "concurrency": 1000, "rate": "100000/s"},
}

JOBS_TYPES = {
    **JOBS_TYPES,
    "bench.second": {"task": "bench.flow_tasks.hold"},
    "bench.noop": {"task": "bench.flow_tasks.noop"},
    "bench.rated": {"task": "bench.flow_tasks.noop", "limits": {"bench_rate": 1}},
    "bench.limited": {"task": "bench.flow_tasks.noop", "limits": {"bench_drain": 1}},
}

if os.environ.get("BENCH_FLOW_CONTROL") == "off":
    JOBS_TYPES = {
        name: (
            {key: value for key, value in spec.items() if key != "limits"}
            if isinstance(spec, dict)
            else spec
        )
        for name, spec in JOBS_TYPES.items()
    }
