"""The Workers page (the worker registry in the Django admin), registered from
``jobs.admin``: the live workers (``selectors.workers_live``), each with its host, pid,
pools, the jobs it holds (links to their pages), version, uptime and last beat. Read only,
and for platform staff only: a worker serves every tenant, so its row names other
tenants' jobs, and tenant staff neither see the page nor reach it by URL."""

from django.conf import settings
from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from accounts.roles import PlatformStaffOnlyMixin, ReadOnlyAdminMixin
from core.tables import utc
from jobs import selectors
from jobs.admin import human_duration
from jobs.models import WorkerProcess

# Jobs linked per worker; more are counted ("+3 more").
SHOWN_JOBS = 10


@admin.register(WorkerProcess)
class WorkerProcessAdmin(PlatformStaffOnlyMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "worker_id",
        "host",
        "pid",
        "pools_text",
        "jobs_held",
        "version",
        "started",
        "last_beat",
    ]
    list_display_links = None
    sortable_by = []
    show_full_result_count = False

    def get_queryset(self, request):
        return selectors.workers_live()

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "title": "Live workers",
            "subtitle": f"last beat within {settings.JOBS_WORKER_EXPIRY:g} s",
        }
        return super().changelist_view(request, extra_context)

    @admin.display(description="pools (queues:threads)")
    def pools_text(self, worker):
        return worker.pools_text

    @admin.display(description="jobs held")
    def jobs_held(self, worker):
        ids = worker.running_job_ids
        if not ids:
            return "0"
        links = format_html_join(
            " ",
            '<a href="{}">{}</a>',
            (
                (reverse("admin:jobs_job_change", args=[job_id]), str(job_id)[:8])
                for job_id in ids[:SHOWN_JOBS]
            ),
        )
        more = f" +{len(ids) - SHOWN_JOBS} more" if len(ids) > SHOWN_JOBS else ""
        return format_html("{}: {}{}", len(ids), links, more)

    @admin.display(description="started (UTC)")
    def started(self, worker):
        return format_html(
            "{}<br><small>up {}</small>",
            utc(worker.started_at),
            human_duration(worker.uptime),
        )

    @admin.display(description="last beat")
    def last_beat(self, worker):
        return f"{human_duration(worker.since_beat)} ago"
