"""The DIRAC simulator in a process of its own, driven through a small control channel.

`python -m benchmarks._dirac_sim_child --dir D` serves `gangamon.sim.dirac.DiracSim` (HTTPS
and dips, with a throw-away PKI in D) on 127.0.0.1, prints one JSON line of facts (its URLs,
CA and proxy paths, the control port) and then answers JSON lines on that control port, one
request per line, one reply per line:

- `{"op": "add", "count": n}`: n new jobs, Received until scheduled; `{"ids": [...]}`.
  Ganga's jobs need their DIRAC ids before their schedule can start: creating 10,000 Ganga
  subjobs takes longer than the schedule's lead.
- `{"op": "schedule", "paths": [[id, [[unix time, status, minor status], ...]], ...]}`: each
  job's whole path from now on, in wall-clock time; `{"ok": true}`.
- `{"op": "calls"}`: the calls served so far, by method, and their modelled service time;
  `{"calls": {...}, "server_seconds": {...}}`.
- `{"op": "steady", "count": n, "per_minute": r}`: n jobs already under way, each caught at
  a random point of its drawn path, whose steps come at r per job per minute on average
  (a steady rate of change); `{"ids": [...]}`. `{"op": "steps", "since": t0, "until": t1}`:
  the status changes of every job between Unix times t0 and t1; `{"steps": [[id, t, s]...]}`.
- `{"op": "sandbox_pfns", "pfns": "dirac" | "url"}`: how sandboxes are named from now on.
- `{"op": "submit", "count": n, "mean_runtime": s}`: n jobs on the simulator's own drawn
  paths; `{"op": "finals"}`: every job's last (status, minor status).
- `{"op": "fault", "fault": f, "count": n}`: the next n calls fail with f (`DiracSim.inject`);
  `{"op": "outage", "seconds": s}`: every call's connection dropped for s seconds;
  `{"op": "renew"}`: a new CA, host certificate and proxy for new connections; their paths.

Its facts include DiracX credentials (`diracx_credentials`) for its DiracX face.
It runs apart so that its CPU is not counted as Ganga's, and it exits when its stdin closes,
so that it never outlives the benchmark that started it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import trio

from gangamon.backends.dirac import DiracStatus
from gangamon.sim._certs import make_credentials
from gangamon.sim._dirac_model import SimJob, draw_path
from gangamon.sim.dirac import DiracSim, LatencyModel

#: Calls take 50 ms + 2 us per id, as in reference/ganga-dirac.md; no heavy tail, so that the
#: two monitors' figures differ by what they do, not by which of them drew the slow calls.
LATENCY = LatencyModel(base=0.05, per_id=2e-6, tail_probability=0.0)


def _handle(sim: DiracSim, request: dict[str, Any], directory: Path) -> dict[str, Any]:
    op = request.get("op")
    if op == "add":
        received = [(sim.clock(), DiracStatus.RECEIVED, "Job accepted")]
        return {"ids": [sim.add_job(received) for _ in range(int(request["count"]))]}
    if op == "schedule":
        # The simulator's clock is trio's: this turns wall-clock times into it.
        offset = time.time() - sim.clock()
        for job_id, steps in request["paths"]:
            path = tuple((float(t) - offset, DiracStatus(s), str(m)) for t, s, m in steps)
            # A job's path is fixed when it is made (SimJob is frozen): a new job in its place.
            sim.jobs[int(job_id)] = SimJob(id=int(job_id), submitted=path[0][0], path=path)
        return {"ok": True}
    if op == "calls":
        seconds = dict(sim.stats.server_seconds_by_method)
        return {"calls": dict(sim.stats.calls), "server_seconds": seconds}
    if op == "steady":
        return {"ids": _steady(sim, int(request["count"]), float(request["per_minute"]))}
    if op == "steps":
        return {"steps": _steps(sim, float(request["since"]), float(request["until"]))}
    if op == "sandbox_pfns":
        # How SandboxStore names sandboxes: "dirac" for DIRAC's own client (Ganga's monitor),
        # "url" for gangamon's HTTPS transport. Only output downloads depend on it.
        store = getattr(sim, "sandbox", None)
        if store is None or not hasattr(store, "pfns"):
            return {"error": "this simulator names its sandboxes one way only"}
        store.pfns = request["pfns"]
        return {"ok": True}
    if op == "submit":
        ids = sim.submit(int(request["count"]), mean_runtime=float(request["mean_runtime"]))
        return {"ids": ids}
    if op == "finals":
        return {"finals": {j.id: [j.path[-1][1].value, j.path[-1][2]] for j in sim.jobs.values()}}
    if op == "fault":
        sim.inject(str(request["fault"]), int(request["count"]))
        return {"ok": True}
    if op == "outage":
        sim.outage(float(request["seconds"]))
        return {"ok": True}
    if op == "renew":
        renewed = make_credentials(directory / f"renewal-{len(list(directory.glob('renewal-*')))}")
        sim.renew(renewed)
        return {"proxy": str(renewed.proxy), "ca_file": str(renewed.ca_file)}
    return {"error": f"unknown op {op!r}"}


def _steady(sim: DiracSim, count: int, per_minute: float) -> list[int]:
    now, ids = sim.clock(), []
    for _ in range(count):
        # A path of k steps drawn over k / per_minute minutes, then shifted so that now falls
        # at a uniform point of it: the steps still to come arrive at `per_minute`.
        steps = len(draw_path(sim.rng, 0.0, 1.0, sim.outcomes))
        path = draw_path(sim.rng, 0.0, 60.0 * steps / per_minute, sim.outcomes)
        shift = now - sim.rng.uniform(0.0, path[-1][0])
        ids.append(sim.add_job([(t + shift, status, minor) for t, status, minor in path]))
    return ids


def _steps(sim: DiracSim, since: float, until: float) -> list[list[object]]:
    """Each job's changes of status between Unix times `since` and `until` (DIRAC's clock)."""
    sim.wall.fix(sim.clock())
    wall, found = sim.wall, list[list[object]]()
    for job in sim.jobs.values():
        before = None
        for t, status, _ in job.path:
            when = wall.epoch_seconds(t)
            if status is not before and since <= when <= until:
                found.append([job.id, when, status.value])
            before = status
    return found


async def _control(sim: DiracSim, directory: Path, stream: trio.SocketStream) -> None:
    buffer = b""
    async with stream:
        while chunk := await stream.receive_some(1 << 20):
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                reply = _handle(sim, json.loads(line), directory)
                await stream.send_all(json.dumps(reply).encode() + b"\n")


async def _until_stdin_closes() -> None:
    stdin = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
    async with stdin:
        while await stdin.receive_some(4096):
            pass


async def _serve(directory: Path) -> None:
    credentials = make_credentials(directory)
    sim = DiracSim(credentials=credentials, latency=LATENCY)
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(partial(sim.serve, host="127.0.0.1"))
        listeners = await nursery.start(
            partial(trio.serve_tcp, partial(_control, sim, directory), 0, host="127.0.0.1")
        )
        facts = {
            "https": urls.https,
            "dips": urls.dips,
            "ca_dir": str(credentials.ca_dir),
            "ca_file": str(credentials.ca_file),
            "proxy": str(credentials.proxy),
            "diracx_credentials": str(
                sim.diracx_tokens.credentials(directory / "diracx-credentials.json")
            ),
            "control_port": listeners[0].socket.getsockname()[1],
        }
        print(json.dumps(facts), flush=True)
        await _until_stdin_closes()
        nursery.cancel_scope.cancel()


@contextlib.contextmanager
def sim_process(directory: Path) -> Iterator[dict[str, Any]]:
    """The simulator in a child process; yields its facts; stops it on exit."""
    command = [sys.executable, "-m", "benchmarks._dirac_sim_child", "--dir", str(directory)]
    with subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE) as child:
        assert child.stdout is not None
        assert child.stdin is not None
        try:
            line = child.stdout.readline()
            if not line:
                raise RuntimeError(f"the DIRAC simulator exited with {child.wait()}")
            yield json.loads(line)
        finally:
            child.stdin.close()  # its signal to stop
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()


class SimControl:
    """The client side of the control channel (blocking: Ganga's side is synchronous)."""

    def __init__(self, port: int) -> None:
        self._socket = socket.create_connection(("127.0.0.1", port))
        self._file = self._socket.makefile("rwb")

    def _request(self, **request: object) -> dict[str, Any]:
        self._file.write(json.dumps(request).encode() + b"\n")
        self._file.flush()
        reply: dict[str, Any] = json.loads(self._file.readline())
        if "error" in reply:
            raise RuntimeError(f"simulator control: {reply['error']}")
        return reply

    def add(self, count: int) -> list[int]:
        return [int(i) for i in self._request(op="add", count=count)["ids"]]

    def schedule(self, paths: dict[int, list[tuple[float, str, str]]]) -> None:
        self._request(op="schedule", paths=[[i, p] for i, p in paths.items()])

    def sandbox_pfns(self, pfns: str) -> None:
        self._request(op="sandbox_pfns", pfns=pfns)

    def submit(self, count: int, mean_runtime: float) -> list[int]:
        reply = self._request(op="submit", count=count, mean_runtime=mean_runtime)
        return [int(i) for i in reply["ids"]]

    def finals(self) -> dict[int, tuple[str, str]]:
        return {int(i): (s, m) for i, (s, m) in self._request(op="finals")["finals"].items()}

    def fault(self, fault: str, count: int) -> None:
        self._request(op="fault", fault=fault, count=count)

    def outage(self, seconds: float) -> None:
        self._request(op="outage", seconds=seconds)

    def renew(self) -> dict[str, str]:
        """New credentials for new connections; the paths of the new proxy and CA file."""
        return {k: str(v) for k, v in self._request(op="renew").items()}

    def calls(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in self._request(op="calls")["calls"].items()}

    def server_seconds(self) -> dict[str, float]:
        """The modelled service time of the calls served so far, by method."""
        reply = self._request(op="calls")["server_seconds"]
        return {str(k): float(v) for k, v in reply.items()}

    def steady(self, count: int, per_minute: float) -> list[int]:
        return [
            int(i) for i in self._request(op="steady", count=count, per_minute=per_minute)["ids"]
        ]

    def steps(self, since: float, until: float) -> list[tuple[int, float, str]]:
        reply = self._request(op="steps", since=since, until=until)["steps"]
        return [(int(i), float(t), str(s)) for i, t, s in reply]

    def close(self) -> None:
        self._file.close()
        self._socket.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks._dirac_sim_child")
    parser.add_argument("--dir", type=Path, required=True)
    trio.run(_serve, parser.parse_args().dir)


if __name__ == "__main__":
    main()
