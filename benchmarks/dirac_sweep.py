"""DIRAC sweep: how long one sweep of N jobs takes against the ideal bound.

The simulator runs in its own process with a fixed latency (no per-id cost, no tail), so one
call takes a fixed time (0.1 s, then 0.3 s); with chunks of 1000 and 8 calls in flight the bound is
ceil(N / chunk) * latency / limiter. Goal (issue 4): at least 0.9 of the bound.
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path

import trio

from gangamon import BackendSettings, Monitor, NewJob, Status, Store
from gangamon.backends.dirac import DiracBackend, DiracHttps
from gangamon.sim.process import dirac_sim_process

CHUNK, LIMITER = 1000, 8
#: Seconds per call of 1000 ids: the low and high ends of reference/dirac.md's WAN model.
LATENCIES = (0.1, 0.3)
SIZES = (1_000, 10_000, 100_000)


async def _sweep_seconds(facts: dict[str, object], n: int, tmp: Path) -> float:
    first = int(facts["jobs"][0])  # type: ignore[index]
    transport = DiracHttps(
        str(facts["https"]), proxy=Path(str(facts["proxy"])), ca=Path(str(facts["ca_file"]))
    )
    settings = BackendSettings(
        poll_interval=3600.0, chunk_size=CHUNK, concurrency=LIMITER, call_deadline=60.0
    )
    backend = DiracBackend(transport, output_dir=tmp, settings=settings, download_output=False)
    store = Store(tmp / f"sweep-{n}.sqlite")
    # Stored as the simulator has them (Received, for a very long time): the sweep measures
    # polling, not the writer recording 100,000 first sightings.
    store.add_jobs(
        [
            NewJob("dirac", str(first + i), Status.SUBMITTED, native_status="Received")
            for i in range(n)
        ]
    )
    monitor = Monitor(store, [backend])
    calls = math.ceil(n / CHUNK)
    async with trio.open_nursery() as nursery:
        await nursery.start(monitor.run)
        # The first sweep has taken its jobs (loading them from the store is not part of it);
        # it is over when every chunk has answered.
        started = time.perf_counter()
        while True:
            stats = monitor.statistics().backends["dirac"]
            if stats.calls == calls and stats.in_flight == 0:
                break
            await trio.sleep(0.002)
        elapsed = time.perf_counter() - started
        monitor.stop()
    assert stats.errors == stats.timeouts == 0, stats
    return elapsed


async def _raw_seconds(facts: dict[str, object], n: int) -> float:
    """The same calls made directly on the transport, no engine: what the wire costs."""
    first = int(facts["jobs"][0])  # type: ignore[index]
    transport = DiracHttps(
        str(facts["https"]), proxy=Path(str(facts["proxy"])), ca=Path(str(facts["ca_file"]))
    )
    limiter = trio.CapacityLimiter(LIMITER)

    async def chunk(start: int) -> None:
        ids = list(range(first + start, first + min(start + CHUNK, n)))
        async with limiter:
            await transport.call("WorkloadManagement", "JobMonitoring", "getJobsStates", ids)

    async with transport.session():
        started = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for start in range(0, n, CHUNK):
                nursery.start_soon(chunk, start)
        return time.perf_counter() - started


def measure(*, quick: bool = False) -> list[dict[str, float]]:
    """Each size at each latency; quick: 1k and 10k at 0.1 s only."""
    sizes = SIZES[:2] if quick else SIZES
    results = []
    for latency in LATENCIES[:1] if quick else LATENCIES:
        with tempfile.TemporaryDirectory() as tmp, dirac_sim_process(
            Path(tmp) / "sim", jobs=max(sizes), mean_runtime=1e9, latency=latency,
            latency_per_id=0, tail_probability=0,
        ) as facts:  # fmt: skip
            for n in sizes:
                seconds = trio.run(_sweep_seconds, facts, n, Path(tmp))
                raw = trio.run(_raw_seconds, facts, n)
                calls = math.ceil(n / CHUNK)
                bound = calls * latency / LIMITER
                # Whole calls go in rounds of LIMITER: no sweep can beat this floor.
                floor = math.ceil(calls / LIMITER) * latency
                results.append(
                    {
                        "latency": latency,
                        "jobs": n,
                        "seconds": seconds,
                        "raw_seconds": raw,
                        "bound": bound,
                        "floor": floor,
                        "fraction_of_bound": bound / seconds,
                    }
                )
    return results


def report(results: list[dict[str, float]]) -> None:
    print(f"dirac sweep over HTTPS: chunk {CHUNK}, limiter {LIMITER}")
    print(
        "bound = ceil(N/chunk)*latency/limiter; floor = whole rounds of calls; "
        "raw = same calls without the engine"
    )
    print(
        f"{'latency':>7} {'jobs':>8} {'sweep s':>8} {'raw s':>7} {'bound s':>8} {'floor s':>8} "
        f"{'bound/sweep':>12} (goal >= 0.9)"
    )
    for r in results:
        print(
            f"{r['latency']:>7.1f} {r['jobs']:>8,.0f} {r['seconds']:>8.3f} "
            f"{r['raw_seconds']:>7.3f} {r['bound']:>8.3f} {r['floor']:>8.3f} "
            f"{r['fraction_of_bound']:>12.2f}"
        )


if __name__ == "__main__":
    report(measure())
