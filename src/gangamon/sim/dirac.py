"""A DIRAC simulator speaking DIRAC's HTTPS (Tornado) and dips (DISET) wire protocols.

Nobody can run a DIRAC server here (MySQL, OpenSearch, a patched Tornado), so this serves
what a client sees: POST /WorkloadManagement/TornadoJobMonitoring with the form fields
`method` and `args` (JEncoded), S_OK/S_ERROR JSON replies with string job-id keys, 401 without
a client certificate, 500 with a raw body on a server fault; the same services over DISET.
Over TLS it presents a host certificate of its own CA and accepts RFC 3820 proxies; plain HTTP
is there for tests.

The services: JobMonitoring; SandboxStore (output sandboxes, which DIRAC's own client
downloads through a DIP storage element: DISET file transfer on the dips face, `_diset`);
a FileCatalog of the jobs' output files; ResourceStatus (DIRAC's storage element client asks
it first). `gangamon.sim.dirac_cfg` writes the client configuration that points at them.
Jobs follow DIRAC's state machine on this server's clock (`_dirac_model`); what DIRAC
records of them besides is drawn from their ids (`_job_facts`). Calls take time
from a latency model (base + per id + a heavy tail), run at most `threads` at once with at most
`backlog` waiting (connections beyond are closed, as DIRAC's reactor does), and faults can be
injected: an S_ERROR, an HTTP 500, a reset connection, a call that hangs.
"""

from __future__ import annotations

import dataclasses
import email.utils
import math
import random
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal, cast

import trio

from ..backends.dirac._states import DiracStatus
from ..backends.dirac._wire import s_error
from ._certs import Credentials
from ._dirac_cfg import SANDBOX_SE
from ._dirac_model import Outcomes, SimJob, WallClock, draw_path, killed
from ._dirac_service import Hangup, JobMonitoring, Service
from ._diracx import Answer, DiracXJobs, Tokens
from ._diset import diset_connection
from ._file_catalog import FileCatalog
from ._http import http_connection
from ._job_facts import SITE_SES, sandbox_tarball
from ._job_manager import JobManager
from ._resource_status import ResourceStatus
from ._sandbox_store import SandboxStore
from ._served import Encoded, SimStatistics as SimStatistics

FAULTS = ("s_error", "http500", "reset", "hang")
#: What a face encodes a result into (bytes, or frames, or a reply with its content type).


@dataclass(frozen=True, slots=True)
class SimUrls:
    https: str
    dips: str


@dataclass(frozen=True, slots=True)
class LatencyModel:
    """Seconds per call: base + per_id * ids, plus, with `tail_probability`, a Pareto tail."""

    base: float = 0.05
    per_id: float = 2e-6
    tail_probability: float = 0.01
    tail_scale: float = 1.0
    tail_shape: float = 1.5

    def draw(self, rng: random.Random, ids: int) -> float:
        delay = self.base + self.per_id * ids
        if rng.random() < self.tail_probability:
            delay += self.tail_scale * rng.paretovariate(self.tail_shape)
        return delay


class DiracSim:
    """Simulated DIRAC jobs and the services that report on them.

    `clock` is the server's time (trio's by default, so MockClock drives it in tests that
    stay off the network). `sandbox_pfns` is how SandboxStore names output sandboxes:
    "dirac" as DIRAC does (`SB:SimSandboxSE|/SandBox/...`, for DIRAC's client and its
    StorageElement), "url" as https URLs of this server, fetched by a plain GET (gangamon's
    HTTPS transport takes either); see `SandboxStore`.
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        mean_runtime: float = 60.0,
        outcomes: Outcomes | None = None,
        latency: LatencyModel | None = None,
        threads: int = 15,
        backlog: int = 100,
        credentials: Credentials | None = None,
        clock: Callable[[], float] = trio.current_time,
        sandbox_pfns: Literal["dirac", "url"] = "dirac",
        clock_skew: float = 0.0,
    ) -> None:
        self.jobs: dict[int, SimJob] = {}
        self.rng = random.Random(seed)
        self.mean_runtime = mean_runtime
        self.outcomes = outcomes or Outcomes()
        self.latency = latency or LatencyModel()
        self.credentials = credentials
        self._current_context: ssl.SSLContext | None = None
        self.clock = clock
        self.stats = SimStatistics()
        self.url = ""
        self.dips_url = ""
        self._threads = trio.CapacityLimiter(threads)
        #: How early replies aim to leave, learnt from how late timers wake (see `_run_call`)
        #: and how long a reply takes to send (`reply_sent`).
        self._timer_lead = 0.0
        self._send_lead = 0.0
        self._backlog = backlog
        self._waiting = 0
        self._faults: list[str] = []
        self._down_until = -math.inf
        self._next_id = 1000
        #: Every reply's times on one wall clock, `clock_skew` seconds off the client's.
        self.wall = WallClock(skew=clock_skew)
        self.sandbox = SandboxStore(self.jobs, "", sandbox_pfns)
        self._monitoring = JobMonitoring(self.jobs, self.wall)
        #: DiracX's tokens: `diracx_tokens.credentials(path)` writes a user's credentials.
        self.diracx_tokens = Tokens(self._now)
        self.services: dict[str, Service] = {
            "WorkloadManagement/JobMonitoring": self._monitoring,
            "WorkloadManagement/SandboxStore": self.sandbox,
            "WorkloadManagement/JobManager": JobManager(self.jobs, self._monitoring.changes),
            "DataManagement/FileCatalog": FileCatalog(self.jobs, self.wall),
            "ResourceStatus/ResourceStatus": ResourceStatus([SANDBOX_SE, *SITE_SES.values()]),
            "DiracX/Jobs": DiracXJobs(self.jobs, self._monitoring),
        }

    def _now(self) -> float:
        return self.clock()

    # -- jobs and faults -------------------------------------------------------------------

    def submit(self, n: int, *, mean_runtime: float | None = None) -> list[int]:
        """Create `n` jobs starting now, each on its own drawn path; return their ids."""
        now = self._now()
        ids = []
        for _ in range(n):
            path = draw_path(self.rng, now, mean_runtime or self.mean_runtime, self.outcomes)
            ids.append(self.add_job(path))
        return ids

    def add_job(self, path: Sequence[tuple[float, DiracStatus, str]]) -> int:
        """Create a job with an explicit path of (time, DiracStatus, minor status)."""
        self._next_id += 1
        job = SimJob(self._next_id, path[0][0], tuple(path))
        self.jobs[job.id] = job
        return job.id

    def delete(self, job_id: int) -> None:
        """The owner deletes the job now (`dirac-wms-job-delete`): a job not yet over is
        killed first. Its later steps are not taken."""
        now = self._now()
        job = killed(self.jobs[job_id], now) or self.jobs[job_id]
        path = (*job.steps_until(now), (now, DiracStatus.DELETED, "Job deleted"))
        self.jobs[job_id] = deleted = dataclasses.replace(job, path=path)
        self._monitoring.changes.reindex(deleted)

    def inject(self, fault: str, count: int = 1) -> None:
        """The next `count` calls fail with `fault`: one of s_error, http500, reset, hang."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r} (known: {', '.join(FAULTS)})")
        self._faults.extend([fault] * count)

    def outage(self, seconds: float) -> None:
        """For the next `seconds`, every call's connection is dropped (DIRAC is down)."""
        self._down_until = self._now() + seconds

    # -- serving ---------------------------------------------------------------------------

    async def serve(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        dips_port: int = 0,
        task_status: trio.TaskStatus[SimUrls] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve HTTPS (Tornado) and dips (DISET) until cancelled; reports both URLs.

        Without credentials the HTTP side is plain http (for tests) and there is no dips.
        """
        https = await trio.open_tcp_listeners(port, host=host)
        scheme = "https" if self.credentials else "http"
        self.url = f"{scheme}://{host}:{https[0].socket.getsockname()[1]}"
        self.sandbox.base_url = self.url
        context = self.ssl_context()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._serve, http_connection, _wrap(https, context))
            if context is not None:
                dips = await trio.open_tcp_listeners(dips_port, host=host)
                self.dips_url = f"dips://{host}:{dips[0].socket.getsockname()[1]}"
                nursery.start_soon(self._serve, diset_connection, _wrap(dips, context))
            task_status.started(SimUrls(self.url, self.dips_url))

    def ssl_context(self) -> ssl.SSLContext | None:
        if self.credentials is None:
            return None
        context = self._credentials_context(self.credentials)
        self._current_context = context
        # Each handshake takes the credentials of the moment (see `renew`).
        context.sni_callback = self._present_current
        return context

    @staticmethod
    def _credentials_context(credentials: Credentials) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(credentials.host_cert, credentials.host_key)
        context.load_verify_locations(credentials.ca_file)
        # Optional, so that a client without a certificate gets DIRAC's 401, not a TLS alert.
        context.verify_mode = ssl.CERT_OPTIONAL
        context.verify_flags |= ssl.VERIFY_ALLOW_PROXY_CERTS
        return context

    def _present_current(
        self, connection: ssl.SSLObject, server_name: str | None, context: ssl.SSLContext
    ) -> None:
        current = self._current_context
        if current is not None and context is not current:
            connection.context = current

    def renew(self, credentials: Credentials) -> None:
        """New connections get a host certificate from `credentials` and are trusted only if
        their client certificate is (as after a renewal of the grid's CA); connections
        already open keep theirs."""
        self.credentials = credentials
        self._current_context = self._credentials_context(credentials)

    async def _serve(
        self,
        connection: Callable[[DiracSim, trio.abc.Stream], Awaitable[None]],
        listeners: list[trio.abc.Listener[trio.abc.Stream]],
    ) -> None:
        async def handle(stream: trio.abc.Stream) -> None:
            if self._waiting >= self._backlog:
                # Beyond the backlog DIRAC's reactor closes new connections at once.
                self.stats.refused_connections += 1
                await trio.aclose_forcefully(stream)
                return
            await connection(self, stream)

        await trio.serve_listeners(handle, listeners)

    async def call(
        self,
        stream: trio.abc.Stream,
        service: str,
        method: str,
        args: list[object],
        encode: Callable[[dict[str, object]], Encoded],
        *,
        arrived: float,
    ) -> Encoded | Hangup:
        """Run one call on a server thread, with latency and any injected fault; the reply
        comes back encoded by `encode` (each face has its own wire format).

        The modelled latency runs from `arrived`, when the request began to arrive, plus any
        wait for a free thread: reading, parsing and encoding are all inside it.
        """
        handler = self.services.get(service)
        if handler is None:
            return encode(s_error(f"Unknown service {service}", 38))
        # The first call ties the replies' wall-clock times to this moment.
        self.wall.fix(self._now())
        self._waiting += 1
        admitted = False
        queued = trio.current_time()
        try:
            async with self._threads:
                self._waiting -= 1
                admitted = True
                started = arrived + trio.current_time() - queued
                return await self._run_call(stream, handler, method, args, encode, started)
        finally:
            if not admitted:
                self._waiting -= 1

    async def _run_call(
        self,
        stream: trio.abc.Stream,
        service: Service,
        method: str,
        args: list[object],
        encode: Callable[[dict[str, object]], Encoded],
        started: float,
    ) -> Encoded | Hangup:
        stats = self.stats
        stats.calls[method] += 1
        ids = args[0] if args and isinstance(args[0], list) else [None]
        stats.in_flight += 1
        stats.peak_in_flight = max(stats.peak_in_flight, stats.in_flight)
        try:
            # The latency is the whole service time: the work, encoding included, is done
            # first and the reply waits out the rest, so the simulator's own CPU does not add
            # to the model's. The work runs in a thread, as DIRAC's handlers do: meanwhile
            # this loop goes on taking requests and sending replies on time.
            if self._now() < self._down_until:
                fault: str | None = "reset"  # an outage drops every call's connection
            else:
                fault = self._faults.pop(0) if self._faults else None
            if fault is not None:
                stats.faults_served[fault] += 1
            cost = len(ids)
            if fault == "s_error":
                reply = encode(s_error("Simulated DIRAC failure: database went away"))
            else:
                now = self._now()

                def work() -> tuple[Encoded, int]:
                    result = service.call(method, args, now)
                    value = result.get("Value")
                    # getJobs and DiracX's search are indexed: their cost is what they return.
                    if method == "getJobs" and isinstance(value, list):
                        return encode(result), len(value)
                    if isinstance(value, Answer) and isinstance(value.body, list):
                        return encode(result), len(value.body)
                    return encode(result), cost

                reply, cost = await trio.to_thread.run_sync(work)
            service_time = self.latency.draw(self.rng, cost)
            stats.server_seconds += service_time
            stats.server_seconds_by_method[method] += service_time
            done_at = started + service_time
            # The reply must be sent by `done_at`, so its sending starts earlier, by what sends
            # have taken. Timers wake late besides: epoll counts whole milliseconds, rounded
            # up, and waking takes its time (about 1 ms in all, here). Aim early by what they
            # have been late, so that replies leave on time on average (under a MockClock timers
            # wake on time: the timer lead stays 0).
            send_at = done_at - self._send_lead
            await trio.sleep_until(send_at - self._timer_lead)
            late = trio.current_time() - send_at
            self._timer_lead = max(0.0, self._timer_lead + 0.1 * late)
            if fault == "hang":
                await stream.receive_some(1)  # until the client gives up and hangs up
                return Hangup.RESET
            if fault in ("reset", "http500"):
                return Hangup(fault)
            return reply
        finally:
            stats.in_flight -= 1

    def http_date(self) -> str:
        """The server's wall-clock time now, as an HTTP Date header gives it."""
        self.wall.fix(self._now())
        return email.utils.formatdate(self.wall.epoch_seconds(self._now()), usegmt=True)

    def reply_sent(self, seconds: float) -> None:
        """A face took `seconds` to hand a call's reply to the kernel (TLS and the send: a
        fraction of a millisecond here, more when replies fall due together): later replies
        start that much earlier, so that they have left by the modelled time."""
        self._send_lead += 0.1 * (seconds - self._send_lead)

    def sandbox_file(self, name: str) -> bytes | None:
        """The output sandbox tarball `<job id>.tar.bz2`, or None."""
        try:
            job = self.jobs[int(name.removesuffix(".tar.bz2"))]
        except (KeyError, ValueError):
            return None
        return sandbox_tarball(job.id)


def _wrap(
    listeners: list[trio.SocketListener], context: ssl.SSLContext | None
) -> list[trio.abc.Listener[trio.abc.Stream]]:
    if context is None:
        return cast("list[trio.abc.Listener[trio.abc.Stream]]", listeners)
    return [trio.SSLListener(lst, context, https_compatible=True) for lst in listeners]
