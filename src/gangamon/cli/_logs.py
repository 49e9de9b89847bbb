"""Logs: quiet by default (warnings), `-v` for what happens, `-vv` for everything; one record a
line, as `key=value` pairs or as JSON. A record's `backend` and `job` (passed as `extra`)
become fields of their own, so logs can be filtered per backend and per job."""

from __future__ import annotations

import json
import logging
import sys
import time

_FIELDS = ("backend", "job")


class _Formatter(logging.Formatter):
    def __init__(self, *, as_json: bool) -> None:
        super().__init__()
        self.as_json = as_json

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(record.created)),
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


def configure(verbosity: int, *, as_json: bool = False) -> None:
    """Send gangamon's logs to stderr at the level `verbosity` asks for."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter(as_json=as_json))
    logger = logging.getLogger("gangamon")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel([logging.WARNING, logging.INFO, logging.DEBUG][min(verbosity, 2)])
