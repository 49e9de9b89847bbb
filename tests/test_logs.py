"""Log records as key=value pairs or JSON, with the backend and job as fields of their own."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from gangamon.cli._logs import configure


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    logger = logging.getLogger("gangamon")
    saved = logger.handlers[:], logger.level, logger.propagate
    yield
    logger.handlers[:], logger.level, logger.propagate = saved


def test_quiet_by_default_and_key_value_pairs(capsys: pytest.CaptureFixture[str]) -> None:
    configure(0)
    log = logging.getLogger("gangamon.backend")
    log.info("not shown")
    log.warning("poll of %d jobs failed", 3, extra={"backend": "dirac", "job": 7})
    [line] = capsys.readouterr().err.splitlines()
    assert line.endswith(
        'level=warning logger=gangamon.backend backend=dirac job=7 message="poll of 3 jobs failed"'
    )


def test_verbose_json(capsys: pytest.CaptureFixture[str]) -> None:
    configure(1, as_json=True)
    logging.getLogger("gangamon.run").info("picked up %d jobs", 4)
    logging.getLogger("gangamon.run").debug("not at -v")
    [line] = capsys.readouterr().err.splitlines()
    record = json.loads(line)
    assert (record["level"], record["message"]) == ("info", "picked up 4 jobs")
    assert "backend" not in record
