"""Local jobs as real processes (real clock, bounded by fail_after)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import trio

from gangamon import Monitor, NewJob, Status, Store, open_monitor
from gangamon.backends.local import LocalBackend

FINISHED = [Status.COMPLETED, Status.FAILED, Status.KILLED]


def wrapper_pid(store: Store, job: int) -> int:
    launch = Path(store.get(job).backend_id or "", "launch.json")
    return int(json.loads(launch.read_text())["pid"])


def is_gone(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    return not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"


async def launch_and_track(
    monitor: Monitor, backend: LocalBackend, commands: list[list[str]]
) -> list[int]:
    ids = [await backend.launch(c) for c in commands]
    return await monitor.track([NewJob("local", i, Status.SUBMITTED) for i in ids])


async def test_exit_codes_signals_and_outside_kills(tmp_path: Path) -> None:
    store = Store(tmp_path / "jobs.sqlite")
    backend = LocalBackend(tmp_path / "jobs")
    with trio.fail_after(30):
        async with open_monitor(store, [backend]) as monitor:
            ok, bad, signalled, outside = await launch_and_track(
                monitor,
                backend,
                [
                    ["true"],
                    ["sh", "-c", "exit 3"],
                    ["sh", "-c", "kill -9 $$"],
                    ["sleep", "30"],
                ],
            )
            assert await monitor.wait_for(outside, [Status.RUNNING]) == Status.RUNNING
            os.kill(wrapper_pid(store, outside), signal.SIGKILL)  # the wrapper itself, from outside
            for job in (ok, bad, signalled, outside):
                await monitor.wait_for(job, FINISHED)
    assert store.get(ok).status == Status.COMPLETED
    assert (store.get(bad).status, store.journal(job=bad)[-1].reason) == (
        Status.FAILED,
        "exit code 3",
    )
    assert store.journal(job=signalled)[-1].reason == "killed by SIGKILL"
    last = store.journal(job=outside)[-1]
    assert last.new == Status.FAILED
    assert "killed from outside (wrapper killed by SIGKILL)" in last.reason


async def test_kill_stops_the_process_group(tmp_path: Path) -> None:
    store = Store(tmp_path / "jobs.sqlite")
    backend = LocalBackend(tmp_path / "jobs")
    with trio.fail_after(30):
        async with open_monitor(store, [backend]) as monitor:
            [job] = await launch_and_track(monitor, backend, [["sleep", "60"]])
            await monitor.wait_for(job, [Status.RUNNING])
            pid = wrapper_pid(store, job)
            await monitor.kill(job)
    assert store.get(job).status == Status.KILLED
    assert is_gone(pid)


async def test_restart_reattaches_by_pid_and_start_time(tmp_path: Path) -> None:
    store = Store(tmp_path / "jobs.sqlite")
    first = LocalBackend(tmp_path / "jobs")
    go = tmp_path / "go"
    payload = ["sh", "-c", f"while [ ! -e {go} ]; do sleep 0.05; done"]
    with trio.fail_after(30):
        async with open_monitor(store, [first]) as monitor:
            [job] = await launch_and_track(monitor, first, [payload])
            await monitor.wait_for(job, [Status.RUNNING])
        # A new monitor and backend, as after a crash: the process is still there.
        async with open_monitor(store, [LocalBackend(tmp_path / "jobs")]) as monitor:
            assert store.get(job).status == Status.RUNNING
            go.touch()
            await monitor.wait_for(job, FINISHED)
    assert store.get(job).status == Status.COMPLETED


async def test_a_reused_pid_is_not_our_process(tmp_path: Path) -> None:
    store = Store(tmp_path / "jobs.sqlite")
    directory = tmp_path / "jobs" / "7"
    directory.mkdir(parents=True)
    # Our own pid is alive, but its start time is not the one recorded: another process.
    (directory / "launch.json").write_text(json.dumps({"pid": os.getpid(), "starttime": 1}))
    [job] = store.add_jobs([NewJob("local", str(directory), Status.RUNNING)])
    with trio.fail_after(10):
        async with open_monitor(store, [LocalBackend(tmp_path / "jobs")]) as monitor:
            await monitor.wait_for(job, FINISHED)
    assert store.get(job).status == Status.FAILED
    assert "without an exit record" in store.journal(job=job)[-1].reason


@pytest.mark.realtime
async def test_five_hundred_concurrent_jobs(tmp_path: Path) -> None:
    store = Store(tmp_path / "jobs.sqlite")
    backend = LocalBackend(tmp_path / "jobs")
    commands = [["sh", "-c", f"sleep 0.{i % 10}; exit {int(i % 7 == 0)}"] for i in range(500)]
    with trio.fail_after(120):
        async with open_monitor(store, [backend]) as monitor:
            ids = await launch_and_track(monitor, backend, commands)
            for job in ids:
                await monitor.wait_for(job, FINISHED)
    statuses = [store.get(job).status for job in ids]
    assert statuses == [Status.FAILED if i % 7 == 0 else Status.COMPLETED for i in range(500)]


async def test_command_must_be_an_argument_list(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="argument list, not 'echo hi'"):
        await LocalBackend(tmp_path).launch("echo hi")
