"""Flow control as plain-text tables for operators: each budget's use and the pauses
(``manage.py jobs_flow status``, ``manage.py jobs_stats``), and the same as JSON-ready
dicts (``jobs_stats --json``)."""

from core.tables import table
from jobs.flow.selectors import LimitUse, PauseRow, limit_usage, pauses

LIMIT_HEADER = ["limit", "scope", "tenant", "running", "tokens", "rate/s", "waiting", "throttled"]
PAUSE_HEADER = ["paused", "target", "by", "at (UTC)", "reason"]


def limit_cells(use: LimitUse) -> list[str]:
    """running/concurrency, tokens/burst, rate per second, waiting and throttled jobs;
    ``-`` where the budget has no such bound."""
    figures = use.figures
    return [
        use.limit,
        use.scope,
        use.tenant.schema_name if use.tenant else "-",
        f"{use.running}/{figures.concurrency}" if figures.concurrency else str(use.running),
        f"{use.tokens:.1f}/{figures.burst:g}" if use.tokens is not None else "-",
        f"{figures.rate:g}" if figures.rate is not None else "-",
        str(use.waiting),
        str(use.throttled_jobs),
    ]


def pause_cells(row: PauseRow) -> list[str]:
    return [row.scope, row.label, row.paused_by, f"{row.paused_at:%Y-%m-%d %H:%M:%S}", row.reason]


def status_lines(*, tenant) -> list[str]:
    """The limits' table (or "no limits"), a blank line, the pauses' table (or "no
    pauses"), in ``tenant``'s view (``jobs.flow.selectors``)."""
    uses = limit_usage(tenant=tenant)
    paused = pauses(tenant=tenant)
    lines = table(LIMIT_HEADER, [limit_cells(use) for use in uses]) if uses else ["no limits"]
    lines.append("")
    lines += table(PAUSE_HEADER, [pause_cells(row) for row in paused]) if paused else ["no pauses"]
    return lines


def status_json(*, tenant) -> dict:
    """The same as ``status_lines``, as lists of dicts."""
    return {
        "limits": [
            {
                "limit": use.limit,
                "scope": use.scope,
                "tenant": use.tenant.schema_name if use.tenant else None,
                "concurrency": use.figures.concurrency,
                "rate_per_second": use.figures.rate,
                "burst": use.figures.burst,
                "running": use.running,
                "tokens": use.tokens,
                "waiting": use.waiting,
                "throttled_jobs": use.throttled_jobs,
            }
            for use in limit_usage(tenant=tenant)
        ],
        "pauses": [
            {
                "scope": row.scope,
                "target": row.label,
                "paused_by": row.paused_by,
                "paused_at": row.paused_at.isoformat(),
                "reason": row.reason,
            }
            for row in pauses(tenant=tenant)
        ],
    }
