"""The latency plot: one empirical CDF per named series of seconds, on a log time axis.

`latency_series(results)` picks the series out of the results JSON; `write_latency_plot`
draws any named series. Ganga's side of the local benchmark joins by adding its series to
the mapping `latency_series` returns (or passing it as `extra`). matplotlib is the `bench`
dependency group's; without it the plot is skipped with a note, never the run.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def latency_series(results: Mapping[str, Any]) -> dict[str, list[float]]:
    """Named latency series in seconds, from what `python -m benchmarks` measured."""
    series: dict[str, list[float]] = {}
    if (local := results.get("local")) is not None:
        series[f"gangamon local, {local['jobs']} jobs: exit -> stored"] = local["latencies_s"]
    if (ganga := results.get("ganga_local")) is not None:
        jobs = ganga["jobs"]
        series[f"Ganga 8.7.12 own monitor, {jobs} Ganga Local jobs: app exit -> completed"] = ganga[
            "ganga_latencies_s"
        ]
        series[f"Ganga 8.7.12, Local polled every 1 s, {jobs} Ganga Local jobs"] = ganga[
            "ganga_fastest_latencies_s"
        ]
        series[f"gangamon in Ganga, {jobs} Ganga Local jobs: app exit -> completed"] = ganga[
            "gangamon_latencies_s"
        ]
    # One series per simulated latency, all sizes together: the call does not depend on N.
    for row in results.get("dirac_sweep", []):
        name = f"gangamon DIRAC getJobsStates, 1000 ids, simulator at {row['latency']} s/call"
        series.setdefault(name, []).extend(row["call_seconds"])
    return series


def seconds_label(value: float, _position: object = None) -> str:
    """Tick labels in the unit a reader expects: 2 ms, 100 ms, 1.5 s."""
    return f"{value * 1e3:g} ms" if value < 1 else f"{value:g} s"


def ecdf(values: Sequence[float]) -> tuple[list[float], list[float]]:
    """Sorted values and the fraction of values at or below each."""
    xs = sorted(values)
    return xs, [(i + 1) / len(xs) for i in range(len(xs))]


def write_latency_plot(
    path: Path, series: Mapping[str, Sequence[float]], *, extra: Mapping[str, Sequence[float]] = {}
) -> bool:
    """Draws every non-empty series (and `extra`'s) to `path`; False if matplotlib is absent."""
    if importlib.util.find_spec("matplotlib") is None:
        print(f"plot: skipped, matplotlib is not installed ({path} not written)")
        return False
    # matplotlib is in the bench group only: mypy in the lint session runs without it.
    import matplotlib  # type: ignore[import-not-found,unused-ignore]

    matplotlib.use("Agg")  # files only: no display here, nor in CI
    import matplotlib.pyplot as plt  # type: ignore[import-not-found,unused-ignore]
    from matplotlib.ticker import (  # type: ignore[import-not-found,unused-ignore]
        FuncFormatter,
        LogLocator,
    )

    fig, ax = plt.subplots(figsize=(9, 5.5), layout="constrained")
    for name, values in {**series, **extra}.items():
        if values:
            xs, ys = ecdf([max(v, 1e-6) for v in values])  # log axis: no zeros
            ax.step(xs, ys, where="post", label=f"{name} (n={len(xs)})")
    ax.set_xscale("log")
    ax.xaxis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(seconds_label))
    ax.xaxis.set_minor_formatter(FuncFormatter(seconds_label))
    ax.set_xlabel("latency (log scale)")
    ax.set_ylabel("fraction of events at or below")
    ax.set_ylim(0, 1.02)
    ax.axhline(0.99, color="grey", linewidth=0.6, linestyle=":")
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title("Latency distributions (empirical CDF); dotted line: p99")
    fig.legend(loc="outside lower center", fontsize="small")  # below: the curves stay clear
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"plot written to {path}")
    return True
