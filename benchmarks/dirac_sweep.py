"""DIRAC sweep: how long one sweep of N jobs takes against the ideal bound.

The simulator runs in its own process with a fixed latency (no per-id cost, no tail), so one
call takes a fixed time (0.1 s, then 0.3 s); with chunks of 1000 and 8 calls in flight the bound is
ceil(N / chunk) * latency / limiter. Goal (issue 4): at least 0.9 of the bound.

The monitor runs several sweeps, as it would for hours: the first opens its connections (TLS
handshakes included), the later ones reuse them. Each sweep is timed from its first call's
start to its last call's end, stamped inside the backend. Beside it, in the same run:
- raw: the same calls made straight on our transport, without the engine;
- bare: the same calls made by the least a client can do (`_bare_client`): what this machine
  lets a sweep reach, whoever the client;
- alone: one call's round trip with nothing else in flight; its excess over the modelled
  latency is paid once per round, and no sweep makes fewer than ceil(calls / limiter) rounds,
  so whole rounds of it (the ceiling) are the best a sweep can do on this transport here.
"""

from __future__ import annotations

import math
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import trio

from gangamon import BackendSettings, JobRef, Monitor, NewJob, Status, Store, Update
from gangamon.backends.dirac import DiracBackend, DiracHttps
from gangamon.backends.dirac._wire import tornado_body
from gangamon.sim.process import dirac_sim_process

from ._bare_client import BareClient
from ._summary import Goal

CHUNK, LIMITER = 1000, 8
#: Seconds per call of 1000 ids: the low and high ends of reference/dirac.md's WAN model.
LATENCIES = (0.1, 0.3)
SIZES = (1_000, 10_000, 100_000)
SWEEPS = 4
GOAL_FRACTION = 0.9
#: Calls made one at a time for the round trip of a call alone.
ROUND_TRIPS = 20

_Request = TypeVar("_Request")


class _StampedDirac(DiracBackend):
    """Records when each call starts and ends; `done` is set once `calls` have ended."""

    def __init__(self, *args: Any, calls: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stamps: list[tuple[float, float]] = []
        self.calls = calls
        self.done = trio.Event()

    async def poll(self, jobs: Sequence[JobRef]) -> Sequence[Update]:
        started = time.perf_counter()
        try:
            return await super().poll(jobs)
        finally:
            self.stamps.append((started, time.perf_counter()))
            if len(self.stamps) == self.calls:
                self.done.set()


def _transport(facts: dict[str, Any]) -> DiracHttps:
    return DiracHttps(facts["https"], proxy=Path(facts["proxy"]), ca=Path(facts["ca_file"]))


async def _engine_sweeps(
    facts: dict[str, Any], n: int, latency: float, tmp: Path
) -> tuple[list[float], list[float]]:
    """Each sweep's time, and every call's duration (as stamped in the backend)."""
    calls = math.ceil(n / CHUNK)
    # Sweeps start on a fixed schedule, each well after the one before has ended.
    interval = 2 * math.ceil(calls / LIMITER) * latency + 0.5
    settings = BackendSettings(
        poll_interval=interval, chunk_size=CHUNK, concurrency=LIMITER, call_deadline=60.0
    )
    backend = _StampedDirac(
        _transport(facts),
        output_dir=tmp,
        settings=settings,
        download_output=False,
        calls=calls * SWEEPS,
    )
    store = Store(tmp / f"sweep-{n}-{latency}.sqlite")
    first = int(facts["jobs"][0])
    # Stored as the simulator has them (Received, for a very long time): the sweep measures
    # polling, not the writer recording 100,000 first sightings.
    store.add_jobs(
        [
            NewJob("dirac", str(first + i), Status.SUBMITTED, native_status="Received")
            for i in range(n)
        ]
    )
    async with trio.open_nursery() as nursery:
        monitor = await nursery.start(Monitor(store, [backend]).run)
        await backend.done.wait()
        monitor.stop()
    stats = monitor.statistics().backends["dirac"]
    assert stats.errors == stats.timeouts == 0, stats
    store.close()
    # The monitor may start another sweep before it stops: only the first SWEEPS count.
    stamps = backend.stamps[: calls * SWEEPS]
    return _sweep_times(stamps, calls), [end - start for start, end in stamps]


async def _wire_sweeps(facts: dict[str, Any], n: int) -> tuple[list[float], list[float], float]:
    """The same calls without the engine: on our transport (what the wire costs us), then on
    the bare client (what it costs at the least); and one call of ours alone, for its round
    trip."""
    first = int(facts["jobs"][0])
    chunks = [list(range(first + i, first + min(i + CHUNK, n))) for i in range(0, n, CHUNK)]
    transport = _transport(facts)
    async with transport.session():
        ours = await _sweeps(chunks, lambda ids: ids, transport.job_states)
        alone = []
        for ids in chunks[:1] * ROUND_TRIPS:
            began = time.perf_counter()
            await transport.job_states(ids)
            alone.append(time.perf_counter() - began)
    async with BareClient(facts, LIMITER).open() as bare:
        least = await _sweeps(chunks, lambda ids: tornado_body("getJobsStates", [ids]), bare.call)
    return ours, least, statistics.median(alone)


async def _sweeps(
    chunks: list[list[int]],
    prepare: Callable[[list[int]], _Request],
    call: Callable[[_Request], Awaitable[object]],
) -> list[float]:
    """SWEEPS sweeps over `chunks`, LIMITER calls at a time; each call's request is prepared
    before it takes a slot."""
    limiter = trio.CapacityLimiter(LIMITER)
    stamps: list[tuple[float, float]] = []

    async def one(ids: list[int]) -> None:
        request = prepare(ids)
        async with limiter:
            began = time.perf_counter()
            await call(request)
            stamps.append((began, time.perf_counter()))

    for _ in range(SWEEPS):
        async with trio.open_nursery() as nursery:
            for ids in chunks:
                nursery.start_soon(one, ids)
    return _sweep_times(stamps, len(chunks))


def _sweep_times(stamps: list[tuple[float, float]], calls: int) -> list[float]:
    sweeps = [stamps[i : i + calls] for i in range(0, len(stamps), calls)]
    return [max(end for _, end in s) - min(start for start, _ in s) for s in sweeps]


def measure(*, quick: bool = False) -> list[dict[str, Any]]:
    """Each size at each latency; quick: 1k and 10k at 0.1 s only."""
    sizes = SIZES[:2] if quick else SIZES
    results = []
    for latency in LATENCIES[:1] if quick else LATENCIES:
        with tempfile.TemporaryDirectory() as tmp, dirac_sim_process(
            Path(tmp) / "sim", jobs=max(sizes), mean_runtime=1e9, latency=latency,
            latency_per_id=0, tail_probability=0,
        ) as facts:  # fmt: skip
            for n in sizes:
                sweeps, durations = trio.run(_engine_sweeps, facts, n, latency, Path(tmp))
                raw, bare, alone = trio.run(_wire_sweeps, facts, n)
                calls = math.ceil(n / CHUNK)
                bound = calls * latency / LIMITER
                steady = statistics.median(sweeps[1:])
                results.append(
                    {
                        "latency": latency,
                        "jobs": n,
                        "first_sweep": sweeps[0],
                        "steady_sweep": steady,
                        "raw_steady": statistics.median(raw[1:]),
                        "bare_steady": statistics.median(bare[1:]),
                        "call_alone": alone,
                        # If calls in flight together cost no more than one alone: the best
                        # fraction of the bound a sweep could reach on this transport here.
                        "ceiling_fraction": bound / (math.ceil(calls / LIMITER) * alone),
                        "bound": bound,
                        # Whole calls go in rounds of LIMITER: no sweep can beat this floor.
                        "floor": math.ceil(calls / LIMITER) * latency,
                        "fraction_of_bound": bound / steady,
                        "first_fraction_of_bound": bound / sweeps[0],
                        "call_seconds": durations,
                    }
                )
    return results


def report(results: list[dict[str, Any]]) -> None:
    print(f"dirac sweep over HTTPS: chunk {CHUNK}, limiter {LIMITER}, {SWEEPS} sweeps each")
    print(
        "bound = ceil(N/chunk)*latency/limiter; floor = whole rounds of calls; first = the "
        "sweep that opens the connections; steady = median of the others; raw = the same "
        "calls without the engine; bare = the same calls by a bare h11 client; alone = one "
        "call's round trip, nothing else in flight; ceiling = bound / (whole rounds of a "
        "call alone)"
    )
    print(
        f"{'latency':>7} {'jobs':>8} {'first s':>8} {'steady s':>9} {'raw s':>7} {'bare s':>7} "
        f"{'alone ms':>9} {'bound s':>8} {'floor s':>8} {'bound/steady':>13} {'bound/bare':>11}"
        f" {'ceiling':>8}"
    )
    for r in results:
        print(
            f"{r['latency']:>7.1f} {r['jobs']:>8,.0f} {r['first_sweep']:>8.3f} "
            f"{r['steady_sweep']:>9.3f} {r['raw_steady']:>7.3f} {r['bare_steady']:>7.3f} "
            f"{r['call_alone'] * 1e3:>9.1f} {r['bound']:>8.3f} {r['floor']:>8.3f} "
            f"{r['fraction_of_bound']:>13.2f} {r['bound'] / r['bare_steady']:>11.2f} "
            f"{r['ceiling_fraction']:>8.2f}"
        )


def goals(results: list[dict[str, Any]]) -> list[Goal]:
    """Against the bound where a sweep can come within 0.9 of it; below 100 calls or so,
    whole rounds of LIMITER calls put the bound out of reach, and the floor is the measure."""
    lines = []
    for r in results:
        of_floor = r["floor"] / r["steady_sweep"]
        what = f"DIRAC sweep, {r['jobs']:,} jobs at {r['latency']} s/call"
        if r["floor"] * GOAL_FRACTION <= r["bound"]:
            measured = (
                f"{r['fraction_of_bound']:.2f} of the bound {r['bound']:.3f} s "
                f"(a bare client: {r['bound'] / r['bare_steady']:.2f}; whole rounds of a call "
                f"alone: {r['ceiling_fraction']:.2f})"
            )
            lines.append(Goal(what, measured, f">= {GOAL_FRACTION} of the bound",
                              r["fraction_of_bound"] >= GOAL_FRACTION))  # fmt: skip
        else:
            measured = f"{of_floor:.2f} of the floor {r['floor']:.2f} s (bound out of reach)"
            lines.append(Goal(what, measured, f">= {GOAL_FRACTION} of the floor",
                              of_floor >= GOAL_FRACTION))  # fmt: skip
    return lines


if __name__ == "__main__":
    report(measure())
