"""Where a backend's reports leave for the writer, and the counts of its calls.

Reports go, stamped with the time their call started, into the bounded channel that feeds
the engine's single writer. Malformed ones are counted and kept back, and so are the ones
equal to the job's last stored status (most of every sweep).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import trio

from ._jobtable import JobTable
from ._status import Status
from .backends._protocol import Update

log = logging.getLogger("gangamon.backend")


@dataclass(frozen=True, slots=True)
class Report:
    """An update from the backend of that name on its way to the writer. `observed` orders
    reports of the same job."""

    backend: str
    observed: float
    update: Update
    #: From `finalise`: the move out of completing, not a fresh report of completion.
    finalised: bool = False


@dataclass(slots=True)
class CallCounts:
    """What one backend's calls came to, for its statistics."""

    calls: int = 0
    #: Of the calls, those that asked which jobs had changed (`Backend.changed`).
    delta_calls: int = 0
    errors: int = 0
    timeouts: int = 0
    garbage: int = 0
    in_flight: int = 0
    #: Finalisations that succeeded (for DIRAC: output sandboxes downloaded).
    finalised: int = 0
    #: Finalisations given up on (the job failed with the reason).
    finalise_failed: int = 0
    last_poll_latency: float | None = None
    #: When a poll last succeeded (Unix time).
    last_success: float | None = None
    #: Why the backend is not working (a crash, a failed poll) until a poll succeeds.
    problem: str | None = None

    def succeeded(self) -> None:
        self.last_success = time.time()
        self.problem = None


class Outbox:
    """The reports of the backend `name` on the jobs of `jobs`, sent on `send` (the
    supervisor's, set while it runs)."""

    def __init__(self, name: str, jobs: JobTable) -> None:
        self.name = name
        self.jobs = jobs
        self.counts = CallCounts()
        self.send: trio.MemorySendChannel[Report] | None = None
        #: Log records' own fields (see `_logs`): which backend a record is about.
        self.tag = {"backend": name}

    async def forward(self, updates: object, asked: set[int], observed: float) -> None:
        """Send the well-formed reports on jobs we asked about; count the rest as garbage."""
        try:
            items = list(updates)  # type: ignore[call-overload]
        except TypeError:
            items = [updates]
        tracked = self.jobs.get  # once: this loop runs for every job of every poll
        for update in items:
            if (
                isinstance(update, Update)
                and update.job in asked
                and isinstance(update.status, Status)
            ):
                ref = tracked(update.job)
                if (
                    ref is not None
                    and ref.status is update.status
                    and ref.native_status == update.native_status
                ):
                    continue  # nothing new: most reports of a sweep, kept off the channel
                await self.put(Report(self.name, observed, update))
            else:
                self.counts.garbage += 1
                log.warning(
                    "backend %s: ignored malformed report %.200r", self.name, update, extra=self.tag
                )

    async def put(self, report: Report) -> None:
        assert self.send is not None, "reports are sent only while supervised"
        await self.send.send(report)
