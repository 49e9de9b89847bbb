"""The commands on a PostgreSQL store: chosen by `store = "postgresql://..."` or `--store`;
one line naming the URL without its password when the server refuses; who holds the store."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import trio

from gangamon import NewJob, Status
from gangamon._errors import StoreMissing
from gangamon._pglock import holder, holding
from gangamon._store import open_store, redacted
from gangamon._storeholder import StoreBusy
from gangamon.backends.local import LocalBackend
from gangamon.cli import main
from gangamon.cli._config import parse_config
from gangamon.cli._standalone import serve

from .stores import fresh_schema


@pytest.fixture
def url() -> Iterator[str]:
    with fresh_schema() as where:
        yield where


@pytest.fixture
def config(tmp_path: Path, url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("GANGAMON_CONFIG", raising=False)
    path = tmp_path / "config.toml"
    path.write_text(f'store = "{url}"\n[backends.dirac]\nurl = "https://127.0.0.1:9"\n')
    return path


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    code = exit_info.value.code
    return (code if isinstance(code, int) else 0), captured.out, captured.err


def test_the_config_s_url_is_the_store_and_nothing_shows_its_password(
    config: Path, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    password = urlsplit(url).password
    assert password
    code, out, _ = _run(["--config", str(config), "track", "dirac", "5-7"], capsys)
    assert (code, out) == (0, "tracked 3 dirac jobs (store ids 1-3)\n")
    code, out, _ = _run(["--config", str(config), "status", "--json"], capsys)
    assert json.loads(out)["counts"] == {"dirac": {"submitted": 3}}
    code, out, _ = _run(["--config", str(config), "status"], capsys)
    assert code == 0
    assert "monitor: none runs on this store" in out
    assert password not in out
    code, out, _ = _run(["--config", str(config), "doctor"], capsys)
    assert f"store: {redacted(url)}: 3 jobs; no monitor runs on it" in out
    assert password not in out


def test_a_wrong_password_is_one_line_naming_the_url_without_it(
    config: Path, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = url.replace(f":{urlsplit(url).password}@", ":wrong-secret@")
    for command in (["status"], ["track", "dirac", "5"], ["doctor"]):
        code, out, err = _run(["--config", str(config), "--store", wrong, *command], capsys)
        assert code == 1
        found = [f"{line}\n" for line in out.splitlines() if line.startswith("FAIL store:")]
        line = err if command != ["doctor"] else found[0]
        assert line.count("\n") == 1
        assert f"job store '{redacted(url)}': cannot connect" in line
        assert "password authentication failed" in line
        assert "wrong-secret" not in err + out


def test_doctor_on_an_empty_schema_says_run_creates_the_tables(
    config: Path, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = _run(["--config", str(config), "doctor"], capsys)
    assert f"store: {redacted(url)}: reachable, no tables yet" in out
    with pytest.raises(StoreMissing):  # still none: doctor created nothing
        open_store(url, read_only=True)


def test_one_monitor_holds_the_store_and_others_are_told_who(url: str) -> None:
    assert holder(url) is None
    with holding(url):
        held = holder(url)
        assert held is not None
        assert held.pid == os.getpid()
        busy = f"another monitor runs on it .pid {os.getpid()} on"
        with pytest.raises(StoreBusy, match=busy), holding(url):
            pass
    assert holder(url) is None


async def test_run_on_postgresql_monitors_what_track_adds_and_stops_on_sigterm(
    url: str, tmp_path: Path
) -> None:
    config = parse_config(
        f'store = "{url}"\ngrace = 1.0\n[backends.local]\ndirectory = "{tmp_path}/local"\n'
    )
    async with trio.open_nursery() as nursery:
        monitor = await nursery.start(partial(serve, config))
        assert holder(url) is not None
        launcher = LocalBackend(tmp_path / "local")
        job_dir = await launcher.launch([sys.executable, "-c", "raise SystemExit(0)"])
        with open_store(url) as other:
            [job] = other.add_jobs([NewJob("local", job_dir, Status.SUBMITTED)])
        assert await monitor.wait_for(job, [Status.COMPLETED], timeout=30) == Status.COMPLETED
        os.kill(os.getpid(), signal.SIGTERM)
    assert holder(url) is None
    with open_store(url) as store:
        assert [e.new for e in store.journal(job=job)] == [
            Status.SUBMITTED, Status.RUNNING, Status.COMPLETED,
        ]  # fmt: skip
