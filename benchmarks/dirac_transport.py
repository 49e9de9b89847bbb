"""Our HTTPS transport against DIRAC's own client: calls per second and CPU per call.

Both call getJobsStatus for 100 ids against the same simulator (a separate process, 1 ms
per call), with 8 calls in flight: ours as 8 trio tasks on one kept-alive httpx client,
DIRAC's as 8 threads each making a JobMonitoringClient call (its usual way: a new
TornadoClient and TLS handshake per call), in a child process: DIRAC.initialize changes
os.environ and DIRAC's global state for the rest of its process. Goal (issue 4): 10 times the
stock client's calls per second. Needs the DIRAC client (`nox -s bench` and `nox -s dirac`
install it).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import trio

from gangamon.backends.dirac import DiracHttps
from gangamon.sim.process import dirac_sim_process

from . import _child
from ._summary import Goal

IDS, PARALLEL = 100, 8
GOAL_RATIO = 10.0


async def _ours(facts: dict[str, Any], calls: int) -> tuple[float, float]:
    transport = DiracHttps(facts["https"], proxy=Path(facts["proxy"]), ca=Path(facts["ca_file"]))
    ids = list(range(facts["jobs"][0], facts["jobs"][0] + IDS))
    limiter = trio.CapacityLimiter(PARALLEL)

    async def one() -> None:
        async with limiter:
            await transport.call("WorkloadManagement", "JobMonitoring", "getJobsStatus", ids)

    async with transport.session():
        await one()  # connect once before timing
        cpu, wall = time.process_time(), time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(calls):
                nursery.start_soon(one)
        return time.perf_counter() - wall, time.process_time() - cpu


def _stock(facts: dict[str, Any], calls: int) -> tuple[float, float]:
    import DIRAC

    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        os.environ.pop(name, None)  # they override DIRAC's CALocation
    os.environ["X509_USER_PROXY"] = facts["proxy"]
    url = f"{facts['https']}/WorkloadManagement/TornadoJobMonitoring"
    DIRAC.initialize(require_auth=False, extra_config={
        "DIRAC": {"Security": {"CALocation": facts["ca_dir"]}},
        "Systems": {"WorkloadManagement": {"URLs": {"JobMonitoring": url}}},
    })  # fmt: skip
    from DIRAC.WorkloadManagementSystem.Client.JobMonitoringClient import JobMonitoringClient

    ids = list(range(facts["jobs"][0], facts["jobs"][0] + IDS))

    def one(_: int) -> None:
        result = JobMonitoringClient().getJobsStatus(ids)
        assert result["OK"], result

    one(0)
    cpu, wall = time.process_time(), time.perf_counter()
    with ThreadPoolExecutor(PARALLEL) as pool:
        list(pool.map(one, range(calls)))
    return time.perf_counter() - wall, time.process_time() - cpu


def _stock_in_child(facts: dict[str, Any], calls: int) -> tuple[float, float]:
    """`_stock` in a process of its own: DIRAC.initialize sets X509_USER_PROXY and DIRAC's
    global configuration for the rest of its process, which must not be the bench runner's."""
    args = ("--calls", calls, "--facts", json.dumps(facts))
    wall, cpu = _child.run("benchmarks.dirac_transport", *args)
    return wall, cpu


def measure(*, quick: bool = False) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp, dirac_sim_process(
        Path(tmp), jobs=IDS, mean_runtime=1e9, latency=0.001, latency_per_id=0,
        tail_probability=0,
    ) as facts:  # fmt: skip
        stock_calls = 100 if quick else 300
        ours_calls = 1000 if quick else 3000
        ours_wall, ours_cpu = trio.run(_ours, facts, ours_calls)
        stock_wall, stock_cpu = _stock_in_child(facts, stock_calls)
    return {
        "ours_calls_per_s": ours_calls / ours_wall,
        "ours_cpu_ms_per_call": ours_cpu / ours_calls * 1e3,
        "stock_calls_per_s": stock_calls / stock_wall,
        "stock_cpu_ms_per_call": stock_cpu / stock_calls * 1e3,
        "ratio": (ours_calls / ours_wall) / (stock_calls / stock_wall),
    }


def report(r: dict[str, float]) -> None:
    print(f"dirac transport, getJobsStatus of {IDS} ids, {PARALLEL} in flight:")
    print(
        f"  ours (httpx, kept alive):   {r['ours_calls_per_s']:8.0f} calls/s "
        f"{r['ours_cpu_ms_per_call']:6.2f} ms CPU/call"
    )
    print(
        f"  DIRAC's JobMonitoringClient:{r['stock_calls_per_s']:8.0f} calls/s "
        f"{r['stock_cpu_ms_per_call']:6.2f} ms CPU/call"
    )
    print(f"  ratio {r['ratio']:.1f}x (goal >= {GOAL_RATIO:.0f}x)")


def goals(r: dict[str, float]) -> list[Goal]:
    return [
        Goal(
            "DIRAC HTTPS transport vs DIRAC's JobMonitoringClient, calls/s",
            f"{r['ours_calls_per_s']:.0f} vs {r['stock_calls_per_s']:.0f} ({r['ratio']:.1f}x)",
            f">= {GOAL_RATIO:.0f}x",
            r["ratio"] >= GOAL_RATIO,
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.dirac_transport")
    # The child's side of _stock_in_child: all three given, or none.
    parser.add_argument("--facts", help=argparse.SUPPRESS)
    parser.add_argument("--calls", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.facts is None:
        report(measure())
    else:
        args.json.write_text(json.dumps(_stock(json.loads(args.facts), args.calls)))


if __name__ == "__main__":
    main()
