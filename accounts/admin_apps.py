"""Django's admin app with this service's admin site (``accounts.admin_site``) as the default
``admin.site``, so every ``ModelAdmin`` registered there gets its access rules."""

from django.contrib.admin.apps import AdminConfig as DjangoAdminConfig


class AdminConfig(DjangoAdminConfig):
    default_site = "accounts.admin_site.TenantJobsAdminSite"
