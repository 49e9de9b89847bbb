"""`python -m benchmarks [--quick]`: every benchmark, its figures printed beside their goals
and written to bench-results/results.json."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import time
from pathlib import Path

from . import dirac_sweep, engine, local, store


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--quick", action="store_true", help="fewer rounds, for CI")
    parser.add_argument("--out", type=Path, default=Path("bench-results/results.json"))
    args = parser.parse_args()
    results: dict[str, object] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "quick": args.quick,
    }
    results["store"] = store_result = store.measure(batches=10 if args.quick else 50)
    store.report(store_result)
    results["engine"] = engine_results = engine.measure(quick=args.quick)
    engine.report(engine_results)
    results["local"] = local_result = local.measure(200 if args.quick else local.JOBS)
    local.report(local_result)
    results["dirac_sweep"] = sweep = dirac_sweep.measure(quick=args.quick)
    dirac_sweep.report(sweep)
    if importlib.util.find_spec("DIRAC") is not None:
        from . import dirac_transport

        results["dirac_transport"] = transport = dirac_transport.measure(quick=args.quick)
        dirac_transport.report(transport)
    else:
        print("dirac transport: skipped, the DIRAC client is not installed (nox -s dirac has it)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"results written to {args.out}")


if __name__ == "__main__":
    main()
