"""``manage.py jobs``: operators show, list, retry, cancel and enqueue jobs, across every
tenant (``ALL_TENANTS``, as platform staff in the admin) or one (``--tenant SCHEMA``),
internal jobs included. Reads go through ``jobs.selectors``, changes through
``jobs.services``, each job's change the same compare-and-set the admin's actions use.

- ``show ID [--traceback]``: the job's fields and its attempts (outcome, error); the
  traceback only when asked.
- ``list [--tenant] [--status S[,S]] [--type] [--queue] [--limit N]``: newest first, a
  table with a header, or "no jobs".
- ``retry`` / ``cancel``: one ``ID``, or ``--all`` jobs matching the filters (retry: failed
  and cancelled ones by default; cancel: pending and processing ones), walked in batches
  so any number works, with progress and counts at the end. More than one job needs
  ``--yes``. A job that changed meanwhile is skipped and counted.
- ``enqueue --tenant SCHEMA --type T [--payload JSON] [--queue Q] [--priority P]
  [--run-at ISO]``: checked as the API checks a submit (a public type, its payload
  serializer, priority -100..100, ``run_at`` with a UTC offset within
  ``JOBS_MAX_RUN_AT_DAYS``); bad input is a ``CommandError`` and nothing is stored.

Times are UTC.
"""

import json
import uuid
from collections import Counter
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from rest_framework import serializers
from rest_framework.exceptions import ParseError

from accounts.roles import ALL_TENANTS
from core.clock import db_now
from core.limits import parse_json
from core.tables import table, utc
from jobs import selectors, services
from jobs.exceptions import InvalidTransition, JobNotFound
from jobs.models import JobStatus
from jobs.registry import job_types
from tenants.commands import refusal, tenant_named

# The jobs a bulk retry or cancel reads per page (each then changed one by one).
BATCH_SIZE = 500
# What ``retry --all`` and ``cancel --all`` cover when no --status is given, and all they
# may cover: the states each change starts from.
ACTION_STATUSES = {
    "retry": (JobStatus.FAILED, JobStatus.CANCELLED),
    "cancel": (JobStatus.PENDING, JobStatus.PROCESSING),
}
LIST_HEADER = [
    "id",
    "tenant",
    "type",
    "status",
    "queue",
    "priority",
    "attempts",
    "created (UTC)",
    "run at (UTC)",
    "error",
]
ATTEMPT_HEADER = ["attempt", "worker", "started (UTC)", "finished (UTC)", "outcome", "error"]
LISTED_ERROR_CHARS = 60


class Command(BaseCommand):
    help = "Show, list, retry, cancel or enqueue jobs."

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True)
        show = actions.add_parser("show", help="A job's fields and attempts.")
        show.add_argument("id")
        show.add_argument("--traceback", action="store_true", help="Also print the traceback.")

        listing = actions.add_parser("list", help="Jobs, newest first.")
        _add_filters(listing)
        listing.add_argument("--limit", type=int, default=50, help="Most jobs shown (50).")

        for name, text in (("retry", "Retry failed or cancelled"), ("cancel", "Cancel")):
            sub = actions.add_parser(name, help=f"{text} jobs: one ID, or --all matching.")
            sub.add_argument("id", nargs="?")
            sub.add_argument("--all", action="store_true", help="Every job the filters match.")
            _add_filters(sub)
            sub.add_argument("--yes", action="store_true", help="Needed for more than one job.")

        enqueue = actions.add_parser("enqueue", help="Enqueue a job for a tenant.")
        enqueue.add_argument("--tenant", required=True, help="A customer tenant's schema name.")
        enqueue.add_argument("--type", required=True, help="A registered job type.")
        enqueue.add_argument("--payload", default="{}", help="The job's payload (JSON object).")
        enqueue.add_argument("--queue", help="Default: the job type's queue.")
        enqueue.add_argument("--priority", type=int, default=0, help="-100..100, default 0.")
        enqueue.add_argument("--run-at", help="ISO 8601 with a UTC offset; default now.")

    def handle(self, *args, **options):
        action = options["action"]
        if action == "show":
            self._show(_job_id(options["id"]), options["traceback"])
        elif action == "list":
            self._list(options)
        elif action == "enqueue":
            self._enqueue(options)
        elif options["all"]:
            if options["id"]:
                raise CommandError("give a job id or --all, not both")
            self._bulk(action, options)
        elif options["id"] is None:
            raise CommandError("give a job id, or --all with filters")
        elif _filters_given(options):
            raise CommandError("--tenant, --status, --type and --queue go with --all")
        else:
            self._one(action, _job_id(options["id"]))

    # --- reads ---------------------------------------------------------------------------

    def _show(self, job_id: uuid.UUID, with_traceback: bool) -> None:
        try:
            job = selectors.job_for_staff(tenant=ALL_TENANTS, job_id=job_id)
        except JobNotFound:
            raise CommandError(f"no job {job_id}") from None
        status = f"{job.status} (cancelling)" if job.cancel_requested else job.status
        progress = None
        if job.progress is not None:
            progress = f"{job.progress}% {job.progress_message}".strip()
        fields = [
            ["id", job.id],
            ["tenant", job.tenant.schema_name],
            ["type", job.type + (" (internal)" if job.internal else "")],
            ["status", status],
            ["queue", job.queue],
            ["priority", job.priority],
            ["attempts", f"{job.attempts}/{job.max_attempts}"],
            ["created (UTC)", utc(job.created_at)],
            ["run at (UTC)", utc(job.run_at)],
            ["started (UTC)", utc(job.started_at)],
            ["completed (UTC)", utc(job.completed_at)],
            ["worker", job.worker_id],
            ["progress", progress],
            ["created by", job.created_by.username if job.created_by else None],
            ["error", job.error],
            ["payload", json.dumps(job.payload, ensure_ascii=False)],
            ["result", None if job.result is None else json.dumps(job.result, ensure_ascii=False)],
        ]
        lines = table(["field", "value"], fields)[1:]
        attempts = list(job.attempt_history.all())
        lines.append("")
        if attempts:
            rows = [
                [
                    attempt.number,
                    attempt.worker_id,
                    utc(attempt.started_at),
                    utc(attempt.finished_at),
                    attempt.outcome or "running",
                    attempt.error,
                ]
                for attempt in attempts
            ]
            lines += table(ATTEMPT_HEADER, rows)
        else:
            lines.append("no attempts")
        if with_traceback:
            traceback = job.error_traceback or next(
                (a.traceback for a in reversed(attempts) if a.traceback), ""
            )
            lines += ["", traceback.rstrip() if traceback else "no traceback"]
        self.stdout.write("\n".join(lines))

    def _list(self, options: dict) -> None:
        if options["limit"] < 1:
            raise CommandError("--limit must be 1 or more")
        limit = options["limit"]
        match = _match(options)
        jobs = list(selectors.jobs_matching(tenant=ALL_TENANTS, match=match)[: limit + 1])
        if not jobs:
            self.stdout.write("no jobs")
            return
        rows = [
            [
                job.id,
                job.tenant.schema_name,
                job.type,
                f"{job.status} (cancelling)" if job.cancel_requested else job.status,
                job.queue,
                job.priority,
                f"{job.attempts}/{job.max_attempts}",
                utc(job.created_at),
                utc(job.run_at),
                _shortened(job.error),
            ]
            for job in jobs[:limit]
        ]
        lines = table(LIST_HEADER, rows)
        if len(jobs) > limit:
            lines.append(f"(the newest {limit} shown; --limit for more)")
        self.stdout.write("\n".join(lines))

    # --- changes -------------------------------------------------------------------------

    def _one(self, action: str, job_id: uuid.UUID) -> None:
        try:
            outcome = _apply(action, job_id)
        except JobNotFound:
            raise CommandError(f"no job {job_id}") from None
        except InvalidTransition as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"{job_id} {outcome}")

    def _bulk(self, action: str, options: dict) -> None:
        allowed = ACTION_STATUSES[action]
        refused = [status for status in _statuses(options) if status not in allowed]
        if refused:
            raise CommandError(
                f"{action} applies to {' and '.join(allowed)} jobs, not {', '.join(refused)}"
            )
        match = _match(options, default_statuses=allowed, created_before=db_now())
        total = selectors.jobs_matching(tenant=ALL_TENANTS, match=match).count()
        if not total:
            self.stdout.write("no jobs match")
            return
        if total > 1 and not options["yes"]:
            raise CommandError(f"{total} jobs match; add --yes to {action} them all")
        counts: Counter[str] = Counter()
        after, seen = None, 0
        while ids := selectors.job_ids_matching(
            tenant=ALL_TENANTS, match=match, after=after, limit=BATCH_SIZE
        ):
            for job_id in ids:
                try:
                    counts[_apply(action, job_id)] += 1
                except (InvalidTransition, JobNotFound):
                    counts["skipped (changed meanwhile)"] += 1
            after, seen = ids[-1], seen + len(ids)
            if total > BATCH_SIZE:
                self.stdout.write(f"{action}: {seen} of {total}")
        done = ", ".join(f"{count} {outcome}" for outcome, count in sorted(counts.items()))
        self.stdout.write(f"{total} jobs matched: {done}")

    def _enqueue(self, options: dict) -> None:
        tenant = tenant_named(options["tenant"])
        errors: dict[str, str] = {}
        registered = job_types()
        job_type = registered.get(options["type"])
        if job_type is None:
            known = ", ".join(sorted(registered))
            errors["type"] = f"Unknown job type {options['type']!r}. Registered types: {known}."
        payload = None
        try:
            payload = parse_json(options["payload"])
        except ParseError as exc:
            errors["payload"] = f"not JSON ({exc.detail})"
        if job_type is not None and "payload" not in errors:
            try:
                payload = job_type.validate_payload(payload)
            except serializers.ValidationError as exc:
                errors["payload"] = f"invalid: {json.dumps(exc.detail.get('payload'))}"
        if not -100 <= options["priority"] <= 100:
            errors["priority"] = "must be between -100 and 100"
        queue = options["queue"]
        if queue is not None and not _valid_queue(queue):
            errors["queue"] = "1 to 64 characters, none of them a comma, colon or space"
        run_at = _run_at(options["run_at"], errors)
        if errors:
            raise refusal(ValidationError(errors))
        job = services.job_enqueue(
            tenant=tenant,
            type=job_type.name,
            payload=payload,
            queue=queue,
            priority=options["priority"],
            run_at=run_at,
        )
        self.stdout.write(
            f"enqueued {job.id}: {job.type} for {tenant.schema_name} in queue {job.queue}, "
            f"run at {utc(job.run_at)} UTC"
        )


def _add_filters(parser) -> None:
    parser.add_argument("--tenant", help="A customer tenant's schema name.")
    parser.add_argument("--status", help="Comma-separated statuses, e.g. failed,cancelled.")
    parser.add_argument("--type", help="A job type's name.")
    parser.add_argument("--queue", help="A queue's name.")


def _filters_given(options: dict) -> bool:
    return any(options[name] for name in ("tenant", "status", "type", "queue"))


def _statuses(options: dict) -> tuple[str, ...]:
    """The statuses of ``--status``; ``CommandError`` naming an unknown one."""
    given = tuple(s.strip() for s in (options["status"] or "").split(",") if s.strip())
    unknown = [status for status in given if status not in JobStatus.values]
    if unknown:
        known = ", ".join(JobStatus.values)
        raise CommandError(f"unknown status {', '.join(unknown)} (one of {known})")
    return given


def _match(
    options: dict, *, default_statuses: tuple[str, ...] = (), created_before=None
) -> selectors.JobMatch:
    """The filters of the command line as a ``selectors.JobMatch``."""
    tenant = tenant_named(options["tenant"]) if options["tenant"] else None
    return selectors.JobMatch(
        tenant_id=tenant.pk if tenant else None,
        statuses=_statuses(options) or default_statuses,
        type=options["type"] or "",
        queue=options["queue"] or "",
        created_before=created_before,
    )


def _apply(action: str, job_id: uuid.UUID) -> str:
    """Retry or cancel one job (``jobs.services``, for ``ALL_TENANTS``); what became of it.
    Raises ``JobNotFound`` or ``InvalidTransition`` as the service does."""
    if action == "retry":
        services.job_retry(tenant=ALL_TENANTS, job_id=job_id)
        return "retried"
    if services.job_cancel(tenant=ALL_TENANTS, job_id=job_id).finished:
        return "cancelled"
    return "asked to stop (running)"


def _job_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise CommandError(f"{text!r} is not a job id (a UUID)") from None


def _valid_queue(name: str) -> bool:
    """A name ``run_worker --queues`` can serve: no separator of its list or its counts."""
    return 1 <= len(name) <= 64 and not any(c in name for c in ",: \t\n")


def _run_at(text: str | None, errors: dict[str, str]) -> datetime | None:
    """``--run-at`` as an aware datetime, or None; a problem goes to ``errors``."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        errors["run_at"] = f"{text!r} is not an ISO 8601 time"
        return None
    if moment.tzinfo is None:
        errors["run_at"] = "needs a UTC offset, e.g. 2026-12-07T09:00+01:00 or ...Z"
        return None
    if moment > timezone.now() + timedelta(days=settings.JOBS_MAX_RUN_AT_DAYS):
        errors["run_at"] = f"at most {settings.JOBS_MAX_RUN_AT_DAYS} days from now"
    return moment


def _shortened(error: str) -> str:
    first_line = error.splitlines()[0] if error else ""
    if len(first_line) > LISTED_ERROR_CHARS:
        return first_line[: LISTED_ERROR_CHARS - 1] + "…"
    return first_line
