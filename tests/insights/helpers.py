"""Rollup rows for tests that need the rollup's history without running that many jobs."""

from insights.services import RollupRow, rollup_add


def rollup_record(
    *, tenant_id: int, queue: str, type: str, outcome: str, wait: float, run: float, at=None
) -> None:
    """Count one run that ended ``outcome`` (``completed`` or ``failed``) in the minute of
    ``at`` (default: the database's now), with its wait and run time in seconds."""
    row = RollupRow(tenant_id=tenant_id, queue=queue, type=type, at=at)
    row.count(outcome, wait, run)
    rollup_add([row])
