"""Users in the admin (public host): platform staff manage every user and their tenant.

Staff who belong to a tenant never see this page, whatever permissions they hold: they
could otherwise promote themselves or reach other tenants' users.
"""

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from rest_framework_simplejwt.token_blacklist import admin as blacklist_admin
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from accounts.models import User
from accounts.roles import PlatformStaffOnlyMixin
from core.admin_filters import CheckedLookupsMixin


@admin.register(User)
class UserAdmin(PlatformStaffOnlyMixin, CheckedLookupsMixin, BaseUserAdmin):
    list_display = ["username", "email", "tenant", "is_staff", "is_superuser", "is_active"]
    list_filter = ["tenant", "is_staff", "is_superuser", "is_active"]
    list_select_related = ["tenant"]
    search_fields = ["username", "email", "first_name", "last_name", "tenant__schema_name"]
    fieldsets = (
        *BaseUserAdmin.fieldsets,
        (
            "Tenant",
            {
                "fields": ("tenant",),
                "description": "The tenant this user signs in to. Staff with a tenant see "
                "only that tenant's jobs in the admin; leave it empty for platform staff.",
            },
        ),
    )
    add_fieldsets = (*BaseUserAdmin.add_fieldsets, ("Tenant", {"fields": ("tenant",)}))


# simplejwt's blacklist app registers its token lists for any staff with model permissions;
# they name every tenant's users, so only platform staff may see them.
for _model, _base in (
    (OutstandingToken, blacklist_admin.OutstandingTokenAdmin),
    (BlacklistedToken, blacklist_admin.BlacklistedTokenAdmin),
):
    admin.site.unregister(_model)
    admin.site.register(
        _model, type(_base.__name__, (PlatformStaffOnlyMixin, CheckedLookupsMixin, _base), {})
    )
