"""Log records as key=value pairs or JSON, with the backend and job as fields of their own."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from gangamon import GangamonError
from gangamon.cli._logs import configure


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


def test_times_are_utc_to_the_millisecond(capsys: pytest.CaptureFixture[str]) -> None:
    configure(0)
    record = logging.LogRecord("gangamon.run", logging.WARNING, __file__, 1, "m", None, None)
    record.created = 1_764_860_521.1234  # 2025-12-04 15:02:01.123 UTC
    logging.getLogger("gangamon").handle(record)
    assert capsys.readouterr().err.startswith("time=2025-12-04T15:02:01.123Z ")


def test_a_log_file_is_appended_to(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log_file = tmp_path / "gangamon.log"
    log_file.write_text("earlier\n")
    configure(0, file=log_file)
    logging.getLogger("gangamon.run").warning("to the file")
    logging.getLogger("gangamon").handlers[0].close()
    assert capsys.readouterr().err == ""
    earlier, line = log_file.read_text().splitlines()
    assert earlier == "earlier"
    assert line.endswith('message="to the file"')


def test_a_log_file_that_cannot_be_opened_is_one_error(tmp_path: Path) -> None:
    with pytest.raises(GangamonError, match=r"cannot write the log file .*: Is a directory"):
        configure(0, file=tmp_path)
