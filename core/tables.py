"""Plain-text tables for the management commands' listings: a header row, left-aligned
columns two spaces apart, ``-`` for a missing value."""

from collections.abc import Sequence

MISSING = "-"


def cell(value) -> str:
    """``value`` as a table cell: ``-`` for None or an empty string, never ``None``."""
    if value is None or value == "":
        return MISSING
    return str(value)


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """``header`` and ``rows`` as lines of left-aligned columns two spaces apart, each value
    through ``cell``; trailing spaces are stripped."""
    texts = [list(header), *([cell(value) for value in row] for row in rows)]
    widths = [max(len(row[i]) for row in texts) for i in range(len(header))]
    return [
        "  ".join(text.ljust(width) for text, width in zip(row, widths, strict=True)).rstrip()
        for row in texts
    ]
