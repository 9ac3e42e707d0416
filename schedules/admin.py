"""Schedules in the Django admin: tenant staff manage their own tenant's, platform staff
every tenant's (``jobs.admin``'s tenant-scoped bases); every save goes through
``schedules.services``."""

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.forms.fields import InvalidJSONInput
from django.urls import reverse
from django.utils.html import format_html
from rest_framework.exceptions import ParseError

from core.limits import parse_json
from jobs.admin import TenantScopedFormAdmin, TenantScopedFormMixin
from jobs.registry import job_types
from schedules import services
from schedules.models import Schedule


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
    readonly_fields = ["next_run_at", "last_tick_at", "last_job_link"]

    def save_model(self, request, obj, form, change):
        services.schedule_save(obj)

    @admin.display(description="last job")
    def last_job_link(self, obj):
        if obj.last_job_id is None:
            return "—"
        url = reverse("admin:jobs_job_change", args=[obj.last_job_id])
        return format_html('<a href="{}">{}</a>', url, str(obj.last_job_id)[:8])
