"""The job queue in the Django admin (public host): a read-only view with staff actions.

Staff-only code: querysets here span tenants for superusers and platform staff
(``ALL_TENANTS``), and are confined to their own tenant for staff who belong to one
(``accounts.roles.staff_tenant``), in the list, filters, search, detail pages opened by URL
and actions alike. Every read comes from ``jobs.selectors`` and every change of a job goes
through ``jobs.services``; nothing here sets a field.

Built for a table of millions of rows: no full COUNT per page (``CappedCountPaginator``),
the page's ids sorted on the table alone and only its rows joined to tenant and creator (in
the one page query), ordering by ``-created_at`` only, filters whose choices need no query
(except the tenant list). Filter values from the URL are
checked before the query (``core.admin_filters``, ``TenantFilter``): a foreign one is
Django's "invalid filter" redirect, never a 500.
"""

import hashlib
import json
from datetime import UTC, datetime, timedelta

from django.contrib import admin, messages
from django.contrib.admin import ActionLocation
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import EmptyResultSet, PermissionDenied
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import F
from django.http import HttpResponseNotModified, JsonResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join

from accounts.roles import ALL_TENANTS, StaffReadOnlyMixin, is_tenant_staff, staff_tenant
from core.admin_filters import CheckedLookupsMixin
from jobs import selectors, services
from jobs.bulk import bulk_start
from jobs.exceptions import InvalidTransition, JobNotFound
from jobs.models import (
    Job,
    JobAttempt,
    JobLogLine,
    JobStatus,
)
from jobs.registry import job_types
from tenants.models import Tenant
from tenants.scope import tenant_scope

BOTH_LOCATIONS = [ActionLocation.CHANGE_LIST, ActionLocation.CHANGE_FORM]

# Bulk actions change at most this many jobs per click (newest first), so one request
# stays short however much is selected; the message says when some were left.
ACTION_LIMIT = 1000


def human_duration(delta: timedelta | None) -> str:
    """``0.42 s``, ``12 s``, ``3 min 05 s``, ``2 h 10 min``, ``3 d 4 h``; ``—`` for None."""
    if delta is None:
        return "—"
    seconds = max(delta.total_seconds(), 0.0)
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


# The capped count and the first page's ids from one scan of the matches: the count of the
# first cap+1 (counted by the window) and, of those, the first page's in the list's order.
# When they are all the matches (not capped), that page is the list's own.
_COUNT_AND_FIRST_IDS = """
SELECT page_id, count(*) OVER () FROM ({matches}) AS matches ORDER BY {order} LIMIT %s
"""


class CappedCountPaginator(Paginator):
    """Counts at most ``count_cap`` rows (``… LIMIT cap+1``) instead of the whole filtered
    table; ``capped`` tells the template to show "10000+". The same statement keeps the
    first page's ids when the list is ordered by fields of its own table, so a search with
    up to ``count_cap`` matches reads them once, not once to count and once to sort; any
    other page is read ids first (``_get_page``)."""

    count_cap = 10_000

    @cached_property
    def count(self) -> int:
        counted, self.first_ids = self._count_and_first_ids()
        self.capped = counted > self.count_cap
        return min(counted, self.count_cap)

    def _count_and_first_ids(self) -> tuple[int, list | None]:
        """``(matches up to cap + 1, the first page's ids or None)``."""
        capped = self.object_list.order_by()
        keys = _order_keys(self.object_list)
        if keys is None:
            return capped.values("pk")[: self.count_cap + 1].count(), None
        fields = {f"order_{i}": F(name) for i, (name, _) in enumerate(keys)}
        matches = capped.values(page_id=F("pk"), **fields)[: self.count_cap + 1]
        try:
            sql, params = matches.query.sql_with_params()
        except EmptyResultSet:
            return 0, []
        order = ", ".join(
            f"order_{i} {'DESC' if descending else 'ASC'}" for i, (_, descending) in enumerate(keys)
        )
        with connections[self.object_list.db].cursor() as cursor:
            cursor.execute(
                _COUNT_AND_FIRST_IDS.format(matches=sql, order=order),
                [*params, self.per_page + self.orphans],
            )
            rows = cursor.fetchall()
        return (rows[0][1] if rows else 0), [page_id for page_id, _ in rows]

    def _get_page(self, object_list, *args, **kwargs):
        """The page ``object_list`` (a sliced queryset) with its ``select_related`` joins for
        its own rows only: by the ids ``count`` kept when they are the page's, else in one
        statement in two steps (the page's ids, ordered and sliced on the table alone, then
        those rows). Ten thousand matches of a search are sorted as narrow rows and only
        the page's are joined, where a join before the sort would carry every match."""
        query = object_list.query
        ids = object_list.values("pk")
        known = None if self.capped else self.first_ids
        if known is not None and query.low_mark == 0 and query.high_mark <= len(known):
            ids = known[: query.high_mark]
        rows = object_list.model._default_manager.filter(pk__in=ids)
        rows.query.select_related = query.select_related
        return super()._get_page(rows.order_by(*query.order_by), *args, **kwargs)


def _order_keys(jobs) -> list[tuple[str, bool]] | None:
    """``jobs``' ordering as ``(field name, descending)`` when it is by columns of its own
    table only (``-created_at``, ``-id``; no relation), else None."""
    if jobs.query.extra_order_by or not jobs.query.order_by:
        return None
    keys = []
    for entry in jobs.query.order_by:
        if not isinstance(entry, str) or "__" in entry.lstrip("-") or entry.startswith("?"):
            return None
        name = entry.lstrip("-")
        own = (f.name for f in jobs.model._meta.concrete_fields if not f.is_relation)
        if name != "pk" and name not in own:  # (a relation orders by its model's ordering)
            return None
        keys.append((name, entry.startswith("-")))
    return keys


class MatchFilter(admin.SimpleListFilter):
    """A filter of the job list that is a part of a ``selectors.JobMatch``
    (``match_fields``), so the list and a bulk action over everything it matches
    (``jobs.bulk``) select the same jobs. A value that is no choice is an invalid filter:
    Django redirects to ``?e=1``."""

    def match_fields(self, request) -> dict:
        raise NotImplementedError

    def queryset(self, request, queryset):
        if self.value() is None:
            return queryset
        match = selectors.JobMatch(**self.match_fields(request))
        return queryset.filter(
            selectors.match_condition(tenant=staff_tenant(request.user), match=match)
        )

    def checked(self, request, choices) -> str | None:
        value = self.value()
        if value is not None and value not in {str(key) for key, _ in choices}:
            raise IncorrectLookupParameters(f"Not a choice of {self.title}: {value!r}")
        return value


class StatusFilter(MatchFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return JobStatus.choices

    def match_fields(self, request):
        value = self.checked(request, JobStatus.choices)
        return {"statuses": (value,)} if value else {}


class TypeFilter(MatchFilter):
    """Registered job types (from settings, no query)."""

    title = "type"
    parameter_name = "type"

    def lookups(self, request, model_admin):
        return [(name, name) for name in sorted(job_types())]

    def match_fields(self, request):
        return {"type": self.value()} if self.value() else {}


class QueueFilter(MatchFilter):
    """The queues job types send their jobs to (from settings, no query); any other queue
    name works from the URL (``?queue=reports``)."""

    title = "queue"
    parameter_name = "queue"

    def lookups(self, request, model_admin):
        queues = {job_type.queue for job_type in job_types().values()} | {"default"}
        if self.value():
            queues.add(self.value())
        return [(name, name) for name in sorted(queues)]

    def match_fields(self, request):
        return {"queue": self.value()} if self.value() else {}


YES_NO = [("yes", "yes"), ("no", "no")]


class ScheduledFilter(MatchFilter):
    """Pending jobs due later (``run_at`` in the future), or every other job."""

    title = "scheduled for later"
    parameter_name = "scheduled"

    def lookups(self, request, model_admin):
        return YES_NO

    def match_fields(self, request):
        value = self.checked(request, YES_NO)
        return {"scheduled": value == "yes"} if value else {}


class HasErrorFilter(MatchFilter):
    title = "has an error"
    parameter_name = "has_error"

    def lookups(self, request, model_admin):
        return YES_NO

    def match_fields(self, request):
        value = self.checked(request, YES_NO)
        return {"has_error": value == "yes"} if value else {}


HELD = [("paused", "paused"), ("throttled", "throttled")]


class HeldFilter(MatchFilter):
    """Pending jobs held by flow control (docs/flow.md): by a pause of their queue, type or
    tenant, or by a budget the last claim found spent."""

    title = "held by flow control"
    parameter_name = "held"

    def lookups(self, request, model_admin):
        return HELD

    def match_fields(self, request):
        value = self.checked(request, HELD)
        return {"held": value} if value else {}


class InternalFilter(MatchFilter):
    """Internal jobs (webhook deliveries, bulk actions) are listed only under "internal:
    yes", which only platform staff are offered; a tenant's staff never reach them
    (``jobs_for_staff``)."""

    title = "internal"
    parameter_name = "internal"

    def lookups(self, request, model_admin):
        return [("yes", "yes")] if staff_tenant(request.user) is ALL_TENANTS else []

    def choices(self, changelist):
        default, *others = super().choices(changelist)
        yield {**default, "display": "no"}  # not "All": the default leaves them out
        yield from others

    def queryset(self, request, queryset):
        return queryset.filter(internal=self.match_fields(request)["internal"])

    def match_fields(self, request):
        if self.value() not in (None, "yes"):
            raise IncorrectLookupParameters(f"Not a choice: {self.value()!r}")
        return {"internal": self.value() == "yes"}


class TenantFilter(MatchFilter):
    """Tenants a platform staff user may pick among: every customer tenant. Tenant staff
    get no such filter (``JobAdmin.get_list_filter``)."""

    title = "tenant"
    parameter_name = "tenant"

    def lookups(self, request, model_admin):
        tenants = Tenant.objects.customers().values_list("pk", "name")
        return [(str(pk), name) for pk, name in tenants]

    def match_fields(self, request):
        """A value that is not an id in ASCII digits (``abc``, ``1.5``, ``²``) is an invalid
        filter: Django redirects to ``?e=1``."""
        value = self.value()
        if not value:
            return {}
        if not (value.isascii() and value.isdigit()):
            raise IncorrectLookupParameters(f"Not a tenant id: {value!r}")
        return {"tenant_id": int(value)}


class CreatedFilter(admin.DateFieldListFilter):
    """Django's date filter on ``created_at``, as a part of a ``JobMatch`` too."""

    def match_fields(self, request) -> dict:
        fields = {}
        for lookup, name in (
            (self.lookup_kwarg_since, "created_from"),
            (self.lookup_kwarg_until, "created_until"),
        ):
            value = self.used_parameters.get(lookup)
            if isinstance(value, list):
                value = value[-1]
            if value:
                try:
                    fields[name] = datetime.fromisoformat(str(value))
                except ValueError:
                    raise IncorrectLookupParameters(f"Not a date: {value!r}") from None
        return fields


class JobLogInline(StaffReadOnlyMixin, admin.TabularInline):
    """The job page's log: what its handler logged (``jobs.worker.logs``), oldest first,
    at most ``JOBS_LOG_MAX_LINES``; read-only, seen by whoever may see the job (the job
    admin's queryset already scoped it to the staff's tenant)."""

    model = JobLogLine
    fields = ["attempt", "logged_at", "level", "logger", "message"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name = "log line"
    verbose_name_plural = "log (what the handler logged)"


@admin.register(Job)
class JobAdmin(StaffReadOnlyMixin, CheckedLookupsMixin, admin.ModelAdmin):
    """The job list (live, filtered, searched; bulk actions over all it matches) and the
    job page (status, error and attempts first). Columns fit a 1,440 px screen; tenant
    staff get no tenant column or filter (``get_list_display``, ``get_list_filter``)."""

    list_display = [
        "short_id",
        "tenant_name",
        "type",
        "queue",
        "status_badge",
        "attempts_display",
        "created",
        "completed",
        "duration",
        "error_excerpt",
    ]
    list_display_links = ["short_id"]
    list_filter = [
        StatusFilter,
        TypeFilter,
        QueueFilter,
        ScheduledFilter,
        HasErrorFilter,
        HeldFilter,
        TenantFilter,
        InternalFilter,
        ("created_at", CreatedFilter),
    ]
    list_select_related = ["tenant", "created_by"]
    list_per_page = 50
    sortable_by = ["created"]
    ordering = ["-created_at", "-id"]
    paginator = CappedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # facet counts would count the whole table
    search_fields = ["type"]  # shows the search box; get_search_results does the matching
    search_help_text = (
        'Words of the error or payload (all of them; "a phrase"; -word to leave out), '
        "a job id (or its first 8 characters), an exact job type, or a username."
    )
    actions = ["retry_jobs", "cancel_jobs", "run_jobs_now", "delete_finished_jobs"]
    inlines = [JobLogInline]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "status_badge",
                    "error_summary",
                    "attempt_table",
                    "type",
                    "tenant",
                    "queue",
                    "priority",
                    "created_by",
                    "id",
                ]
            },
        ),
        ("Timeline (UTC)", {"fields": ["timeline"]}),
        (
            "Execution",
            {
                "fields": [
                    "worker",
                    "progress_display",
                    "cancel_requested",
                    "timeout_seconds",
                    "idempotency_key",
                ]
            },
        ),
        ("Input and output", {"fields": ["payload_pretty", "result_pretty"]}),
    ]
    readonly_fields = [field for _, options in fieldsets for field in options["fields"]]

    # --- scoping and permissions ------------------------------------------------------

    def get_queryset(self, request):
        return selectors.jobs_for_staff(tenant=staff_tenant(request.user))

    def has_delete_permission(self, request, obj=None):
        """Users with the model permission (not tenant staff), finished jobs only."""
        if obj is not None and not obj.is_final:
            return False
        return admin.ModelAdmin.has_delete_permission(self, request, obj)

    def has_operate_permission(self, request):
        """Retry, cancel and run now: tenant staff (on their tenant) and users with the
        ``jobs.change_job`` permission."""
        return is_tenant_staff(request.user) or request.user.has_perm("jobs.change_job")

    def get_actions(self, request, action_location=ActionLocation.CHANGE_LIST):
        actions = super().get_actions(request, action_location)
        actions.pop("delete_selected", None)  # would not spare running jobs
        return actions

    def delete_model(self, request, obj):
        if not services.job_delete_finished(tenant=staff_tenant(request.user), job_id=obj.id):
            raise PermissionDenied("Only a finished job can be deleted.")

    def get_list_display(self, request):
        if staff_tenant(request.user) is ALL_TENANTS:
            return self.list_display
        return [name for name in self.list_display if name != "tenant_name"]

    def get_list_filter(self, request):
        if staff_tenant(request.user) is ALL_TENANTS:
            return self.list_filter
        return [spec for spec in self.list_filter if spec is not TenantFilter]

    def get_fieldsets(self, request, obj=None):
        if staff_tenant(request.user) is ALL_TENANTS:
            return self.fieldsets
        return [
            (name, {**options, "fields": [f for f in options["fields"] if f != "tenant"]})
            for name, options in self.fieldsets
        ]

    # --- search ---------------------------------------------------------------------------

    def get_search_results(self, request, queryset, search_term):
        found = selectors.job_search(
            tenant=staff_tenant(request.user), jobs=queryset, text=search_term
        )
        return found, False

    def filter_match(self, request) -> selectors.JobMatch:
        """The list's filters and search as a ``selectors.JobMatch``: what a bulk action
        over everything the list matches covers (``jobs.bulk``)."""
        changelist = self.get_changelist_instance(request)
        fields = {"search": changelist.query, "internal": False}
        for spec in changelist.filter_specs:
            fields.update(spec.match_fields(request))
        return selectors.JobMatch(**fields)

    # --- columns and detail fields ---------------------------------------------------

    @admin.display(description="id")
    def short_id(self, job):
        return str(job.id)[:8]

    @admin.display(description="tenant")
    def tenant_name(self, job):
        return job.tenant.schema_name

    @admin.display(description="status")
    def status_badge(self, job):
        label = job.get_status_display()
        if job.status == JobStatus.PROCESSING and job.cancel_requested:
            label += " (cancelling)"
        elif job.status == JobStatus.PROCESSING and job.progress is not None:
            label += f" {job.progress}%"
        elif job.status == JobStatus.PENDING and job.run_at and job.run_at > timezone.now():
            label = "Scheduled"
        return format_html('<span class="job-status job-status-{}">{}</span>', job.status, label)

    @admin.display(description="progress")
    def progress_display(self, job):
        if job.progress is None:
            return "—"
        return f"{job.progress}% {job.progress_message}".strip()

    @admin.display(description="attempts")
    def attempts_display(self, job):
        return f"{job.attempts}/{job.max_attempts}"

    @admin.display(description="created (UTC)", ordering="created_at")
    def created(self, job):
        return _moment(job.created_at)

    @admin.display(description="finished")
    def completed(self, job):
        return _moment(job.completed_at, same_day_as=job.created_at)

    @admin.display(description="duration")
    def duration(self, job):
        if job.started_at is None:
            return "—"
        end = job.completed_at or (timezone.now() if job.status == JobStatus.PROCESSING else None)
        return human_duration(end - job.started_at) if end else "—"

    @admin.display(description="error")
    def error_excerpt(self, job):
        if not job.error:
            return ""
        return format_html('<span class="job-error" title="{}">{}</span>', job.error, job.error)

    @admin.display(description="error")
    def error_summary(self, job):
        """The error, then the one traceback (the job's, else its last attempt's), folded."""
        traceback = job.error_traceback or next(
            (a.traceback for a in reversed(_attempts(job)) if a.traceback), ""
        )
        if not job.error and not traceback:
            return "—"
        folded = ""
        if traceback:
            folded = format_html(
                '<details class="job-traceback" open><summary>traceback (staff only)</summary>'
                '<pre class="job-json">{}</pre></details>',
                traceback,
            )
        return format_html('<p class="job-error-text">{}</p>{}', job.error or "—", folded)

    @admin.display(description="attempts")
    def attempt_table(self, job):
        """Each attempt: worker, start, run time, outcome, error (its traceback is the one
        above when it is the last)."""
        rows = [
            (
                attempt.number,
                attempt.worker_id or "—",
                _moment(attempt.started_at),
                human_duration(attempt.finished_at - attempt.started_at)
                if attempt.finished_at and attempt.started_at
                else "—",
                attempt.outcome or "running",
                attempt.error or "",
            )
            for attempt in _attempts(job)
        ]
        if not rows:
            return f"none yet (at most {job.max_attempts})"
        return format_html(
            '<p>{} of at most {}</p><table class="job-attempts"><thead><tr><th>#</th>'
            "<th>worker</th><th>started (UTC)</th><th>ran</th><th>outcome</th><th>error</th>"
            "</tr></thead><tbody>{}</tbody></table>",
            job.attempts,
            job.max_attempts,
            format_html_join("", "<tr>" + "<td>{}</td>" * 6 + "</tr>", rows),
        )

    @admin.display(description="worker")
    def worker(self, job):
        """The worker running the job, or the one of its last attempt once it ended."""
        if job.worker_id:
            return job.worker_id
        last = _attempts(job)[-1] if _attempts(job) else None
        return f"{last.worker_id} (last attempt)" if last and last.worker_id else "—"

    @admin.display(description="payload")
    def payload_pretty(self, job):
        return _pretty_json(job.payload)

    @admin.display(description="result")
    def result_pretty(self, job):
        return "—" if job.result is None else _pretty_json(job.result)

    @admin.display(description="timeline")
    def timeline(self, job):
        return format_html(
            '<table class="job-timeline"><tbody>{}</tbody></table>',
            format_html_join(
                "",
                "<tr><th>{}</th><td>{}</td><td>{}</td></tr>",
                _timeline_rows(job),
            ),
        )

    # --- the list page ---------------------------------------------------------------

    def get_urls(self):
        live = self.admin_site.admin_view(self.live_view)
        info = self.opts.app_label, self.opts.model_name
        return [path("live/", live, name="{}_{}_live".format(*info)), *super().get_urls()]

    def live_view(self, request):
        """The live refresh's cheap conditional poll: a version of the list page for the
        same filters (the query string), 304 when it is the ``If-None-Match`` sent. The
        version covers the first page's rows (id, status, progress, last change), the
        summary counts and the bulk actions: the page's own bounded queries, no render."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            return JsonResponse({"detail": "Not a valid filter of the job list."}, status=400)
        version = self._version(request, changelist)
        if request.headers.get("If-None-Match") == f'"{version}"':
            response = HttpResponseNotModified()
        else:
            response = JsonResponse({"version": version})
        response["ETag"] = f'"{version}"'
        response["Cache-Control"] = "no-store"
        return response

    def _version(self, request, changelist) -> str:
        tenant = staff_tenant(request.user)
        rows = [
            (str(job.id), job.status, job.progress, job.updated_at.isoformat())
            for job in changelist.result_list
        ]
        bulk = [
            (str(job.id), job.status, job.progress) for job in selectors.bulk_actions(tenant=tenant)
        ]
        counts = selectors.queue_summary(tenant=tenant).counts
        state = json.dumps([rows, counts, bulk, changelist.result_count])
        return hashlib.sha256(state.encode()).hexdigest()[:16]

    def changelist_view(self, request, extra_context=None):
        tenant = staff_tenant(request.user)
        summary = selectors.queue_summary(tenant=tenant)
        extra_context = {
            **(extra_context or {}),
            "job_summary": summary,
            "job_summary_counts": [
                (status, f"{summary.cap}+" if summary.capped(count) else str(count))
                for status, count in summary.counts.items()
            ],
            "job_summary_oldest": human_duration(summary.oldest_pending_age)
            if summary.oldest_pending_age is not None
            else None,
            "job_summary_window": int(summary.window.total_seconds() // 60),
            "bulk_actions": selectors.bulk_actions(tenant=tenant),
            "live_url": reverse("admin:jobs_job_live"),
        }
        return super().changelist_view(request, extra_context)

    # --- operations: on selected jobs in the list, or on one job from its page -----------

    def _operate(self, request, queryset, operation, done_text: str, bulk: str = "") -> None:
        """Apply ``operation`` (a ``jobs.services`` call taking ``tenant`` and ``job_id``) to
        at most ``ACTION_LIMIT`` jobs of ``queryset``, which ``get_queryset`` has already
        scoped to the user's tenant; the service is scoped again by that tenant. Jobs in
        another state are skipped. With "select all … matching" (``select_across``) and a
        ``bulk`` action, a ``jobs.bulk`` job does it instead, over any number of jobs."""
        tenant = staff_tenant(request.user)
        if bulk and request.POST.get("select_across") == "1":
            job = bulk_start(
                tenant=tenant,
                action=bulk,
                match=self.filter_match(request),
                requested_by=request.user,
            )
            self.message_user(
                request,
                f"Started in the background: {bulk} every job this list matches (bulk "
                f"action {str(job.id)[:8]}); its progress shows above the list.",
                messages.SUCCESS,
            )
            return
        candidates = list(queryset.order_by("-created_at", "-id")[: ACTION_LIMIT + 1])
        done, refusals = 0, []
        for job in candidates[:ACTION_LIMIT]:
            try:
                operation(tenant=tenant, job_id=job.id)
            except (InvalidTransition, JobNotFound) as exc:
                refusals.append(str(exc))
            else:
                done += 1
        if done:
            self.message_user(request, f"{done} job(s) {done_text}.", messages.SUCCESS)
        if refusals:
            self.message_user(
                request, f"{len(refusals)} job(s) skipped: {refusals[0]}", messages.WARNING
            )
        if len(candidates) > ACTION_LIMIT:
            self.message_user(
                request,
                f"Only the newest {ACTION_LIMIT} selected jobs were processed; select all "
                "jobs matching the filter to act on every one.",
                messages.WARNING,
            )

    @admin.action(
        description="Retry",
        description_plural="Retry selected failed or cancelled jobs",
        permissions=["operate"],
        location=BOTH_LOCATIONS,
    )
    def retry_jobs(self, request, queryset):
        self._operate(request, queryset, services.job_retry, "retried: pending again", "retry")

    @admin.action(
        description="Cancel",
        description_plural="Cancel selected pending or processing jobs",
        permissions=["operate"],
        location=BOTH_LOCATIONS,
    )
    def cancel_jobs(self, request, queryset):
        self._operate(
            request,
            queryset,
            services.job_cancel,
            "cancelled (running ones when their worker notices)",
            "cancel",
        )

    @admin.action(
        description="Run now",
        description_plural="Run selected scheduled jobs now",
        permissions=["operate"],
        location=BOTH_LOCATIONS,
    )
    def run_jobs_now(self, request, queryset):
        self._operate(request, queryset, services.job_run_now, "due now")

    @admin.action(
        description="Delete",
        description_plural="Delete selected finished jobs",
        permissions=["delete"],
        location=[ActionLocation.CHANGE_LIST],
    )
    def delete_finished_jobs(self, request, queryset):
        self._operate(request, queryset, _delete_finished, "deleted", "delete")


def _delete_finished(*, tenant, job_id) -> None:
    """``services.job_delete_finished`` as an operation: ``InvalidTransition`` when the job
    was not deleted (not finished)."""
    if not services.job_delete_finished(tenant=tenant, job_id=job_id):
        raise InvalidTransition("Only a finished job can be deleted.")


def _attempts(job) -> list[JobAttempt]:
    """The job's attempts, oldest first, read once per page."""
    if not hasattr(job, "_admin_attempts"):
        job._admin_attempts = list(job.attempt_history.order_by("number"))
    return job._admin_attempts


def _moment(moment: datetime | None, *, same_day_as: datetime | None = None) -> str:
    """The one date format of the job pages, UTC: ``2026-12-07 14:03:09``, or the time only
    when on ``same_day_as``'s date (list columns)."""
    if moment is None:
        return "—"
    moment = timezone.localtime(moment, UTC)
    if same_day_as is not None and moment.date() == timezone.localtime(same_day_as, UTC).date():
        return moment.strftime("%H:%M:%S")
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _pretty_json(value) -> str:
    return format_html(
        '<pre class="job-json">{}</pre>', json.dumps(value, indent=2, sort_keys=True)
    )


def _timeline_rows(job):
    """``(event, time, note)`` rows of the job's life so far, times as ``_moment``."""
    rows = [("Created", _moment(job.created_at), "")]
    if job.run_at and job.run_at > job.created_at:
        rows.append(
            (
                "Due",
                _moment(job.run_at),
                f"{human_duration(job.run_at - job.created_at)} after creation",
            )
        )
    if job.started_at:
        due = max(job.created_at, job.run_at or job.created_at)
        rows.append(
            (
                "Started",
                _moment(job.started_at),
                f"attempt {job.attempts}, waited {human_duration(job.started_at - due)}",
            )
        )
    if job.status == JobStatus.PROCESSING and job.lease_expires_at:
        rows.append(("Lease expires", _moment(job.lease_expires_at), job.worker_id))
    if job.completed_at:
        ran = f"ran {human_duration(job.completed_at - job.started_at)}" if job.started_at else ""
        rows.append((job.get_status_display(), _moment(job.completed_at), ran))
    rows.append(("Last update", _moment(job.updated_at), ""))
    return rows


# --- rows of one tenant: the bases of the feature apps' admins (schedules, webhooks) --


class TenantScopedFormMixin:
    """A form for a row of one tenant. ``scope`` is set per request (``staff_tenant``):
    for tenant staff the form has no tenant field and the row is their tenant's; for
    platform staff (``ALL_TENANTS``) the tenant is chosen among customer tenants."""

    scope = ALL_TENANTS

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.scope is not ALL_TENANTS:
            self.fields.pop("tenant", None)
            self.instance.tenant = self.scope
        elif "tenant" in self.fields:
            self.fields["tenant"].queryset = Tenant.objects.customers()


class TenantOwnedAdmin(CheckedLookupsMixin, admin.ModelAdmin):
    """Rows of one tenant each: tenant staff see and manage their own tenant's, platform
    staff (with the model permissions) every tenant's. Changelist filters from the URL are
    checked as the job list's are (``core.admin_filters``)."""

    def get_queryset(self, request):
        rows = super().get_queryset(request).select_related("tenant")
        return rows.filter(tenant_scope(staff_tenant(request.user)))

    def has_module_permission(self, request):
        return is_tenant_staff(request.user) or super().has_module_permission(request)

    def has_view_permission(self, request, obj=None):
        return is_tenant_staff(request.user) or super().has_view_permission(request, obj)

    def has_add_permission(self, request):
        return is_tenant_staff(request.user) or super().has_add_permission(request)

    def has_change_permission(self, request, obj=None):
        return is_tenant_staff(request.user) or super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return is_tenant_staff(request.user) or super().has_delete_permission(request, obj)

    @admin.display(description="tenant", ordering="tenant__name")
    def tenant_name(self, obj):
        return obj.tenant.name


class TenantScopedFormAdmin(TenantOwnedAdmin):
    """Editable rows of one tenant: the form (a ``TenantScopedFormMixin``) gets the
    user's ``scope``, and tenant staff see no tenant field."""

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        return type(form.__name__, (form,), {"scope": staff_tenant(request.user)})

    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        if staff_tenant(request.user) is not ALL_TENANTS:
            fields = [field for field in fields if field != "tenant"]
        return fields


from jobs import workers_admin  # noqa: E402, F401  (the Workers page)
from jobs.flow import admin as flow_admin  # noqa: E402, F401  (flow control's pages)
