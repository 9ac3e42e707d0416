"""Liveness and readiness probes, served without authentication."""

import logging

from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import JsonResponse

logger = logging.getLogger(__name__)


def healthz(request):
    """The process is alive and serving requests (checks nothing else)."""
    return JsonResponse({"status": "ok"})


def _check_database() -> str | None:
    connection = connections[DEFAULT_DB_ALIAS]
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    executor = MigrationExecutor(connection)
    if executor.migration_plan(executor.loader.graph.leaf_nodes()):
        return "unapplied migrations"
    return None


def _check_redis() -> None:
    cache.get("readyz-probe")


def readyz(request):
    """Ready to serve: database and Redis reachable, no unapplied migrations.

    503 with a JSON reason otherwise; the reason names the failing dependency only.
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
    ready = all(value == "ok" for value in checks.values())
    return JsonResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503
    )
