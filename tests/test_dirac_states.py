from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, strategies as st

from gangamon import Status
from gangamon.backends.dirac import DiracStatus as D, can_move, ganga_status
from gangamon.backends.dirac._states import (
    DIRAC_TRANSITIONS,
    UnknownDiracStatus,
    parse_dirac_status,
    reported_state,
)
from gangamon.sim._dirac_model import Outcomes, draw_path

# DIRAC 9.1 JobsStateMachine, written out from the reference by hand.
DIRAC_TABLE = {
    "Submitting": {"Received", "Checking", "Deleted", "Killed"},
    "Received": {"Scouting", "Checking", "Staging", "Waiting", "Failed", "Deleted", "Killed"},
    "Checking": {"Scouting", "Staging", "Waiting", "Rescheduled", "Failed", "Deleted", "Killed"},
    "Scouting": {"Checking", "Failed", "Stalled", "Killed"},
    "Staging": {"Checking", "Waiting", "Failed", "Killed"},
    "Waiting": {"Matched", "Rescheduled", "Deleted", "Killed"},
    "Matched": {"Running", "Failed", "Rescheduled", "Killed"},
    "Rescheduled": {"Waiting", "Received", "Deleted", "Failed", "Killed"},
    "Running": {"Stalled", "Done", "Failed", "Rescheduled", "Completing", "Killed", "Received"},
    "Stalled": {"Running", "Failed", "Killed"},
    "Completing": {"Done", "Failed", "Completed", "Stalled", "Killed"},
    "Completed": {"Done", "Failed"},
    "Done": {"Deleted"},
    "Failed": {"Rescheduled", "Deleted"},
    "Killed": {"Deleted"},
    "Deleted": set(),
}


def test_sixteen_statuses_and_the_state_machine() -> None:
    assert len(D) == 16
    assert {s.value: {t.value for t in DIRAC_TRANSITIONS[s]} for s in D} == DIRAC_TABLE


@pytest.mark.parametrize(
    ("dirac", "ganga"),
    [
        # Ganga's statusmapping has no entry for these three and marks such jobs failed.
        ("Submitting", "submitted"),
        ("Scouting", "submitted"),
        ("Rescheduled", "submitted"),
        ("Received", "submitted"),
        ("Checking", "submitted"),
        ("Staging", "submitted"),
        ("Waiting", "submitted"),
        ("Matched", "submitted"),
        ("Running", "running"),
        ("Stalled", "running"),
        ("Completing", "running"),
        ("Completed", "running"),
        ("Done", "completed"),
        ("Failed", "failed"),
        ("Killed", "killed"),
        ("Deleted", "failed"),
    ],
)
def test_every_dirac_status_has_a_ganga_meaning(dirac: str, ganga: str) -> None:
    assert ganga_status(parse_dirac_status(dirac)) == ganga


def test_uploading_output_data_stays_running() -> None:
    assert ganga_status(D.DONE, "Uploading Output Data") == Status.RUNNING
    assert ganga_status(D.FAILED, "Uploading Output Data") == Status.FAILED


@given(st.sampled_from(list(D)), st.sampled_from([None, "", "Uploading Output Data", "Other"]))
def test_reported_state_is_the_mapping_however_often_asked(dirac: D, minor: str | None) -> None:
    # Cached: the same answer the first time and every time after.
    for _ in range(2):
        assert reported_state(dirac.value, minor) == (dirac.value, ganga_status(dirac, minor))
    with pytest.raises(UnknownDiracStatus):
        reported_state(dirac.value.lower(), minor)  # DIRAC's statuses are case-sensitive


@pytest.mark.parametrize("bad", ["done", "Finished", "", None, 7])
def test_unknown_dirac_status_names_the_value(bad: object) -> None:
    with pytest.raises(UnknownDiracStatus, match=repr(bad)):
        parse_dirac_status(bad)


@given(
    seed=st.integers(0, 2**32),
    start=st.floats(0, 1e6),
    runtime=st.floats(0.01, 1e5),
    failed=st.floats(0, 0.5),
    killed=st.floats(0, 0.5),
    rescheduled=st.floats(0, 1),
    stalled=st.floats(0, 1),
    lingering=st.floats(0, 1),
)
def test_every_simulated_path_is_legal_and_ends(
    seed: int,
    start: float,
    runtime: float,
    failed: float,
    killed: float,
    rescheduled: float,
    stalled: float,
    lingering: float,
) -> None:
    outcomes = Outcomes(failed, killed, rescheduled, stalled, lingering)
    path = draw_path(random.Random(seed), start, runtime, outcomes)
    assert path[0][:2] == (start, D.RECEIVED)
    for (t0, a, _), (t1, b, _) in itertools.pairwise(path):
        assert t0 <= t1
        assert can_move(a, b), (a, b)
    assert path[-1][1] in (D.DONE, D.FAILED, D.KILLED)
