"""Cron arithmetic of a schedule: its ticks around a moment, and how close two can be."""

import itertools
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from cronsim import CronSim

from schedules.models import Schedule

SECONDS_PER_DAY = 24 * 3600


def shortest_interval(cron: str) -> int:
    """The fewest seconds between two ticks of ``cron`` (``CronSimError`` if invalid): the
    smallest gap between its times of day, and from its last to its first (as if every
    day ticked). Daylight-saving changes aside."""
    parsed = CronSim(cron, datetime.now(ZoneInfo("UTC")))
    times = sorted(
        hour * 3600 + minute * 60 + second
        for hour in parsed.hours
        for minute in parsed.minutes
        for second in parsed.seconds
    )
    wrap = SECONDS_PER_DAY - times[-1] + times[0]
    return min([later - earlier for earlier, later in itertools.pairwise(times)] + [wrap])


def next_tick(schedule: Schedule, after: datetime) -> datetime:
    """The first tick of ``schedule`` strictly after ``after``."""
    zone = ZoneInfo(schedule.timezone)
    return next(CronSim(schedule.cron, after.astimezone(zone)))


def next_ticks(schedule: Schedule, after: datetime, count: int) -> list[datetime]:
    """The first ``count`` ticks of ``schedule`` strictly after ``after``, in its timezone."""
    zone = ZoneInfo(schedule.timezone)
    return list(itertools.islice(CronSim(schedule.cron, after.astimezone(zone)), count))


def latest_tick(schedule: Schedule, at: datetime) -> datetime:
    """The last tick of ``schedule`` at or before ``at`` (ticks fall on whole seconds)."""
    zone = ZoneInfo(schedule.timezone)
    start = at.astimezone(zone).replace(microsecond=0) + timedelta(seconds=1)
    return next(CronSim(schedule.cron, start, reverse=True))
