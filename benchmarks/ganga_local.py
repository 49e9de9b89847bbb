"""Ganga Local jobs: from the application's exit to Ganga's "completed", under Ganga's own
monitor and under gangamon, in the same run (`python -m benchmarks.ganga_local`, needs the
ganga package: `nox -s ganga` installs 8.7.12 from PyPI and runs this).

One headless Ganga session. First Ganga's AsyncMonitoringService, with its defaults (Local
jobs polled every 10 s, the registry scanned every 2 s), monitors N jobs; then gangamon is
installed in the same session and monitors N jobs defined the same way. Each application
writes the time it ends to a file; the latency is Ganga's own timestamp of the job's final
status minus that time. Both include Ganga's wrapper, which checks its application every
0.3 s before it writes the exit code.

Goal (issue 7): gangamon's p50 at most 0.3 s. Ganga's own was measured at 7.0 s
(reference/ganga.md §6).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

JOBS = 20

GANGARC = """\
# Ganga configuration file ($Name: 8.7.12 $)
[Configuration]
gangadir = {gangadir}
[PollThread]
autostart = False
"""


def _submit(ganga: Any, ends: Path, tag: str, jobs: int) -> list[Any]:
    submitted = []
    for i in range(jobs):
        end = ends / f"{tag}-{i}"
        # 1.0 to 3.9 s of work; the end time written as the application's last act.
        command = f"sleep {1 + i % 3}.{i % 10}; date +%s.%N > {end}"
        job = ganga.Job(
            application=ganga.Executable(exe="/bin/sh", args=["-c", command]),
            backend=ganga.Local(),
        )
        job.submit()
        submitted.append(job)
    return submitted


def _wait_final(jobs: list[Any], timeout: float) -> None:
    # Ganga has no event for a job's status: poll it, under a deadline.
    deadline = time.monotonic() + timeout
    while any(j.status not in ("completed", "failed") for j in jobs):
        if time.monotonic() > deadline:
            raise TimeoutError(f"jobs not final within {timeout} s")
        time.sleep(0.05)


def _latencies(jobs: list[Any], ends: Path, tag: str) -> list[float]:
    latencies = []
    for i, job in enumerate(jobs):
        if job.status != "completed":
            raise RuntimeError(f"job {job.id} ended {job.status}, not completed")
        final: dt.datetime = job.time.timestamps["final"]  # Ganga's utcnow(), naive
        ended = float((ends / f"{tag}-{i}").read_text())
        latencies.append(final.replace(tzinfo=dt.UTC).timestamp() - ended)
    return sorted(latencies)


def _summary(latencies: list[float]) -> dict[str, float]:
    return {
        "p50_s": statistics.median(latencies),
        "p99_s": latencies[int(0.99 * (len(latencies) - 1))],
        "max_s": latencies[-1],
    }


def measure(jobs: int = JOBS) -> dict[str, Any]:
    """Both monitors on `jobs` Local jobs each, in one Ganga session (this process)."""
    tmp = Path(tempfile.mkdtemp(prefix="gangamon-bench-"))
    (tmp / "home").mkdir()
    (tmp / "gangarc").write_text(GANGARC.format(gangadir=tmp / "gangadir"))
    ends = tmp / "ends"
    ends.mkdir()
    # Read by Ganga when it is imported.
    os.environ["HOME"] = str(tmp / "home")
    os.environ["GANGA_CONFIG_FILE"] = str(tmp / "gangarc")
    import ganga.ganga

    import ganga as gpi
    import gangamon.ganga

    gpi.enableMonitoring()  # Ganga's AsyncMonitoringService, its defaults
    own = _submit(gpi, ends, "ganga", jobs)
    _wait_final(own, 120)
    gpi.disableMonitoring()

    gangamon.ganga.install(enable=True)
    ours = _submit(gpi, ends, "gangamon", jobs)
    _wait_final(ours, 120)
    return {
        "jobs": jobs,
        "ganga": _summary(_latencies(own, ends, "ganga")),
        "gangamon": _summary(_latencies(ours, ends, "gangamon")),
    }


def report(r: dict[str, Any]) -> None:
    ganga, ours = r["ganga"], r["gangamon"]
    print(f"ganga Local jobs, {r['jobs']} per monitor, application exit -> Ganga 'completed':")
    for name, s in (("Ganga 8.7.12 own monitor", ganga), ("gangamon", ours)):
        print(
            f"  {name:<25} p50 {s['p50_s']:.3f} s  p99 {s['p99_s']:.3f} s  max {s['max_s']:.3f} s"
        )
    print(
        f"  ratio Ganga/gangamon: p50 {ganga['p50_s'] / ours['p50_s']:.1f}x, "
        f"p99 {ganga['p99_s'] / ours['p99_s']:.1f}x "
        f"(goal: gangamon p50 <= 0.3 s: {'met' if ours['p50_s'] <= 0.3 else 'NOT met'})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ganga_local")
    parser.add_argument("--jobs", type=int, default=JOBS)
    report(measure(parser.parse_args().jobs))


if __name__ == "__main__":
    main()
