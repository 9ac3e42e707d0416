"""Profile of warm polls served in one process (pyinstrument), for bench/RESULTS.md.

    python bench/profile_poll.py JOB_ID ETAG TOKEN [N] [--min-percent P] [--project-only]

Run with the benchmark's environment (bench/run.py's ``project_env``: DATABASE_URL on
``bench_tenant_jobs``, after ``bench/run.py`` seeded it; bench/project_tool.py
``poll-target`` gives JOB_ID, ETAG and TOKEN). ``make bench`` runs it as its ``profile``
part. Serves N (default 2000) warm polls of the job (200, then N with ``If-None-Match``:
304) through Django's WSGI handler with the real PostgreSQL and Redis, the
request_started/finished signals as a server sends them, and prints per case the wall and
CPU microseconds per request (both under the profiler), the CPU microseconds of as many
requests served before without the profiler, the load average, and pyinstrument's call tree, as
shares of the case's total time, of the frames of at least P% (default 2).
``--project-only`` (make bench's summary) keeps the project's own frames only: library and
standard-library frames are taken out of the tree, their children moved up to the nearest
project frame, whose share (inclusive) is unchanged; what the libraries spend directly under
a project frame shows as its ``[self]`` line.
"""

import argparse
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
from pyinstrument import Profiler, processors  # noqa: E402
from pyinstrument.frame_ops import delete_frame_from_tree  # noqa: E402
from pyinstrument.renderers import ConsoleRenderer  # noqa: E402

from tests.jobs.api.round_trips import (  # noqa: E402
    wait_for_etag_copies,
    wait_for_invalidations,
)

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


def project_frames_only(frame, options):
    """A pyinstrument processor: library and standard-library frames replaced by their
    children, so that the tree shows the project's frames only."""
    if frame is None:
        return None
    for child in list(frame.children):
        project_frames_only(child, options)
        if not child.is_synthetic and not child.is_application_code:
            delete_frame_from_tree(child, replace_with="children")
    return frame


def renderer(min_percent: float, project_only: bool) -> ConsoleRenderer:
    console = ConsoleRenderer(
        unicode=True,
        color=False,
        time="percent_of_total",
        processor_options={"filter_threshold": min_percent / 100},
    )
    if project_only:
        console.processors = [
            processors.remove_importlib,
            processors.remove_tracebackhide,
            project_frames_only,
            processors.merge_consecutive_self_time,
            processors.aggregate_repeated_calls,
            processors.remove_irrelevant_nodes,
            processors.remove_unnecessary_self_time_nodes,
            processors.remove_first_pyinstrument_frames_processor,
        ]  # pyinstrument's default list, library grouping out (none are left to group)
    return console


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("job_id")
    parser.add_argument("etag")
    parser.add_argument("token")
    parser.add_argument("count", nargs="?", type=int, default=2000)
    parser.add_argument("--min-percent", type=float, default=2.0)
    parser.add_argument("--project-only", action="store_true")
    options = parser.parse_args()
    job_id, etag, token, count = options.job_id, options.etag, options.token, options.count
    handler = WSGIHandler()
    path = f"/api/jobs/{job_id}"
    for case, validator in (("full poll, 200", None), ("conditional poll, 304", etag)):
        serve(handler, path, token, validator, 20)
        wait_for_invalidations()
        wait_for_etag_copies()
        serve(handler, path, token, validator, 200)  # warm
        cpu_started = time.process_time()
        serve(handler, path, token, validator, count)
        bare_cpu = (time.process_time() - cpu_started) / count
        profiler = Profiler(interval=0.0002)
        profiler.start()
        per_request = serve(handler, path, token, validator, count)
        session = profiler.stop()
        cpu = session.cpu_time / count
        print(
            f"#### {case}: {per_request * 1e6:,.0f} µs per request, CPU {cpu * 1e6:,.0f} µs, "
            f"in one process under the profiler ({count:,} requests); CPU without the "
            f"profiler {bare_cpu * 1e6:,.0f} µs, load average {os.getloadavg()[0]:.2f}\n"
        )
        print("```")
        tree = profiler.output(renderer(options.min_percent, options.project_only))
        print(tree.strip("\n"))
        print("```\n")


if __name__ == "__main__":
    main()
