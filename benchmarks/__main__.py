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
from pathlib import Path

from . import _summary, dirac_sweep, engine, ganga_local, local, plot, stop, store
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
    results["store"] = store_result = store.measure(batches=10 if args.quick else 50)
    store.report(store_result)
    goals += store.goals(store_result)
    results["engine"] = engine_results = engine.measure(quick=args.quick)
    engine.report(engine_results)
    goals += engine.goals(engine_results)
    results["local"] = local_result = local.measure(200 if args.quick else local.JOBS)
    local.report(local_result)
    goals += local.goals(local_result)
    if importlib.util.find_spec("ganga") is not None:
        results["ganga_local"] = ganga = ganga_local.measure_in_child()
        ganga_local.report(ganga)
        goals += ganga_local.goals(ganga)
    else:
        print("ganga local: skipped, the ganga package is not installed (nox -s bench has it)")
        goals.append(
            Goal(
                "local exit -> stored: gangamon vs Ganga 8.7.12 defaults",
                "not measured: ganga not installed",
                ">= 50x",
                None,
            )
        )
    results["stop"] = stop_result = stop.measure(quick=args.quick)
    stop.report(stop_result)
    goals += stop.goals(stop_result)
    results["dirac_sweep"] = sweep = dirac_sweep.measure(quick=args.quick)
    dirac_sweep.report(sweep)
    goals += dirac_sweep.goals(sweep)
    if importlib.util.find_spec("DIRAC") is not None:
        from . import dirac_transport

        results["dirac_transport"] = transport = dirac_transport.measure(quick=args.quick)
        dirac_transport.report(transport)
        goals += dirac_transport.goals(transport)
    else:
        print("dirac transport: skipped, the DIRAC client is not installed (nox -s dirac has it)")
        goals.append(
            Goal(
                "DIRAC HTTPS transport vs DIRAC's JobMonitoringClient, calls/s",
                "not measured: DIRAC client not installed (nox -s dirac)",
                ">= 10x",
                None,
            )
        )
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
