"""Log lines: JSON by default, readable text with ``LOG_FORMAT=text`` (``make run``'s
default); the formatter is chosen by the setting in a real process."""

import json
import logging
import re
import subprocess
import sys

import pytest

from config.logging import JsonFormatter, TextFormatter
from tests.config.test_make_run import dev_server_command
from tests.helpers import ROOT, subprocess_env

# A child that configures Django from the environment and writes one line with fields.
CHILD = """
import logging, django
django.setup()
logging.getLogger("api.access").info(
    "request", extra={"method": "GET", "path": "/api/jobs", "status": 200, "tenant": None}
)
"""


def _record(message="request", exc_info=None, **fields) -> logging.LogRecord:
    record = logging.makeLogRecord(
        {"name": "api.access", "levelno": logging.INFO, "levelname": "INFO", "msg": message}
    )
    record.exc_info = exc_info
    record.__dict__.update(fields)
    return record


def test_a_text_line_reads_time_level_logger_message_then_the_fields():
    line = TextFormatter().format(
        _record(method="GET", path="/api/jobs", status=200, duration_ms=3.25, tenant="acme")
    )
    assert re.fullmatch(
        r"\d\d:\d\d:\d\d\.\d{3} INFO    api\.access request "
        r"method=GET path=/api/jobs status=200 duration_ms=3\.25 tenant=acme",
        line,
    ), line


def test_text_fields_without_a_value_are_left_out_and_others_stay_one_word():
    line = TextFormatter().format(
        _record(user_id=None, error="demo failure", query="a=b", empty="", quote='say "hi"')
    )
    assert "user_id" not in line
    assert line.endswith(r'error="demo failure" query="a=b" empty="" quote="say \"hi\""'), line


def test_a_text_traceback_follows_its_line():
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        line = TextFormatter().format(_record("job handler raised", exc_info=sys.exc_info()))
    first, *traceback = line.splitlines()
    assert first.endswith("INFO    api.access job handler raised")
    assert traceback[0] == "Traceback (most recent call last):"
    assert traceback[-1] == "RuntimeError: boom"


def test_json_and_text_carry_the_same_fields():
    record = _record(method="GET", status=200)
    entry = json.loads(JsonFormatter().format(record))
    assert (entry["method"], entry["status"], entry["message"]) == ("GET", 200, "request")
    assert TextFormatter().format(record).endswith("request method=GET status=200")


def _child_stderr(**env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", CHILD],
        cwd=ROOT,
        env=subprocess_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("log_format", "expected"),
    [
        (None, r'\{"time": .*"message": "request", "method": "GET".*"tenant": null\}'),
        ("text", r"\d\d:\d\d:\d\d\.\d{3} INFO    api\.access request method=GET "
                 r"path=/api/jobs status=200"),
    ],
)  # fmt: skip
def test_log_format_chooses_the_lines_a_process_writes(log_format, expected):
    run = _child_stderr(LOG_FORMAT=log_format or "")
    assert run.returncode == 0, run.stderr
    assert re.fullmatch(expected, run.stderr.strip()), run.stderr


def test_an_unknown_log_format_stops_the_process_naming_the_variable():
    run = _child_stderr(LOG_FORMAT="xml")
    assert run.returncode == 1
    assert "LOG_FORMAT='xml' is not valid: expected one of json, text" in run.stderr


def test_make_run_logs_text():
    assert dev_server_command(8000)[0]["LOG_FORMAT"] == "text"
