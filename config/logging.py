"""Log lines, one per record, with any ``extra=`` fields: JSON objects (``JsonFormatter``,
the default, for log shippers) or readable text (``TextFormatter``, ``LOG_FORMAT=text``,
the default under ``make run``)."""

import json
import logging
from datetime import UTC, datetime

_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def _extra_fields(record: logging.LogRecord) -> dict:
    """The fields a record carries beyond the standard ones (``extra=``, the log context)."""
    return {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(_extra_fields(record))
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def _text_value(value) -> str:
    """A field's value as one word: quoted (JSON string syntax) when it has a space, a
    quote or an ``=``, or is empty, so a line still splits into its fields."""
    text = str(value)
    if text == "" or any(character in text for character in ' "=\n\t'):
        return json.dumps(text)
    return text


class TextFormatter(logging.Formatter):
    """``14:03:07.412 INFO    api.access request method=GET path=/api/jobs status=200 ...``:
    local time, level, logger and message, then each field that has a value as
    ``name=value``; a traceback follows on its own lines. For a development console: the
    production default stays JSON."""

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, tz=UTC).astimezone()
        fields = " ".join(
            f"{name}={_text_value(value)}"
            for name, value in _extra_fields(record).items()
            if value is not None
        )
        line = " ".join(
            part
            for part in (
                f"{moment:%H:%M:%S}.{moment.microsecond // 1000:03d}",
                f"{record.levelname:<7}",
                record.name,
                record.getMessage(),
                fields,
            )
            if part
        )
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line
