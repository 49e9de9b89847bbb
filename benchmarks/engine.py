"""Engine cost at scale: CPU per job per poll and resident memory per tracked job.

Each size runs in a fresh process so that resident memory is its own. The backend answers
every poll at once, reporting each job unchanged (as DIRAC's bulk status call does), so the
figure is the engine's own work: scheduling, chunking, limiter, deadline, filtering.
Goals (issue 3): at most 5 microseconds of CPU per job per poll at 100,000 jobs, at most
1 KiB per tracked job.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import trio

from gangamon import Backend, BackendSettings, JobRef, Monitor, NewJob, Status, Store, Update

SIZES = (1_000, 10_000, 100_000)
SWEEPS = 5
INTERVAL = 2.0


class EchoGrid(Backend):
    """Reports every job as it already is, instantly."""

    name = "grid"

    def __init__(self) -> None:
        self.settings = BackendSettings(poll_interval=INTERVAL, chunk_size=1000, concurrency=8)
        self.polled = 0

    async def poll(self, jobs: Sequence[JobRef]) -> Sequence[Update]:
        self.polled += len(jobs)
        return [Update(j.id, j.status, j.native_status) for j in jobs]


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


async def _measure(n: int, sweeps: int, path: Path) -> dict[str, float]:
    store = Store(path)
    store.add_jobs(
        [NewJob("grid", str(i), Status.RUNNING, native_status="Running") for i in range(n)]
    )
    grid = EchoGrid()
    empty = Monitor(Store(path.with_suffix(".empty")), [EchoGrid()])
    async with trio.open_nursery() as nursery:
        await nursery.start(empty.run)
        rss_empty = _rss_bytes()
        empty.stop()
    monitor = Monitor(store, [grid])
    async with trio.open_nursery() as nursery:
        await nursery.start(monitor.run)
        rss_loaded = _rss_bytes()
        await trio.sleep(INTERVAL / 2)  # let the first sweep pass
        cpu0, wall0, polled0 = time.process_time(), time.perf_counter(), grid.polled
        await trio.sleep(sweeps * INTERVAL)
        cpu, wall, polled = (
            time.process_time() - cpu0,
            time.perf_counter() - wall0,
            grid.polled - polled0,
        )
        monitor.stop()
    return {
        "jobs": n,
        "job_polls": polled,
        "cpu_us_per_job_poll": cpu / polled * 1e6,
        "cpu_share_of_core": cpu / wall,
        "rss_bytes_per_job": (rss_loaded - rss_empty) / n,
    }


def _child(n: int, sweeps: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(trio.run(_measure, n, sweeps, Path(tmp) / "jobs.sqlite")))


def measure(*, quick: bool = False) -> list[dict[str, float]]:
    results = []
    for n in SIZES:
        args = [sys.executable, __file__, str(n), str(2 if quick else SWEEPS)]
        out = subprocess.run(args, capture_output=True, text=True, check=True)
        results.append(json.loads(out.stdout))
    return results


def report(results: list[dict[str, float]]) -> None:
    print(f"engine: every job polled every {INTERVAL:.0f} s, reported unchanged")
    print(f"{'jobs':>8} {'us CPU/job/poll':>16} {'CPU share':>10} {'RSS B/job':>10}")
    for r in results:
        print(
            f"{r['jobs']:>8,.0f} {r['cpu_us_per_job_poll']:>16.2f} "
            f"{r['cpu_share_of_core']:>10.1%} {r['rss_bytes_per_job']:>10.0f}"
        )
    ratio = results[-1]["cpu_us_per_job_poll"] / results[0]["cpu_us_per_job_poll"]
    print(
        f"goals: <= 5 us/job/poll and <= 1024 B/job at 100,000; "
        f"per-job CPU at {SIZES[-1]:,} / at {SIZES[0]:,} = {ratio:.2f}"
    )


if __name__ == "__main__":
    if len(sys.argv) > 1:
        _child(int(sys.argv[1]), int(sys.argv[2]))
    else:
        report(measure())
