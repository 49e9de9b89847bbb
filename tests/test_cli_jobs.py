"""Jobs one by one from the command line: submit, kill, untrack, wait, and `status` listing
them, beside a running monitor (`serve`, in this process) or without one."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import pytest
import trio

from gangamon import Monitor, NewJob, Status, Store
from gangamon.backends.dirac import DiracStatus
from gangamon.cli._jobs import SOME_NOT_COMPLETED, TIMED_OUT
from gangamon.cli._standalone import serve
from gangamon.sim._certs import make_credentials
from gangamon.sim.dirac import DiracSim

from .test_cli import _run as _cli
from .test_standalone import local_run

S = Status


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f'store = "{tmp_path / "jobs.sqlite"}"\ngrace = 1.0\n'
        f'[backends.local]\ndirectory = "{tmp_path / "local"}"\n'
        "[backends.dirac]\nurl = 'https://127.0.0.1:9'\n"
    )
    return path


async def _in_thread(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """A command beside the monitor running in this thread's trio loop."""
    return await trio.to_thread.run_sync(_cli, args, capsys)


@pytest.fixture
async def monitor(tmp_path: Path) -> AsyncIterator[Monitor]:
    """`gangamon run` on the store of `config`, in this process; stopped by SIGTERM."""
    async with trio.open_nursery() as nursery:
        yield await nursery.start(partial(serve, local_run(tmp_path / "jobs.sqlite", tmp_path)))
        os.kill(os.getpid(), signal.SIGTERM)


async def test_submit_then_kill_beside_a_running_monitor(
    config: Path, monitor: Monitor, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--config", str(config)]
    code, out, err = await _in_thread([*base, "submit", "local", "--", "sleep", "600"], capsys)
    assert (code, err) == (0, "")
    assert out.startswith("submitted job 1 (local:")
    directory = out.strip().removeprefix("submitted job 1 (local:").removesuffix(")")
    assert await monitor.wait_for(1, [S.RUNNING], timeout=30) == S.RUNNING
    async with monitor.changes() as changes:
        code, out, err = await _in_thread([*base, "kill", f"local:{directory}"], capsys)
        assert (code, out, err) == (0, "job 1: killed\n", "")
        async for entry in changes:
            if entry.job == 1 and entry.new == S.KILLED:
                break
    # The monitor stored the end itself (its watch saw the wrapper die), or followed the
    # command's write: either way killed, not failed, and no longer watched.
    assert monitor.statistics().backends["local"].jobs == 0
    launch = await trio.Path(directory, "launch.json").read_text()
    pid = json.loads(launch)["pid"]
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with Store(config.parent / "jobs.sqlite") as store:
        assert store.get(1).status == S.KILLED
        assert [e.new for e in store.journal(job=1)].count(S.KILLED) == 1


async def test_wait_exits_with_what_the_jobs_became(
    config: Path, monitor: Monitor, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--config", str(config)]
    for command in (["true"], [sys.executable, "-c", "raise SystemExit(3)"]):
        code, _, _ = await _in_thread([*base, "submit", "local", "--", *command], capsys)
        assert code == 0
    # Without ids: the jobs active when it starts (both: submit stores them submitted).
    code, out, err = await _in_thread([*base, "wait", "--interval", "0.2"], capsys)
    assert (code, out, err) == (SOME_NOT_COMPLETED, "2 jobs ended: 1 completed, 1 failed\n", "")
    code, out, err = await _in_thread([*base, "wait", "1"], capsys)
    assert (code, out, err) == (0, "1 jobs ended: 1 completed\n", "")
    code, out, _ = await _in_thread(
        [*base, "status", "--list", "--format", "id,status,exit,reason", "--delimiter", "|"],
        capsys,
    )
    assert out.splitlines() == [
        "ID|STATUS|EXIT|REASON",
        "1|completed|0|exit code 0",
        "2|failed|3|exit code 3",
    ]


def test_wait_times_out_and_says_no_monitor_runs(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Store(config.parent / "jobs.sqlite") as store:
        store.add_jobs([NewJob("dirac", "15", S.SUBMITTED)])
    code, out, err = _cli(["--config", str(config), "wait", "dirac:15", "--timeout", "0"], capsys)
    assert code == TIMED_OUT
    assert out == "timed out: 1 of 1 jobs still active\n"
    assert "no monitor runs on this store" in err


def test_untrack_leaves_the_history_and_the_ended_jobs(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Store(config.parent / "jobs.sqlite") as store:
        store.add_jobs([NewJob("dirac", str(i), S.SUBMITTED) for i in (20, 21)])
        store.add_jobs([NewJob("dirac", "22", S.COMPLETED)])
    code, out, err = _cli(["--config", str(config), "untrack", "dirac:20-21", "3"], capsys)
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "job 1: untracked",
        "job 2: untracked",
        "job 3: completed already, left alone",
    ]
    with Store(config.parent / "jobs.sqlite", read_only=True) as store:
        assert [store.get(j).status for j in (1, 2, 3)] == [S.UNKNOWN, S.UNKNOWN, S.COMPLETED]
        assert [e.new for e in store.journal(job=1)] == [S.SUBMITTED, S.UNKNOWN]


def test_a_backend_id_names_the_active_run_else_the_latest(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Store(config.parent / "jobs.sqlite") as store:
        store.add_jobs([NewJob("dirac", "30", S.FAILED), NewJob("dirac", "30", S.RUNNING)])
        store.add_jobs([NewJob("dirac", "31", S.FAILED), NewJob("dirac", "31", S.KILLED)])
    base = ["--config", str(config), "status", "--format", "id", "--no-header"]
    _, out, _ = _cli([*base, "dirac:30", "dirac:31", "1"], capsys)
    assert out.split() == ["2", "4", "1"]


def test_status_json_honours_the_limit_and_the_filters(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # `--json --limit 2` printed every job.
    with Store(config.parent / "jobs.sqlite") as store:
        store.add_jobs([NewJob("dirac", str(i), S.SUBMITTED) for i in range(40, 45)])
        [master] = store.add_jobs([NewJob("dirac", None, S.NEW)])
        store.add_jobs([NewJob("dirac", str(i), S.RUNNING, parent=master) for i in (50, 51)])
    base = ["--config", str(config), "status"]
    _, out, _ = _cli([*base, "--status", "submitted", "--limit", "2", "--json"], capsys)
    listed = json.loads(out)
    assert [j["id"] for j in listed["jobs"]] == [1, 2]
    assert listed["more"] == 3
    _, out, _ = _cli([*base, "--list", "--backend", "dirac", "--limit", "0", "--json"], capsys)
    jobs = json.loads(out)["jobs"]
    assert len(jobs) == 8
    assert jobs[5]["subjobs"] == {"running": 2}
    _, out, _ = _cli([*base, str(master), "--format", "id,subjobs", "--no-header"], capsys)
    assert out.split(None, 1) == [str(master), "2: 2 running\n"]
    _, out, _ = _cli([*base, "--json", "--backend", "local"], capsys)
    assert json.loads(out)["counts"] == {}


async def test_kill_a_dirac_job_by_its_dirac_id(
    tmp_path: Path, nursery: trio.Nursery, capsys: pytest.CaptureFixture[str]
) -> None:
    credentials = make_credentials(tmp_path / "pki")
    sim = DiracSim(seed=3, mean_runtime=1e9, credentials=credentials)
    await nursery.start(sim.serve)
    [dirac_id] = sim.submit(1)
    config = tmp_path / "dirac.toml"
    config.write_text(
        f'store = "{tmp_path / "jobs.sqlite"}"\n[backends.dirac]\nurl = "{sim.url}"\n'
        f'proxy = "{credentials.proxy}"\nca = "{credentials.ca_file}"\n'
    )
    with Store(tmp_path / "jobs.sqlite") as store:
        store.add_jobs([NewJob("dirac", str(dirac_id), S.RUNNING)])
    code, out, err = await _in_thread(
        ["--config", str(config), "kill", f"dirac:{dirac_id}"], capsys
    )
    assert (code, out, err) == (0, "job 1: killed\n", "")
    assert sim.jobs[dirac_id].path[-1][1:] == (DiracStatus.KILLED, "Marked for termination")
    with Store(tmp_path / "jobs.sqlite", read_only=True) as store:
        assert store.get(1).status == S.KILLED
