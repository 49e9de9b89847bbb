from __future__ import annotations

import pytest
from hypothesis import given, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from gangamon import (
    TRANSITIONS,
    IllegalTransition,
    Status,
    UnknownStatus,
    can_transition,
    check_transition,
    master_status,
    parse_status,
)

# Ganga 8.7.12, GangaCore/GPIDev/Lib/Job/Job.py, Job.status_graph, written out by hand.
# fmt: off
GANGA_STATUS_GRAPH: dict[str, set[str]] = {
    "new": {"submitting", "removed"},
    "submitting": {"new", "submitted", "unknown", "failed"},
    "submitted": {"running", "killed", "unknown", "failed", "completing", "completed", "submitting"},  # noqa: E501
    "running": {"completing", "completed", "failed", "killed", "unknown", "submitting", "submitted"},  # noqa: E501
    "completing": {"completed", "failed", "unknown", "submitting", "submitted"},
    "killed": {"removed", "failed", "submitting", "submitted", "failed_frozen"},
    "failed": {"removed", "submitting", "completed", "submitted", "failed_frozen"},
    "completed": {"removed", "failed", "submitting", "submitted", "completed_frozen"},
    "completed_frozen": {"completed"},
    "failed_frozen": {"failed"},
    "incomplete": {"removed"},
    "unknown": {"removed"},
    "template": {"removed"},
}
# fmt: on
GANGA_STATUSES = {
    "new",
    "submitting",
    "submitted",
    "running",
    "completing",
    "completed",
    "failed",
    "killed",
    "unknown",
    "removed",
    "incomplete",
    "completed_frozen",
    "failed_frozen",
    "template",
}
PRIORITY = ["submitting", "submitted", "running", "completing", "failed", "killed", "completed"]

statuses = st.sampled_from(list(Status))


def test_fourteen_statuses_spelled_as_ganga() -> None:
    assert {s.value for s in Status} == GANGA_STATUSES
    assert len(Status) == 14


def test_graph_matches_ganga_edge_for_edge() -> None:
    ours = {(a.value, b.value) for a, targets in TRANSITIONS.items() for b in targets}
    ganga = {(a, b) for a, targets in GANGA_STATUS_GRAPH.items() for b in targets}
    assert ours == ganga
    for old in Status:
        for new in Status:
            expected = old == new or new.value in GANGA_STATUS_GRAPH.get(old.value, set())
            assert can_transition(old, new) is expected, (old, new)


def test_removed_is_a_dead_end() -> None:
    assert [s for s in Status if can_transition(Status.REMOVED, s)] == [Status.REMOVED]


def test_illegal_transition_names_job_and_statuses() -> None:
    with pytest.raises(IllegalTransition) as info:
        check_transition(42, Status.COMPLETED, Status.RUNNING)
    assert str(info.value) == "job 42: illegal status transition 'completed' -> 'running'"
    assert (info.value.job, info.value.old, info.value.new) == (42, "completed", "running")


@pytest.mark.parametrize("bad", ["Running", "done", "", " new", None, 3])
def test_unknown_status_names_the_value(bad: object) -> None:
    with pytest.raises(UnknownStatus, match=repr(bad)):
        parse_status(bad)


def test_parse_status_round_trips() -> None:
    for s in Status:
        assert parse_status(s.value) is s
        assert parse_status(s) is s


class StatusWalk(RuleBasedStateMachine):
    """A job wandering the graph: every legal move accepted, every illegal one refused."""

    def __init__(self) -> None:
        super().__init__()
        self.status = Status.NEW
        self.moves = 0

    @rule(to=statuses)
    def move(self, to: Status) -> None:
        legal = to == self.status or to.value in GANGA_STATUS_GRAPH.get(self.status, set())
        if legal:
            check_transition("walker", self.status, to)
            self.status = to
            self.moves += 1
        else:
            with pytest.raises(IllegalTransition):
                check_transition("walker", self.status, to)

    @invariant()
    def status_is_known(self) -> None:
        assert self.status in Status


TestStatusWalk = StatusWalk.TestCase


@given(st.lists(statuses, min_size=1))
def test_master_status_ignores_order_and_multiplicity(subjobs: list[Status]) -> None:
    assert master_status(subjobs) == master_status(reversed(subjobs)) == master_status(set(subjobs))


@given(st.lists(statuses, min_size=1))
def test_master_status_follows_ganga_priority(subjobs: list[Status]) -> None:
    present = {s.value for s in subjobs}
    ganga_answer = next((p for p in PRIORITY if p in present), None)
    if ganga_answer is not None:
        assert master_status(subjobs) == ganga_answer
    else:
        # Ganga says "undefined state"; ours is a status the subjobs actually hold, unfrozen.
        unfrozen = {"completed_frozen": "completed", "failed_frozen": "failed"}
        assert master_status(subjobs) in {unfrozen.get(s, s) for s in present}


@given(st.lists(statuses, min_size=1), statuses)
def test_master_status_adding_a_higher_priority_subjob_wins(
    subjobs: list[Status], extra: Status
) -> None:
    if extra.value in PRIORITY:
        before = master_status(subjobs)
        after = master_status([*subjobs, extra])
        if before.value in PRIORITY and PRIORITY.index(extra) < PRIORITY.index(before):
            assert after == extra
        else:
            assert after in {before, extra}


@pytest.mark.parametrize(
    ("subjobs", "master"),
    [
        ({"submitting", "completed"}, "submitting"),
        ({"running", "failed", "completed"}, "running"),
        ({"failed", "completed"}, "failed"),
        ({"killed", "completed"}, "killed"),
        ({"completed_frozen", "failed_frozen"}, "failed"),
        ({"completed_frozen"}, "completed"),
        ({"new"}, "new"),
        ({"removed"}, "removed"),
        ({"new", "removed"}, "new"),
        ({"unknown", "new"}, "unknown"),
        ({"incomplete", "removed"}, "incomplete"),
    ],
)
def test_master_status_examples(subjobs: set[str], master: str) -> None:
    assert master_status(Status(s) for s in subjobs) == master


def test_master_status_needs_subjobs() -> None:
    with pytest.raises(ValueError, match="at least one subjob"):
        master_status([])
