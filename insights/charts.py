"""The dashboard's charts as server-rendered SVG geometry (no script, no CDN: the admin's
CSP holds)."""

from datetime import datetime

WIDTH, HEIGHT, PAD = 640, 160, 4
COLOURS = ("#417690", "#ba2121", "#79aec8", "#e49b0f")


def chart(
    title: str, unit: str, bins: list[datetime], lines: dict[str, list], *, legends: dict
) -> dict:
    """A line chart's geometry: one polyline per series (None values are gaps, drawn at 0),
    each with its legend (``legends``: the whole window's figure per series)."""
    values = [v for series in lines.values() for v in series if v is not None]
    top = max(values, default=0) or 1
    step = (WIDTH - 2 * PAD) / max(1, len(bins) - 1)

    def point(i, v):
        y = HEIGHT - PAD - (HEIGHT - 2 * PAD) * (v or 0) / top
        return f"{PAD + i * step:.1f},{y:.1f}"

    return {
        "title": title,
        "top": label(top, unit),
        "start": bins[0],
        "end": bins[-1],
        "series": [
            {
                "name": name,
                "colour": COLOURS[index % len(COLOURS)],
                "points": " ".join(point(i, v) for i, v in enumerate(series)),
                "legend": legends[name],
            }
            for index, (name, series) in enumerate(lines.items())
        ],
    }


def label(value, unit: str) -> str:
    """``value`` for a reader: a count whole, a duration (``unit`` "s") to three significant
    digits (``25.5 ms``, ``1.02 s``, ``48.7 s``; whole seconds from 100 s), so the label
    adds at most 0.5% to the quantiles' own error."""
    if unit != "s":
        return f"{value:.0f}"
    if value < 0.9995:
        return f"{value * 1000:.3g} ms"
    return f"{value:.3g} s" if value < 99.95 else f"{value:.0f} s"
