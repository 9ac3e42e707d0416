"""Webhook endpoints and their deliveries in the Django admin: tenant staff manage their
own tenant's, platform staff every tenant's (``jobs.admin``'s tenant-scoped bases); every
save goes through ``webhooks.services``; deliveries are read-only."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import ActionLocation
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
# Test messages sent by one click (each a synchronous POST within JOBS_WEBHOOK_TIMEOUT),
# and redeliveries queued by one click.
TEST_SENDS_PER_CLICK = 5
REDELIVERIES_PER_CLICK = 1000


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

    def __init__(self, *args, **kwargs):
        """A saved endpoint's secret is never shown again: the field is empty, says how the
        secret ends, and left empty keeps it."""
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            field = self.fields["secret"]
            field.required = False
            field.widget = forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"})
            field.help_text = (
                f"Saved (ending …{self.instance.secret[-4:]}). Leave empty to keep it, or "
                "enter a new whsec_ secret to replace it."
            )
            self.initial["secret"] = ""

    def clean_secret(self):
        return self.cleaned_data["secret"] or self.instance.secret

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
    actions = ["send_test"]

    def save_model(self, request, obj, form, change):
        services.endpoint_save(obj)

    @admin.action(description="Send a test message to the selected endpoints")
    def send_test(self, request, queryset):
        """A signed test POST to each selected endpoint (``services.endpoint_send_test``),
        at most ``TEST_SENDS_PER_CLICK`` per click; each result is a message."""
        for endpoint in queryset.select_related("tenant")[:TEST_SENDS_PER_CLICK]:
            outcome = services.endpoint_send_test(tenant=endpoint.tenant, endpoint_id=endpoint.pk)
            level = messages.SUCCESS if outcome.startswith("answered 2") else messages.WARNING
            self.message_user(request, f"{endpoint.url}: {outcome}", level)

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

    actions = ["redeliver"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_redeliver_permission(self, request):
        return self.has_view_permission(request)

    @admin.action(
        description="Redeliver selected deliveries",
        permissions=["redeliver"],
        location=[ActionLocation.CHANGE_LIST, ActionLocation.CHANGE_FORM],
    )
    def redeliver(self, request, queryset):
        """A new delivery job for each selected delivery (``services.delivery_redeliver``),
        at most ``REDELIVERIES_PER_CLICK`` per click."""
        count = 0
        for delivery in queryset.select_related("tenant")[:REDELIVERIES_PER_CLICK]:
            services.delivery_redeliver(tenant=delivery.tenant, delivery_id=delivery.pk)
            count += 1
        self.message_user(request, f"{count} delivery(ies) queued again.", messages.SUCCESS)

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
