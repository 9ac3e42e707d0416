"""Schedules in the Django admin: tenant staff manage their own tenant's, platform staff
every tenant's (``jobs.admin``'s tenant-scoped bases); every save goes through
``schedules.services``."""

from datetime import UTC
from zoneinfo import available_timezones

from cronsim import CronSimError
from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.forms.fields import InvalidJSONInput
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from rest_framework.exceptions import ParseError

from core.clock import db_now
from core.limits import parse_json
from jobs.admin import TenantScopedFormAdmin, TenantScopedFormMixin
from jobs.registry import job_types
from schedules import services
from schedules.cron import next_ticks
from schedules.models import Schedule

NEXT_RUNS = 5


class BoundedJSONFormField(forms.JSONField):
    """A JSON form field that parses as the API does (``core.limits.parse_json``): NaN,
    Infinity, NUL, over-long numbers and deep nesting are a form error, not a 500."""

    def to_python(self, value):
        if self.disabled or value in self.empty_values or not isinstance(value, str):
            return super().to_python(value)
        try:
            return parse_json(value)
        except ParseError as exc:
            raise ValidationError(f"Not valid JSON: {exc.detail}", code="invalid") from None

    def bound_data(self, data, initial):
        if self.disabled or data is None:
            return super().bound_data(data, initial)
        try:
            return parse_json(data)
        except ParseError:
            return InvalidJSONInput(data)


class ScheduleForm(TenantScopedFormMixin, forms.ModelForm):
    """A schedule, validated by ``schedules.services.schedule_validate`` (name, type,
    payload, cron, timezone, the tenant's schedule count); its tenant as
    ``TenantScopedFormMixin`` says."""

    type = forms.ChoiceField(choices=lambda: [(name, name) for name in sorted(job_types())])
    payload = BoundedJSONFormField(required=False)
    timezone = forms.ChoiceField(
        choices=lambda: [(zone, zone) for zone in sorted(available_timezones())],
        initial="UTC",
        help_text="The IANA timezone the cron expression is read in.",
    )

    class Meta:
        model = Schedule
        fields = ["tenant", "name", "type", "payload", "cron", "timezone", "enabled"]

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        schedule = Schedule(
            pk=self.instance.pk,
            tenant=data.get("tenant", self.scope),
            **{field: data.get(field) for field in ("name", "type", "payload", "cron")},
            timezone=data["timezone"],
        )
        try:
            services.schedule_validate(schedule)
        except ValidationError as exc:
            self.add_error(None, exc)
        else:
            data["payload"] = schedule.payload
        return data


@admin.register(Schedule)
class ScheduleAdmin(TenantScopedFormAdmin):
    """Schedules, with the actions enable, disable and run now (``schedules.services``) and
    the next five runs on each schedule's page."""

    form = ScheduleForm
    list_display = [
        "name",
        "tenant_name",
        "type",
        "cron",
        "timezone",
        "enabled",
        "next_run_at",
        "last_tick_at",
        "last_job_link",
    ]
    list_filter = ["enabled"]
    search_fields = ["name"]
    ordering = ["tenant__name", "name"]
    readonly_fields = ["next_runs", "next_run_at", "last_tick_at", "last_job_link"]
    actions = ["enable_schedules", "disable_schedules", "run_schedules_now"]

    def save_model(self, request, obj, form, change):
        services.schedule_save(obj)

    @admin.display(description=f"next {NEXT_RUNS} runs")
    def next_runs(self, obj):
        """The next ticks, in the schedule's timezone and in UTC; none while disabled."""
        if obj is None or obj.pk is None:
            return "— (shown once saved)"
        if not obj.enabled:
            return "none: disabled"
        try:
            ticks = next_ticks(obj, db_now(), NEXT_RUNS)
        except (CronSimError, ValueError, StopIteration):
            return "none: the cron expression is not valid"
        return format_html(
            '<ol class="schedule-next-runs">{}</ol>',
            format_html_join(
                "",
                "<li>{} {} <small>({} UTC)</small></li>",
                (
                    (f"{tick:%Y-%m-%d %H:%M:%S}", obj.timezone, f"{tick.astimezone(UTC):%H:%M:%S}")
                    for tick in ticks
                ),
            ),
        )

    def _each(self, request, queryset, change, done_text: str) -> None:
        """``change(schedule)`` for each selected schedule (already scoped to the user's
        tenant by ``get_queryset``); a refusal (a schedule no longer valid) is reported."""
        done, refused = 0, []
        for schedule in queryset.select_related("tenant"):
            try:
                change(schedule)
            except ValidationError as exc:
                refused.append(f"{schedule.name}: {'; '.join(exc.messages)}")
            else:
                done += 1
        if done:
            self.message_user(request, f"{done} schedule(s) {done_text}.", messages.SUCCESS)
        for refusal in refused:
            self.message_user(request, refusal, messages.ERROR)

    @admin.action(description="Enable selected schedules (counting from now)")
    def enable_schedules(self, request, queryset):
        self._each(
            request,
            queryset,
            lambda s: services.schedule_set_enabled(tenant=s.tenant, name=s.name, enabled=True),
            "enabled",
        )

    @admin.action(description="Disable selected schedules")
    def disable_schedules(self, request, queryset):
        self._each(
            request,
            queryset,
            lambda s: services.schedule_set_enabled(tenant=s.tenant, name=s.name, enabled=False),
            "disabled",
        )

    @admin.action(description="Run selected schedules now (one job each)")
    def run_schedules_now(self, request, queryset):
        self._each(
            request,
            queryset,
            lambda s: services.schedule_run_now(
                tenant=s.tenant, name=s.name, created_by=request.user
            ),
            "run now: a job enqueued for each",
        )

    @admin.display(description="last job")
    def last_job_link(self, obj):
        if obj.last_job_id is None:
            return "—"
        url = reverse("admin:jobs_job_change", args=[obj.last_job_id])
        return format_html('<a href="{}">{}</a>', url, str(obj.last_job_id)[:8])
