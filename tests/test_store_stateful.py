"""The store against an in-memory model, through random adds, batches and reopenings: once an
SQLite file, once a PostgreSQL schema."""

from __future__ import annotations

import contextlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
from hypothesis import settings, strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule

from gangamon import (
    ACTIVE,
    DuplicateJob,
    NewJob,
    Outcome,
    Status,
    Transition,
    can_transition,
    master_status,
)
from gangamon._store import open_store

from .stores import fresh_location

statuses = st.sampled_from(list(Status))
natives = st.sampled_from([None, "Running", "Done", "Waiting"])
#: Few, so that runs share them: one active job at a time may hold each.
backend_ids = st.sampled_from(["1", "2", "3"])


@dataclass
class ModelJob:
    status: Status
    native: str | None
    parent: int | None
    key: tuple[str, str]


class StoreMachine(RuleBasedStateMachine):
    jobs = Bundle("jobs")
    kind: ClassVar[str] = "sqlite"

    def __init__(self) -> None:
        super().__init__()
        with contextlib.ExitStack() as cleanup:  # closed here if the store cannot be had
            folder = cleanup.enter_context(tempfile.TemporaryDirectory(prefix="gangamon-stateful-"))
            self.location = cleanup.enter_context(fresh_location(self.kind, Path(folder)))
            self.store = open_store(self.location)
            self._cleanup = cleanup.pop_all()
        self.model: dict[int, ModelJob] = {}
        self.journal_rows = 0

    def teardown(self) -> None:
        self.store.close()
        self._cleanup.close()

    def _derive_master(self, parent: int) -> None:
        master = self.model[parent]
        new = master_status(j.status for j in self.model.values() if j.parent == parent)
        revived = new in ACTIVE and master.status not in ACTIVE
        if (
            new != master.status
            and can_transition(master.status, new)
            and not (revived and self._active_holders(master.key, but=parent))
        ):
            master.status = new
            self.journal_rows += 1

    def _active_holders(self, key: tuple[str, str], but: int | None = None) -> list[int]:
        return [
            k for k, m in self.model.items() if m.key == key and m.status in ACTIVE and k != but
        ]

    def _add(self, new: NewJob, superseding: bool) -> int | None:
        """Add `new` as the store should: None if refused (an active holder, not superseded)."""
        key = (new.backend, str(new.backend_id))
        holders = self._active_holders(key) if new.status in ACTIVE else []
        if holders and not superseding:
            with pytest.raises(DuplicateJob, match=f"as job {holders[0]}"):
                self.store.add_jobs([new])
            return None
        [job] = self.store.add_jobs([new], superseding=superseding)
        # The store supersedes (deriving those masters), then adds (deriving its own).
        for holder in holders:
            self.model[holder].status = Status.UNKNOWN
            self.journal_rows += 1
        for parent in sorted({p for h in holders if (p := self.model[h].parent) is not None}):
            self._derive_master(parent)
        self.model[job] = ModelJob(new.status, new.native_status, new.parent, key)
        self.journal_rows += 1
        if new.parent is not None:
            self._derive_master(new.parent)
        return job

    @rule(
        target=jobs,
        status=statuses,
        native=natives,
        backend=st.sampled_from(["dirac", "slurm"]),
        backend_id=backend_ids,
        superseding=st.booleans(),
    )
    def add(
        self, status: Status, native: str | None, backend: str, backend_id: str, superseding: bool
    ) -> int:
        new = NewJob(backend, backend_id, status, native_status=native)
        job = self._add(new, superseding)
        return job if job is not None else min(self.model, default=10_000)

    @rule(target=jobs, parent=jobs, status=statuses, backend_id=backend_ids)
    def add_subjob(self, parent: int, status: Status, backend_id: str) -> int:
        if parent not in self.model or self.model[parent].parent is not None:
            return parent  # one level of subjobs, as in Ganga
        job = self._add(NewJob("dirac", f"s{backend_id}", status, parent=parent), False)
        return job if job is not None else parent

    @rule(
        moves=st.lists(
            st.tuples(
                st.one_of(jobs, st.integers(10_000, 10_005)), st.booleans(), statuses, natives
            ),
            max_size=12,
        )
    )
    def apply_batch(self, moves: list[tuple[int, bool, Status, str | None]]) -> None:
        batch, expected = [], []
        parents: set[int] = set()
        for job, guess_right, new, native in moves:
            known = self.model.get(job)
            if known is None:
                batch.append(Transition(job, Status.RUNNING, new, native))
                expected.append(Outcome.UNKNOWN_JOB)
                continue
            # Half the time the caller expects what is stored, half a random (maybe stale) status.
            exp = known.status if guess_right else new
            batch.append(Transition(job, exp, new, native))
            if exp != known.status:
                expected.append(Outcome.STALE)
            elif new == known.status and native == known.native:
                expected.append(Outcome.UNCHANGED)
            elif not can_transition(known.status, new):
                expected.append(Outcome.ILLEGAL)
            elif (
                known.status not in ACTIVE
                and new in ACTIVE
                and self._active_holders(known.key, but=job)
            ):
                expected.append(Outcome.HELD)
            else:
                expected.append(Outcome.APPLIED)
                known.status, known.native = new, native
                self.journal_rows += 1
                if known.parent is not None:
                    parents.add(known.parent)
        for parent in sorted(parents):
            self._derive_master(parent)
        assert self.store.apply(batch) == expected

    @rule()
    def reopen(self) -> None:
        self.store.close()
        self.store = open_store(self.location)

    @invariant()
    def table_matches_model(self) -> None:
        stored = {j.id: (j.status, j.native_status, j.parent) for j in self.store.jobs()}
        assert stored == {k: (m.status, m.native, m.parent) for k, m in self.model.items()}

    @invariant()
    def journal_is_complete_and_replays_to_the_table(self) -> None:
        entries = self.store.journal()
        assert [e.seq for e in entries] == list(range(1, self.journal_rows + 1))
        replayed: dict[int, Status] = {}
        for e in entries:
            assert replayed.get(e.job) == e.old
            replayed[e.job] = e.new
        assert replayed == {k: m.status for k, m in self.model.items()}


class PostgresMachine(StoreMachine):
    kind = "postgresql"


TestSQLiteStore = StoreMachine.TestCase


# Skips, saying why, without a server (its first example finds none). A quarter of the
# profile's examples: each reopening is a new connection (~10 ms).
TestPostgresStore = PostgresMachine.TestCase
TestPostgresStore.settings = settings(max_examples=max(1, settings().max_examples // 4))
