"""Webhook endpoints and their deliveries in the Django admin: tenant staff manage their
own tenant's, platform staff every tenant's (``jobs.admin``'s tenant-scoped bases); every
save goes through ``webhooks.services``; deliveries are read-only."""

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from jobs.admin import (
    CappedCountPaginator,
    TenantOwnedAdmin,
    TenantScopedFormAdmin,
    TenantScopedFormMixin,
)
from jobs.models import FINAL_STATUSES
from webhooks import services
from webhooks.models import WebhookDelivery, WebhookEndpoint

# Deliveries shown on an endpoint's page, newest first; the delivery list has them all.
RECENT_DELIVERIES = 20


class WebhookEndpointForm(TenantScopedFormMixin, forms.ModelForm):
    """An endpoint, validated by ``webhooks.services.endpoint_validate`` (URL, secret,
    statuses, the tenant's endpoint count); its tenant as ``TenantScopedFormMixin`` says."""

    statuses = forms.MultipleChoiceField(
        choices=[(status, status) for status in sorted(FINAL_STATUSES)],
        widget=forms.CheckboxSelectMultiple,
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["tenant", "url", "secret", "statuses"]

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        endpoint = WebhookEndpoint(
            pk=self.instance.pk,
            tenant=data.get("tenant", self.scope),
            url=data["url"],
            secret=data["secret"],
            statuses=data["statuses"],
        )
        try:
            services.endpoint_validate(endpoint)
        except ValidationError as exc:
            self.add_error(None, exc)
        return data


def _attempts_summary(delivery) -> str:
    return (
        ", ".join(
            str(attempt["status"]) if attempt["status"] is not None else attempt["error"]
            for attempt in delivery.attempts
        )
        or "—"
    )


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(TenantScopedFormAdmin):
    form = WebhookEndpointForm
    list_display = ["url", "tenant_name", "statuses", "created_at"]
    ordering = ["tenant__name", "url"]
    readonly_fields = ["recent_deliveries"]

    def save_model(self, request, obj, form, change):
        services.endpoint_save(obj)

    @admin.display(description=f"latest {RECENT_DELIVERIES} deliveries")
    def recent_deliveries(self, obj):
        if obj is None or obj.pk is None:
            return "—"
        recent = obj.deliveries.order_by("-created_at")[:RECENT_DELIVERIES]
        return (
            format_html_join(
                "",
                '<div><a href="{}">{}</a> job {} {}: {}</div>',
                (
                    (
                        reverse("admin:webhooks_webhookdelivery_change", args=[delivery.pk]),
                        str(delivery),
                        delivery.job_id,
                        delivery.job_status,
                        _attempts_summary(delivery),
                    )
                    for delivery in recent
                ),
            )
            or "—"
        )


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(TenantOwnedAdmin):
    """Read-only: each delivery's attempts, with response status and body excerpt."""

    list_display = ["webhook_id", "tenant_name", "endpoint", "job_id", "job_status"]
    list_display += ["created_at", "delivered_at", "attempts_display"]
    list_select_related = ["tenant", "endpoint"]
    ordering = ["-created_at"]
    paginator = CappedCountPaginator
    show_full_result_count = False
    fields = ["endpoint", "job_id", "job_status", "created_at", "delivered_at", "attempt_rows"]
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="webhook-id")
    def webhook_id(self, obj):
        return str(obj)

    @admin.display(description="attempts")
    def attempts_display(self, obj):
        return _attempts_summary(obj)

    @admin.display(description="attempts")
    def attempt_rows(self, obj):
        return format_html(
            "<table><tr><th>attempt</th><th>at</th><th>status</th><th>response</th>"
            "<th>error</th></tr>{}</table>",
            format_html_join(
                "",
                "<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
                (
                    (a["attempt"], a["at"], a["status"] or "—", a["body"], a["error"])
                    for a in obj.attempts
                ),
            ),
        )
