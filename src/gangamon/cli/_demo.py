"""`gangamon demo`: gangamon's main job on embedded defaults, start to finish.

A temporary SQLite store, the DIRAC simulator on loopback (HTTPS, its own CA and proxy) with
about 10,000 jobs, and 50 local processes; the monitor watches them all to the end with the
live view, then prints how long each change took to reach the store, measured against the
truth (the simulator's job paths, the local jobs' exit records). It checks itself: a job
stored in a final status other than the one its backend ended in fails the demo.
"""

from __future__ import annotations

import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import trio
from rich.console import Console
from rich.live import Live
from rich.table import Table

from .._astore import AsyncStore
from .._engine import Monitor, open_monitor
from .._status import FINAL, Status
from .._store import NewJob, Store
from ..backends import BackendSettings
from ..backends.dirac import DiracBackend, DiracHttps, ganga_status
from ..backends.local import LocalBackend, exit_record
from ..sim._certs import make_credentials
from ..sim.dirac import DiracSim, LatencyModel
from ._view import Rates, View, active_jobs, calls, collect, render, render_text


@dataclass(frozen=True)
class DemoResult:
    seconds: float
    #: Backend -> seconds from each job's end to its final status in the store.
    detection: dict[str, list[float]]
    final: dict[str, dict[Status, int]]
    #: Jobs stored in a final status other than their backend's.
    wrong: list[str]
    dirac_calls: int
    dirac_errors: int
    simulator: str


async def run_demo(
    *,
    dirac_jobs: int = 10_000,
    local_jobs: int = 50,
    mean_runtime: float = 10.0,
    poll_interval: float = 2.0,
    deadline: float = 120.0,
    show: Callable[[View], None] = lambda view: None,
    seed: int = 1,
) -> DemoResult:
    """Run the demo; `show` gets a `View` four times a second. Raises `TimeoutError` if the
    jobs are not all finished after `deadline` seconds."""
    with tempfile.TemporaryDirectory(prefix="gangamon-demo-") as tmp:
        root = Path(tmp)
        sim = DiracSim(
            seed=seed,
            mean_runtime=mean_runtime,
            credentials=make_credentials(root / "dirac-sim"),
            latency=LatencyModel(base=0.05, per_id=2e-6, tail_probability=0.01, tail_scale=0.5),
        )
        credentials = sim.credentials
        assert credentials is not None
        dirac_settings = BackendSettings(
            poll_interval=poll_interval, chunk_size=1000, concurrency=8, call_deadline=30.0
        )
        local = LocalBackend(root / "local")
        store = AsyncStore(Store(root / "jobs.sqlite"))
        started = time.time()
        # The simulator's clock is trio's: this turns its times into Unix time.
        offset = started - trio.current_time()
        async with trio.open_nursery() as simulator:
            urls = await simulator.start(partial(sim.serve))
            dirac = DiracBackend(
                DiracHttps(urls.https, proxy=credentials.proxy, ca=credentials.ca_file),
                output_dir=root / "dirac-output",
                settings=dirac_settings,
                # Downloading 9,000 sandboxes through the simulator's modelled latency
                # would take minutes; the demo shows monitoring. `finalise` is tested.
                download_output=False,
            )
            async with open_monitor(store, [dirac, local], grace=2.0) as monitor:
                ids = sim.submit(dirac_jobs)
                dirac_refs = await monitor.track(
                    [
                        NewJob("dirac", str(i), Status.SUBMITTED, native_status="Received")
                        for i in ids
                    ]
                )
                local_refs = await _launch_local(monitor, local, local_jobs, random.Random(seed))
                title = f"gangamon demo: {dirac_jobs:,} DIRAC jobs, {local_jobs} local jobs"
                rates, finished = Rates(), Rates(window=60.0)
                with trio.fail_after(deadline):
                    while True:
                        stats = monitor.statistics()
                        clock = f"{time.time() - started:.1f} s"
                        per_second = rates.update(time.time(), calls(stats.backends))
                        view = await collect(
                            store, title, health=stats.backends, calls_per_second=per_second,
                            finished=finished, clock=clock,
                        )  # fmt: skip
                        show(view)
                        if not active_jobs(view):
                            break
                        await trio.sleep(0.25)
            simulator.cancel_scope.cancel()
        seconds = time.time() - started
        result = await _judge(
            store, dict(zip(dirac_refs, ids, strict=True)), local_refs, sim, offset
        )
        dirac_stats = stats.backends["dirac"]
        await store.aclose()
        return DemoResult(
            seconds,
            *result,
            dirac_calls=dirac_stats.calls,
            dirac_errors=dirac_stats.errors,
            simulator=urls.https,
        )


async def _launch_local(
    monitor: Monitor, local: LocalBackend, n: int, rng: random.Random
) -> list[int]:
    """n local jobs: most sleep a few seconds and succeed, one in ten exits with code 3."""
    refs = []
    for i in range(n):
        code = 3 if i % 10 == 9 else 0
        sleep = f"{rng.uniform(0.5, 8.0):.2f}"
        command = [sys.executable, "-c", _PAYLOAD, sleep, str(code)]
        job_dir = await local.launch(command)
        refs += await monitor.track([NewJob("local", job_dir, Status.SUBMITTED)])
    return refs


_PAYLOAD = "import sys, time; time.sleep(float(sys.argv[1])); sys.exit(int(sys.argv[2]))"


async def _judge(
    store: AsyncStore,
    dirac_ids: dict[int, int],
    local_refs: list[int],
    sim: DiracSim,
    offset: float,
) -> tuple[dict[str, list[float]], dict[str, dict[Status, int]], list[str]]:
    detection: dict[str, list[float]] = {"dirac": [], "local": []}
    final: dict[str, dict[Status, int]] = {"dirac": {}, "local": {}}
    wrong = []
    stored = {e.job: e for e in await store.journal() if e.new in FINAL}
    for job, dirac_id in dirac_ids.items():
        when, state, minor = sim.jobs[dirac_id].path[-1]
        entry = stored.get(job)
        if entry is None or entry.new != ganga_status(state, minor):
            wrong.append(f"dirac job {dirac_id}: ended {state.value}, stored {entry}")
            continue
        final["dirac"][entry.new] = final["dirac"].get(entry.new, 0) + 1
        detection["dirac"].append(entry.time - (when + offset))
    for job in local_refs:
        record = await store.get(job)
        ended = exit_record(Path(record.backend_id or ""))
        entry = stored.get(job)
        expected = None if ended is None else Status.COMPLETED if ended.code == 0 else Status.FAILED
        if ended is None or entry is None or entry.new != expected:
            wrong.append(f"local job {record.backend_id}: exit {ended}, stored {entry}")
            continue
        final["local"][entry.new] = final["local"].get(entry.new, 0) + 1
        detection["local"].append(entry.time - ended.end)
    return detection, final, wrong


def summary_table(result: DemoResult) -> Table:
    table = Table(title=f"all jobs finished in {result.seconds:.1f} s", title_justify="left")
    for column in ("backend", "jobs", "completed", "failed", "killed"):
        table.add_column(column, justify="left" if column == "backend" else "right")
    for column in ("detection p50", "p90", "p99", "max"):
        table.add_column(column, justify="right")
    for backend, latencies in result.detection.items():
        counts = result.final[backend]
        q = _quantiles(latencies)
        table.add_row(
            backend,
            str(sum(counts.values())),
            *(str(counts.get(s, 0)) for s in (Status.COMPLETED, Status.FAILED, Status.KILLED)),
            *(_seconds(q[k]) for k in ("p50", "p90", "p99", "max")),
        )
    return table


def _quantiles(values: list[float]) -> dict[str, float]:
    if len(values) < 2:
        return dict.fromkeys(("p50", "p90", "p99", "max"), values[0] if values else float("nan"))
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": cuts[49], "p90": cuts[89], "p99": cuts[98], "max": max(values)}


def _seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def main(*, headless: bool, dirac_jobs: int, local_jobs: int, console: Console) -> int:
    """The `gangamon demo` command: 0 if every job ended stored as its backend ended it."""
    if headless:
        last = [0.0]

        def show(view: View) -> None:
            if time.monotonic() - last[0] >= 2.0:
                last[0] = time.monotonic()
                console.print(render_text(view), highlight=False)

        result = trio.run(
            partial(run_demo, dirac_jobs=dirac_jobs, local_jobs=local_jobs, show=show)
        )
    else:
        with Live(console=console, refresh_per_second=4, transient=False) as live:
            result = trio.run(
                partial(
                    run_demo,
                    dirac_jobs=dirac_jobs,
                    local_jobs=local_jobs,
                    show=lambda view: live.update(render(view)),
                )
            )
    console.print(f"simulator: {result.simulator}", highlight=False)
    console.print(summary_table(result))
    console.print(
        f"DIRAC calls: {result.dirac_calls} ({result.dirac_errors} failed); detection = from "
        "the job's end at its backend to its final status in the store",
        highlight=False,
    )
    for problem in result.wrong[:20]:
        console.print(f"WRONG: {problem}", style="red", highlight=False)
    return 1 if result.wrong else 0
