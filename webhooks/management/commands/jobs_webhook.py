"""``manage.py jobs_webhook add|list|remove --tenant T …``: a tenant's completion webhook
endpoints (``webhooks.services``). An invalid endpoint is refused with each error, and nothing
is stored; secrets are never printed. ``list`` prints a table with a header (``-`` where a
value is missing, times in UTC), or "no webhooks"."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from core.tables import table, utc
from jobs.models import FINAL_STATUSES
from tenants.commands import refusal, tenant_named
from webhooks import selectors, services
from webhooks.models import WebhookEndpoint


class Command(BaseCommand):
    help = "Add, list or remove a tenant's completion webhook endpoints."

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True)
        add = actions.add_parser("add", help="Add an endpoint.")
        add.add_argument("--url", required=True)
        add.add_argument("--secret", required=True, help="whsec_ then base64 of 24-64 bytes.")
        add.add_argument(
            "--statuses",
            default=",".join(sorted(FINAL_STATUSES)),
            help="Comma-separated final statuses to deliver (default: all of them).",
        )
        actions.add_parser("list", help="List the tenant's endpoints.")
        remove = actions.add_parser("remove", help="Remove an endpoint and its deliveries.")
        remove.add_argument("id", type=int)
        for sub in actions.choices.values():
            sub.add_argument("--tenant", required=True, help="The tenant's schema name.")

    def handle(self, *args, **options):
        tenant = tenant_named(options["tenant"])
        if options["action"] == "add":
            statuses = [name.strip() for name in options["statuses"].split(",") if name.strip()]
            endpoint = WebhookEndpoint(
                tenant=tenant, url=options["url"], secret=options["secret"], statuses=statuses
            )
            try:
                services.endpoint_save(endpoint)
            except ValidationError as exc:
                raise refusal(exc) from None
            self.stdout.write(f"added {endpoint.pk} {endpoint.url}")
        elif options["action"] == "list":
            self._list(tenant)
        elif not services.endpoint_remove(tenant=tenant, endpoint_id=options["id"]):
            raise CommandError(f"no endpoint {options['id']} in {tenant.schema_name}")
        else:
            self.stdout.write(f"removed {options['id']}")

    def _list(self, tenant):
        endpoints = list(selectors.endpoints_for(tenant=tenant).order_by("pk"))
        if not endpoints:
            self.stdout.write("no webhooks")
            return
        rows = [
            [
                endpoint.pk,
                endpoint.url,
                ",".join(endpoint.statuses),
                utc(endpoint.created_at),
            ]
            for endpoint in endpoints
        ]
        self.stdout.write("\n".join(table(LIST_HEADER, rows)))


LIST_HEADER = ["id", "url", "statuses", "created (UTC)"]
