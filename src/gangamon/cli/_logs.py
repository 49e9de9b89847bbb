"""Logs: quiet by default (warnings), `-v` for what happens, `-vv` for everything; one record a
line, as `key=value` pairs or as JSON, timed in UTC to the millisecond (ISO 8601), on stderr or
appended to a file. A record's `backend` and `job` (passed as `extra`) become fields of their
own, so logs can be filtered per backend and per job."""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from pathlib import Path

from .._errors import GangamonError

_FIELDS = ("backend", "job")


class _Formatter(logging.Formatter):
    def __init__(self, *, as_json: bool) -> None:
        super().__init__()
        self.as_json = as_json

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, object] = {
            "time": _utc(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        for name in _FIELDS:
            if hasattr(record, name):
                fields[name] = getattr(record, name)
        fields["message"] = record.getMessage()
        if record.exc_info:
            fields["error"] = self.formatException(record.exc_info)
        if self.as_json:
            return json.dumps(fields, default=str)
        return " ".join(f"{k}={_quote(v)}" for k, v in fields.items())


def _quote(value: object) -> str:
    text = str(value)
    if text and not any(c in text for c in ' "=\n'):
        return text
    return json.dumps(text)


def _utc(t: float) -> str:
    """`2026-12-04T15:12:01.123Z`."""
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def configure(verbosity: int, *, as_json: bool = False, file: Path | None = None) -> None:
    """Send gangamon's logs to stderr (or append them to `file`) at the level `verbosity` asks
    for. `GangamonError` naming a file that cannot be opened for appending."""
    handler: logging.Handler
    if file is None:
        handler = logging.StreamHandler(sys.stderr)
    else:
        try:
            handler = logging.FileHandler(file.expanduser(), encoding="utf-8")
        except OSError as e:
            raise GangamonError(f"cannot write the log file {file}: {e.strerror}") from None
    handler.setFormatter(_Formatter(as_json=as_json))
    logger = logging.getLogger("gangamon")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel([logging.WARNING, logging.INFO, logging.DEBUG][min(verbosity, 2)])
