"""Flow control in the Django admin (public host), registered from ``jobs.admin``.

- **Limit budgets** (the Limits page): each budget's use per scope, running units against
  the concurrency, rate tokens left against the burst, the rate, waiting and throttled
  jobs, and the pauses. Platform staff see every budget (``?tenant=<id>``: one tenant's and
  the global ones); staff of a tenant see their tenant's and the global ones, and another
  tenant's id is a 404.
- **Pauses**: adding one pauses a queue, a job type or a tenant, deleting one (or the
  action "Resume selected") resumes it. **Limit overrides**: one tenant's figures of a
  tenant or plan limit, added, changed and deleted. **Flow audit entries**: read only.
  These three are for platform staff only; every change goes through
  ``jobs.flow.services``, which validates it and writes its audit entry in the same
  transaction. Nothing here writes a row itself.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import ActionLocation
from django.core.exceptions import ValidationError
from django.db.models import CharField, OuterRef, Subquery
from django.db.models.functions import Cast
from django.http import Http404
from django.template.response import TemplateResponse
from django.urls import path

from accounts.roles import (
    ALL_TENANTS,
    PlatformStaffOnlyMixin,
    StaffReadOnlyMixin,
    is_platform_staff,
    staff_tenant,
)
from core.admin_filters import CheckedLookupsMixin
from jobs.flow import selectors, services
from jobs.flow.models import FlowAuditEntry, LimitBudget, LimitOverride, Pause, PauseScope
from tenants.models import Tenant


def _actor(request) -> str:
    return request.user.get_username()


@admin.register(LimitBudget)
class LimitsAdmin(StaffReadOnlyMixin, admin.ModelAdmin):
    """The Limits page: a read-only view of ``jobs.flow.selectors`` in place of the
    changelist; a budget has no page of its own."""

    def get_urls(self):
        view = self.admin_site.admin_view(self.changelist_view)
        info = self.opts.app_label, self.opts.model_name
        return [path("", view, name="{}_{}_changelist".format(*info))]

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_permission(request):
            raise Http404
        scope = self._scope(request)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Limits",
            "subtitle": scope.schema_name if scope is not ALL_TENANTS else None,
            "uses": selectors.limit_usage(tenant=scope),
            "pauses": selectors.pauses(tenant=scope),
            "platform_staff": is_platform_staff(request.user),
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/jobs/flow/limits.html", context)

    @staticmethod
    def _scope(request):
        """The user's tenant, or with ``?tenant=<id>`` one tenant the user may see (404 for
        any other, and for anything but an id)."""
        own = staff_tenant(request.user)
        wanted = request.GET.get("tenant")
        if not wanted:
            return own
        if not (wanted.isascii() and wanted.isdigit()):
            raise Http404
        if own is not ALL_TENANTS:
            if int(wanted) != own.pk:
                raise Http404
            return own
        tenant = Tenant.objects.customers().filter(pk=int(wanted)).first()
        if tenant is None:
            raise Http404
        return tenant


class PauseForm(forms.ModelForm):
    class Meta:
        model = Pause
        fields = ["scope", "target", "reason"]
        help_texts = {
            "target": "A queue's name, a registered job type's name, or a tenant's schema name."
        }

    def clean(self):
        cleaned = super().clean()
        if "scope" in cleaned and "target" in cleaned:
            try:
                target, label = services.pause_target(cleaned["scope"], cleaned["target"])
            except ValidationError as exc:
                self.add_error("target", exc)
            else:
                cleaned["target"] = target
                if Pause.objects.filter(scope=cleaned["scope"], target=target).exists():
                    self.add_error("target", f"{cleaned['scope']} {label} is paused already.")
        return cleaned

    def validate_unique(self):
        """Checked in ``clean`` with a plain message (the target as stored)."""


@admin.register(Pause)
class PauseAdmin(PlatformStaffOnlyMixin, CheckedLookupsMixin, admin.ModelAdmin):
    """Add = pause, delete = resume (``jobs.flow.services``); a pause is never edited."""

    form = PauseForm
    list_display = ["scope", "target_label", "reason", "paused_by", "paused_at"]
    list_filter = ["scope"]
    actions = ["resume_pauses"]

    def get_queryset(self, request):
        schema = Tenant.objects.annotate(id_text=Cast("pk", CharField())).filter(
            id_text=OuterRef("target")
        )
        return (
            super()
            .get_queryset(request)
            .annotate(tenant_schema=Subquery(schema.values("schema_name")[:1]))
        )

    @admin.display(description="target", ordering="target")
    def target_label(self, pause):
        if pause.scope == PauseScope.TENANT:
            return getattr(pause, "tenant_schema", None) or pause.target
        return pause.target

    def has_change_permission(self, request, obj=None):
        return False

    def get_actions(self, request, action_location=ActionLocation.CHANGE_LIST):
        actions = super().get_actions(request, action_location)
        actions.pop("delete_selected", None)  # "Resume selected" says what it does
        return actions

    def save_model(self, request, obj, form, change):
        pause, _ = services.pause(
            scope=obj.scope, target=obj.target, actor=_actor(request), reason=obj.reason
        )
        obj.pk, obj.paused_by, obj.paused_at = pause.pk, pause.paused_by, pause.paused_at

    def delete_model(self, request, obj):
        services.resume(scope=obj.scope, target=obj.target, actor=_actor(request))

    def delete_queryset(self, request, queryset):
        for pause in queryset:
            self.delete_model(request, pause)

    @admin.action(
        description="Resume selected (their pending jobs may start)", permissions=["delete"]
    )
    def resume_pauses(self, request, queryset):
        resumed = sum(
            services.resume(scope=pause.scope, target=pause.target, actor=_actor(request))
            for pause in queryset
        )
        self.message_user(request, f"{resumed} resumed.", messages.SUCCESS)


class LimitOverrideForm(forms.ModelForm):
    """An override's figures as three fields; checked by ``services.override_figures``."""

    limit = forms.ChoiceField(help_text="A tenant or plan limit of JOBS_LIMITS.")
    concurrency = forms.IntegerField(min_value=1, required=False, help_text="Units running.")
    rate = forms.CharField(required=False, help_text="Units started: 5/s, 300/m or 100/h.")
    burst = forms.IntegerField(min_value=1, required=False, help_text="With a rate.")

    class Meta:
        model = LimitOverride
        fields = ["tenant", "limit", "concurrency", "rate", "burst", "reason"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "limit" in self.fields:
            self.fields["limit"].choices = [(n, n) for n in services.overridable_limits()]
        if "tenant" in self.fields:
            self.fields["tenant"].queryset = Tenant.objects.customers()
        if self.instance.pk:
            for key in ("concurrency", "rate", "burst"):
                self.initial.setdefault(key, self.instance.figures.get(key))

    def clean(self):
        cleaned = super().clean()
        figures = {
            key: cleaned[key] for key in ("concurrency", "rate", "burst") if cleaned.get(key)
        }
        limit = cleaned.get("limit", self.instance.limit)
        tenant = cleaned.get("tenant")
        if not self.instance.pk and tenant and limit:
            if LimitOverride.objects.filter(tenant=tenant, limit=limit).exists():
                self.add_error(None, f"{tenant.schema_name} has an override of {limit}: change it.")
        if limit:
            try:
                services.override_figures(limit, figures)
            except ValidationError as exc:
                self.add_error(None, exc)
        cleaned["figures"] = figures
        return cleaned

    def validate_unique(self):
        """Checked in ``clean`` with a plain message."""


@admin.register(LimitOverride)
class LimitOverrideAdmin(PlatformStaffOnlyMixin, CheckedLookupsMixin, admin.ModelAdmin):
    """One tenant's figures of a limit, set and cleared through ``jobs.flow.services``."""

    form = LimitOverrideForm
    list_display = ["limit", "tenant_name", "figures_text", "reason", "changed_by", "changed_at"]
    list_filter = ["limit"]
    list_select_related = ["tenant"]

    def get_readonly_fields(self, request, obj=None):
        # Another tenant or limit is another override: delete this one and add that.
        return ["tenant", "limit", "changed_by", "changed_at"] if obj else []

    @admin.display(description="tenant", ordering="tenant__schema_name")
    def tenant_name(self, override):
        return override.tenant.schema_name

    @admin.display(description="figures")
    def figures_text(self, override):
        return ", ".join(f"{key} {value}" for key, value in override.figures.items())

    def save_model(self, request, obj, form, change):
        saved = services.override_set(
            tenant=obj.tenant,
            limit=obj.limit,
            figures=form.cleaned_data["figures"],
            actor=_actor(request),
            reason=obj.reason,
        )
        obj.pk, obj.figures = saved.pk, saved.figures

    def delete_model(self, request, obj):
        services.override_clear(tenant=obj.tenant, limit=obj.limit, actor=_actor(request))

    def delete_queryset(self, request, queryset):
        for override in queryset.select_related("tenant"):
            self.delete_model(request, override)


@admin.register(FlowAuditEntry)
class FlowAuditEntryAdmin(PlatformStaffOnlyMixin, CheckedLookupsMixin, admin.ModelAdmin):
    """Who paused, resumed or overrode what, and when: never written or changed here."""

    list_display = ["at", "actor", "action", "target", "detail"]
    list_filter = ["action"]
    search_fields = ["actor", "target"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
