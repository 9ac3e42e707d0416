"""Tenants and their hostnames in the admin (public host), for platform staff only.

Creating a tenant creates its PostgreSQL schema (migrated) and its primary domain in one
transaction. Tenants are deactivated, never deleted here: deletion would cascade to their
jobs and leave their schema behind. Changes save through the model so that cached host
resolutions are invalidated (``tenants.resolution``).
"""

import re

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from accounts.roles import PlatformStaffOnlyMixin
from core.admin_filters import CheckedLookupsMixin
from tenants.models import Domain, Tenant, normalize_origin

# Schema names are identifiers in SQL, tokens and logs: keep them plain.
_SCHEMA_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)


def _clean_hostname(value: str) -> str:
    hostname = value.strip().lower()
    if not _HOSTNAME.match(hostname):
        raise ValidationError("Enter a hostname such as acme.example.com (no scheme or port).")
    return hostname


class PlanFormMixin:
    """The tenant's plan as a choice among ``settings.JOBS_PLANS`` (read here, not through
    ``jobs.flow.limits``: tenants sit below the engine), or blank for JOBS_DEFAULT_PLAN."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        choices = [("", f"default ({settings.JOBS_DEFAULT_PLAN})")]
        choices += [(plan, plan) for plan in settings.JOBS_PLANS]
        if self.instance.plan and self.instance.plan not in settings.JOBS_PLANS:
            choices.append((self.instance.plan, f"{self.instance.plan} (no longer configured)"))
        self.fields["plan"] = forms.ChoiceField(
            choices=choices,
            required=False,
            help_text="Sets the figures of the plan limits of flow control (JOBS_PLANS).",
        )


class TenantCreationForm(PlanFormMixin, forms.ModelForm):
    primary_domain = forms.CharField(
        max_length=253, help_text="The tenant's hostname, e.g. acme.example.com."
    )

    class Meta:
        model = Tenant
        fields = ["schema_name", "name", "plan", "is_active"]
        help_texts = {
            "schema_name": "Lowercase letters, digits and underscores; fixed once created."
        }

    def clean_schema_name(self):
        schema_name = self.cleaned_data["schema_name"]
        if not _SCHEMA_NAME.match(schema_name) or schema_name.startswith("pg_"):
            raise ValidationError(
                "Use lowercase letters, digits and underscores, starting with a letter."
            )
        return schema_name

    def clean_primary_domain(self):
        hostname = _clean_hostname(self.cleaned_data["primary_domain"])
        if Domain.objects.filter(domain=hostname).exists():
            raise ValidationError("This hostname already belongs to a tenant.")
        return hostname


class AllowedOriginsField(forms.CharField):
    """One origin per line; each normalised (``tenants.models.normalize_origin``), blank
    lines and duplicates dropped, every bad line named in the error."""

    widget = forms.Textarea(attrs={"rows": 4})

    def prepare_value(self, value):
        return "\n".join(value) if isinstance(value, list) else value

    def to_python(self, value):
        origins, errors = [], []
        for line in (value or "").splitlines():
            if not line.strip():
                continue
            try:
                origin = normalize_origin(line)
            except ValidationError as exc:
                errors.extend(exc.messages)
                continue
            if origin not in origins:
                origins.append(origin)
        if errors:
            raise ValidationError(errors)
        return origins


class TenantChangeForm(PlanFormMixin, forms.ModelForm):
    allowed_origins = AllowedOriginsField(
        required=False,
        help_text="One per line, e.g. https://app.example.com: pages served from these "
        "origins may call this tenant's API (CORS).",
    )

    class Meta:
        model = Tenant
        fields = ["name", "plan", "is_active", "allowed_origins"]


class DomainForm(forms.ModelForm):
    class Meta:
        model = Domain
        fields = ["domain", "is_primary"]

    def clean_domain(self):
        return _clean_hostname(self.cleaned_data["domain"])


class DomainInline(admin.TabularInline):
    model = Domain
    form = DomainForm
    extra = 0


@admin.register(Tenant)
class TenantAdmin(PlatformStaffOnlyMixin, CheckedLookupsMixin, admin.ModelAdmin):
    list_display = ["schema_name", "name", "plan", "primary_domain", "is_active", "created_at"]
    list_filter = ["is_active", "plan"]
    search_fields = ["schema_name", "name", "domains__domain"]
    actions = ["deactivate", "activate"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("domains")

    @admin.display(description="primary domain")
    def primary_domain(self, tenant):
        return next((d.domain for d in tenant.domains.all() if d.is_primary), "—")

    def get_form(self, request, obj=None, **kwargs):
        kwargs["form"] = TenantCreationForm if obj is None else TenantChangeForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["schema_name", "name", "primary_domain", "plan", "is_active"]
        return ["schema_name", "name", "plan", "is_active", "allowed_origins", "created_at"]

    def get_inlines(self, request, obj):
        return [DomainInline] if obj is not None else []

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        # A tenant's schema name is its identity (schema, token claim): fixed once created.
        # The platform's own tenant is never deactivated: the admin lives on it.
        fixed = ["schema_name", "created_at"]
        return [*fixed, "is_active"] if obj.is_platform else fixed

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        """A new tenant: create its schema (``Tenant.save``) and its primary domain, inside
        the admin's transaction, so a failure leaves neither."""
        super().save_model(request, obj, form, change)
        if not change:
            Domain.objects.create(
                domain=form.cleaned_data["primary_domain"], tenant=obj, is_primary=True
            )

    def _set_active(self, request, queryset, active: bool) -> None:
        changed = 0
        for tenant in queryset.filter(is_active=not active):
            if tenant.is_platform:
                self.message_user(
                    request, "The platform tenant is never deactivated.", messages.WARNING
                )
                continue
            tenant.is_active = active
            tenant.save(update_fields=["is_active"])  # post_save drops cached hosts
            changed += 1
        state = "activated" if active else "deactivated"
        self.message_user(request, f"{changed} tenant(s) {state}.", messages.SUCCESS)

    @admin.action(
        description="Deactivate selected tenants (their hosts answer 403)",
        permissions=["change"],
    )
    def deactivate(self, request, queryset):
        self._set_active(request, queryset, False)

    @admin.action(description="Activate selected tenants", permissions=["change"])
    def activate(self, request, queryset):
        self._set_active(request, queryset, True)
