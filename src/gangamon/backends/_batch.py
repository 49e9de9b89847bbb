"""What every batch-system backend shares: one listing command per poll interval, a history
command for the jobs it no longer lists, and `unknown` (never a guess) for jobs neither knows.

A system's module says which commands to run and how to read them; this module does the
rest. The listing runs at most once per poll interval however often the engine polls (it
polls newly tracked jobs at once), so that a batch controller is never asked more often.
Commands are argument lists, run under the engine's deadline (a cancelled command is
killed), and output that cannot be read is a `BackendError`: the poll counts as failed and
no job changes.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import trio

from .._status import Status
from ._kind import BackendKind, Finding, Polling, Seconds
from ._protocol import Backend, BackendError, BackendSettings, BackendUnavailable, JobRef, Update

log = logging.getLogger("gangamon.batch")

#: A poll sooner than this fraction of the poll interval after the last listing reuses it.
#: Not the whole interval: the engine's sweeps come one interval apart, and a sweep that
#: started a little early must still run its listing.
LISTING_SPACING = 0.9

#: One listing answers for every job: one "chunk", one call in flight.
BATCH_SETTINGS = BackendSettings(
    poll_interval=30.0, chunk_size=10**9, concurrency=1, call_deadline=60.0
)


@dataclass(frozen=True, slots=True)
class BatchState:
    """A job's state in the batch system's words, and what it means in Ganga's."""

    native: str
    status: Status
    detail: str = ""
    #: What else the system says of the job (its host, its CPU time...), by name.
    details: dict[str, object] | None = None


class BatchBackend(Backend):
    """Subclasses implement `query`, `history` and `kill_command`."""

    #: What the listing command is called, for messages.
    query_name = "query"

    def __init__(
        self,
        *,
        settings: BackendSettings = BATCH_SETTINGS,
        vanish_grace: float = 600.0,
        name: str | None = None,
    ) -> None:
        self.settings = settings
        self.vanish_grace = vanish_grace
        if name is not None:
            self.name = name
        #: Listing commands run so far (at most one per poll interval).
        self.queries = 0
        #: Times the history was asked about jobs a listing left out.
        self.histories = 0
        self._vanished: dict[str, float] = {}
        #: When the last listing ran, and what it said (None if it failed).
        self._last: tuple[float, dict[str, BatchState] | None] | None = None

    async def query(self) -> dict[str, BatchState]:
        """Every job the system lists for this user, by job id."""
        raise NotImplementedError

    async def history(self, ids: list[str]) -> dict[str, BatchState]:
        """The final state of jobs the listing no longer shows, where the system remembers."""
        return {}

    def kill_command(self, job_id: str) -> list[str]:
        raise NotImplementedError

    async def poll(self, jobs: Sequence[JobRef]) -> Sequence[Update]:
        """One listing for all the jobs; history for the ones it leaves out.

        A poll within `LISTING_SPACING` of a poll interval after the last listing is answered
        from that listing, and the jobs it does not show are left out until the next one.
        """
        now = trio.current_time()
        if self._last is not None and now - self._last[0] < (
            LISTING_SPACING * self.settings.poll_interval
        ):
            recent = self._last[1] or {}
            return [_update(job, recent[job.backend_id]) for job in jobs
                    if job.backend_id in recent]  # fmt: skip
        self.queries += 1
        self._last = (now, None)
        listed = await self.query()
        self._last = (now, listed)
        updates, missing = [], []
        for job in jobs:
            state = listed.get(job.backend_id)
            if state is None:
                missing.append(job)
            else:
                self._vanished.pop(job.backend_id, None)
                updates.append(_update(job, state))
        if missing:
            updates += await self._resolve(missing)
        return updates

    async def _resolve(self, jobs: list[JobRef]) -> list[Update]:
        self.histories += 1
        found = await self.history([j.backend_id for j in jobs])
        updates = []
        now = trio.current_time()
        for job in jobs:
            state = found.get(job.backend_id)
            if state is not None:
                self._vanished.pop(job.backend_id, None)
                updates.append(_update(job, state))
                continue
            first_missed = self._vanished.setdefault(job.backend_id, now)
            if now - first_missed >= self.vanish_grace:
                evidence = (f"not listed by {self.query_name} and no history, "
                            f"for {now - first_missed:.0f} s")  # fmt: skip
                log.warning("%s job %s (job %d) lost: %s", self.name, job.backend_id, job.id,
                            evidence)  # fmt: skip
                updates.append(Update(job.id, Status.UNKNOWN, "vanished", evidence))
        return updates

    async def kill(self, job: JobRef) -> None:
        """The system's kill command; never abandoned (the engine waits for it)."""
        await run_command(self.kill_command(job.backend_id))


def _update(job: JobRef, state: BatchState) -> Update:
    return Update(job.id, state.status, state.native, state.detail, details=state.details)


async def run_command(args: list[str], *, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    """Run a command (an argument list, never a shell string). Cancelled: it is killed."""
    try:
        result = await trio.run_process(args, capture_stdout=True, capture_stderr=True,
                                        check=False)  # fmt: skip
    except FileNotFoundError:
        raise BackendUnavailable(f"{args[0]} is not installed on this machine") from None
    if check and result.returncode != 0:
        raise BackendError(f"{' '.join(args[:3])} failed ({result.returncode}): {output(result)}")
    return result


def output(result: subprocess.CompletedProcess[bytes]) -> str:
    """The first 200 characters of what a command said, errors first."""
    return (result.stderr or result.stdout).decode(errors="replace").strip()[:200]


class BatchConfig(Polling, frozen=True, kw_only=True):
    #: Seconds a job may be missing from every listing before it is declared unknown.
    vanish_grace: Seconds = 600.0


B = TypeVar("B", bound=BatchBackend)


def batch_kind(
    backend: type[B],
    display_name: str,
    id_grammar: str,
    probe: Callable[[B, BatchConfig], AsyncIterator[Finding]] | None = None,
) -> BackendKind[BatchConfig, B]:
    """The record of a batch system whose backend is `backend` and whose job ids match
    `id_grammar`; `doctor` looks for its listing command on PATH unless given `probe`."""

    def build(name: str, config: BatchConfig) -> B:
        settings = config.settings(BATCH_SETTINGS)
        return backend(settings=settings, vanish_grace=config.vanish_grace, name=name)

    return BackendKind(
        name=backend.name,
        display_name=display_name,
        config=BatchConfig,
        build=build,
        probe=probe or _listing_on_path,
        id_grammar=re.compile(id_grammar, re.ASCII),
    )


async def _listing_on_path(backend: BatchBackend, config: BatchConfig) -> AsyncIterator[Finding]:
    found = shutil.which(backend.query_name)
    yield Finding(
        found is not None, backend.name, f"{backend.query_name}: {found or 'not on PATH'}"
    )
