"""Real Ganga Dirac jobs, monitored by Ganga 8.7.12's own DIRAC monitor and by gangamon in the
same Ganga session, against the DIRAC simulator (`python -m benchmarks.ganga_dirac [--quick]`;
needs ganga[dirac]==8.7.12 and the DIRAC 9.1.22 client: `nox -s ganga-dirac`).

The simulator runs in a process of its own (its CPU is not Ganga's), Ganga in another (it
changes its process for good), configured by the recipe of reference/ganga-dirac.md: nothing
patched. Per monitor one master job of N subjobs whose DIRAC ids are simulated jobs; they end
on a known schedule spread evenly over `SPREAD` seconds, 1 in 10 Failed, 1 in 20 Killed, the
rest Done (_ganga_dirac_schedule). Ganga's own service (`enableMonitoring()`) monitors the
first master; then gangamon, installed in the same session, a second one on the same
schedule shifted in time. Ganga reads its configuration once: each `[PollThread] Dirac`
interval is a session of its own.

Per monitor: the latency from a job's end at DIRAC (its path's last time) to Ganga's
`final` timestamp; the CPU of the Ganga process and of its child processes (Ganga's DIRAC
processes) during the phase; the DIRAC calls the simulator served during it, by method; the
subjobs whose final status is not what Ganga's [DIRAC] statusmapping makes of their final
DIRAC status. Then, subjob by subjob, what the two monitors left on them.

Modes: `--quick` (CI): 100 subjobs at 5 s. Full (default, and `python -m benchmarks`):
1000 subjobs at 50 s (Ganga's default) and at 5 s, then gangamon alone on 10,000 at 5 s
(the shorter interval: the stricter bound on its p50), their ends over `BIG_SPREAD`. Both
monitors download the output sandboxes (Ganga's default, Failed jobs' too), DIRAC's client
from the simulator's DIP storage element over DISET, gangamon from its Tornado SandboxStore;
`--no-download` switches it off for both.

Goals (issue 14): gangamon's p50 at most 0.6 x the poll interval at 50 s and at 5 s, and
alone at 10,000 subjobs; DIRAC calls at most 1/20 of Ganga's own; CPU (the Ganga process and
its DIRAC processes) at most 1/10; no wrong status; the job-by-job comparison clean.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from ._dirac_sim_child import sim_process
from ._ganga_dirac_compare import GANGA_DEFECTS, compare
from ._summary import Goal

JOBS = 1000
BIG_JOBS = 10_000
QUICK_JOBS = 100
#: Seconds over which the jobs' ends are spread; shorter in quick mode, where it is still
#: 12 poll intervals.
SPREAD = 100.0
QUICK_SPREAD = 60.0
#: 10,000 subjobs end at the 1000-subjob sessions' rate (10 a second): ten times the jobs
#: tracked and polled, not ten times the ends a second. At 100 a second the Ganga process
#: (its updateStatus, hooks and repository, gangamon's downloads) needs most of a core.
BIG_SPREAD = 1000.0
#: Bound on gangamon's median latency, in poll intervals.
P50_BOUND = 0.6

OUT = Path("bench-results/ganga_dirac.json")


def available() -> str | None:
    """None if this Python has what the benchmark needs, else what it lacks."""
    ganga = importlib.util.find_spec("ganga")
    if ganga is None or ganga.origin is None:
        return "the ganga package"
    if not (Path(ganga.origin).parent / "GangaDirac").is_dir():
        return "GangaDirac"
    for module, what in (("DIRAC", "the DIRAC client"), ("UltraDict", "ganga[dirac]'s UltraDict")):
        if importlib.util.find_spec(module) is None:
            return what
    return None


def measure_session(
    *,
    jobs: int,
    interval: int,
    monitors: tuple[str, ...] = ("ganga", "gangamon"),
    spread: float = SPREAD,
    download: bool = True,
    explicit: bool = False,
    fresh_ids: bool = False,
) -> dict[str, Any]:
    """One Ganga session (a child process) and the simulator (another) for `monitors` in
    order, each on `jobs` subjobs; their figures and, with both, the comparison."""
    with tempfile.TemporaryDirectory(prefix="gangamon-ganga-dirac-") as tmp:
        directory = Path(tmp)
        with sim_process(directory / "sim") as facts:
            (directory / "ganga").mkdir()
            settings: dict[str, Any] = {
                "directory": str(directory / "ganga"),
                "facts": facts,
                "jobs": jobs,
                "interval": interval,
                "monitors": list(monitors),
                "spread": spread,
                "download": download,
                "explicit": explicit,
                "fresh_ids": fresh_ids,
            }
            settings_file = directory / "settings.json"
            settings_file.write_text(json.dumps(settings))
            result = _run_ganga(settings_file, directory / "result.json")
    session: dict[str, Any] = {"jobs": jobs, "interval": interval, "spread_s": spread}
    session |= {"download": download, "explicit": explicit, "fresh_ids": fresh_ids}
    session["ganga_exit_killed"] = result["exit_killed"]
    for monitor in monitors:
        session[monitor] = result[monitor]
    if "ganga" in monitors and "gangamon" in monitors:
        session["comparison"] = compare(result["ganga"]["records"], result["gangamon"]["records"])
    for monitor in monitors:
        # Summed up in the comparison; 10,000 are too many to keep: a few, to show their form.
        session[monitor]["records_sample"] = session[monitor].pop("records")[:4]
    return session


#: Seconds a Ganga session may take to exit once it has written its result: Ganga's exit can
#: hang ("Stopping the DIRAC process", reference/ganga.md §5 item 12).
EXIT_GRACE = 120.0


def _run_ganga(settings_file: Path, out: Path) -> dict[str, Any]:
    """The Ganga child on `settings_file`; its result. A child that hangs on its way out
    after writing it is killed (and said so); one that ends without it is an error."""
    command = [sys.executable, "-m", "benchmarks.ganga_dirac", "--session", str(settings_file)]
    killed = False
    with subprocess.Popen([*command, "--json", str(out)]) as child:
        # The result is a file the child renames into place when it is complete: wait for
        # it or for the child's end, whichever comes first.
        while not out.exists():
            try:
                child.wait(timeout=1.0)
                break
            except subprocess.TimeoutExpired:
                continue
        try:
            child.wait(timeout=EXIT_GRACE)
        except subprocess.TimeoutExpired:
            print(f"ganga_dirac: the Ganga session did not exit within {EXIT_GRACE:.0f} s; killed")
            child.kill()
            killed = True
    if not out.exists() or (child.returncode != 0 and not killed):
        raise RuntimeError(f"the Ganga session failed (exit {child.returncode})")
    result: dict[str, Any] = json.loads(out.read_text())
    result["exit_killed"] = killed
    return result


def measure(*, quick: bool, download: bool = True, explicit: bool = False) -> dict[str, Any]:
    def session(jobs: int, interval: int, **more: Any) -> dict[str, Any]:
        return measure_session(
            jobs=jobs, interval=interval, download=download, explicit=explicit, **more
        )

    if quick:
        sessions = [session(QUICK_JOBS, 5, spread=QUICK_SPREAD)]
    else:
        sessions = [
            session(JOBS, 50),
            session(JOBS, 5),
            session(BIG_JOBS, 5, monitors=("gangamon",), spread=BIG_SPREAD),
        ]
    return {"quick": quick, "sessions": sessions}


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def report(r: dict[str, Any]) -> None:
    for s in r["sessions"]:
        print(
            f"ganga Dirac jobs: one master of {s['jobs']} subjobs per monitor, [PollThread] Dirac ="
            f" {s['interval']} s, ends spread over {s['spread_s']:.0f} s, sandbox download "
            f"{'on' if s['download'] else 'off'}"
        )
        for name, key in (("Ganga 8.7.12 own monitor", "ganga"), ("gangamon", "gangamon")):
            if key not in s:
                continue
            m = s[key]
            lat, c = m["latency"], m["cpu"]
            calls = ", ".join(f"{k} {v}" for k, v in m["calls"].items()) or "none"
            print(
                f"  {name:<25} end at DIRAC -> 'final': p50 {_seconds(lat['p50_s'])}  p99 "
                f"{_seconds(lat['p99_s'])}  max {_seconds(lat['max_s'])}; phase {m['wall_s']:.0f} s"
                f" (subjobs made in {m['create_s']:.1f} s)"
            )
            print(
                f"  {'':<25} CPU: Ganga process {c['ganga_s']:.1f} s, its child processes "
                f"{c['children_s']:.1f} s ({len(c['children_at_end'])} at the end, "
                f"{len(c['children_exited'])} exited, {c['reaped_children_s']:.1f} s reaped)"
            )
            print(f"  {'':<25} DIRAC calls {sum(m['calls'].values())}: {calls}")
            if key == "gangamon":
                print(f"  {'':<25} gangamon's backends: {', '.join(m['gangamon_backends'])}")
                if not _runs_dirac(m):
                    print(f"  {'':<25} WARNING: none is DIRAC's: Ganga's own code monitored")
                warned = m.get("gangamon_warnings", [])
                print(f"  {'':<25} gangamon's warnings: {len(warned)}")
                for message in warned[:5]:
                    print(f"  {'':<27} {message[:300]}")
            wrong = m["wrong_statuses"]
            print(
                f"  {'':<25} wrong statuses: {wrong['count']}"
                + (f" (e.g. {wrong['examples']})" if wrong["count"] else "")
                + (
                    f"; {m['not_final']} subjobs without a final timestamp"
                    if m["not_final"]
                    else ""
                )
            )
        if "comparison" in s:
            _report_comparison(s["comparison"])


def _report_comparison(c: dict[str, Any]) -> None:
    defects = c.get("ganga_defects", {})
    if defects:
        print("  where Ganga's own monitor writes a wrong value and gangamon DIRAC's, subjobs:")
        why: dict[str, list[str]] = {}
        for name, _, reason in GANGA_DEFECTS:
            why.setdefault(name, []).append(reason)
        for name, count in defects.items():
            print(f"    {name:<34} {count:>6}  {'; or '.join(why[name])}")
    if c["clean"]:
        print(f"  job by job ({c['pairs']} pairs): no other difference")
        return
    print(f"  job by job ({c['pairs']} pairs), subjobs that differ, per attribute:")
    for name, count in c["differences"].items():
        example = c["examples"].get(name, [{}])[0]
        shown = f"e.g. #{example.get('index')}: Ganga {example.get('ganga')!r:.60}, gangamon "
        shown += f"{example.get('gangamon')!r:.60}"
        print(f"    {name:<34} {count:>6}  {shown}")


def _runs_dirac(figures: dict[str, Any]) -> bool:
    return any("dirac" in name.lower() for name in figures["gangamon_backends"] or [])


def goals(r: dict[str, Any]) -> list[Goal]:
    out: list[Goal] = []
    for s in r["sessions"]:
        if "gangamon" not in s:
            continue  # a session of Ganga's own alone (from the command line): no goal
        where = f"Ganga Dirac jobs ({s['jobs']} subjobs, poll {s['interval']} s)"
        ours = s["gangamon"]
        if not _runs_dirac(ours):
            backends = ", ".join(ours["gangamon_backends"]) or "none"
            what = f"{where}, gangamon monitors the Dirac jobs itself"
            out.append(Goal(what, f"no: its backends are {backends}", "yes", False))
        bound = P50_BOUND * s["interval"]
        p50 = ours["latency"]["p50_s"]
        own = s.get("ganga")
        beside = f" (Ganga's own: {_seconds(own['latency']['p50_s'])})" if own else ""
        out.append(
            Goal(
                f"{where}, end at DIRAC -> 'final', gangamon p50",
                f"{_seconds(p50)}{beside}",
                f"<= {bound:g} s",
                p50 is not None and p50 <= bound,
            )
        )
        if own is not None:
            theirs, mine = sum(own["calls"].values()), sum(ours["calls"].values())
            out.append(
                Goal(
                    f"{where}, DIRAC calls, gangamon / Ganga's own",
                    f"{mine} / {theirs}",
                    "<= 1/20",
                    mine * 20 <= theirs,
                )
            )
            a, b = own["cpu"], ours["cpu"]
            out.append(
                Goal(
                    f"{where}, CPU (Ganga + its DIRAC processes), gangamon / Ganga's own",
                    f"{b['ganga_s']:.1f}+{b['children_s']:.1f} s / "
                    f"{a['ganga_s']:.1f}+{a['children_s']:.1f} s",
                    "<= 1/10",
                    b["total_s"] * 10 <= a["total_s"],
                )
            )
        wrong = ours["wrong_statuses"]["count"]
        theirs_wrong = f" (Ganga's own: {own['wrong_statuses']['count']})" if own else ""
        out.append(
            Goal(f"{where}, gangamon's wrong statuses", f"{wrong}{theirs_wrong}", "0", wrong == 0)
        )
        if "comparison" in s:
            c = s["comparison"]
            differing = sum(c["differences"].values())
            out.append(
                Goal(
                    f"{where}, what gangamon left vs Ganga's own, job by job",
                    "clean"
                    if c["clean"]
                    else f"{differing} differences over {len(c['differences'])} attributes",
                    "clean",
                    bool(c["clean"]),
                )
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ganga_dirac")
    parser.add_argument("--quick", action="store_true", help="100 subjobs at 5 s, for CI")
    parser.add_argument(
        "--no-download",
        dest="download",
        action="store_false",
        help="output-sandbox download off, for both monitors",
    )
    parser.add_argument(
        "--explicit",
        action="store_true",
        help="gangamon's DiracBackend built here, not by install() from Ganga's configuration",
    )
    parser.add_argument(
        "--fresh-ids", action="store_true", help="new DIRAC jobs for the second master"
    )
    parser.add_argument("--out", type=Path, default=OUT)
    # One session of one's choosing instead of the modes' (for trying things out).
    parser.add_argument("--jobs", type=int, help="one session of this many subjobs per monitor")
    parser.add_argument("--interval", type=int, default=5, help="with --jobs: [PollThread] Dirac")
    parser.add_argument("--spread", type=float, default=QUICK_SPREAD, help="with --jobs")
    parser.add_argument("--monitors", default="ganga,gangamon", help="with --jobs")
    # The Ganga child's side of measure_session: both given, or neither.
    parser.add_argument("--session", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.session is not None and args.json is not None:
        from ._ganga_dirac_session import run_session

        result = run_session(json.loads(args.session.read_text()))
        part = args.json.with_suffix(".part")
        part.write_text(json.dumps(result))
        part.replace(args.json)  # whole, for the parent that waits for it
        return
    missing = available()
    if missing is not None:
        parser.exit(
            1, f"ganga_dirac: {missing} is not installed here (nox -s ganga-dirac has it)\n"
        )
    if args.jobs is not None:
        session = measure_session(
            jobs=args.jobs,
            interval=args.interval,
            monitors=tuple(args.monitors.split(",")),
            spread=args.spread,
            download=args.download,
            explicit=args.explicit,
            fresh_ids=args.fresh_ids,
        )
        r = {"quick": False, "sessions": [session]}
    else:
        r = measure(quick=args.quick, download=args.download, explicit=args.explicit)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(r, indent=2) + "\n")
    report(r)
    print(f"results written to {args.out}")


if __name__ == "__main__":
    main()
