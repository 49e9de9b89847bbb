"""The demo, small: every job ends stored as its backend ended it, with detection figures."""

from __future__ import annotations

import pytest
from rich.console import Console

from gangamon import Status
from gangamon.cli._demo import run_demo, summary_table
from gangamon.cli._view import View


@pytest.mark.realtime
async def test_a_small_demo_ends_right() -> None:
    views: list[View] = []
    result = await run_demo(
        dirac_jobs=300, local_jobs=10, mean_runtime=2.0, poll_interval=0.5, show=views.append
    )
    assert result.wrong == []
    assert sum(result.final["dirac"].values()) == 300
    assert result.final["local"] == {Status.COMPLETED: 9, Status.FAILED: 1}
    # A detection figure for every job; how large they are is the benchmarks' business.
    assert len(result.detection["dirac"]) == 300
    assert len(result.detection["local"]) == 10
    assert result.dirac_errors == 0
    assert views
    assert sum(views[-1].counts["dirac"].values()) == 300
    console = Console(record=True, width=120)
    console.print(summary_table(result))
    row = next(line for line in console.export_text().splitlines() if "local" in line)
    assert [c.strip() for c in row.split("│")][2:6] == ["10", "9", "1", "0"]
