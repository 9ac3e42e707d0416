"""Liveness and readiness probes, served without authentication on every host.

``HealthCheckMiddleware`` answers them before tenant routing: host lookup needs the
database (or Redis), so a probe routed like other requests would fail with a 500 during
the very outage it must report, and load balancers probe by IP, which is no tenant's host.
"""

import logging

from django.conf import settings
from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import JsonResponse
from django.utils.module_loading import import_string

logger = logging.getLogger(__name__)

# Once every migration is applied it stays so for the life of the process (new code means
# a new process), so the migration graph is loaded until the first success only.
_migrations_checked = False


def healthz(request):
    """The process is alive and serving requests (checks nothing else)."""
    return JsonResponse({"status": "ok"})


def _check_database() -> str | None:
    global _migrations_checked
    connection = connections[DEFAULT_DB_ALIAS]
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    if _migrations_checked:
        return None
    executor = MigrationExecutor(connection)
    if executor.migration_plan(executor.loader.graph.leaf_nodes()):
        return "unapplied migrations"
    _migrations_checked = True
    return None


def _check_redis() -> None:
    cache.get("readyz-probe")


def _configured_checks() -> dict[str, str | None]:
    """``READINESS_CHECKS``: each named check's result, None when ready. An app's check is
    named there by dotted path (``core`` imports no app); one that raises is
    ``"unreachable"``."""
    results = {}
    for name, path in settings.READINESS_CHECKS.items():
        try:
            results[name] = import_string(path)()
        except Exception:
            logger.warning("readiness: %s check failed", name, exc_info=True)
            results[name] = "unreachable"
    return results


def readyz(request):
    """Ready to serve: database and Redis reachable, no unapplied migrations, and every
    check of ``READINESS_CHECKS`` passing (with ``READYZ_REQUIRE_WORKER``: a live worker).

    200 ``{"status": "ok", "checks": {...}}``, else 503 with ``"unavailable"`` and, per
    dependency, ``"unreachable"``, ``"unapplied migrations"`` or the check's reason;
    never error details.
    """
    checks = {}
    try:
        problem = _check_database()
        checks["database"] = problem or "ok"
    except Exception:
        logger.warning("readiness: database unreachable", exc_info=True)
        checks["database"] = "unreachable"
    try:
        _check_redis()
        checks["redis"] = "ok"
    except Exception:
        logger.warning("readiness: redis unreachable", exc_info=True)
        checks["redis"] = "unreachable"
    for name, problem in _configured_checks().items():
        checks[name] = problem or "ok"
    ready = all(value == "ok" for value in checks.values())
    return JsonResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503
    )


_PROBES = {"/healthz": healthz, "/readyz": readyz}


class HealthCheckMiddleware:
    """Serves ``GET``/``HEAD`` ``/healthz`` and ``/readyz`` on any host, before tenant
    routing and without sessions or authentication."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        probe = _PROBES.get(request.path_info)
        if probe is not None and request.method in ("GET", "HEAD"):
            return probe(request)
        return self.get_response(request)
