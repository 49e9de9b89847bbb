"""The benchmarks' pure helpers: what the summary table and the plot are built from."""

from __future__ import annotations

import pytest
from benchmarks import _summary, engine, plot
from benchmarks._summary import Goal


def test_ecdf_is_sorted_and_ends_at_one() -> None:
    xs, ys = plot.ecdf([0.3, 0.1, 0.2, 0.1])
    assert xs == [0.1, 0.1, 0.2, 0.3]
    assert ys == [0.25, 0.5, 0.75, 1.0]


def test_seconds_label_uses_ms_below_a_second() -> None:
    assert plot.seconds_label(0.002) == "2 ms"
    assert plot.seconds_label(0.1) == "100 ms"
    assert plot.seconds_label(2.0) == "2 s"


def test_latency_series_groups_dirac_calls_by_latency() -> None:
    results = {
        "local": {"jobs": 3, "latencies_s": [0.001, 0.002, 0.003]},
        "dirac_sweep": [
            {"jobs": 1000, "latency": 0.1, "call_seconds": [0.1]},
            {"jobs": 10_000, "latency": 0.1, "call_seconds": [0.11, 0.12]},
            {"jobs": 1000, "latency": 0.3, "call_seconds": [0.3]},
        ],
    }
    series = plot.latency_series(results)
    assert sorted(len(v) for v in series.values()) == [1, 3, 3]


def test_share_at_an_interval_is_cpu_per_job_poll_times_jobs_over_interval() -> None:
    assert engine.extrapolated_share(1.0, 100_000, 30.0) == pytest.approx(0.1 / 30)


def test_summary_table_aligns_columns_and_says_what_was_not_measured() -> None:
    text = _summary.table(
        [
            Goal("a", "1", ">= 1", True),
            Goal("longer what", "2", "<= 1", False),
            Goal("b", "-", "x", None),
        ]
    )
    header, rule, *rows = text.splitlines()
    assert [row.split()[-1] for row in rows] == ["yes", "NO", "-"]
    assert set(rule) == {"-"}
    # Each row's goal cell starts under the header's "goal".
    assert [row[header.index("goal") - 1 : header.index("goal") + 1] for row in rows] == [
        " >",
        " <",
        " x",
    ]
