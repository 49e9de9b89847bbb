"""SIGKILL a process writing transitions at random moments; every reported commit survives,
in an SQLite file and in PostgreSQL."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from gangamon import Status
from gangamon._store import open_store

from .stores import KINDS, fresh_location

KILLS = 25
WRITER = Path(__file__).with_name("crash_writer.py")


def _run_until_killed(where: str | Path, seed: int, after_batches: int) -> list[dict[str, object]]:
    """Start the writer, let it report `after_batches` commits, SIGKILL it mid-stream."""
    child = subprocess.Popen(
        [sys.executable, str(WRITER), str(where), str(seed)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    reports = []
    for line in child.stdout:
        reports.append(json.loads(line))
        if len(reports) == after_batches:
            child.send_signal(signal.SIGKILL)
            break
    child.wait()
    # Lines already in the pipe when the kill landed were committed too.
    reports.extend(json.loads(line) for line in child.stdout if line.endswith("\n"))
    child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    return reports


@pytest.mark.realtime
@pytest.mark.parametrize("kind", KINDS)
def test_sigkilled_writer_loses_no_reported_transition(tmp_path: Path, kind: str) -> None:
    with fresh_location(kind, tmp_path) as where:
        _kill_and_check(where)


def _kill_and_check(path: str | Path) -> None:
    rng = random.Random(20261125)
    reported_moves: list[tuple[int, str]] = []
    for kill in range(KILLS):
        reports = _run_until_killed(path, seed=kill, after_batches=rng.randint(1, 30))
        reported_moves += [(m[0], m[1]) for r in reports for m in r["moves"]]  # type: ignore[attr-defined]
        with open_store(path) as store:
            entries = store.journal()
            jobs = {j.id: j.status for j in store.jobs()}
            assert store.last_seq() >= max(int(r["seq"]) for r in reports)  # type: ignore[call-overload]
        # The journal has no gap and no duplicate.
        assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
        # Every reported move is there, in order; at most the one batch in flight was
        # committed without being reported, and it was committed whole or not at all.
        journaled = [(e.job, e.new.value) for e in entries if e.reason == "crash-test"]
        assert journaled[: len(reported_moves)] == reported_moves
        unreported = journaled[len(reported_moves) :]
        assert len(unreported) <= 40
        reported_moves += unreported
        # Job table and journal agree: replaying the journal gives the table.
        replayed: dict[int, Status] = {}
        for e in entries:
            assert replayed.get(e.job) == e.old, e
            replayed[e.job] = e.new
        assert replayed == jobs
    assert len(reported_moves) > KILLS
