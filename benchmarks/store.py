"""Store throughput: transitions per second in batches of 1000, on a real SQLite file.

Goal (issue 2): at least 20,000 transitions/s on a 2-core machine. Each batch is one
transaction with synchronous=FULL, so every batch pays one fsync of the WAL.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from gangamon import NewJob, Status, Store, Transition

from ._summary import Goal

GOAL_PER_SECOND = 20_000
CYCLE = (Status.SUBMITTED, Status.RUNNING, Status.COMPLETED, Status.SUBMITTED)


def measure(jobs: int = 10_000, batches: int = 50, batch_size: int = 1000) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "bench.sqlite") as store:
        ids = store.add_jobs([NewJob("bench", str(i), Status.SUBMITTED) for i in range(jobs)])
        status = dict.fromkeys(ids, Status.SUBMITTED)
        prepared = []
        for b in range(batches):
            chunk = ids[(b * batch_size) % jobs :][:batch_size]
            batch = []
            for job in chunk:
                new = CYCLE[CYCLE.index(status[job]) + 1]
                batch.append(Transition(job, status[job], new, native_status=new.value))
                status[job] = new
            prepared.append(batch)
        started = time.perf_counter()
        for batch in prepared:
            store.apply(batch)
        elapsed = time.perf_counter() - started
        applied = store.statistics().applied
    return {
        "transitions": applied,
        "seconds": elapsed,
        "per_second": applied / elapsed,
        "goal_per_second": GOAL_PER_SECOND,
    }


def report(result: dict[str, float]) -> None:
    print(
        f"store: {result['transitions']:.0f} transitions in batches of 1000: "
        f"{result['per_second']:,.0f}/s (goal >= {GOAL_PER_SECOND:,}/s, "
        f"{result['per_second'] / GOAL_PER_SECOND:.1f}x)"
    )


def goals(result: dict[str, float]) -> list[Goal]:
    return [
        Goal(
            "store, transitions/s in batches of 1000",
            f"{result['per_second']:,.0f}/s",
            f">= {GOAL_PER_SECOND:,}/s",
            result["per_second"] >= GOAL_PER_SECOND,
        )
    ]


if __name__ == "__main__":
    report(measure())
