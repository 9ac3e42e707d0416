"""Plain-text tables for the management commands' listings: a header row, left-aligned
columns two spaces apart, ``-`` for a missing value, times to the second."""

from collections.abc import Sequence
from datetime import UTC, datetime

MISSING = "-"


def cell(value) -> str:
    """``value`` as a table cell: ``-`` for None or an empty string, never ``None``."""
    if value is None or value == "":
        return MISSING
    return str(value)


def utc(moment: datetime | None) -> str:
    """``moment`` in UTC to the second (``2026-12-06 21:30:05``; the column or line says
    UTC), ``-`` for none."""
    return MISSING if moment is None else f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S}"


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """``header`` and ``rows`` as lines of left-aligned columns two spaces apart, each value
    through ``cell``; trailing spaces are stripped."""
    texts = [list(header), *([cell(value) for value in row] for row in rows)]
    widths = [max(len(row[i]) for row in texts) for i in range(len(header))]
    return [
        "  ".join(text.ljust(width) for text, width in zip(row, widths, strict=True)).rstrip()
        for row in texts
    ]
