"""The job queue in the Django admin (public host): a read-only view with staff actions.

Staff-only code: querysets here span tenants for superusers and platform staff
(``ALL_TENANTS``), and are confined to their own tenant for staff who belong to one
(``accounts.roles.staff_tenant``), in the list, filters, search, detail pages opened by URL
and actions alike. Every read comes from ``jobs.selectors`` and every change of a job goes
through ``jobs.services``; nothing here sets a field.

Built for a table of millions of rows: no full COUNT per page (``CappedCountPaginator``),
tenant and creator joined in the page query, ordering by ``-created_at`` only, filters
whose choices need no query (except the tenant list). Filter values from the URL are
checked before the query (``core.admin_filters``, ``TenantFilter``): a foreign one is
Django's "invalid filter" redirect, never a 500.
"""

import json
from datetime import UTC, datetime, timedelta

from django.contrib import admin, messages
from django.contrib.admin import ActionLocation
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join

from accounts.roles import ALL_TENANTS, is_tenant_staff, staff_tenant
from core.admin_filters import CheckedLookupsMixin
from jobs import selectors, services
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


class CappedCountPaginator(Paginator):
    """Counts at most ``count_cap`` rows (``SELECT count(*) FROM (… LIMIT cap+1)``) instead
    of the whole filtered table; ``capped`` tells the template to show "10000+"."""

    count_cap = 10_000

    @cached_property
    def count(self) -> int:
        counted = self.object_list.order_by().values("pk")[: self.count_cap + 1].count()
        self.capped = counted > self.count_cap
        return min(counted, self.count_cap)


class TypeFilter(admin.SimpleListFilter):
    """Registered job types (from settings, no query)."""

    title = "type"
    parameter_name = "type"

    def lookups(self, request, model_admin):
        return [(name, name) for name in sorted(job_types())]

    def queryset(self, request, queryset):
        return queryset.filter(type=self.value()) if self.value() else queryset


class InternalFilter(admin.SimpleListFilter):
    """Internal jobs (webhook deliveries) are listed only under "internal: yes", which only
    platform staff are offered; a tenant's staff never reach them (``jobs_for_staff``)."""

    title = "internal"
    parameter_name = "internal"

    def lookups(self, request, model_admin):
        return [("yes", "yes")] if staff_tenant(request.user) is ALL_TENANTS else []

    def choices(self, changelist):
        default, *others = super().choices(changelist)
        yield {**default, "display": "no"}  # not "All": the default leaves them out
        yield from others

    def queryset(self, request, queryset):
        if self.value() not in (None, "yes"):
            raise IncorrectLookupParameters(f"Not a choice: {self.value()!r}")
        return queryset.filter(internal=self.value() == "yes")


class TenantFilter(admin.SimpleListFilter):
    """Tenants the user may see: every customer tenant, or only the user's own."""

    title = "tenant"
    parameter_name = "tenant"

    def lookups(self, request, model_admin):
        own = staff_tenant(request.user)
        if own is not ALL_TENANTS:
            return [(str(own.pk), own.name)]
        tenants = Tenant.objects.customers().values_list("pk", "name")
        return [(str(pk), name) for pk, name in tenants]

    def queryset(self, request, queryset):
        """A value that is not an id in ASCII digits (``abc``, ``1.5``, ``²``) is an invalid
        filter: Django redirects to ``?e=1``."""
        value = self.value()
        if not value:
            return queryset
        if not (value.isascii() and value.isdigit()):
            raise IncorrectLookupParameters(f"Not a tenant id: {value!r}")
        return queryset.filter(tenant_id=value)


class JobAttemptInline(admin.TabularInline):
    """The job page's attempt history, oldest first: read-only, seen by whoever may see
    the job (the job admin's queryset already scoped it to the staff's tenant)."""

    model = JobAttempt
    fields = ["number", "worker_id", "started_at", "finished_at", "outcome", "error", "traceback"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name = "attempt"

    def has_view_permission(self, request, obj=None):
        return is_tenant_staff(request.user) or super().has_view_permission(request, obj)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class JobLogInline(JobAttemptInline):
    """The job page's log: what its handler logged (``jobs.worker.logs``), oldest first,
    at most ``JOBS_LOG_MAX_LINES``; read-only under the attempt history's rules."""

    model = JobLogLine
    fields = ["attempt", "logged_at", "level", "logger", "message"]
    readonly_fields = fields
    verbose_name = "log line"
    verbose_name_plural = "log (what the handler logged)"


@admin.register(Job)
class JobAdmin(CheckedLookupsMixin, admin.ModelAdmin):
    list_display = [
        "short_id",
        "tenant_name",
        "type",
        "status_badge",
        "progress_display",
        "attempts_display",
        "created",
        "started",
        "completed",
        "duration",
    ]
    list_display_links = ["short_id"]
    list_filter = [
        "status",
        TypeFilter,
        TenantFilter,
        InternalFilter,
        ("created_at", admin.DateFieldListFilter),
    ]
    list_select_related = ["tenant", "created_by"]
    list_per_page = 50
    sortable_by = ["created"]
    ordering = ["-created_at", "-id"]
    paginator = CappedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # facet counts would count the whole table
    search_fields = ["type"]  # shows the search box; get_search_results does the matching
    search_help_text = "A job id (or its first 8 characters), an exact job type, or a username."
    actions = ["retry_jobs", "cancel_jobs", "run_jobs_now"]
    inlines = [JobAttemptInline, JobLogInline]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "id",
                    "tenant",
                    "type",
                    "status_badge",
                    "queue",
                    "priority",
                    "created_by",
                    "idempotency_key",
                ]
            },
        ),
        (
            "Execution",
            {
                "fields": [
                    "attempts_display",
                    "progress_display",
                    "progress_message",
                    "worker_id",
                    "lease_expires_at",
                    "cancel_requested",
                    "timeout_seconds",
                ]
            },
        ),
        ("Timeline", {"fields": ["timeline"]}),
        (
            "Input and output",
            {"fields": ["payload_pretty", "result_pretty", "error", "traceback_pretty"]},
        ),
    ]
    readonly_fields = [field for _, options in fieldsets for field in options["fields"]]

    # --- scoping and permissions ------------------------------------------------------

    def get_queryset(self, request):
        return selectors.jobs_for_staff(tenant=staff_tenant(request.user))

    def has_module_permission(self, request):
        return is_tenant_staff(request.user) or super().has_module_permission(request)

    def has_view_permission(self, request, obj=None):
        return is_tenant_staff(request.user) or super().has_view_permission(request, obj)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # no free edits: state changes only through the operations below

    def has_delete_permission(self, request, obj=None):
        if obj is not None and not obj.is_final:
            return False
        return super().has_delete_permission(request, obj)

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

    # --- search ---------------------------------------------------------------------------

    def get_search_results(self, request, queryset, search_term):
        found = selectors.job_search(
            tenant=staff_tenant(request.user), jobs=queryset, text=search_term
        )
        return found, False

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
        return format_html('<span class="job-status job-status-{}">{}</span>', job.status, label)

    @admin.display(description="progress")
    def progress_display(self, job):
        return "—" if job.progress is None else f"{job.progress}%"

    @admin.display(description="attempts")
    def attempts_display(self, job):
        return f"{job.attempts}/{job.max_attempts}"

    @admin.display(description="created (UTC)", ordering="created_at")
    def created(self, job):
        return _moment(job.created_at)

    @admin.display(description="started")
    def started(self, job):
        return _moment(job.started_at, same_day_as=job.created_at)

    @admin.display(description="completed")
    def completed(self, job):
        return _moment(job.completed_at, same_day_as=job.created_at)

    @admin.display(description="duration")
    def duration(self, job):
        if job.started_at is None:
            return "—"
        end = job.completed_at or (timezone.now() if job.status == JobStatus.PROCESSING else None)
        return human_duration(end - job.started_at) if end else "—"

    @admin.display(description="payload")
    def payload_pretty(self, job):
        return _pretty_json(job.payload)

    @admin.display(description="result")
    def result_pretty(self, job):
        return "—" if job.result is None else _pretty_json(job.result)

    @admin.display(description="traceback (staff only)")
    def traceback_pretty(self, job):
        if not job.error_traceback:
            return "—"
        return format_html('<pre class="job-json">{}</pre>', job.error_traceback)

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

    def changelist_view(self, request, extra_context=None):
        summary = selectors.queue_summary(tenant=staff_tenant(request.user))
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
        }
        return super().changelist_view(request, extra_context)

    # --- operations: on selected jobs in the list, or on one job from its page -----------

    def _operate(self, request, queryset, operation, done_text: str) -> None:
        """Apply ``operation`` (a ``jobs.services`` call taking ``tenant`` and ``job_id``) to
        at most ``ACTION_LIMIT`` jobs of ``queryset``, which ``get_queryset`` has already
        scoped to the user's tenant; the service is scoped again by that tenant. Jobs in
        another state are skipped."""
        tenant = staff_tenant(request.user)
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
                f"Only the newest {ACTION_LIMIT} selected jobs were processed; run it again.",
                messages.WARNING,
            )

    @admin.action(
        description="Retry",
        description_plural="Retry selected failed or cancelled jobs",
        permissions=["operate"],
        location=BOTH_LOCATIONS,
    )
    def retry_jobs(self, request, queryset):
        self._operate(request, queryset, services.job_retry, "retried: pending again")

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
        )

    @admin.action(
        description="Run now",
        description_plural="Run selected scheduled jobs now",
        permissions=["operate"],
        location=BOTH_LOCATIONS,
    )
    def run_jobs_now(self, request, queryset):
        self._operate(request, queryset, services.job_run_now, "due now")


def _moment(moment: datetime | None, *, same_day_as: datetime | None = None) -> str:
    """A compact UTC time for list columns: the time only when on ``same_day_as``'s date."""
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
    """``(event, time, note)`` rows of the job's life so far."""

    def at(moment: datetime | None) -> str:
        return moment.isoformat(sep=" ", timespec="milliseconds") if moment else "—"

    rows = [("Created", at(job.created_at), "")]
    if job.run_at and job.run_at > job.created_at:
        rows.append(
            (
                "Due",
                at(job.run_at),
                f"{human_duration(job.run_at - job.created_at)} after creation",
            )
        )
    if job.started_at:
        due = max(job.created_at, job.run_at or job.created_at)
        rows.append(
            (
                "Started",
                at(job.started_at),
                f"attempt {job.attempts}, waited {human_duration(job.started_at - due)}",
            )
        )
    if job.status == JobStatus.PROCESSING and job.lease_expires_at:
        rows.append(("Lease expires", at(job.lease_expires_at), job.worker_id))
    if job.completed_at:
        ran = f"ran {human_duration(job.completed_at - job.started_at)}" if job.started_at else ""
        rows.append((job.get_status_display(), at(job.completed_at), ran))
    rows.append(("Last update", at(job.updated_at), ""))
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
