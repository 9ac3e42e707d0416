"""Profile of warm polls served in one process (pyinstrument), for bench/RESULTS.md.

    python bench/profile_poll.py JOB_ID ETAG TOKEN [N]

Run with the benchmark's environment (bench/run.py's ``project_env``: DATABASE_URL on
``bench_tenant_jobs``, after ``bench/run.py`` seeded it). Serves N warm polls of the job
(200, then N with ``If-None-Match``: 304) through Django's WSGI handler with the real
PostgreSQL and Redis, the request_started/finished signals as a server sends them, and
prints the microseconds per request and pyinstrument's call tree (frames of at least 2%).
"""

import os
import sys
import time
from io import BytesIO
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django

django.setup()

from django.core.handlers.wsgi import WSGIHandler  # noqa: E402
from pyinstrument import Profiler  # noqa: E402

from tests.polling.round_trips import wait_for_invalidations  # noqa: E402

HOST = "bench.localhost"


def environ(path: str, token: str, etag: str | None) -> dict:
    env = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": HOST,
        "SERVER_PORT": "80",
        "HTTP_HOST": HOST,
        "HTTP_AUTHORIZATION": f"Bearer {token}",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.input": BytesIO(),
        "wsgi.url_scheme": "http",
        "SERVER_PROTOCOL": "HTTP/1.1",
    }
    if etag:
        env["HTTP_IF_NONE_MATCH"] = etag
    return env


def serve(handler, path, token, etag, count: int) -> float:
    """Seconds per request over ``count`` requests."""
    started = time.perf_counter()
    for _ in range(count):
        statuses = []
        response = handler(environ(path, token, etag), lambda s, h, seen=statuses: seen.append(s))
        b"".join(response)
        response.close()  # request_finished, as a WSGI server does
        assert statuses[0][:3] in ("200", "304"), statuses
    return (time.perf_counter() - started) / count


def main() -> None:
    job_id, etag, token = sys.argv[1:4]
    count = int(sys.argv[4]) if len(sys.argv) > 4 else 2000
    handler = WSGIHandler()
    path = f"/api/jobs/{job_id}"
    for case, validator in (("full poll, 200", None), ("conditional poll, 304", etag)):
        serve(handler, path, token, validator, 20)
        wait_for_invalidations()
        serve(handler, path, token, validator, 200)  # warm
        profiler = Profiler(interval=0.0002)
        profiler.start()
        per_request = serve(handler, path, token, validator, count)
        profiler.stop()
        print(f"#### {case}: {per_request * 1e6:,.0f} µs per request in one process\n")
        print("```")
        print(profiler.output_text(unicode=True, color=False, show_all=False, time="percent"))
        print("```\n")


if __name__ == "__main__":
    main()
