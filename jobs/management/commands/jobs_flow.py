"""``manage.py jobs_flow``: flow control for operators (``jobs.flow.services``), audit-logged
as ``cli:<os login>``.

- ``pause --queue Q | --type T | --tenant SCHEMA [--reason R]`` and ``resume ...``: the
  noisy-tenant switch and its kin; pausing twice, or resuming what is not paused, says so
  and changes nothing. A running job is not interrupted.
- ``override --tenant SCHEMA --limit L --concurrency N | --rate 5/s [--burst B] [--reason R]``
  sets one tenant's figures of a tenant or plan limit; ``--clear`` removes them.
- ``status``: each budget's use (running units, rate tokens, waiting and throttled jobs)
  and the pauses.

Bad input is a ``CommandError`` naming the problem, and nothing is changed.
"""

import getpass

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from accounts.roles import ALL_TENANTS
from jobs.flow import services
from jobs.flow.report import status_lines
from tenants.commands import tenant_named


def cli_actor() -> str:
    """Who the audit log names for a change made here."""
    return f"cli:{getpass.getuser()}"


class Command(BaseCommand):
    help = "Pause or resume a queue, job type or tenant, override a tenant's limit, or show use."

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True)
        for name, text in (("pause", "Pause"), ("resume", "Resume")):
            sub = actions.add_parser(name, help=f"{text} a queue, a job type or a tenant.")
            target = sub.add_mutually_exclusive_group(required=True)
            target.add_argument("--queue", help="A queue's name.")
            target.add_argument("--type", help="A registered job type's name.")
            target.add_argument("--tenant", help="A customer tenant's schema name.")
            if name == "pause":
                sub.add_argument("--reason", default="", help="Shown in the admin and the log.")
        actions.add_parser("status", help="Each limit's use, and the pauses.")
        override = actions.add_parser("override", help="Set or clear a tenant's limit figures.")
        override.add_argument("--tenant", required=True, help="A customer tenant's schema name.")
        override.add_argument("--limit", required=True, help="A tenant or plan limit's name.")
        override.add_argument("--concurrency", type=int, help="Units running at most.")
        override.add_argument("--rate", help="Units started per period: 5/s, 300/m, 100/h.")
        override.add_argument("--burst", type=int, help="Units started at once (with --rate).")
        override.add_argument("--reason", default="")
        override.add_argument("--clear", action="store_true", help="Remove the override.")

    def handle(self, *args, **options):
        action = options["action"]
        try:
            if action == "status":
                self.stdout.write("\n".join(status_lines(tenant=ALL_TENANTS)))
            elif action == "override":
                self._override(options)
            else:
                self._pause_or_resume(action, options)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None

    def _pause_or_resume(self, action: str, options: dict) -> None:
        scope = next(scope for scope in ("queue", "type", "tenant") if options[scope])
        target = options[scope]
        if scope == "tenant":
            target = tenant_named(target)
        label = f"{scope} {options[scope]}"
        if action == "pause":
            _, created = services.pause(
                scope=scope, target=target, actor=cli_actor(), reason=options["reason"]
            )
            self.stdout.write(f"paused {label}" if created else f"{label} was already paused")
        elif services.resume(scope=scope, target=target, actor=cli_actor()):
            self.stdout.write(f"resumed {label}")
        else:
            self.stdout.write(f"{label} was not paused")

    def _override(self, options: dict) -> None:
        tenant = tenant_named(options["tenant"])
        limit = options["limit"]
        given = {
            key: options[key]
            for key in ("concurrency", "rate", "burst")
            if options[key] is not None
        }
        if options["clear"]:
            if given:
                raise CommandError("--clear takes no figures")
            if services.override_clear(tenant=tenant, limit=limit, actor=cli_actor()):
                self.stdout.write(f"cleared the override of {limit} for {tenant.schema_name}")
            else:
                self.stdout.write(f"{tenant.schema_name} had no override of {limit}")
            return
        if not given:
            raise CommandError("give --concurrency, --rate (and --burst) or --clear")
        services.override_set(
            tenant=tenant, limit=limit, figures=given, actor=cli_actor(), reason=options["reason"]
        )
        figures = ", ".join(f"{key} {value}" for key, value in given.items())
        self.stdout.write(f"{limit} for {tenant.schema_name}: {figures}")
