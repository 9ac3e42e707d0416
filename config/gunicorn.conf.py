"""gunicorn settings: ``gunicorn -c config/gunicorn.conf.py`` (docs/operations.md "Production").

Serves ``config.wsgi`` unless an app is given on the command line (the ASGI entry point:
``gunicorn -c config/gunicorn.conf.py -k config.asgi_server.UvicornWorker config.asgi:application``,
whose ``timeout_keep_alive`` is ``keepalive`` below: it also bounds a request head).
This file configures the server process, not Django, so it reads its few knobs from the
environment itself; every one has a default that suits a container behind a proxy.
"""

import importlib
import os
import shutil
import tempfile
from pathlib import Path


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the CPUs this container may use
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


wsgi_app = "config.wsgi:application"
bind = [os.environ.get("BIND", f"0.0.0.0:{os.environ.get('PORT', '8000')}")]

# Sync workers: 2 per CPU + 1, capped, because each keeps a database connection open
# (CONN_MAX_AGE) and a large machine would otherwise exhaust max_connections. Set
# WEB_CONCURRENCY to choose.
workers = int(os.environ.get("WEB_CONCURRENCY", min(2 * _cpus() + 1, 16)))
# Above 1, gthread workers. At most half of a worker's threads wait on long polls at once
# (post_worker_init): with the default of 1, long polls answer at once, as plain polls.
threads = int(os.environ.get("GUNICORN_THREADS", "1"))

# A thread is silent while it serves a long poll that reached it (up to
# JOBS_LONGPOLL_MAX_WAIT, 30 s): the timeout must stay above that.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = 5

# Recycle workers now and then, so a slow leak never becomes an outage.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "2000"))
max_requests_jitter = max_requests // 10

# Only these peers may say, with X-Forwarded-Proto, that the client used HTTPS (Django then
# sees request.is_secure() and skips the HTTPS redirect). The load balancer's addresses;
# never "*" unless nothing but the proxy can reach this port.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")

# Request-line and header bounds (gunicorn's defaults, stated): larger requests get 400
# before Django runs. Bodies are bounded by MAX_REQUEST_BODY_BYTES in the app.
limit_request_line = 4094
limit_request_fields = 100
limit_request_field_size = 8190

# The app writes one JSON line per request (core.request_log.RequestLogMiddleware), with
# tenant, user and request id, so gunicorn's own access log is off; errors go to stderr.
accesslog = None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
proc_name = "tenant-jobs"

# gunicorn 24+'s control socket (a local admin interface) is not used: one per host and
# user, it would also collide between several servers on one machine.
control_socket_disable = True

# Heartbeat files on a RAM disk where there is one (a container's /tmp may be overlayfs).
# gunicorn creates them with mkstemp and unlinks them at once, so a shared dir is safe.
_SHM = "/dev/shm"  # noqa: S108
if Path(_SHM).is_dir():
    worker_tmp_dir = _SHM

# Prometheus multiprocess mode (core.metrics): the workers write their samples to files in
# PROMETHEUS_MULTIPROC_DIR and the one answering /metrics sums them. Unset, each server
# gets its own directory (on the RAM disk where there is one, removed at exit). Either is
# made empty when the server starts, and a dead worker's live gauges are dropped
# (mark_process_dead). One directory per server: two servers sharing one would add up each
# other's numbers and erase them at start.
_OWN_METRICS_DIR = "PROMETHEUS_MULTIPROC_DIR" not in os.environ
_METRICS_DIR = os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR",
    str(
        Path(_SHM if Path(_SHM).is_dir() else tempfile.gettempdir()) / f"tenant-jobs-{os.getpid()}"
    ),
)


def on_starting(server):
    """Before the workers fork: an empty metrics directory, so counters start at zero."""
    directory = Path(_METRICS_DIR)
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()


def post_worker_init(worker):
    """Once the app is loaded: it learns how many threads this worker has, so that waiting
    long polls never take the ones plain requests need (jobs.api.realtime.waits). Named by
    its dotted path, as settings name middleware: configuration imports no app module."""
    waits = importlib.import_module("jobs.api.realtime.waits")
    waits.limit_thread_waits(worker.cfg.threads)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    """The directory this file chose is removed with the server (a set one is kept)."""
    if _OWN_METRICS_DIR:
        shutil.rmtree(_METRICS_DIR, ignore_errors=True)
