"""`gangamon run` end to end: a real store, real local processes, the metrics endpoint, jobs
added by another process, and a graceful stop on SIGTERM."""

from __future__ import annotations

import os
import signal
import sys
import time
from functools import partial
from pathlib import Path

import httpx
import msgspec
import pytest
import trio

from gangamon import MonitorStatistics, NewJob, Status, Store, StoreError
from gangamon._errors import single_exception
from gangamon.backends.local import LocalBackend
from gangamon.cli._config import Config, parse_config
from gangamon.cli._standalone import Snapshot, read_snapshot, serve, statistics_path


def local_run(store_path: Path, tmp_path: Path) -> Config:
    """What `gangamon run` reads for local jobs on the store `store_path`."""
    return parse_config(
        f'store = "{store_path}"\ngrace = 1.0\n[backends.local]\ndirectory = "{tmp_path}/local"\n'
    )


async def test_run_picks_up_tracked_jobs_serves_metrics_and_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    store_path = tmp_path / "jobs.sqlite"
    config = local_run(store_path, tmp_path)
    with trio.socket.socket() as probe:  # a free port for the metrics
        await probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with trio.open_nursery() as nursery:
        monitor = await nursery.start(partial(serve, config, metrics_port=port))
        # For `gangamon watch`: written before `serve` reports started, then every second.
        snapshot = read_snapshot(store_path)
        assert snapshot is not None
        assert snapshot.pid == os.getpid()
        assert list(snapshot.statistics.backends) == ["local"]
        # Another process (`gangamon track`) registers a job in the store meanwhile.
        launcher = LocalBackend(tmp_path / "local")
        job_dir = await launcher.launch([sys.executable, "-c", "raise SystemExit(0)"])
        with Store(store_path) as other:
            [job] = other.add_jobs([NewJob("local", job_dir, Status.SUBMITTED)])
        assert await monitor.wait_for(job, [Status.COMPLETED], timeout=30) == Status.COMPLETED
        async with httpx.AsyncClient() as client:
            reply = await client.get(f"http://127.0.0.1:{port}/metrics")
        assert reply.status_code == 200
        assert 'gangamon_backend_up{backend="local"} 1.0' in reply.text
        assert 'gangamon_detection_delay_seconds_count{backend="local"} 1.0' in reply.text
        os.kill(os.getpid(), signal.SIGTERM)
    # Stopped gracefully: the snapshot is gone, the store holds the job's history.
    assert not statistics_path(store_path).exists()
    with Store(store_path) as store:
        assert [e.new for e in store.journal(job=job)] == [
            Status.SUBMITTED, Status.RUNNING, Status.COMPLETED,
        ]  # fmt: skip


def test_a_stale_or_torn_snapshot_means_no_monitor(tmp_path: Path) -> None:
    store = tmp_path / "jobs.sqlite"
    stale = Snapshot(time.time() - 60, 1, MonitorStatistics({}, 0, 0, 0, 0, 0, 0))
    statistics_path(store).write_bytes(msgspec.json.encode(stale))
    assert read_snapshot(store) is None
    statistics_path(store).write_bytes(b"{half a file")
    assert read_snapshot(store) is None


@pytest.mark.parametrize("fate", ["deleted", "replaced", "WAL deleted"])
async def test_a_store_deleted_or_replaced_under_run_stops_it_naming_the_file(
    tmp_path: Path, fate: str
) -> None:
    # It went on writing into the unlinked file, unnoticed.
    store_path = tmp_path / "jobs.sqlite"
    config = local_run(store_path, tmp_path)

    async def run_and_lose_the_store() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(serve, config))
            if fate == "deleted":
                store_path.unlink()
            elif fate == "WAL deleted":  # its writes since would vanish with it
                store_path.with_name("jobs.sqlite-wal").unlink()
            else:
                Store(tmp_path / "other.sqlite").close()
                (tmp_path / "other.sqlite").replace(store_path)

    with trio.fail_after(20), pytest.raises(BaseExceptionGroup) as group:
        await run_and_lose_the_store()
    stopped = single_exception(group.value)
    assert isinstance(stopped, StoreError)
    what = {
        "deleted": "the file was deleted",
        "replaced": "the file was replaced by another file",
        "WAL deleted": "its WAL file was deleted",
    }[fate]
    assert (
        str(stopped) == f"job store '{store_path}': {what} under the running monitor, which stopped"
    )


def test_the_periodic_summary_is_one_line_of_every_backend() -> None:
    from gangamon.cli._standalone import summary

    from .test_view import _health

    stats = MonitorStatistics(
        {
            "dirac": _health("dirac", jobs=7,
                             jobs_by_status={Status.RUNNING: 2, Status.SUBMITTED: 5}),
            "slurm": _health("slurm", jobs=0, jobs_by_status={}, problem="squeue: not found"),
        },
        0, 0, 31, 0, 0, 0,
    )  # fmt: skip
    assert summary(stats) == (
        "dirac: 7 tracked (submitted 5, running 2), 120 calls, 3 errors; "
        "slurm: 0 tracked (none), 120 calls, 3 errors; squeue: not found; 31 changes stored"
    )
