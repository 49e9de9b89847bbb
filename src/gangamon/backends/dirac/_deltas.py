"""Which of the user's DIRAC jobs changed since a time: JobMonitoring's `getJobs`.

`getJobs({"Owner": owner}, cutDate)` gives the ids of the owner's jobs whose LastUpdateTime
(whole seconds of DIRAC's clock, set on every status and minor-status change) is at or after
the cut. The cut is the poll's start on DIRAC's clock, read off its replies' Date headers
(`ServerClock`; our own clock where none is known), less `margin`: for changes that commit
late, and for a clock that is a little off. Any doubt (no owner known, a clock that moved, an
error) answers None, and the engine polls every job.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from collections.abc import Sequence
from typing import Any, Protocol

import trio

from .._protocol import JobRef
from ._details import rows_by_job
from ._server_clock import ServerClock
from ._wire import DiracError, WireError

log = logging.getLogger("gangamon.dirac")

_MONITORING = ("WorkloadManagement", "JobMonitoring")
#: DIRAC's "Unknown method" (DErrno.ENOMETH): a server that has no getJobs.
_NO_METHOD = 38


class Calls(Protocol):
    server_clock: ServerClock

    async def call(self, system: str, service: str, method: str, *args: object) -> Any: ...


class Deltas:
    """`changed` for the DIRAC backend `name`: the jobs of `owners` (None: the owner of a
    tracked job, asked of DIRAC once) changed since a time."""

    def __init__(
        self, transport: Calls, *, owners: Sequence[str] | None, margin: float, name: str
    ) -> None:
        self.transport = transport
        self.owners = list(owners) if owners else None
        self.margin = margin
        self.name = name
        #: Why deltas are off for this session (DIRAC has no getJobs), if they are.
        self.off: str | None = None
        self._doubt: str | None = None
        self._jumps = 0
        self._told_no_clock = False
        self._wall_offset = 0.0

    def start(self) -> None:
        """At the session's start: ties our wall clock to trio's, for a DIRAC whose replies
        do not say its time (tied once: trio's clock is the one that never steps)."""
        self._wall_offset = time.time() - trio.current_time()

    async def changed(self, since: float, jobs: Sequence[JobRef]) -> set[str] | None:
        """The DIRAC ids (as strings) of the owner's jobs changed since trio time `since`,
        tracked or not; None when this cannot be told now (said in the log)."""
        if self.off is not None:
            return None
        owners = self.owners or await self._learn_owners(jobs)
        if owners is None:
            self._doubting("no tracked job's owner is known to DIRAC")
            return None
        clock = self.transport.server_clock
        if clock.jumps != self._jumps:
            self._jumps = clock.jumps
            self._doubting("DIRAC's clock moved against ours")
            return None
        cut = _format(self._server_time(since) - self.margin)
        try:
            ids = await self.transport.call(*_MONITORING, "getJobs", {"Owner": owners}, cut)
        except DiracError as e:
            if e.errno == _NO_METHOD or "Unknown method" in e.message:
                self.off = f"DIRAC at this URL has no getJobs ({e.message})"
                log.warning("backend %s: %s; polling every job", self.name, self.off)
                return None
            self._doubting(f"getJobs: {e.message}")
            return None
        changed = _ids(ids)
        if changed is None:
            self._doubting(f"getJobs answered {ids!r:.100}, not a list of job ids")
            return None
        if self._doubt is not None:
            log.info("backend %s: polling what changed again", self.name)
            self._doubt = None
        return changed

    def _server_time(self, since: float) -> float:
        clock = self.transport.server_clock
        if clock.known:
            return clock.earliest(since)
        if not self._told_no_clock:
            self._told_no_clock = True
            log.info(
                "backend %s: DIRAC's replies do not say its time; what changed is asked from "
                "our clock, less %g s",
                self.name,
                self.margin,
            )
        return since + self._wall_offset

    async def _learn_owners(self, jobs: Sequence[JobRef]) -> list[str] | None:
        """The owner of the first tracked job, from its getJobsSummary row (once known, kept)."""
        for job in jobs[:1]:
            try:
                reply = await self.transport.call(
                    *_MONITORING, "getJobsSummary", [int(job.backend_id)]
                )
                owner = next(iter(rows_by_job(reply).values()), {}).get("Owner")
            except (DiracError, WireError, ValueError):
                return None
            if isinstance(owner, str) and owner:
                self.owners = [owner]
                log.info("backend %s: asking what changed among the jobs of %s", self.name, owner)
        return self.owners

    def _doubting(self, why: str) -> None:
        if why != self._doubt:
            log.warning(
                "backend %s: cannot tell what changed (%s); polling every job", self.name, why
            )
            self._doubt = why


def _format(epoch: float) -> str:
    """A cut date as DIRAC's database compares it: UTC, whole seconds (rounded down)."""
    return f"{dt.datetime.fromtimestamp(math.floor(epoch), dt.UTC):%Y-%m-%d %H:%M:%S}"


def _ids(value: object) -> set[str] | None:
    """getJobs' answer (ids as strings, as DIRAC's SQL layer gives them, or numbers) as a set
    of DIRAC ids; None if it is not that."""
    if not isinstance(value, list):
        return None
    found = set()
    for item in value:
        text = str(item) if isinstance(item, int) and not isinstance(item, bool) else item
        if not (isinstance(text, str) and text.isascii() and text.isdigit()):
            return None
        found.add(text.lstrip("0") or "0")
    return found
