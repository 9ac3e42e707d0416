"""Who may do what: every "is this staff / platform staff" predicate of the project.

Superusers and staff without a tenant are *platform staff*: they see every tenant. Staff
who belong to a tenant are confined to it, whatever model permissions they hold.
"""


class _AllTenants:
    """The type of ``ALL_TENANTS``; it has one instance."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "ALL_TENANTS"

    def __bool__(self) -> bool:
        raise TypeError("ALL_TENANTS has no truth value: compare it with `is`")

    def __reduce__(self):  # copies and pickles are the one instance
        return "ALL_TENANTS"


# The scope "every tenant", passed as ``tenant=`` by code acting for platform staff and
# operators. Scoped reads and writes refuse None, so a forgotten tenant is an error, never
# platform-wide access; ``tenant or …`` is an error too (no truth value).
ALL_TENANTS = _AllTenants()


def is_platform_staff(user) -> bool:
    """Superusers and staff without a tenant."""
    return user.is_active and user.is_staff and (user.is_superuser or user.tenant_id is None)


class PlatformStaffOnlyMixin:
    """A ModelAdmin hidden from, and closed to, staff who belong to a tenant."""

    def has_module_permission(self, request):
        return is_platform_staff(request.user) and super().has_module_permission(request)

    def has_view_permission(self, request, obj=None):
        return is_platform_staff(request.user) and super().has_view_permission(request, obj)

    def has_add_permission(self, request, *args):
        return is_platform_staff(request.user) and super().has_add_permission(request, *args)

    def has_change_permission(self, request, obj=None):
        return is_platform_staff(request.user) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return is_platform_staff(request.user) and super().has_delete_permission(request, obj)


class ReadOnlyAdminMixin:
    """A ModelAdmin (or inline) no one adds to, changes or deletes through, whatever their
    permissions; who may view it is the admin's own rule. An admin that allows one change (a
    staff action, a delete of a finished row) overrides that one method."""

    def has_add_permission(self, request, *args):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class StaffReadOnlyMixin(ReadOnlyAdminMixin):
    """A ModelAdmin that staff read and nobody edits: tenant staff see it (their querysets
    are scoped by the admin itself) beside users with the view permission."""

    def has_module_permission(self, request):
        return is_tenant_staff(request.user) or super().has_module_permission(request)

    def has_view_permission(self, request, obj=None):
        return is_tenant_staff(request.user) or super().has_view_permission(request, obj)


def staff_tenant(user):
    """The tenant a staff user is confined to, or ``ALL_TENANTS`` for platform-wide access.

    Superusers and platform staff (no tenant) are platform-wide; a staff user who belongs
    to a tenant is confined to it, even if given broader model permissions. Never None.
    """
    if user.is_superuser or user.tenant_id is None:
        return ALL_TENANTS
    return user.tenant


def admin_tenant_is_active(user) -> bool:
    """False for staff confined to a tenant (``staff_tenant``) that is inactive."""
    tenant = staff_tenant(user)
    return tenant is ALL_TENANTS or tenant.is_active


def is_tenant_staff(user) -> bool:
    """Active staff who belong to a tenant: they may view and operate that tenant's jobs
    without model permissions, and see nothing else in the admin."""
    return user.is_active and user.is_staff and staff_tenant(user) is not ALL_TENANTS
