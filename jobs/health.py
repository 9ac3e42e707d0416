"""The engine's readiness check for ``/readyz`` (``core.health``), named in settings by
dotted path (``READINESS_CHECKS``, with ``READYZ_REQUIRE_WORKER``): ``core`` imports
nothing of the engine."""

from jobs.selectors import worker_live_exists


def live_worker() -> str | None:
    """None while at least one worker is live in the registry, else ``"no live worker"``."""
    return None if worker_live_exists() else "no live worker"
