"""The store against an in-memory model, through random adds, batches and reopenings."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule

from gangamon import NewJob, Outcome, Status, Store, Transition, can_transition, master_status

statuses = st.sampled_from(list(Status))
natives = st.sampled_from([None, "Running", "Done", "Waiting"])


@dataclass
class ModelJob:
    status: Status
    native: str | None
    parent: int | None


class StoreMachine(RuleBasedStateMachine):
    jobs = Bundle("jobs")

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="gangamon-stateful-"))
        self.path = self.dir / "jobs.sqlite"
        self.store = Store(self.path)
        self.model: dict[int, ModelJob] = {}
        self.journal_rows = 0

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.dir)

    def _derive_master(self, parent: int) -> None:
        master = self.model[parent]
        new = master_status(j.status for j in self.model.values() if j.parent == parent)
        if new != master.status and can_transition(master.status, new):
            master.status = new
            self.journal_rows += 1

    @rule(target=jobs, status=statuses, native=natives, backend=st.sampled_from(["dirac", "slurm"]))
    def add(self, status: Status, native: str | None, backend: str) -> int:
        [job] = self.store.add_jobs([NewJob(backend, "x", status, native_status=native)])
        self.model[job] = ModelJob(status, native, None)
        self.journal_rows += 1
        return job

    @rule(target=jobs, parent=jobs, status=statuses)
    def add_subjob(self, parent: int, status: Status) -> int:
        if self.model[parent].parent is not None:  # one level of subjobs, as in Ganga
            return parent
        [job] = self.store.add_jobs([NewJob("dirac", "s", status, parent=parent)])
        self.model[job] = ModelJob(status, None, parent)
        self.journal_rows += 1
        self._derive_master(parent)
        return job

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
        self.store = Store(self.path)

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


TestStore = StoreMachine.TestCase
