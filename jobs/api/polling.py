"""The HTTP side of a poll: ETag matching, the poll's headers, whether a long poll
waits.

The read itself, one SQL statement that also computes the ETag from
``jobs.models.REPRESENTED_COLUMNS``, is ``jobs.selectors.job_poll_get``.
"""

from django.conf import settings
from django.utils.http import parse_etags

from jobs.exceptions import UnknownJobType
from jobs.models import FINAL_STATUSES, Job, JobStatus
from jobs.registry import get_job_type


def held_etags(if_none_match: str | None) -> frozenset[str]:
    """The ETags ``If-None-Match`` names, ``W/`` prefixes dropped (``*`` kept): parsed once,
    matched with ``holds_etag`` as often as needed (a long poll, at its wake)."""
    if not if_none_match:
        return frozenset()
    return frozenset(candidate.removeprefix("W/") for candidate in parse_etags(if_none_match))


def holds_etag(held: frozenset[str], etag: str) -> bool:
    """RFC 9110 weak comparison of ``held`` (``held_etags``) against the current ``etag``."""
    return etag in held or "*" in held


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 weak comparison of ``If-None-Match`` against the current ``etag``."""
    return holds_etag(held_etags(if_none_match), etag)


def names_etags(if_none_match: str | None) -> bool:
    """Whether ``If-None-Match`` names ETags the client holds (not ``*``, which holds none):
    only such a poll may be answered 304 without being charged (jobs.api.ratelimit)."""
    if not if_none_match:
        return False
    candidates = parse_etags(if_none_match)
    return bool(candidates) and "*" not in candidates


def poll_after_seconds(job: Job) -> int | None:
    """Suggested seconds before the next poll: None for final jobs, else the job type's
    ``poll_after`` (``JOBS_POLL_AFTER`` for a type no longer registered), at least 1."""
    if job.status in FINAL_STATUSES:
        return None
    try:
        seconds = get_job_type(job.type).poll_after
    except UnknownJobType:
        seconds = settings.JOBS_POLL_AFTER
    return max(1, int(seconds))


def poll_headers(job: Job) -> dict[str, str]:
    """Headers of a poll's 200 and 304: the validator, the caching rule, the next poll."""
    headers = {"ETag": job.etag, "Cache-Control": "private, no-cache"}
    poll_after = poll_after_seconds(job)
    if poll_after is not None:
        headers["Retry-After"] = str(poll_after)
    return headers


def is_waitable(job: Job) -> bool:
    """Whether a long poll on ``job`` can wait for a change: unfinished jobs only."""
    return job.status in {JobStatus.PENDING, JobStatus.PROCESSING}
