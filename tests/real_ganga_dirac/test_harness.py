"""The ganga-dirac benchmark's pure parts, which need neither Ganga nor DIRAC: the schedule,
the job-by-job comparison, the CPU arithmetic."""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Any

import pytest
from benchmarks import _ganga_dirac_compare as compare, _ganga_dirac_schedule as schedule
from benchmarks._ganga_dirac_cpu import CpuSnapshot, between

from gangamon.backends.dirac import DiracStatus, can_move


@pytest.mark.parametrize("pending", [0.5, 75.0])
def test_every_path_is_legal_in_time_order_and_ends_on_schedule(pending: float) -> None:
    n, start, spread = 100, 1000.0, 100.0
    for i in range(n):
        path = schedule.path(i, n, start, spread, pending)
        times = [t for t, _, _ in path]
        assert times == sorted(times)
        assert path[0][0] == start
        statuses = [DiracStatus(s) for _, s, _ in path]
        assert all(can_move(a, b) for a, b in itertools.pairwise(statuses))
        assert statuses[-1].value == schedule.final_status(i)
        lingers = DiracStatus.COMPLETED in statuses
        assert lingers == (statuses[-1] == DiracStatus.DONE and i % 4 == 1)
        completed = [t for t, s, _ in path if s == "Completed"]
        assert completed == ([path[-1][0] - pending - 0.5] if lingers else [])
        on_time = start + schedule.LEAD + spread * i / n + (pending if lingers else 0.0)
        assert schedule.end_time(i, n, start, spread, pending) == on_time


def test_one_in_ten_failed_one_in_twenty_killed() -> None:
    ends = Counter(schedule.final_status(i) for i in range(1000))
    assert ends == {"Done": 850, "Failed": 100, "Killed": 50}


def _record(index: int, **changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "index": index,
        "status": "completed",
        "backend.status": "Done",
        "backend.statusInfo": "Execution Complete",
        "backend.actualCE": "LCG.CERN.cern",
        "backend.normCPUTime": 12.5,
        "backend.extraInfo": "Unknown",
        "stamps": ["backend_final", "final", "running"],
        "backend_stamps": {"backend_final": 10.0},
        "outputs": ["__postprocesslocations__"],
        "postprocess": "",
    }
    return record | changes


def test_the_same_records_compare_clean_and_state_times_within_the_tolerance() -> None:
    ours = [_record(0, backend_stamps={"backend_final": 10.0 + compare.TOLERANCE})]
    assert compare.compare([_record(0)], ours)["clean"]


def test_differences_are_counted_per_attribute_with_examples() -> None:
    ganga = [_record(i) for i in range(5)]
    ours = [_record(i, **{"backend.actualCE": None}) for i in range(4)]
    ours[0] |= {"stamps": ["final"], "backend_stamps": {}}
    result = compare.compare(ganga, ours)
    assert not result["clean"]
    assert result["differences"]["backend.actualCE"] == 4
    assert result["differences"]["missing subjob"] == 1
    assert result["differences"]["timestamps[running] exists"] == 1
    assert result["differences"]["timestamps[backend_final]"] == 1
    assert len(result["examples"]["backend.actualCE"]) == compare.EXAMPLES
    assert result["examples"]["timestamps[backend_final]"] == [
        {"index": 0, "ganga": 10.0, "gangamon": "absent"}
    ]


def test_gangas_known_wrong_values_are_counted_apart_only_where_they_are_gangas() -> None:
    ganga = [
        _record(0, **{"backend.extraInfo": "unknown ApplicationStatus"}),
        _record(1, status="failed", backend_stamps={"backend_final": None}),
        _record(2, status="failed", backend_stamps={"backend_running": None, "backend_final": 9.0}),
        _record(3, **{"backend.extraInfo": "Running"}),
    ]
    ours = [
        _record(0),
        _record(1, status="failed"),
        _record(
            2,
            status="failed",
            stamps=["backend_final", "final"],
            backend_stamps={"backend_running": None, "backend_final": 9.0},
        ),
        _record(3),
    ]
    result = compare.compare(ganga, ours)
    assert result["ganga_defects"] == {
        "backend.extraInfo": 1,
        "timestamps[backend_final]": 1,
        "timestamps[running] exists": 1,
    }
    # Any other application status is not a known defect: a difference like any other.
    assert result["differences"] == {"backend.extraInfo": 1}


def test_wrong_statuses_are_those_not_mapped_from_the_final_dirac_status() -> None:
    records = [_record(0), _record(1, status="killed")]
    wrong = compare.wrong_statuses(records, {0: "completed", 1: "failed"})
    assert wrong == {
        "count": 1,
        "examples": [{"index": 1, "status": "killed", "expected": "failed"}],
    }


def test_children_that_exit_count_what_they_used_after_the_start() -> None:
    # Child 10 ran before and after the start and was reaped (its total, 5 s, joins the
    # reaped CPU); child 11 lives on; child 12 was born and reaped inside (3 s).
    before = CpuSnapshot(own=1.0, reaped=0.5, children={10: ("dirac", 2.0), 11: ("old", 1.0)})
    after = CpuSnapshot(own=4.0, reaped=0.5 + 5.0 + 3.0, children={11: ("old", 1.5)})
    figures = between(before, after)
    assert figures["ganga_s"] == 3.0
    assert figures["children_s"] == (5.0 - 2.0) + 3.0 + (1.5 - 1.0)
    assert figures["children_exited"] == [{"pid": 10, "command": "dirac", "cpu_s_at_start": 2.0}]
