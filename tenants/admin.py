from django.contrib import admin

from tenants.models import Domain, Tenant


class DomainInline(admin.TabularInline):
    model = Domain
    extra = 1


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["schema_name", "name", "is_active", "created_at"]
    list_filter = ["is_active"]
    search_fields = ["schema_name", "name"]
    inlines = [DomainInline]

    def get_readonly_fields(self, request, obj=None):
        # A tenant's schema name is its identity (schema, token claim): fixed once created.
        return ["schema_name", "created_at"] if obj else ["created_at"]
