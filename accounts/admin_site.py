"""The admin site of the platform host, with this service's rules for who gets in.

- **Log-in is limited like the API's.** The form spends the budgets of
  ``POST /api/auth/token`` (``accounts.throttling``: same settings, same keys), so there is
  one budget per client IP and one per username across the API and the admin. Both are
  spent before the password is hashed (a successful log-in gives the username's unit
  back); a spent budget answers the login page with the message, status 429 and
  ``Retry-After``. Every refused log-in keeps its unit.
- **Staff of an inactive tenant are refused** at log-in (the same error as a wrong
  password) and on every admin page, even with a session opened before the tenant was
  deactivated. Platform staff (no tenant, or superusers) are unaffected.
- **"View on site"** (``r/<content_type>/<id>/``) loads any object of any model, so it is
  for platform staff only: anyone else gets 404 before anything is looked up.

Installed as the default admin site by ``accounts.admin_apps.AdminConfig``.
"""

import math

from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.decorators import login_not_required
from django.contrib.contenttypes import views as contenttype_views
from django.core.exceptions import ValidationError
from django.http import Http404
from django.urls import path

from accounts import throttling
from accounts.roles import ALL_TENANTS, admin_tenant_is_active, staff_tenant
from core.problems import RateLimited


def _in_words(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


class LimitedAdminAuthenticationForm(AdminAuthenticationForm):
    """The admin login form, spending the API login's budgets (see the module docstring).

    ``retry_after`` is the seconds to wait once a budget is spent, else None.
    """

    retry_after: int | None = None

    def clean(self):
        username = self.cleaned_data.get("username")
        try:
            throttling.check_client_ip(self.request)
            reservation = None if username is None else throttling.reserve_username(username)
        except RateLimited as exc:
            self.retry_after = max(1, math.ceil(exc.wait))
            raise ValidationError(
                "Too many log-in attempts. Try again in %(wait)s.",
                code="rate_limited",
                params={"wait": _in_words(self.retry_after)},
            ) from None
        cleaned_data = super().clean()  # a refused log-in raises: its unit stays taken
        if reservation is not None:
            reservation.refund()
        return cleaned_data

    def confirm_login_allowed(self, user):
        super().confirm_login_allowed(user)
        if not admin_tenant_is_active(user):
            raise self.get_invalid_login_error()


class TenantJobsAdminSite(admin.AdminSite):
    """Django's admin site with the log-in limits, the inactive-tenant refusal and a
    platform-staff-only "view on site" (see the module docstring)."""

    login_form = LimitedAdminAuthenticationForm

    def has_permission(self, request):
        return super().has_permission(request) and admin_tenant_is_active(request.user)

    @login_not_required
    def login(self, request, extra_context=None):
        """Django's login view; a form refused for a spent budget answers 429."""
        response = super().login(request, extra_context)
        form = (getattr(response, "context_data", None) or {}).get("form")
        retry_after = getattr(form, "retry_after", None)
        if retry_after is not None:
            response.status_code = 429
            response["Retry-After"] = str(retry_after)
        return response

    def get_urls(self):
        urls = [url for url in super().get_urls() if getattr(url, "name", None) != "view_on_site"]
        view_on_site = path(
            "r/<int:content_type_id>/<path:object_id>/",
            self.admin_view(self.view_on_site),
            name="view_on_site",
        )
        return [view_on_site, *urls]

    def view_on_site(self, request, content_type_id, object_id):
        """Django's shortcut to an object's page, for platform staff only."""
        if staff_tenant(request.user) is not ALL_TENANTS:
            raise Http404
        return contenttype_views.shortcut(request, content_type_id, object_id)
