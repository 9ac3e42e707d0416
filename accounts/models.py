"""Users live in the public schema; each belongs to one tenant, or to none (platform staff)."""

from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    """A person who signs in. ``tenant`` is null only for platform staff.

    Usernames are unique across the platform, so the admin login on the public host is
    unambiguous; the API still only accepts a user on their own tenant's host.
    """

    tenant = models.ForeignKey(
        "tenants.Tenant",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="users",
        help_text="Empty only for platform staff.",
    )

    class Meta:
        db_table = "accounts_user"
