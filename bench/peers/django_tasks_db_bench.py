"""django-tasks-db side of the worker benchmark. Runs in its own virtualenv (bench/run.py
creates it under .data/bench/) as a one-file Django project; never imported by the project.

    python django_tasks_db_bench.py DATABASE_NAME migrate|enqueue N|latency K SPACING
    python django_tasks_db_bench.py DATABASE_NAME db_worker [options]   (any manage command)
"""

import os
import sys
import time

import django
from django.conf import settings

DATABASE = sys.argv[1]

settings.configure(
    DEBUG=False,
    SECRET_KEY="bench-only",  # noqa: S106 - a throwaway app on loopback
    USE_TZ=True,
    INSTALLED_APPS=["django_tasks_db"],
    DATABASES={
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": DATABASE,
            "USER": os.environ.get("PGUSER", "postgres"),
            "HOST": os.environ.get("PGHOST", "127.0.0.1"),
            "PORT": os.environ.get("PGPORT", "5432"),
            "PASSWORD": os.environ.get("PGPASSWORD", ""),
        }
    },
    TASKS={"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}},
    LOGGING_CONFIG=None,
)
django.setup()

from django.tasks import task  # noqa: E402


@task
def noop():
    return None


def main() -> None:
    from django.core.management import call_command

    command, args = sys.argv[2], sys.argv[3:]
    if command == "migrate":
        call_command("migrate", verbosity=0)
    elif command == "enqueue":
        for _ in range(int(args[0])):
            noop.enqueue()
    elif command == "latency":
        count, spacing = int(args[0]), float(args[1])
        for _ in range(count):
            noop.enqueue()
            time.sleep(spacing)
    else:
        call_command(command, *args)


if __name__ == "__main__":
    main()
