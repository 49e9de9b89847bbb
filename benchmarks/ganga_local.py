"""Ganga Local jobs: from the application's exit to Ganga's "completed", under Ganga's own
monitor and under gangamon, in the same run (`python -m benchmarks.ganga_local [--jobs N]`,
needs the ganga package: `nox -s ganga` installs 8.7.12 from PyPI and runs this with 20 jobs;
`nox -s bench` with 500, issue 8's count).

One headless Ganga session. First Ganga's AsyncMonitoringService, with its defaults (Local
jobs polled every 10 s, the registry scanned every 2 s), monitors N jobs; then gangamon is
installed in the same session and monitors N jobs defined the same way. Ganga at its fastest
([PollThread] Local = 1) gets a session of its own: Ganga reads its configuration once.

The workload, the same for each monitor: one master job split by an ArgSplitter into N
subjobs, as physicists run many jobs, submitted through Ganga's bulk path (50 to 90
subjobs/s here; `job.submit()` one job at a time manages 3 jobs/s: 500 would take nearly 3
minutes per monitor). Local's `batchsize` is N, so that all run at once (its default, one
per CPU, would run two at a time). Starting 500 wrappers (a Python and a login shell each)
keeps both cores busy for about 20 s, so the applications first wait on a lock the benchmark
holds until every wrapper has started its application; then each works 1 to 11 s and writes
the time it ends to a file. Every exit thus happens with all N processes alive and none
starting, as in benchmarks/local.py: otherwise the latencies would measure the machine's
start-up load as much as the monitor. The ends are spread evenly over 10 s, Ganga's default
poll interval, so that its latency is sampled at every phase of its poll (ends bunched in a
shorter window would all fall at one phase, and its median with them). The latency is
Ganga's own timestamp of the subjob's final status minus that time. Both include Ganga's
wrapper, which checks its application every 0.3 s before it writes the exit code.

Also printed: how long the submission and the start took; the same latency from the
wrapper's last write of `__jobstatus__` (its exit code; the file's mtime) to "completed",
which leaves the wrapper's own 0.3 s out; and how long a session with three Local jobs still
running takes to exit, from its last statement to the end of the process, under each monitor
(separate processes; 2 s is the bound).

Goals (issues 7 and 8): gangamon's p50 at most 0.3 s; from the exit-code write, Ganga's p50
with its defaults at least 50 times gangamon's. Ganga's own was measured at 7.0 s
(reference/ganga.md §6).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gangamon.ganga._local import read_status_file

from . import _child
from ._summary import Goal

#: Issue 8's count, for the full bench.
JOBS = 500
#: For `--quick`, `nox -s ganga` and the command line's default: under a minute.
QUICK_JOBS = 20
#: Seconds over which the applications' ends are spread: Ganga's default Local poll interval.
SPREAD = 10.0

GANGARC = """\
# Ganga configuration file ($Name: 8.7.12 $)
[Configuration]
gangadir = {gangadir}
[PollThread]
autostart = False
"""


def _run(ganga: Any, ends: Path, tag: str, jobs: int) -> tuple[Any, dict[str, float]]:
    """One master job of `jobs` Local subjobs, its applications released together once all
    have started; returns when it is final: (the master, its submit and start seconds)."""
    lock = ends / f"{tag}.lock"
    # The wait for the shared lock is the barrier; then the work; the end time written as the
    # application's last act.
    commands = [
        f"flock -s {lock} true; sleep {1 + SPREAD * i / jobs:.3f}; date +%s.%N > {ends}/{tag}-{i}"
        for i in range(jobs)
    ]
    deadline = 120 + jobs / 2  # seconds, for each wait: 500 wrappers take ~20 s to start
    with lock.open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        started = time.monotonic()
        master = ganga.Job(
            application=ganga.Executable(exe="/bin/sh"),
            # All subjobs at once (Ganga's default runs as many as there are CPUs).
            backend=ganga.Local(batchsize=jobs),
            splitter=ganga.ArgSplitter(args=[["-c", c] for c in commands]),
        )
        master.submit()
        submitted = time.monotonic()
        _wait_started([Path(sj.outputdir, "__jobstatus__") for sj in master.subjobs], deadline)
        running = time.monotonic()
    # The applications are released: every exit, and every flush that may hold it up, is now.
    with _registry_flushes() as flushes:
        _wait_final(master, deadline)
    return master, {
        "submit_s": submitted - started,
        "start_s": running - submitted,
        "longest_flush_s": max(flushes, default=0.0),
    }


@contextlib.contextmanager
def _registry_flushes() -> Iterator[list[float]]:
    """The seconds each of Ganga's registry flushes takes meanwhile (its flusher thread saves
    the dirty jobs every 30 s by default, `[Registry] AutoFlusherWaitTime`). A flush holds a
    job's lock while it writes the job and its subjobs, and every status change of the job,
    from any monitor, waits for it."""
    from GangaCore.Core.GangaRepository.Registry import Registry

    flushes: list[float] = []
    flush_all = Registry.flush_all

    def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        try:
            return flush_all(self, *args, **kwargs)
        finally:
            flushes.append(time.perf_counter() - began)

    Registry.flush_all = timed
    try:
        yield flushes
    finally:
        Registry.flush_all = flush_all


def _wait_started(status_files: list[Path], timeout: float) -> None:
    """Until every wrapper has started its application (or failed to): read from the files
    the wrappers write, the same whichever monitor runs."""
    deadline = time.monotonic() + timeout
    waiting = status_files
    while waiting:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(waiting)} applications not started within {timeout} s")
        time.sleep(0.2)
        states = [(f, read_status_file(str(f))) for f in waiting]
        waiting = [f for f, s in states if s.pid is None and s.exitcode is None]


def _wait_final(job: Any, timeout: float) -> None:
    # Ganga has no event for a job's status: poll it, under a deadline. The master's status
    # alone: reading 500 subjobs' would take the session's time from the monitor.
    deadline = time.monotonic() + timeout
    while job.status not in ("completed", "failed"):
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job.id} not final within {timeout} s")
        time.sleep(0.05)


def _latencies(master: Any, ends: Path, tag: str) -> tuple[list[float], list[float]]:
    """From each application's end, and from its wrapper's last status write, to its
    subjob's final status."""
    from_end, from_status = [], []
    for job in master.subjobs:
        if job.status != "completed":
            raise RuntimeError(f"job {job.fqid} ended {job.status}, not completed")
        final: dt.datetime = job.time.timestamps["final"]  # Ganga's utcnow(), naive
        final_time = final.replace(tzinfo=dt.UTC).timestamp()
        from_end.append(final_time - float((ends / f"{tag}-{job.id}").read_text()))
        status_file = Path(job.outputdir, "__jobstatus__")
        from_status.append(final_time - status_file.stat().st_mtime)
    return sorted(from_end), sorted(from_status)


def _summary(latencies: list[float]) -> dict[str, float]:
    return {
        "p50_s": statistics.median(latencies),
        "p99_s": latencies[int(0.99 * (len(latencies) - 1))],
        "max_s": latencies[-1],
    }


#: Ganga's fastest Local monitoring (reference/ganga.md §6): its Local backend polled every
#: second instead of every 10 s.
FASTEST = "Local = 1\n"


def _ganga_session(tmp: Path, *, fastest: bool = False) -> tuple[Any, Path]:
    """Import Ganga configured to keep its files in `tmp`; (the GPI, the end-times folder)."""
    (tmp / "home").mkdir(exist_ok=True)
    settings = GANGARC.format(gangadir=tmp / "gangadir") + (FASTEST if fastest else "")
    (tmp / "gangarc").write_text(settings)
    ends = tmp / "ends"
    ends.mkdir()
    # Read by Ganga when it is imported.
    os.environ["HOME"] = str(tmp / "home")
    os.environ["GANGA_CONFIG_FILE"] = str(tmp / "gangarc")
    import ganga as gpi
    import ganga.ganga

    return gpi, ends


def measure_fastest(tmp: Path, jobs: int) -> dict[str, Any]:
    """Ganga's own monitor alone, with its fastest Local polling, on `jobs` Local jobs."""
    gpi, ends = _ganga_session(tmp, fastest=True)
    gpi.enableMonitoring()
    own, own_times = _run(gpi, ends, "ganga", jobs)
    gpi.disableMonitoring()
    own_end, own_status = _latencies(own, ends, "ganga")
    return {
        "ganga_fastest_times": own_times,
        "ganga_fastest_latencies_s": own_end,
        "ganga_fastest": _summary(own_end),
        "ganga_fastest_from_status": _summary(own_status),
    }


def measure(tmp: Path, jobs: int) -> dict[str, Any]:
    """Both monitors on `jobs` Local jobs each, in one Ganga session (this process), with
    Ganga's home, gangadir and configuration in `tmp`; Ganga's with its defaults."""
    gpi, ends = _ganga_session(tmp)
    import gangamon.ganga

    gpi.enableMonitoring()  # Ganga's AsyncMonitoringService, its defaults
    own, own_times = _run(gpi, ends, "ganga", jobs)
    gpi.disableMonitoring()

    gangamon.ganga.install(enable=True)
    ours, our_times = _run(gpi, ends, "gangamon", jobs)
    own_end, own_status = _latencies(own, ends, "ganga")
    our_end, our_status = _latencies(ours, ends, "gangamon")
    return {
        "jobs": jobs,
        "ganga_times": own_times,
        "gangamon_times": our_times,
        "ganga_latencies_s": own_end,
        "gangamon_latencies_s": our_end,
        "ganga": _summary(own_end),
        "gangamon": _summary(our_end),
        "ganga_from_status": _summary(own_status),
        "gangamon_from_status": _summary(our_status),
        "exit_ganga_s": session_exit_seconds(tmp, gangamon=False),
        "exit_gangamon_s": session_exit_seconds(tmp, gangamon=True),
    }


_EXIT_SESSION = """
import time
import ganga.ganga
import ganga as gpi
from GangaCore.GPIDev.Base.Proxy import stripProxy
if {gangamon}:
    import gangamon.ganga
    gangamon.ganga.install(enable=True)
else:
    gpi.enableMonitoring()
jobs = []
for i in range(3):
    j = gpi.Job(application=gpi.Executable(exe="/bin/sh", args=["-c", "sleep 60"]),
                backend=gpi.Local())
    j.submit()
    jobs.append(j)
deadline = time.monotonic() + 60
while any(j.status != "running" for j in jobs) and time.monotonic() < deadline:
    time.sleep(0.05)  # Ganga has no event for it: poll, under a deadline
for j in jobs:
    pids = stripProxy(j).backend.wrapper_pid  # a list, until Ganga's own monitor makes it an int
    print("WRAPPER", pids if isinstance(pids, int) else pids[-1], flush=True)
print("EXITING", flush=True)
"""


def session_exit_seconds(tmp: Path, *, gangamon: bool) -> float:
    """Seconds from a session's last statement to its process's end, 3 Local jobs running
    (also the bound tests/ganga checks). `RuntimeError` if the session did not exit cleanly."""
    (tmp / "home").mkdir(exist_ok=True)
    gangadir = tmp / f"exit-{'gangamon' if gangamon else 'ganga'}"
    gangarc = tmp / f"{gangadir.name}.gangarc"
    gangarc.write_text(GANGARC.format(gangadir=gangadir))
    env = {**os.environ, "GANGA_CONFIG_FILE": str(gangarc), "HOME": str(tmp / "home")}
    code = textwrap.dedent(_EXIT_SESSION.format(gangamon=gangamon))
    wrappers: list[int] = []
    with subprocess.Popen(
        [sys.executable, "-c", code],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp,
    ) as session:
        assert session.stdout is not None
        try:
            for line in session.stdout:
                if line.startswith("WRAPPER "):
                    wrappers.append(int(line.split()[1]))
                elif line.startswith("EXITING"):
                    break
            started = time.monotonic()
            session.wait(timeout=120)
            took = time.monotonic() - started
            if session.returncode != 0 or len(wrappers) != 3:
                assert session.stderr is not None
                raise RuntimeError(f"exit session failed: {session.stderr.read()[-2000:]}")
            return took
        finally:
            session.kill()
            for pid in wrappers:  # the jobs outlive their session, as in Ganga
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)


#: The monitors in the report: their names, and their results' key.
MONITORS = (
    ("Ganga 8.7.12 own monitor", "ganga"),
    ("Ganga, Local polled at 1 s", "ganga_fastest"),
    ("gangamon", "gangamon"),
)


def report(r: dict[str, Any]) -> None:
    ganga, ours = r["ganga"], r["gangamon"]
    jobs = r["jobs"]
    print(f"ganga Local jobs: one master of {jobs} subjobs per monitor, submitted and started:")
    for name, key in MONITORS:
        t = r[f"{key}_times"]
        print(
            f"  {name:<27} submit() {t['submit_s']:.2f} s ({jobs / t['submit_s']:.0f} subjobs/s), "
            f"all applications started {t['start_s']:.2f} s later; longest registry flush "
            f"while they ended {t['longest_flush_s']:.2f} s"
        )
    print("application exit -> Ganga 'completed':")
    for name, key in MONITORS:
        s = r[key]
        print(
            f"  {name:<27} p50 {s['p50_s']:.3f} s  p99 {s['p99_s']:.3f} s  max {s['max_s']:.3f} s"
        )
    print(
        f"  ratio Ganga/gangamon: p50 {ganga['p50_s'] / ours['p50_s']:.1f}x, "
        f"p99 {ganga['p99_s'] / ours['p99_s']:.1f}x "
        f"(goal: gangamon p50 <= 0.3 s: {'met' if ours['p50_s'] <= 0.3 else 'NOT met'})"
    )
    print("wrapper's exit-code write -> Ganga 'completed' (the wrapper's 0.3 s left out):")
    for name, key in MONITORS:
        s = r[f"{key}_from_status"]
        print(f"  {name:<27} p50 {s['p50_s']:.3f} s  p99 {s['p99_s']:.3f} s")
    print(
        "session exit with 3 Local jobs running (last statement -> process end): "
        f"Ganga's own monitor {r['exit_ganga_s']:.2f} s, gangamon {r['exit_gangamon_s']:.2f} s "
        "(bound 2 s)"
    )


def goals(r: dict[str, Any]) -> list[Goal]:
    ganga, ours = r["ganga_from_status"], r["gangamon_from_status"]
    ratio = ganga["p50_s"] / ours["p50_s"]
    jobs = f"Ganga Local jobs ({r['jobs']} per monitor)"
    return [
        Goal(
            f"{jobs}, app exit -> 'completed', gangamon p50",
            f"{r['gangamon']['p50_s']:.2f} s (Ganga's own: {r['ganga']['p50_s']:.2f} s)",
            "<= 0.3 s",
            r["gangamon"]["p50_s"] <= 0.3,
        ),
        Goal(
            f"{jobs}, exit code written -> 'completed', Ganga defaults / gangamon p50",
            f"{ratio:.0f}x ({ganga['p50_s']:.2f} s / {ours['p50_s'] * 1000:.0f} ms; Ganga at "
            f"its fastest: {r['ganga_fastest_from_status']['p50_s']:.2f} s)",
            ">= 50x",
            ratio >= 50,
        ),
        Goal(
            "Ganga session exit with 3 Local jobs running, under gangamon",
            f"{r['exit_gangamon_s']:.2f} s (Ganga's own monitor: {r['exit_ganga_s']:.2f} s)",
            "<= 2 s",
            r["exit_gangamon_s"] <= 2,
        ),
    ]


def measure_in_child(jobs: int) -> dict[str, Any]:
    """`measure()`, then `measure_fastest()`, each in a process of its own: importing Ganga
    changes HOME and global state, and Ganga reads its configuration once."""
    result: dict[str, Any] = {}
    for fastest in (False, True):
        # Ganga's directory outlives the child, which cannot remove what its Ganga still holds.
        with tempfile.TemporaryDirectory(prefix="gangamon-bench-") as tmp:
            flags = ["--fastest"] if fastest else []
            result |= _child.run("benchmarks.ganga_local", "--jobs", jobs, "--dir", tmp, *flags)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ganga_local")
    parser.add_argument("--jobs", type=int, default=QUICK_JOBS)
    # The child's side of measure_in_child: both given, or neither.
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--fastest", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.dir is None or args.json is None:
        report(measure_in_child(args.jobs))
    else:
        run = measure_fastest if args.fastest else measure
        args.json.write_text(json.dumps(run(args.dir, args.jobs)))


if __name__ == "__main__":
    main()
