"""Store throughput: transitions per second in batches of 1000, on a real SQLite file and, when
one is up (its URL in $GANGAMON_TEST_POSTGRESQL, as `scripts/postgresql-local.sh up` prints),
on a real PostgreSQL server over loopback.

Goal (issue 2): at least 20,000 transitions/s on a 2-core machine, for SQLite. Each batch is
one transaction with synchronous=FULL, so every batch pays one fsync of the WAL. PostgreSQL
commits durably too (the server's synchronous_commit=on): its figure is printed beside
SQLite's and beside a bare yardstick on the same wire, psycopg updating the same rows in one
transaction per batch with no compare-and-set and no journal: what the server and the
machine cost by themselves.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gangamon import NewJob, Status, Transition
from gangamon._store import JobStore, open_store

from ._summary import Goal

GOAL_PER_SECOND = 20_000
CYCLE = (Status.SUBMITTED, Status.RUNNING, Status.COMPLETED, Status.SUBMITTED)
SERVER = "GANGAMON_TEST_POSTGRESQL"


def _batches(ids: list[int], batches: int, batch_size: int) -> list[list[Transition]]:
    status = dict.fromkeys(ids, Status.SUBMITTED)
    prepared = []
    for b in range(batches):
        chunk = ids[(b * batch_size) % len(ids) :][:batch_size]
        batch = []
        for job in chunk:
            new = CYCLE[CYCLE.index(status[job]) + 1]
            batch.append(Transition(job, status[job], new, native_status=new.value))
            status[job] = new
        prepared.append(batch)
    return prepared


def _through(store: JobStore, jobs: int, batches: int, batch_size: int) -> dict[str, float]:
    ids = store.add_jobs([NewJob("bench", str(i), Status.SUBMITTED) for i in range(jobs)])
    prepared = _batches(ids, batches, batch_size)
    started = time.perf_counter()
    for batch in prepared:
        store.apply(batch)
    elapsed = time.perf_counter() - started
    applied = store.statistics().applied
    return {"transitions": applied, "seconds": elapsed, "per_second": applied / elapsed}


@contextlib.contextmanager
def _schema(url: str) -> Iterator[str]:
    """`url` in a new schema of its own, dropped afterwards."""
    import psycopg

    name = f"bench_{secrets.token_hex(6)}"
    with psycopg.connect(url, autocommit=True) as db:
        db.execute(f"CREATE SCHEMA {name}")
    try:
        joiner = "&" if "?" in url else "?"
        yield f"{url}{joiner}options=-csearch_path%3D{name}"
    finally:
        with psycopg.connect(url, autocommit=True) as db:
            db.execute(f"DROP SCHEMA {name} CASCADE")


def _bare(url: str, batches: list[list[Transition]]) -> float:
    """Rows per second psycopg updates in one transaction per batch: the yardstick."""
    import psycopg

    with psycopg.connect(url) as db:
        started = time.perf_counter()
        for batch in batches:
            with db.cursor() as cursor:
                cursor.executemany(
                    "UPDATE jobs SET status = %s, native_status = %s WHERE id = %s",
                    [(t.new.value, t.native_status, t.job) for t in batch],
                )
            db.commit()
        return sum(len(b) for b in batches) / (time.perf_counter() - started)


def _postgresql(jobs: int, batches: int, batch_size: int) -> dict[str, Any]:
    url = os.environ.get(SERVER)
    if not url:
        return {"skipped": f"no PostgreSQL server (${SERVER} unset)"}
    with _schema(url) as where, open_store(where) as store:
        result: dict[str, Any] = _through(store, jobs, batches, batch_size)
        ids = [j.id for j in store.jobs()]
        result["bare_per_second"] = _bare(where, _batches(ids, batches, batch_size))
    return result


def measure(jobs: int = 10_000, batches: int = 50, batch_size: int = 1000) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, open_store(Path(tmp) / "bench.sqlite") as store:
        result: dict[str, Any] = _through(store, jobs, batches, batch_size)
    result["goal_per_second"] = GOAL_PER_SECOND
    result["postgresql"] = _postgresql(jobs, batches, batch_size)
    return result


def report(result: dict[str, Any]) -> None:
    print(
        f"store, SQLite: {result['transitions']:.0f} transitions in batches of 1000: "
        f"{result['per_second']:,.0f}/s (goal >= {GOAL_PER_SECOND:,}/s, "
        f"{result['per_second'] / GOAL_PER_SECOND:.1f}x)"
    )
    pg = result["postgresql"]
    if "skipped" in pg:
        print(f"store, PostgreSQL: skipped, {pg['skipped']}")
        return
    print(
        f"store, PostgreSQL: {pg['transitions']:.0f} transitions in batches of 1000: "
        f"{pg['per_second']:,.0f}/s ({pg['per_second'] / result['per_second']:.2f}x SQLite's; "
        f"bare psycopg updates of the same rows: {pg['bare_per_second']:,.0f}/s)"
    )


def goals(result: dict[str, Any]) -> list[Goal]:
    pg = result["postgresql"]
    what = "store on PostgreSQL, transitions/s in batches of 1000"
    beside = (
        Goal(what, f"not measured: {pg['skipped']}", "reported beside SQLite", None)
        if "skipped" in pg
        else Goal(
            what,
            f"{pg['per_second']:,.0f}/s (bare psycopg {pg['bare_per_second']:,.0f}/s)",
            f"beside SQLite's {result['per_second']:,.0f}/s",
            None,
        )
    )
    return [
        Goal(
            "store, transitions/s in batches of 1000",
            f"{result['per_second']:,.0f}/s",
            f">= {GOAL_PER_SECOND:,}/s",
            result["per_second"] >= GOAL_PER_SECOND,
        ),
        beside,
    ]


if __name__ == "__main__":
    report(measure())
