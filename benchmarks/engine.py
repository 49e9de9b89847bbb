"""Engine cost at scale, idle: jobs tracked, polled, and reported unchanged.

Each size runs in a fresh process so that resident memory is its own. The backend answers
every poll at once, reporting each job unchanged (as DIRAC's bulk status call does for jobs
that do not move), so the figure is the engine's own work: scheduling, chunking, limiter,
deadline, filtering. Per size: CPU microseconds per job per poll; the CPU share of one core
(CPU seconds per wall second over the measured window, at this benchmark's poll interval of
2 s); the same share at a full sweep every 30 s, extrapolated (CPU per job per poll x
jobs / 30 s: all the idle cost is taken to come with polls); in full mode, that 30 s share is
also measured at 100,000 jobs; resident memory per tracked job.

Goals (issues 3 and 8), at 100,000 jobs: at most 5 microseconds of CPU per job per poll, at
most 5% of a core, at most 1 KiB per job; per-job CPU at 100,000 over that at 1,000 at most
1.5.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trio

from gangamon import Backend, BackendSettings, JobRef, Monitor, NewJob, Status, Store, Update

from ._summary import Goal

SIZES = (1_000, 10_000, 100_000)
SWEEPS = 5
INTERVAL = 2.0
#: The full sweeps of every DIRAC job that monitors make today (Ganga: 50 s).
DEFAULT_INTERVAL = 30.0
GOAL_US_PER_JOB_POLL = 5.0
GOAL_SHARE = 0.05
GOAL_BYTES_PER_JOB = 1024
GOAL_RATIO = 1.5


class EchoGrid(Backend):
    """Reports every job as it already is, instantly."""

    name = "grid"

    def __init__(self, interval: float) -> None:
        self.settings = BackendSettings(poll_interval=interval, chunk_size=1000, concurrency=8)
        self.polled = 0

    async def poll(self, jobs: Sequence[JobRef]) -> Sequence[Update]:
        self.polled += len(jobs)
        return [Update(j.id, j.status, j.native_status) for j in jobs]


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


async def _measure(n: int, sweeps: int, interval: float, path: Path) -> dict[str, float]:
    store = Store(path)
    store.add_jobs(
        [NewJob("grid", str(i), Status.RUNNING, native_status="Running") for i in range(n)]
    )
    grid = EchoGrid(interval)
    empty = Monitor(Store(path.with_suffix(".empty")), [EchoGrid(interval)])
    async with trio.open_nursery() as nursery:
        await nursery.start(empty.run)
        rss_empty = _rss_bytes()
        empty.stop()
    monitor = Monitor(store, [grid])
    async with trio.open_nursery() as nursery:
        await nursery.start(monitor.run)
        rss_loaded = _rss_bytes()
        await trio.sleep(interval / 2)  # let the first sweep pass
        cpu0, wall0, polled0 = time.process_time(), time.perf_counter(), grid.polled
        await trio.sleep(sweeps * interval)
        cpu, wall, polled = (
            time.process_time() - cpu0,
            time.perf_counter() - wall0,
            grid.polled - polled0,
        )
        monitor.stop()
    return {
        "jobs": n,
        "interval_s": interval,
        "job_polls": polled,
        "cpu_us_per_job_poll": cpu / polled * 1e6,
        "cpu_share_of_core": cpu / wall,
        "rss_bytes_per_job": (rss_loaded - rss_empty) / n,
    }


def _child(n: int, sweeps: int, interval: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(trio.run(_measure, n, sweeps, interval, Path(tmp) / "jobs.sqlite")))


def _run_child(n: int, sweeps: int, interval: float) -> dict[str, float]:
    args = [sys.executable, "-m", "benchmarks.engine", str(n), str(sweeps), str(interval)]
    root = Path(__file__).parent.parent  # where `benchmarks` is importable as a package
    out = subprocess.run(args, capture_output=True, text=True, check=True, cwd=root)
    result: dict[str, float] = json.loads(out.stdout)
    return result


def extrapolated_share(cpu_us_per_job_poll: float, jobs: float, interval: float) -> float:
    """CPU share of one core when every job is polled once per `interval` seconds."""
    return cpu_us_per_job_poll * 1e-6 * jobs / interval


def measure(*, quick: bool = False) -> dict[str, Any]:
    """Every size at 2 s; in full mode also the largest at 30 s, measured."""
    sizes = []
    for n in SIZES:
        r = _run_child(n, 2 if quick else SWEEPS, INTERVAL)
        r["cpu_share_at_default_extrapolated"] = extrapolated_share(
            r["cpu_us_per_job_poll"], n, DEFAULT_INTERVAL
        )
        sizes.append(r)
    ratio = sizes[-1]["cpu_us_per_job_poll"] / sizes[0]["cpu_us_per_job_poll"]
    # Two sweeps at 30 s: a minute and a quarter, too long for CI.
    at_default = None if quick else _run_child(SIZES[-1], 2, DEFAULT_INTERVAL)
    return {
        "interval_s": INTERVAL,
        "default_interval_s": DEFAULT_INTERVAL,
        "sizes": sizes,
        "per_job_cpu_ratio": ratio,
        "largest_at_default_interval": at_default,
    }


def report(results: dict[str, Any]) -> None:
    print(f"engine, idle: every job polled every {INTERVAL:.0f} s, reported unchanged")
    print(
        f"{'jobs':>8} {'us CPU/job/poll':>16} {'CPU share at 2 s':>17} "
        f"{'at 30 s (extrapolated)':>23} {'RSS B/job':>10}"
    )
    for r in results["sizes"]:
        print(
            f"{r['jobs']:>8,.0f} {r['cpu_us_per_job_poll']:>16.2f} "
            f"{r['cpu_share_of_core']:>17.2%} {r['cpu_share_at_default_extrapolated']:>23.3%} "
            f"{r['rss_bytes_per_job']:>10.0f}"
        )
    print(
        f"{'goal':>8} {'<= ' + str(GOAL_US_PER_JOB_POLL):>16} {'<= 5%':>17} {'<= 5%':>23} "
        f"{'<= ' + str(GOAL_BYTES_PER_JOB):>10}"
    )
    if (d := results["largest_at_default_interval"]) is not None:
        print(
            f"{d['jobs']:>8,.0f} at 30 s, measured over {d['job_polls']:,.0f} job "
            f"polls: {d['cpu_us_per_job_poll']:.2f} us CPU/job/poll, "
            f"{d['cpu_share_of_core']:.2%} of a core"
        )
    print(
        f"goals at {SIZES[-1]:,}: <= {GOAL_US_PER_JOB_POLL:.0f} us/job/poll, "
        f"<= {GOAL_SHARE:.0%} of a core, <= {GOAL_BYTES_PER_JOB} B/job; per-job CPU at "
        f"{SIZES[-1]:,} / at {SIZES[0]:,} = {results['per_job_cpu_ratio']:.2f} "
        f"(goal <= {GOAL_RATIO})"
    )


def goals(results: dict[str, Any]) -> list[Goal]:
    big = results["sizes"][-1]
    jobs = f"{big['jobs']:,.0f} idle jobs"
    share = big["cpu_share_of_core"]
    found = [
        Goal(
            f"{jobs}, CPU share of a core, polled every {INTERVAL:.0f} s",
            f"{share:.2%}",
            f"<= {GOAL_SHARE:.0%}",
            share <= GOAL_SHARE,
        )
    ]
    if (d := results["largest_at_default_interval"]) is not None:
        found.append(
            Goal(
                f"{jobs}, CPU share of a core, polled every {DEFAULT_INTERVAL:.0f} s (default)",
                f"{d['cpu_share_of_core']:.2%} (measured)",
                f"<= {GOAL_SHARE:.0%}",
                d["cpu_share_of_core"] <= GOAL_SHARE,
            )
        )
    else:
        default_share = big["cpu_share_at_default_extrapolated"]
        found.append(
            Goal(
                f"{jobs}, CPU share of a core, polled every {DEFAULT_INTERVAL:.0f} s (default)",
                f"{default_share:.2%} (extrapolated from {INTERVAL:.0f} s)",
                f"<= {GOAL_SHARE:.0%}",
                default_share <= GOAL_SHARE,
            )
        )
    found += [
        Goal(
            f"{jobs}, CPU per job per poll",
            f"{big['cpu_us_per_job_poll']:.2f} us",
            f"<= {GOAL_US_PER_JOB_POLL:.0f} us",
            big["cpu_us_per_job_poll"] <= GOAL_US_PER_JOB_POLL,
        ),
        Goal(
            f"{jobs}, resident memory per job",
            f"{big['rss_bytes_per_job']:.0f} B",
            f"<= {GOAL_BYTES_PER_JOB} B",
            big["rss_bytes_per_job"] <= GOAL_BYTES_PER_JOB,
        ),
        Goal(
            f"per-job CPU, {SIZES[-1]:,} jobs / {SIZES[0]:,} jobs",
            f"{results['per_job_cpu_ratio']:.2f}",
            f"<= {GOAL_RATIO}",
            results["per_job_cpu_ratio"] <= GOAL_RATIO,
        ),
    ]
    return found


if __name__ == "__main__":
    if len(sys.argv) > 1:
        _child(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]))
    else:
        report(measure())
