"""The DIRAC backend: bulk status polls in chunks, finalisation with output download."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import io
import logging
import tarfile
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import msgspec
import trio

from ..._status import Status
from .._protocol import Backend, BackendError, BackendSettings, JobRef, Update
from ._deltas import Deltas
from ._details import job_details, rows_by_job
from ._prefetch import SandboxPrefetch
from ._proxy import check_proxy
from ._renewal import Fingerprint, fingerprint
from ._server_clock import ServerClock
from ._states import DiracStatus, UnknownDiracStatus, ganga_status, reported_state
from ._wire import DiracError, JobState

log = logging.getLogger("gangamon.dirac")

_MONITORING = ("WorkloadManagement", "JobMonitoring")
#: A proxy with less than this left is warned of (once), so that it is renewed in time.
PROXY_WARNING = dt.timedelta(hours=1)


class DiracTransport(Protocol):
    """How the backend reaches DIRAC: `DiracHttps` or `DiracClientTransport`."""

    proxy: Path | None
    server_clock: ServerClock

    def session(self) -> contextlib.AbstractAsyncContextManager[Any]: ...

    async def call(self, system: str, service: str, method: str, *args: object) -> Any: ...

    async def job_states(self, ids: list[int]) -> dict[int, JobState]: ...

    async def changed_since(
        self, owners: Sequence[str], cut: int
    ) -> tuple[set[str], dict[int, JobState]]: ...

    async def sandbox(self, location: str) -> bytes: ...


#: Ganga polls DIRAC every 50 s in chunks of 1000; we keep the chunk and bound the calls.
#: Asking what changed is cheap, so the interval is short (a change is seen in 4 s, half of
#: it, at the median): every job is polled at the full sweeps only (`full_sweep`, 10 min).
DIRAC_SETTINGS = BackendSettings(
    poll_interval=8.0,
    chunk_size=1000,
    concurrency=8,
    call_deadline=120.0,
    finalise_concurrency=4,
)


class FailedOutput(Protocol):
    """Where Failed jobs' sandboxes go, and who is told when one is there."""

    def target(self, dirac_id: int) -> Path | None: ...

    def unpacked(self, dirac_id: int, directory: Path) -> None: ...


class DiracBackend(Backend):
    """Jobs on DIRAC, watched through JobMonitoring's `getJobsStates` (one call per chunk).

    With `download_output` (Ganga's default), Done jobs are finalised: the output sandbox
    is downloaded into `output_dir/<DIRAC id>/` and unpacked; then the job is completed.
    The download starts as soon as a poll sees the job Done (`_prefetch`). Without it,
    Done is completed at once.

    With `failed_output`, a Failed job's sandbox (not a Killed one's) is downloaded too, as
    Ganga's `failed_sandbox_download` does, after the job is failed: into the directory
    `failed_output.target(dirac_id)` gives (none: not downloaded), then handed to
    `failed_output.unpacked(dirac_id, directory)` in a worker thread.

    With `details`, every change a poll finds carries what DIRAC knows of the job besides
    its status (site, DIRAC's own times, CPU time, output data: see `_details`), fetched in
    bulk for all the changed jobs of the chunk. `status_map` replaces gangamon's mapping of
    DIRAC statuses to Ganga's (`ganga_mapping` makes one from a Ganga user's). A job DIRAC
    leaves out of its answers for `vanish_grace` seconds becomes unknown, the evidence logged.

    With `deltas`, between the full sweeps (`settings.full_sweep`) the engine polls only the
    jobs that DIRAC's `getJobs` says changed since the last sweep (`_deltas`): jobs of
    `owners`, or of the owner of a tracked job; `delta_margin` seconds before the cut, for
    late commits and clocks a little off.
    """

    name = "dirac"
    finalises = True
    #: The job wrapper uploads the output (Completing), its failover requests wait (Completed).
    ending = frozenset({DiracStatus.COMPLETING.value, DiracStatus.COMPLETED.value})

    def __init__(
        self,
        transport: DiracTransport,
        *,
        output_dir: Path,
        settings: BackendSettings = DIRAC_SETTINGS,
        name: str = "dirac",
        download_output: bool = True,
        details: bool = False,
        status_map: Mapping[DiracStatus, Status] | None = None,
        failed_output: FailedOutput | None = None,
        vanish_grace: float = 600.0,
        deltas: bool = True,
        owners: Sequence[str] | None = None,
        delta_margin: float = 10.0,
    ) -> None:
        self.finalises = download_output
        self.deltas = deltas
        self._deltas = Deltas(transport, owners=owners, margin=delta_margin, name=name)
        self.failed_output = failed_output
        self.details = details
        self.status_map = status_map
        self.transport = transport
        self.vanish_grace = vanish_grace
        #: When each DIRAC job that DIRAC left out of its answers was first missed.
        self._missing: dict[int, float] = {}
        self._proxy_expiry: dt.datetime | None = None
        self._proxy_stamp: Fingerprint = ()
        self._warned_for: dt.datetime | None = None
        self._prefetch: SandboxPrefetch | None = None
        #: Every call of a finalisation, early downloads included: at most finalise_concurrency
        #: (the engine's bound is on finalisations, and one may wait for an early download).
        self._finalising = trio.CapacityLimiter(settings.finalise_concurrency)
        self.output_dir = output_dir
        self.settings = settings
        self.name = name

    @contextlib.asynccontextmanager
    async def _session(self) -> AsyncIterator[None]:
        self._proxy_expiry = None
        self.credentials_expiry = None
        self._check_proxy()
        self._deltas.start()
        self._prefetch = SandboxPrefetch(self._download, self._finalising)
        async with self.transport.session(), self._prefetch.running():
            yield

    def _check_proxy(self) -> None:
        """One clear error when the proxy is missing or has expired, not a stream of 401s;
        a warning once when it has less than `PROXY_WARNING` left.

        The file is read again when it has changed (renewed), or once the expiry we know of
        has passed.
        """
        proxy = self.transport.proxy
        if proxy is None:
            return
        now = dt.datetime.now(dt.UTC)
        stamp = fingerprint(proxy)
        expiry = self._proxy_expiry
        if expiry is None or expiry <= now or stamp != self._proxy_stamp:
            self._proxy_stamp = stamp
            self._proxy_expiry = expiry = check_proxy(proxy, now=now)
            self.credentials_expiry = expiry.timestamp()
        if expiry - now < PROXY_WARNING and self._warned_for != expiry:
            self._warned_for = expiry
            left = (expiry - now).total_seconds() / 60
            log.warning(
                "the DIRAC proxy %s expires at %s UTC, in %.0f min: renew it",
                proxy,
                f"{expiry:%Y-%m-%d %H:%M}",
                left,
            )

    def lifespan(self) -> contextlib.AbstractAsyncContextManager[None]:
        return self._session()

    async def changed(self, since: float, jobs: Sequence[JobRef]) -> set[str] | None:
        """The DIRAC ids of the user's jobs that changed since `since`, from one getJobs."""
        self._check_proxy()
        return await self._deltas.changed(since, jobs)

    async def poll(self, jobs: Sequence[JobRef]) -> Sequence[Update]:
        """One getJobsStates call for the chunk: updates for the jobs whose status differs from
        the one stored. Jobs DIRAC does not know are left out until `vanish_grace` has passed.
        With `details`, a chunk of jobs all near their end (`ending`) is asked getJobsSummary
        instead.

        Unchanged jobs are most of every sweep; the engine would drop their reports, and
        building them was the larger part of the CPU a reply costs.
        """
        self._check_proxy()
        ids: dict[int, JobRef] = {}
        for job in jobs:
            try:
                ids[int(job.backend_id)] = job
            except ValueError:
                log.warning("job %d: %r is not a DIRAC job id; not polled", job.id, job.backend_id)
        if not ids:
            return []
        summary = None
        if self.details and all(job.native_status in self.ending for job in jobs):
            # Jobs near their end mostly change, and their details are then wanted: the
            # summary has the status beside them, one call instead of two.
            summary = await self._summary(list(ids))
            states = {
                i: JobState(row["Status"], row.get("MinorStatus")) for i, row in summary.items()
            }
        else:
            # What changed may have come with its states (DiracX): no second call for them.
            fresh = self._deltas.take_states(ids.keys())
            states = fresh if fresh is not None else await self.transport.job_states(list(ids))
        updates: dict[int, Update] = self._unknown(ids, states)
        statuses: dict[int, str] = {}
        for dirac_id, state in states.items():
            asked = ids.get(dirac_id)
            if asked is None:
                raise BackendError(f"DIRAC answered about job {dirac_id}, not asked about")
            try:
                native, ganga = reported_state(state.Status, state.MinorStatus)
            except UnknownDiracStatus as e:
                raise BackendError(f"DIRAC job {dirac_id}: {e}") from None
            if self.status_map is not None:
                ganga = ganga_status(DiracStatus(native), state.MinorStatus, self.status_map)
            if ganga != asked.status or native != asked.native_status:
                updates[dirac_id] = Update(asked.id, ganga, native, state.MinorStatus or "")
                statuses[dirac_id] = state.Status
                self._download_early(dirac_id, ganga, native)
        if not (self.details and updates):
            return list(updates.values())
        found = await job_details(self.transport, statuses, summary)
        detailed = []
        for dirac_id, update in updates.items():
            details = found.get(dirac_id) or None
            changed = _changed_at(details, update.status)
            detailed.append(msgspec.structs.replace(update, details=details, changed=changed))
        return detailed

    def _unknown(
        self, asked: Mapping[int, JobRef], answered: Mapping[int, object]
    ) -> dict[int, Update]:
        """Updates to unknown for the jobs DIRAC has not answered about for `vanish_grace`
        seconds (a mistyped id, a job DIRAC has removed), each logged with the evidence."""
        now = trio.current_time()
        for dirac_id in answered:
            self._missing.pop(dirac_id, None)
        lost: dict[int, Update] = {}
        for dirac_id, job in asked.items():
            if dirac_id in answered:
                continue
            first_missed = self._missing.setdefault(dirac_id, now)
            if now - first_missed >= self.vanish_grace:
                evidence = f"DIRAC has not known it for {now - first_missed:.0f} s"
                log.warning("DIRAC job %d (job %d) unknown: %s", dirac_id, job.id, evidence)
                lost[dirac_id] = Update(job.id, Status.UNKNOWN, None, evidence)
                del self._missing[dirac_id]
        return lost

    async def _summary(self, ids: list[int]) -> dict[int, Mapping[str, Any]]:
        """getJobsSummary's rows for `ids`: each a table with a string Status, else
        `BackendError` (an S_ERROR is one too: this call is the poll's)."""
        try:
            reply = await self.transport.call(*_MONITORING, "getJobsSummary", ids)
        except DiracError as e:
            raise BackendError(f"DIRAC's getJobsSummary: {e.message}") from None
        rows = rows_by_job(reply)
        for dirac_id, row in rows.items():
            status, minor = row.get("Status"), row.get("MinorStatus")
            if not isinstance(status, str) or not isinstance(minor, str | None):
                raise BackendError(
                    f"getJobsSummary: job {dirac_id}: Status {status!r}, MinorStatus {minor!r}"
                )
        return rows

    async def kill(self, job: JobRef) -> None:
        """JobManager's `killJob`: DIRAC marks the job for termination (Killed); one that has
        ended already is left as it is, as DIRAC leaves it. `DiracError` for DIRAC's refusal
        (a job of someone else's), naming the job."""
        try:
            await self.transport.call(
                "WorkloadManagement", "JobManager", "killJob", [int(job.backend_id)]
            )
        except DiracError as e:
            raise DiracError(f"job {job.backend_id} not killed: {e.message}", e.errno) from None

    async def finalise(self, job: JobRef) -> Update:
        """Download and unpack the output sandbox (idempotent: it overwrites), then completed.

        Without `details`, the reason records when DIRAC saw the job Done, from its logging
        info.
        """
        dirac_id = int(job.backend_id)
        early = await self._prefetch.take(dirac_id) if self._prefetch is not None else None
        target = self.output_dir / str(dirac_id)
        if early is not None:
            where = early
        else:
            async with self._finalising:
                where = await self._download(dirac_id, target)
        if self.details:
            # DIRAC's time of the end came with the move to completing.
            return Update(job.id, Status.COMPLETED, "Done", where)
        async with self._finalising:
            done_at = await self._state_time(dirac_id, "Done")
        reason = f"{where}; Done at {done_at or 'unknown'}"
        changed = done_at.replace(tzinfo=dt.UTC).timestamp() if done_at else None
        return Update(job.id, Status.COMPLETED, "Done", reason, changed)

    def _download_early(self, dirac_id: int, status: Status, native: str) -> None:
        """Start the download of a sandbox a poll has just seen ready."""
        prefetch = self._prefetch
        if prefetch is None:
            return
        if status == Status.COMPLETED and self.finalises:
            prefetch.start(dirac_id, self.output_dir / str(dirac_id))
        elif native == DiracStatus.FAILED and self.failed_output is not None:
            target = self.failed_output.target(dirac_id)
            if target is not None:
                unpacked = functools.partial(self.failed_output.unpacked, dirac_id)
                prefetch.start_detached(dirac_id, target, unpacked)

    async def _download(self, dirac_id: int, target: Path) -> str:
        """Fetch the job's output sandboxes and unpack them into `target`; say where."""
        sandboxes = await self.transport.call(
            "WorkloadManagement", "SandboxStore", "getSandboxesAssignedToEntity", f"Job:{dirac_id}"
        )
        locations = [sb for sb in (sandboxes or {}).get("Output", []) if "|" in sb]
        for location in locations:
            data = await self.transport.sandbox(location)
            await trio.to_thread.run_sync(_unpack, data, target)
        return f"output in {target}" if locations else "no output sandbox"

    async def _state_time(self, dirac_id: int, status: str) -> dt.datetime | None:
        """When DIRAC's logging info says the job entered `status` (UTC), if it says."""
        try:
            rows = await self.transport.call(
                "WorkloadManagement", "JobMonitoring", "getJobLoggingInfo", dirac_id
            )
        except DiracError:
            return None
        for row in rows:
            if row and row[0] == status:
                try:
                    return dt.datetime.fromisoformat(str(row[3]))
                except (IndexError, ValueError):
                    return None
        return None


def _changed_at(details: Mapping[str, object] | None, status: Status) -> float | None:
    """DIRAC's own time of the change to `status` (Unix time), where the details have it."""
    key = "running_at" if status == Status.RUNNING else "ended_at"
    when = details.get(key) if details is not None and status != Status.SUBMITTED else None
    if not isinstance(when, str):
        return None
    return dt.datetime.fromisoformat(when).replace(tzinfo=dt.UTC).timestamp()


def _unpack(data: bytes, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
        tar.extractall(target, filter="data")
