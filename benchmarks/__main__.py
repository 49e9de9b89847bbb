"""`python -m benchmarks [--quick]`: every benchmark, its figures printed beside their goals,
then one summary line per goal; results in bench-results/results.json, the latency
distributions in bench-results/latency.png."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import (
    _summary,
    dirac_deltas,
    dirac_sweep,
    dirac_transport,
    engine,
    ganga_dirac,
    ganga_local,
    local,
    plot,
    soak,
    stop,
    store,
)
from ._summary import Goal


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--quick", action="store_true", help="fewer rounds, for CI")
    parser.add_argument("--out", type=Path, default=Path("bench-results/results.json"))
    args = parser.parse_args()
    started = time.perf_counter()
    results: dict[str, object] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        # The machine may be shared: the load beside the figures says how quiet it was.
        "load_average_at_start": os.getloadavg(),
        "quick": args.quick,
    }
    goals: list[Goal] = []
    quick = args.quick

    def step(name: str, module: Any, measure: Callable[[], Any]) -> None:
        """Measure, print the figures beside their goals, keep the result and the goal lines."""
        results[name] = result = measure()
        module.report(result)
        goals.extend(module.goals(result))

    def skipped(name: str, what: str, package: str, where: str, goal: str) -> None:
        print(f"{name}: skipped, {package} is not installed ({where} has it)")
        goals.append(Goal(what, f"not measured: {package} is not installed ({where})", goal, None))

    step("store", store, lambda: store.measure(batches=10 if quick else 50))
    step("engine", engine, lambda: engine.measure(quick=quick))
    step("local", local, lambda: local.measure(200 if quick else local.JOBS))
    if importlib.util.find_spec("ganga") is not None:
        jobs = ganga_local.QUICK_JOBS if quick else ganga_local.JOBS
        step("ganga_local", ganga_local, lambda: ganga_local.measure_in_child(jobs))
    else:
        what = "local exit -> stored: gangamon vs Ganga 8.7.12 defaults"
        skipped("ganga local", what, "the ganga package", "nox -s bench", ">= 50x")
    step("stop", stop, lambda: stop.measure(quick=quick))
    step("dirac_sweep", dirac_sweep, lambda: dirac_sweep.measure(quick=quick))
    step("dirac_deltas", dirac_deltas, lambda: dirac_deltas.measure(quick=quick))
    if importlib.util.find_spec("DIRAC") is not None:
        step("dirac_transport", dirac_transport, lambda: dirac_transport.measure(quick=quick))
    else:
        what = "DIRAC HTTPS transport vs DIRAC's JobMonitoringClient, calls/s"
        skipped("dirac transport", what, "the DIRAC client", "nox -s bench", ">= 10x")
    # Real Ganga Dirac jobs under both monitors: full mode only (about 45 minutes). In quick
    # mode `nox -s ganga-dirac -- --quick` runs it, in the venv that has ganga[dirac].
    what = "Ganga Dirac jobs: gangamon vs Ganga 8.7.12's own DIRAC monitor"
    if quick:
        goals.append(Goal(what, "not measured in quick mode (nox -s ganga-dirac)", "-", None))
    elif (missing := ganga_dirac.available()) is None:
        step("ganga_dirac", ganga_dirac, lambda: ganga_dirac.measure(quick=False))
    else:
        skipped("ganga dirac", what, missing, "nox -s ganga-dirac", "issue 14's goals")
    # Half an hour of outages, renewals, 500s and a full disk under `gangamon run`: full only.
    if quick:
        what = "soak: gangamon run through 30 min of troubles"
        goals.append(
            Goal(what, "not measured in quick mode (python -m benchmarks.soak)", "-", None)
        )
    else:
        step("soak", soak, soak.measure)
    results["load_average_at_end"] = os.getloadavg()
    results["wall_seconds"] = time.perf_counter() - started
    results["summary"] = _summary.as_json(goals)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"results written to {args.out}")
    plot.write_latency_plot(args.out.with_name("latency.png"), plot.latency_series(results))
    print()
    print(_summary.table(goals))
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"{results['wall_seconds']:.0f} s of benchmarks; load average now: {load}")


if __name__ == "__main__":
    main()
