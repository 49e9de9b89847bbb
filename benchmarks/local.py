"""Local jobs: from a process's exit to its status in the store.

500 short jobs (sleep 2.0 to 2.9 s, some failing; all launched and tracked before the first
ends) run at once under the local backend; for each, the latency is the journal time of its
final transition minus the end time the wrapper recorded as the command exited.

Goal (issue 5): p99 at most 100 ms. Ganga 8.7.12's own monitor was measured at a median of
7.0 s with its defaults (reference/ganga.md §6); the side-by-side run against the real ganga
package belongs to `nox -s bench` with Ganga installed (issue 8).
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from typing import Any

import trio

from gangamon import FINAL, Monitor, NewJob, Status, Store
from gangamon.backends.local import LocalBackend, exit_record

from ._summary import Goal

JOBS = 500
GOAL_P99_MS = 100.0


async def _run(tmp: Path, jobs: int) -> list[float]:
    store = Store(tmp / "jobs.sqlite")
    backend = LocalBackend(tmp / "jobs")
    monitor = Monitor(store, [backend])
    async with trio.open_nursery() as nursery:
        await nursery.start(monitor.run)
        commands = [["sh", "-c", f"sleep 2.{i % 10}; exit {int(i % 9 == 0)}"] for i in range(jobs)]
        ids = await monitor.track(
            [NewJob("local", await backend.launch(c), Status.SUBMITTED) for c in commands]
        )
        for job in ids:
            await monitor.wait_for(job, FINAL)
        monitor.stop()
    return [_latency(store, job) for job in ids]


def _latency(store: Store, job: int) -> float:
    ended = exit_record(Path(store.get(job).backend_id or ""))
    assert ended is not None, f"job {job} left no exit record"
    return store.journal(job=job)[-1].time - ended.end


def measure(jobs: int = JOBS) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        latencies = sorted(trio.run(_run, Path(tmp), jobs))
    return {
        "jobs": jobs,
        "p50_ms": statistics.median(latencies) * 1e3,
        "p99_ms": latencies[int(0.99 * (len(latencies) - 1))] * 1e3,
        "max_ms": latencies[-1] * 1e3,
        # Every job's latency, for the plot of the distribution.
        "latencies_s": latencies,
    }


def report(r: dict[str, Any]) -> None:
    print(
        f"local: {r['jobs']:.0f} jobs, exit -> stored status: p50 {r['p50_ms']:.1f} ms, "
        f"p99 {r['p99_ms']:.1f} ms, max {r['max_ms']:.1f} ms (goal p99 <= {GOAL_P99_MS:.0f} ms; "
        "Ganga's default monitor: median 7.0 s)"
    )


def goals(r: dict[str, Any]) -> list[Goal]:
    return [
        Goal(
            f"local, {r['jobs']} jobs at once: exit -> stored status, p99",
            f"{r['p99_ms']:.1f} ms (p50 {r['p50_ms']:.1f} ms)",
            f"<= {GOAL_P99_MS:.0f} ms",
            r["p99_ms"] <= GOAL_P99_MS,
        )
    ]


if __name__ == "__main__":
    report(measure())
