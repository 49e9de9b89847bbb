"""Ganga's batch backends on gangamon's: Slurm, LSF, PBS and SGE (Ganga's `Batch` classes) and
Condor, each polled with one listing command per interval for all its jobs.

Ganga's own monitor of a `Batch` job never asks the batch system: once per job per poll it
reads the `__jobstatus__` file that Ganga's wrapper script writes into the job's output
directory (on the shared filesystem) and moves the job to running at the wrapper's `PID:` or
`QUEUE:` line, setting `backend.id` to that PID (the batch system's job id, as a number),
`backend.actualqueue` and `backend.actualCE`; then to completed or failed at its `EXITCODE:`
line, setting `backend.exitcode`. Here the batch system says the status (squeue, bjobs,
qstat), and the applier sets the same attributes from the same file when the job changes,
the batch job's number standing in for a PID line the wrapper has not written yet, and the
batch system's exit code for an `EXITCODE:` line it never wrote (the wrapper was killed).

Ganga's Condor monitor keeps HTCondor's name for the job's state in `backend.status` while
the job is queued, and clears it once the job has left the queue; it sets `backend.actualCE`
to the job's RemoteHost and `backend.cputime` to its RemoteUserCpu. So does the applier, at
each change, from the change's details.

A Ganga class is claimed only where its system's listing command is installed; elsewhere its
jobs stay with Ganga's own monitor, which needs nothing but the files. A claimed class's
gangamon backend asks its system nothing (not even Slurm's start-up probe) until it has a
job to poll.
"""

from __future__ import annotations

import contextlib
import re
import shutil
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._status import FINAL, Status
from .._store import JournalEntry, NewJob
from ..backends._batch import BatchBackend
from ..backends._protocol import Backend, BackendSettings, JobRef, Update
from ..backends.condor import CondorBackend
from ..backends.lsf import LsfBackend
from ..backends.pbs import PbsBackend
from ..backends.sge import SgeBackend
from ..backends.slurm import SlurmBackend
from ._family import poll_interval
from ._writer import Applier

#: The longest one listing (or one history command) may take.
CALL_DEADLINE = 60.0


@dataclass(frozen=True, slots=True)
class BatchKind:
    """How the jobs of one Ganga batch class are monitored."""

    #: Ganga's name of the class ("Slurm").
    ganga: str
    backend: type[BatchBackend]
    #: The listing command: the class is claimed only where it is installed.
    command: str
    #: Whether Ganga's wrapper writes `__jobstatus__` for it (the `Batch` classes).
    status_file: bool = True


KINDS = (
    BatchKind("Slurm", SlurmBackend, "squeue"),
    BatchKind("LSF", LsfBackend, "bjobs"),
    BatchKind("PBS", PbsBackend, "qstat"),
    BatchKind("SGE", SgeBackend, "qstat"),
    BatchKind("Condor", CondorBackend, "condor_q", status_file=False),
)


class BatchFamily:
    """The batch classes of Ganga whose systems are installed here (a `Family`)."""

    def __init__(self, poll_config: Any, *, which: Callable[[str], str | None] = shutil.which):
        """`poll_config`: Ganga's `[PollThread]` section (a mapping will do); `which(command)`
        finds a command on PATH."""
        self._poll_config = poll_config
        self.kinds = {kind.ganga: kind for kind in KINDS if which(kind.command) is not None}
        self._batch = BatchApplier()
        self._condor = CondorApplier()

    def claims(self, backend_name: str, backend: Any) -> bool:
        return backend_name in self.kinds

    def backends(self) -> Sequence[Backend]:
        """One gangamon backend per claimed class, named as gangamon names its system
        ("slurm"), polled at Ganga's `[PollThread]` rate for the class."""
        built: list[Backend] = []
        for kind in self.kinds.values():
            settings = BackendSettings(
                poll_interval=poll_interval(self._poll_config, kind.ganga),
                chunk_size=10**9,  # one listing answers for every job
                concurrency=1,
                call_deadline=CALL_DEADLINE,
            )
            built.append(StartedWhenUsed(kind.backend(settings=settings, name=kind.backend.name)))
        return built

    def new_job(self, job: Any, backend_name: str, start: Status) -> tuple[NewJob, Applier] | None:
        """The job under its batch id (`backend.id`); None until the submission gave one."""
        kind = self.kinds[backend_name]
        # A string from the submission, or a number once Ganga has seen the job run.
        batch_id = str(job.backend.id or "").strip()
        if not batch_id:
            return None
        applier = self._batch if kind.status_file else self._condor
        return NewJob(kind.backend.name, batch_id, start), applier


# -- appliers ------------------------------------------------------------------------------------

_PID = re.compile(r"^PID: (\d+)", re.M)
_QUEUE = re.compile(r"^QUEUE: (\S+)", re.M)
_ACTUAL_CE = re.compile(r"^ACTUALCE: (\S+)", re.M)
_EXITCODE = re.compile(r"^EXITCODE: (-?\d+)", re.M)
#: How the batch backends write an exit code into a change's reason.
_REASON_EXIT = re.compile(r"exit (?:code|status) (-?\d+)")
_LEADING_NUMBER = re.compile(r"^(\d+)")


@dataclass(frozen=True, slots=True)
class WrapperStatus:
    """What Ganga's batch wrapper has written into `__jobstatus__` so far."""

    pid: int | None = None
    queue: str | None = None
    actual_ce: str | None = None
    exitcode: int | None = None


def read_wrapper_status(path: Path) -> WrapperStatus:
    """The lines Ganga's `Batch.updateMonitoringInformation` reads (nothing if unreadable)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return WrapperStatus()
    pid, queue, ce, code = (p.search(text) for p in (_PID, _QUEUE, _ACTUAL_CE, _EXITCODE))
    return WrapperStatus(
        int(pid[1]) if pid else None,
        queue[1] if queue else None,
        ce[1] if ce else None,
        int(code[1]) if code else None,
    )


class BatchApplier:
    """Sets what Ganga's `Batch` monitor sets, from the job's `__jobstatus__`."""

    def before(self, job: Any, entry: JournalEntry) -> None:
        if entry.new != Status.RUNNING and entry.new not in FINAL:
            return
        backend = job.backend
        found = read_wrapper_status(Path(job.getOutputWorkspace().getPath(), "__jobstatus__"))
        number = found.pid if found.pid is not None else _leading_number(backend.id)
        if number is not None and backend.id != number:
            backend.id = number
        if found.queue and found.queue != backend.actualqueue:
            backend.actualqueue = found.queue
        if found.actual_ce and found.actual_ce != backend.actualCE:
            backend.actualCE = found.actual_ce
        if entry.new in (Status.COMPLETED, Status.FAILED):
            code = found.exitcode if found.exitcode is not None else _reason_exit(entry.reason)
            if code is not None:
                backend.exitcode = code

    def after(self, job: Any, entry: JournalEntry) -> None:
        pass


class CondorApplier:
    """HTCondor's state name in `backend.status` while queued, cleared once the job is over;
    its host in `backend.actualCE` and its CPU time in `backend.cputime`, where known."""

    def before(self, job: Any, entry: JournalEntry) -> None:
        backend = job.backend
        backend.status = "" if entry.new in FINAL else (entry.native_status or "")
        details = entry.details or {}
        host = details.get("host")
        if host and host != backend.actualCE:
            backend.actualCE = host
        if "cpu" in details:
            backend.cputime = details["cpu"]

    def after(self, job: Any, entry: JournalEntry) -> None:
        pass


def _leading_number(batch_id: object) -> int | None:
    match = _LEADING_NUMBER.match(str(batch_id))
    return int(match[1]) if match else None


def _reason_exit(reason: str) -> int | None:
    match = _REASON_EXIT.search(reason)
    return int(match[1]) if match else None


# -- started when used -------------------------------------------------------------------------


class StartedWhenUsed(Backend):
    """A batch backend whose lifespan (Slurm's probe of its controller) is entered at its first
    poll or kill, not when monitoring starts: a system no job uses is never asked anything.

    The inner lifespan is entered in the task of that call and left in the task holding this
    backend's lifespan; the batch backends' lifespans hold no cancel scope across their yield.
    """

    def __init__(self, inner: BatchBackend) -> None:
        self.inner = inner
        self.name = inner.name
        self.settings = inner.settings
        self._stack: contextlib.AsyncExitStack | None = None
        self._started = False

    def lifespan(self) -> contextlib.AbstractAsyncContextManager[None]:
        return self._held()

    @contextlib.asynccontextmanager
    async def _held(self) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            self._stack, self._started = stack, False
            try:
                yield
            finally:
                self._stack = None

    async def _start(self) -> None:
        if not self._started and self._stack is not None:
            await self._stack.enter_async_context(self.inner.lifespan())
            self._started = True

    async def poll(self, jobs: Sequence[JobRef]) -> Sequence[Update]:
        """The inner backend's poll, after its lifespan is entered. Cancelled: as its poll."""
        await self._start()
        return await self.inner.poll(jobs)

    async def kill(self, job: JobRef) -> None:
        """The inner backend's kill, after its lifespan is entered; never abandoned."""
        await self._start()
        await self.inner.kill(job)
