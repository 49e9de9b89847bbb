"""A week's troubles in half an hour: `gangamon run` over 20,000 simulated DIRAC jobs while,
every six minutes, DIRAC goes down for 60 s, the grid's CA and the user's proxy are renewed,
DIRAC answers a burst of HTTP 500s and the store's disk is full for 30 s.

The real command (`python -m gangamon run`, DIRAC's defaults: what changed every 8 s, every
job every 10 min) against the simulator in a process of its own; the last 8 minutes without
troubles, for the last ends;
the store on a small tmpfs of its own, filled to the last byte for the disk-full windows
(root only: elsewhere those windows are skipped, and the report says so). At the end: every
job in the status DIRAC gave it, no Done job failed, nothing written twice, and the resident
memory of the run from minute 5 to the end grows by less than 5 %.

Full mode of `nox -s bench` only (`python -m benchmarks.soak [--minutes M] [--jobs N]`).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from gangamon import Status, Store
from gangamon.backends.dirac import DiracStatus, ganga_status

from ._dirac_sim_child import SimControl, sim_process
from ._summary import Goal, table

MINUTES = 30.0
JOBS = 20_000
#: DIRAC's steps around this long in all: every job has ended well before the last minutes.
MEAN_RUNTIME = 600.0
#: One round of troubles, from its start (seconds): outage, renewal, 500s, disk full.
ROUND = 360.0
#: When the first round begins (seconds).
FIRST = 120.0
OUTAGE, BURST, DISK_FULL = 60.0, 50, 30.0
#: The last minutes go without troubles: time for a backed-off sweep (up to 8 times the
#: interval) to see the last ends.
QUIET = 480.0
GOAL_RSS_GROWTH = 0.05


def measure(
    *, minutes: float = MINUTES, jobs: int = JOBS, keep_log: Path | None = None
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="gangamon-soak-") as tmp:
        root = Path(tmp)
        with _small_disk(root / "disk") as disk, sim_process(root / "sim") as facts:
            control = SimControl(int(facts["control_port"]))
            proxy, ca = root / "x509up", root / "ca.pem"
            shutil.copy(facts["proxy"], proxy)
            shutil.copy(facts["ca_file"], ca)
            store_path = (disk or root) / "jobs.sqlite"
            ids = control.submit(jobs, MEAN_RUNTIME)
            _track(store_path, ids)
            config = root / "gangamon.toml"
            config.write_text(
                f'store = "{store_path}"\n[backends.dirac]\nurl = "{facts["https"]}"\n'
                f'proxy = "{proxy}"\nca = "{ca}"\noutput_dir = "{root / "out"}"\n'
            )
            log = root / "run.log"
            with log.open("wb") as out:
                run = subprocess.Popen(
                    [sys.executable, "-m", "gangamon", "--config", str(config), "-v", "run"],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
                try:
                    troubles, rss = _through_troubles(run.pid, control, proxy, ca, disk, minutes)
                finally:
                    run.send_signal(signal.SIGTERM)
                    code = run.wait(timeout=120)
            finals = control.finals()
            outcome = _check(store_path, finals)
            if keep_log is not None:
                shutil.copy(log, keep_log)
            lines = log.read_text().splitlines()
            errors = [line for line in lines if "level=error" in line]
            warnings = [line for line in lines if "level=warning" in line]
    return {
        "minutes": minutes,
        "jobs": jobs,
        "exit_code": code,
        "troubles": troubles,
        "disk_full_windows": disk is not None,
        "rss_kib": rss,
        "rss_growth": (rss[-1][1] - rss[0][1]) / rss[0][1] if len(rss) > 1 else None,
        "error_lines": len(errors),
        "error_examples": errors[:8],
        "warning_lines": len(warnings),
        **outcome,
    }


def _track(store_path: Path, ids: list[int]) -> None:
    from gangamon import NewJob

    with Store(store_path) as store:
        store.add_new_jobs([NewJob("dirac", str(i), Status.SUBMITTED) for i in ids])


@contextlib.contextmanager
def _small_disk(where: Path) -> Iterator[Path | None]:
    """A 128 MiB tmpfs of its own at `where` (root only), or None."""
    where.mkdir()
    command = ["mount", "-t", "tmpfs", "-o", "size=128m", "gangamon-soak", str(where)]
    mounted = os.geteuid() == 0 and subprocess.run(command, capture_output=True).returncode == 0
    try:
        yield where if mounted else None
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(where)], capture_output=True)


def _through_troubles(
    pid: int, control: SimControl, proxy: Path, ca: Path, disk: Path | None, minutes: float
) -> tuple[list[tuple[float, str]], list[tuple[float, int]]]:
    """Rounds of troubles, one every `ROUND` seconds from `FIRST`, but none in the last
    `QUIET` seconds of `minutes`; (what happened when, the run's resident memory at minute 5
    and at the end, KiB)."""

    def renew() -> str:
        renewed = control.renew()  # DIRAC's side first: new handshakes want the new CA
        shutil.copy(renewed["proxy"], proxy)
        shutil.copy(renewed["ca_file"], ca)
        return "CA and proxy renewed"

    def outage() -> str:
        control.outage(OUTAGE)
        return f"DIRAC down for {OUTAGE:g} s"

    def burst() -> str:
        control.fault("http500", BURST)
        return f"{BURST} HTTP 500s"

    def disk_full() -> str:
        assert disk is not None
        with _full(disk):
            time.sleep(DISK_FULL)
        return f"disk full for {DISK_FULL:g} s"

    rss: list[tuple[float, int]] = []

    def sample() -> str:
        rss.append((300.0, _rss_kib(pid)))
        return "resident memory taken"

    events: list[tuple[float, Callable[[], str]]] = [(300.0, sample)]
    first, length = FIRST, minutes * 60
    for begin in (first + ROUND * k for k in range(int(length // ROUND) + 1)):
        events += [(begin, outage), (begin + 90, renew), (begin + 150, burst)]
        if disk is not None:
            events.append((begin + 210, disk_full))
    start = time.monotonic()
    done: list[tuple[float, str]] = []
    due = [e for e in events if e[0] < length - QUIET or e[1] is sample]
    for offset, action in sorted(due, key=lambda e: e[0]):
        time.sleep(max(start + offset - time.monotonic(), 0.0))
        done.append((round(time.monotonic() - start, 1), action()))
    time.sleep(max(start + length - 1 - time.monotonic(), 0.0))
    rss.append((round(time.monotonic() - start, 1), _rss_kib(pid)))
    return done, rss


@contextlib.contextmanager
def _full(disk: Path) -> Iterator[None]:
    """`disk` filled to its last byte for the time of the block."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        for size in (1 << 20, 4096, 1):  # down to the last byte: ENOSPC at each size
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)
    try:
        yield
    finally:
        filler.unlink()


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def _check(store_path: Path, finals: dict[int, tuple[str, str]]) -> dict[str, Any]:
    with Store(store_path, read_only=True) as store:
        jobs = store.jobs(backend="dirac")
        wrong, done_failed, twice = [], 0, 0
        for job in jobs:
            status, minor = finals[int(job.backend_id or 0)]
            expected = ganga_status(DiracStatus(status), minor)
            if job.status != expected:
                wrong.append((job.backend_id, status, job.status.value))
                done_failed += status == "Done" and job.status == Status.FAILED
            moves = [(e.new, e.native_status) for e in store.journal(job=job.id)]
            twice += any(a == b for a, b in itertools.pairwise(moves))
        ids = [j.backend_id for j in jobs]
    return {
        "stored": len(jobs),
        "stored_twice": len(ids) - len(set(ids)) + twice,
        "wrong": len(wrong),
        "wrong_examples": wrong[:5],
        "done_failed": done_failed,
    }


def report(r: dict[str, Any]) -> None:
    print(f"soak: gangamon run, {r['jobs']:,} DIRAC jobs, {r['minutes']:g} min")
    for when, what in r["troubles"]:
        print(f"  {when:>7.1f} s  {what}")
    if not r["disk_full_windows"]:
        print("  (no disk-full windows: a tmpfs of its own needs root)")
    print(f"  exit code {r['exit_code']}; its log: {r['error_lines']} errors, "
          f"{r['warning_lines']} warnings; the errors:")  # fmt: skip
    for line in r["error_examples"]:
        print(f"    {line[:160]}")
    print(f"  stored {r['stored']:,}; wrong {r['wrong']}; Done jobs failed {r['done_failed']}; "
          f"written twice {r['stored_twice']}")  # fmt: skip
    for when, kib in r["rss_kib"]:
        print(f"  resident memory at {when:>6.0f} s: {kib / 1024:.1f} MiB")
    if r["rss_growth"] is not None:
        print(f"  growth from minute 5 to the end: {r['rss_growth']:+.1%}")


def goals(r: dict[str, Any]) -> list[Goal]:
    where = f"soak ({r['jobs']:,} DIRAC jobs, {r['minutes']:g} min of troubles)"
    growth = r["rss_growth"]
    return [
        Goal(f"{where}, jobs in DIRAC's status", f"{r['wrong']} wrong", "0", r["wrong"] == 0),
        Goal(f"{where}, Done jobs failed", str(r["done_failed"]), "0", r["done_failed"] == 0),
        Goal(f"{where}, written twice", str(r["stored_twice"]), "0", r["stored_twice"] == 0),
        Goal(
            f"{where}, resident memory from minute 5 to the end",
            "-" if growth is None else f"{growth:+.1%}",
            f"< {GOAL_RSS_GROWTH:.0%}",
            growth is not None and growth < GOAL_RSS_GROWTH,
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak")
    parser.add_argument("--minutes", type=float, default=MINUTES)
    parser.add_argument("--jobs", type=int, default=JOBS)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--log", type=Path, help="keep the run's log here")
    args = parser.parse_args()
    r = measure(minutes=args.minutes, jobs=args.jobs, keep_log=args.log)
    report(r)
    print(table(goals(r)))
    if args.out:
        args.out.write_text(json.dumps(r, indent=1))


if __name__ == "__main__":
    main()
