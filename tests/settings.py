"""Test settings: the real settings plus job types that exist only for tests."""

from config.settings import *  # noqa: F403
from config.settings import JOBS_TYPES

JOBS_TYPES = {
    **JOBS_TYPES,
    "test.explode": {"task": "tests.tasks.explode", "max_attempts": 1},
    "test.flaky": {"task": "tests.tasks.flaky", "max_attempts": 3},
    "test.record": {"task": "tests.tasks.record", "max_attempts": 5},
    "test.block": {"task": "tests.tasks.block", "max_attempts": 2, "timeout": 2},
    "test.crash_once": {"task": "tests.tasks.crash_once", "max_attempts": 3},
}

# Per-job logs and tracing (tests/jobs/test_job_logs.py, tests/core/test_tracing.py).
JOBS_TYPES["test.chatty"] = {"task": "tests.tasks.chatty", "max_attempts": 2}

# Password hashing is deliberately slow; tests create many users (every job's creator).
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Fault tests (tests/faults): each execution recorded with its attempt number.
JOBS_TYPES["test.record_attempt"] = {"task": "tests.tasks.record_attempt", "max_attempts": 5}

# Queues (tests/jobs/test_queues.py): job types whose jobs land in queue "reports".
JOBS_TYPES["test.report"] = {"task": "tests.tasks.record", "queue": "reports"}
JOBS_TYPES["test.report_block"] = {"task": "tests.tasks.block", "queue": "reports", "timeout": 60}

# Cluster tests (tests/cluster): a write into the tenant's schema, plus the execution record.
JOBS_TYPES["test.cluster_work"] = {"task": "tests.tasks.cluster_work", "max_attempts": 5}

# Flow control (tests/jobs/flow): limits of each kind and scope, and job types taking them.
JOBS_LIMITS = {
    **JOBS_LIMITS,  # noqa: F405
    "test.rate": {"scope": "global", "rate": "10/s", "burst": 3},
    "test.burst": {"scope": "global", "rate": "60/m", "burst": 2},
    "test.slots": {"scope": "tenant", "concurrency": 2},
    "test.plan_slots": {"scope": "plan"},
    "test.units": {"scope": "global", "concurrency": 10},
    "test.one": {"scope": "global", "concurrency": 1},
}
JOBS_PLANS = {
    "free": {**JOBS_PLANS["free"], "test.plan_slots": {"concurrency": 1}},  # noqa: F405
    "pro": {**JOBS_PLANS["pro"], "test.plan_slots": {"concurrency": 3}},  # noqa: F405
}
JOBS_TYPES["test.rated"] = {"task": "tests.tasks.record", "limits": {"test.rate": 1}}
JOBS_TYPES["test.bursty"] = {"task": "tests.tasks.record", "limits": {"test.burst": 1}}
JOBS_TYPES["test.slotted"] = {"task": "tests.tasks.record", "limits": {"test.slots": 1}}
JOBS_TYPES["test.planned"] = {"task": "tests.tasks.record", "limits": {"test.plan_slots": 1}}
JOBS_TYPES["test.weighted"] = {"task": "tests.tasks.record_units", "limits": {"test.units": "size"}}
JOBS_TYPES["test.single"] = {"task": "tests.tasks.record", "limits": {"test.one": 1}}
JOBS_TYPES["test.snoozy"] = {"task": "tests.tasks.snooze_once", "max_attempts": 2}

# Cluster tests (tests/cluster): a global concurrency limit both worker hosts share.
JOBS_LIMITS["test.cluster_slots"] = {"scope": "global", "concurrency": 3}
JOBS_TYPES["test.cluster_limited"] = {
    "task": "tests.tasks.cluster_work",
    "max_attempts": 5,
    "limits": {"test.cluster_slots": 1},
}

# The pooler test (tests/tenants/test_pooler.py): ai_generation's handler, without its limits.
JOBS_TYPES["test.generate"] = {
    "task": "jobs.demo.ai_generation",
    "payload": "jobs.demo.AiGenerationPayload",
}

# Flow control's round trips (tests/jobs/flow/test_round_trips.py): a limit of both kinds
# that never binds, on an echo job, as the bench's cost-of-limits drain attaches.
JOBS_LIMITS["test.roomy"] = {"scope": "global", "concurrency": 1000, "rate": "100000/s"}
JOBS_TYPES["test.roomy"] = {"task": "jobs.demo.echo", "limits": {"test.roomy": 1}}
