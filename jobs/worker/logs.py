"""What a handler logs while it runs, kept with its job (``JobLogLine``).

Every record logged in the handler's context (its thread, and the event loop an ``async
def`` handler runs on) by any logger, at a level the logging configuration lets through
(``LOG_LEVEL``, INFO by default), is caught by ``core.log_context.CaptureHandler`` and
added to the run's ``RunLog``; threads the handler starts itself are not followed. Only
the message is kept (``record.getMessage()``), never a traceback: the tenant reads it.
The outcome writer stores the lines of every run it records in one statement
(``jobs.services.job_logs_keep``), so a line costs no round trip of its own.
"""

import dataclasses
import logging
import threading
from datetime import UTC, datetime

from django.conf import settings


@dataclasses.dataclass(frozen=True)
class LogLine:
    logged_at: datetime
    level: str
    logger: str
    message: str


class RunLog:
    """The lines of one run: the first ``JOBS_LOG_MAX_LINES``, each message cut to
    ``JOBS_LOG_LINE_CHARS`` characters (NUL, which PostgreSQL text cannot hold, replaced).
    Called with each record (``core.log_context.capture``); thread-safe."""

    def __init__(self):
        self.max_lines = settings.JOBS_LOG_MAX_LINES
        self.line_chars = settings.JOBS_LOG_LINE_CHARS
        self.lines: list[LogLine] = []
        self._lock = threading.Lock()

    def __call__(self, record: logging.LogRecord) -> None:
        if len(self.lines) >= self.max_lines:
            return
        try:
            message = record.getMessage()
        except Exception:  # a handler's bad format arguments: logging reports it elsewhere
            message = str(record.msg)
        line = LogLine(
            logged_at=datetime.fromtimestamp(record.created, tz=UTC),
            level=record.levelname[:10],
            logger=record.name[:100],
            message=message[: self.line_chars].replace("\x00", "\ufffd"),
        )
        with self._lock:
            if len(self.lines) < self.max_lines:
                self.lines.append(line)
