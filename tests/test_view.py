"""The live view, rendered to a captured console, and `gangamon watch --once` over a real store."""

from __future__ import annotations

import os
import time
from pathlib import Path

import msgspec
import pytest
from rich.console import Console

from gangamon import MonitorStatistics, NewJob, Status, Store, Transition
from gangamon._astore import AsyncStore
from gangamon._supervise import BackendStatistics
from gangamon.cli import main
from gangamon.cli._standalone import Snapshot, statistics_path
from gangamon.cli._view import Rates, active_jobs, collect, eta, render, render_text


def _health(name: str, **changes: object) -> BackendStatistics:
    values: dict[str, object] = {
        "name": name, "jobs": 4, "calls": 120, "errors": 3, "timeouts": 1, "garbage": 0,
        "restarts": 0, "in_flight": 2, "limiter_borrowed": 2, "limiter_total": 8,
        "finalising": 0, "finalised": 0, "jobs_by_status": {Status.RUNNING: 4},
        "last_poll_latency": 0.25, "interval": 30.0, "problem": None,
    }  # fmt: skip
    values.update(changes)
    return BackendStatistics(**values)  # type: ignore[arg-type]


def _store(path: Path) -> Store:
    store = Store(path)
    ids = store.add_jobs([NewJob("dirac", str(100 + i), Status.SUBMITTED) for i in range(5)])
    store.add_jobs([NewJob("local", "/jobs/1", Status.RUNNING)])
    store.apply([Transition(ids[0], Status.SUBMITTED, Status.RUNNING, "Running")])
    store.apply([Transition(ids[0], Status.RUNNING, Status.COMPLETED, "Done", "all good")])
    store.apply([Transition(ids[1], Status.SUBMITTED, Status.FAILED, "Failed", "exit 3")])
    return store


def _text(renderable: object) -> str:
    console = Console(record=True, width=160, color_system=None)
    console.print(renderable)
    return console.export_text()


async def test_view_shows_counts_progress_health_and_changes(tmp_path: Path) -> None:
    store = AsyncStore(_store(tmp_path / "jobs.sqlite"))
    health = {"dirac": _health("dirac"), "slurm": _health("slurm", problem="squeue: not found")}
    view = await collect(
        store, "title here", backends=["slurm"], health=health,
        calls_per_second={"dirac": 4.0}, clock="12.5 s",
    )  # fmt: skip
    text = _text(render(view))
    lines = text.splitlines()
    assert lines[0] == "title here - 12.5 s"
    dirac = next(line for line in lines if line.startswith("│ dirac") and "/5" in line)
    cells = [c.strip() for c in dirac.split("│")]
    assert cells[2].endswith("2/5")  # the progress bar, then finished/total
    assert cells[3:5] == ["-", "-"]  # no rate yet, so no ETA
    # submitted, running, completing, completed, failed, killed; no job in any other status
    assert cells[5:] == ["3", "0", "0", "1", "1", "0", ""]
    assert any(line.startswith("│ slurm") and "0/0" in line for line in lines)
    health_row = next(line for line in lines if line.startswith("│ dirac") and "ms" in line)
    assert [c.strip() for c in health_row.split("│")[2:9]] == [
        "4.0", "120", "3", "1", "2/8", "250 ms", "30 s",
    ]  # fmt: skip
    assert "squeue: not found" in text
    assert "submitted -> failed" in text
    assert "running -> completed (Done)" in text
    assert "exit 3" in text
    assert active_jobs(view) == 4  # 3 submitted dirac jobs, 1 running local one


async def test_the_view_shows_a_rate_and_an_eta_and_no_sweeps_for_watched_jobs(
    tmp_path: Path,
) -> None:
    store = AsyncStore(_store(tmp_path / "jobs.sqlite"))
    finished = Rates(window=60.0)
    finished.update(time.time() - 30, {"dirac": 1})  # one dirac job ended in the last 30 s
    health = {"local": _health("local", polls=False, interval=60.0)}
    view = await collect(store, "t", health=health, calls_per_second={"local": 0.0},
                         finished=finished)  # fmt: skip
    lines = _text(render(view)).splitlines()
    dirac = next(line for line in lines if line.startswith("│ dirac") and "/5" in line)
    # 1 more job finished in 30 s: 2 a minute, 3 to go.
    assert [c.strip() for c in dirac.split("│")][3:5] == ["2", "1m30s"]
    local = next(line for line in lines if line.startswith("│ local") and "ms" in line)
    cells = [c.strip() for c in local.split("│")]
    assert (cells[2], cells[8]) == ("-", "-")  # calls/s and interval: it is not polled
    assert any(line.startswith("calls/s: over the last 10 s; in flight:") for line in lines)


async def test_render_text_is_one_line_per_backend(tmp_path: Path) -> None:
    store = AsyncStore(_store(tmp_path / "jobs.sqlite"))
    view = await collect(store, "t", clock="3.0 s")
    assert render_text(view).splitlines() == [
        "[3.0 s] dirac: 2/5 finished (submitted 3, completed 1, failed 1)",
        "[3.0 s] local: 0/1 finished (running 1)",
    ]


def test_watch_once_reads_the_store_and_the_running_monitor(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "jobs.sqlite"
    _store(path).close()
    config = ["--config", str(tmp_path / "none.toml"), "--store", str(path)]
    (tmp_path / "none.toml").write_text("")
    with pytest.raises(SystemExit) as done:
        main([*config, "watch", "--once"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "no monitor is running on this store" in out
    stats = MonitorStatistics({"dirac": _health("dirac")}, 0, 0, 0, 0, 0, 0)
    statistics_path(path).write_bytes(
        msgspec.json.encode(Snapshot(time.time(), os.getpid(), stats))
    )
    with pytest.raises(SystemExit):
        main([*config, "watch", "--once"])
    out = capsys.readouterr().out
    assert "no monitor is running" not in out
    assert "2/8" in out  # the limiter column of the running monitor's dirac backend


def test_rates_are_taken_over_a_window() -> None:
    rates = Rates(window=10.0)
    assert rates.update(0.0, {"d": 0}) == {}
    # Calls come in bursts every 2 s; a view refreshes every 0.25 s.
    assert rates.update(0.25, {"d": 8}) == {"d": 32.0}
    assert rates.update(0.5, {"d": 8}) == {"d": 16.0}
    latest: dict[str, float] = {}
    for t in range(1, 31):
        latest = rates.update(float(t), {"d": 8 + 4 * t})
    # 4 calls per second, measured over the last 10 s, not the last quarter second.
    assert latest == {"d": pytest.approx(4.0)}


@pytest.mark.parametrize(
    ("remaining", "per_second", "shown"),
    [(0, None, "done"), (10, None, "-"), (10, 0.0, "-"), (250, 1.0, "4m10s"),
     (7500, 1.0, "2h05m"), (10**9, 1.0, ">100h")],
)  # fmt: skip
def test_eta(remaining: int, per_second: float | None, shown: str) -> None:
    assert eta(remaining, per_second) == shown
