"""The runner's parts on their own: the table of tracked jobs and the backoff policy."""

from __future__ import annotations

import itertools
from collections import Counter

from hypothesis import given, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from gangamon import JobRef, Status
from gangamon._backoff import backoff
from gangamon._jobtable import JobTable

IDS = st.integers(1, 8)
BACKEND_IDS = st.sampled_from(["a", "b", "c", ""])


class TableMachine(RuleBasedStateMachine):
    """The table against a plain dict of what was put and not removed."""

    def __init__(self) -> None:
        super().__init__()
        self.table = JobTable()
        self.model: dict[int, JobRef] = {}

    @rule(job=IDS, backend_id=BACKEND_IDS, status=st.sampled_from(list(Status)))
    def put(self, job: int, backend_id: str, status: Status) -> None:
        ref = JobRef(job, backend_id, status, None)
        self.table.put(ref)
        self.model[job] = ref

    @rule(job=IDS, when=st.floats(0, 100))
    def observe(self, job: int, when: float) -> None:
        if job in self.table:
            self.table.observed[job] = when

    @rule(job=IDS)
    def remove(self, job: int) -> None:
        assert self.table.remove(job) == self.model.pop(job, None)
        assert job not in self.table.observed

    @invariant()
    def same_jobs(self) -> None:
        assert len(self.table) == len(self.model)
        assert {r.id: r for r in self.table.values()} == self.model
        assert all(self.table.get(j) == r for j, r in self.model.items())

    @invariant()
    def counts_are_a_recount(self) -> None:
        assert self.table.by_status() == dict(Counter(r.status for r in self.model.values()))

    @invariant()
    def backend_ids_name_a_job_tracked_under_them(self) -> None:
        for backend_id in ("a", "b", "c"):
            found = self.table.tracking(backend_id)
            holders = {j for j, r in self.model.items() if r.backend_id == backend_id}
            if found is None:
                assert not holders
            else:
                assert found in holders
        assert self.table.tracking("") is None  # masters have no backend id


TestJobTable = TableMachine.TestCase


@given(
    first=st.floats(0.01, 10),
    most=st.floats(0.01, 100),
    attempts=st.integers(1, 40),
    share=st.floats(0.5, 1.0),
)
def test_backoff_doubles_from_first_up_to_most_scaled_by_its_share(
    first: float, most: float, attempts: int, share: float
) -> None:
    waits = [backoff(a, first, most) for a in range(1, attempts + 1)]
    assert waits[0] == min(first, most)
    assert all(b == min(a * 2, most) for a, b in itertools.pairwise(waits))
    assert all(w <= most for w in waits)
    assert backoff(attempts, first, most, share) == waits[-1] * share
