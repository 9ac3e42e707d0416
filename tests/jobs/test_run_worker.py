"""``manage.py run_worker``: bad arguments are refused with a clear message and a non-zero
exit before anything starts; ``--reload`` (DEBUG only) restarts it when a Python file it
imported changes."""

import os
import re
import signal
import subprocess
import sys
import time

import pytest
from django.core.management import CommandError, call_command

from tests.helpers import ROOT, start_manage, subprocess_env

pytestmark = pytest.mark.django_db(transaction=True)

FAST = {"JOBS_HEARTBEAT_SECONDS": "0.2", "JOBS_POLL_INTERVAL": "0.2"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--concurrency", "0"], "--concurrency: 0 is below 1"),
        (["--concurrency", "-3"], "--concurrency: -3 is below 1"),
        (["--concurrency", "four"], "--concurrency: 'four' is not a whole number"),
        (["--max-jobs", "0"], "--max-jobs: 0 is below 1"),
        (["--grace", "-1"], "--grace: -1 is not a number of seconds >= 0"),
        (["--grace", "soon"], "--grace: 'soon' is not a number of seconds"),
        (["--queues", "reports:"], "--queues: queue 'reports'"),
        (["--queues", "reports:two"], "--queues: queue 'reports'"),
        (["--queues", "default,,reports"], "--queues: queue '' is empty"),
        (["--queues", "a,a"], "--queues: queue 'a' is empty or named twice"),
        (["--reload"], "--reload is for development: set DEBUG=1"),
    ],
)
def test_bad_arguments_are_refused_with_the_argument_named(args, message):
    with pytest.raises(CommandError, match="^(Error: argument )?" + re.escape(message)):
        call_command("run_worker", *args, "--burst")


def test_the_command_line_exits_non_zero_with_the_message():
    done = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "run_worker", "--concurrency", "0"],
        cwd=ROOT,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "argument --concurrency: 0 is below 1" in done.stderr


@pytest.mark.parametrize("args", [["--burst"], ["--max-jobs", "5"]])
def test_reload_refuses_a_worker_that_would_exit_by_itself(settings, args):
    settings.DEBUG = True
    with pytest.raises(CommandError, match="drop --burst and --max-jobs"):
        call_command("run_worker", "--reload", *args)


def test_reload_restarts_the_worker_when_a_python_file_changes(tmp_path):
    module = tmp_path / "reload_settings.py"
    module.write_text("from tests.settings import *  # noqa: F403\n\nDEBUG = True\n")
    worker = start_manage(
        "run_worker",
        "--reload",
        "--grace",
        "1",
        DJANGO_SETTINGS_MODULE="reload_settings",
        PYTHONPATH=str(tmp_path),
        **FAST,
    )
    try:
        _wait_for_log(worker, "worker started", 1)
        # The reloader's first look at the file may come after the worker started: change it
        # (a newer mtime each time) until the worker stops for the reload.
        edits = 0
        while not _logged(worker, "worker stopped", 1):
            edits += 1
            module.write_text(module.read_text() + f"# edit {edits}\n")
            os.utime(module, (time.time() + edits, time.time() + edits))
            assert edits < 120, worker.log_path.read_text()
            time.sleep(0.5)
        _wait_for_log(worker, "worker started", 2)
        assert worker.poll() is None
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)


def _logged(process, message: str, count: int) -> bool:
    log = process.log_path.read_text()
    assert process.poll() is None, log
    return log.count(f'"message": "{message}"') >= count


def _wait_for_log(process, message: str, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _logged(process, message, count):
            return
        time.sleep(0.1)
    raise AssertionError(f"{message!r} not logged {count} times:\n{process.log_path.read_text()}")
