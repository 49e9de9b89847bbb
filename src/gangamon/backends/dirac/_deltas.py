"""Which of the user's DIRAC jobs changed since a time: each transport's `changed_since`.

For DIRAC's, JobMonitoring's `getJobs({"Owner": owners}, cutDate)` (`get_jobs_since`): the
ids of the owners' jobs whose LastUpdateTime (whole seconds of DIRAC's clock, set on every
status and minor-status change) is at or after the cut; DiracX's search gives their states
too. The cut is the poll's start on DIRAC's clock, read off its replies' Date headers
(`ServerClock`; our own clock where none is known), less `margin`: for changes that commit
late, and for a clock that is a little off. Any doubt (no owner known, a clock that moved, an
error) answers None, and the engine polls every job.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from collections.abc import Collection, Sequence
from typing import Any, Protocol

import trio

from .._protocol import JobRef
from ._details import rows_by_job
from ._server_clock import ServerClock
from ._wire import DiracError, JobState, WireError

log = logging.getLogger("gangamon.dirac")

_MONITORING = ("WorkloadManagement", "JobMonitoring")
#: DIRAC's "Unknown method" (DErrno.ENOMETH): a server that has no getJobs.
_NO_METHOD = 38


class NoDeltas(DiracError):
    """The server cannot tell what changed (a DIRAC without getJobs)."""


class Calls(Protocol):
    server_clock: ServerClock

    async def call(self, system: str, service: str, method: str, *args: object) -> Any: ...

    async def changed_since(
        self, owners: Sequence[str], cut: int
    ) -> tuple[set[str], dict[int, JobState]]: ...


async def get_jobs_since(
    calls: Calls, owners: Sequence[str], cut: int
) -> tuple[set[str], dict[int, JobState]]:
    """The ids of the jobs of `owners` whose LastUpdateTime is at or after `cut` (Unix time,
    whole seconds), from JobMonitoring's getJobs; no states (getJobs gives none). `NoDeltas`
    when the server has no getJobs, `DiracError` for another refusal or garbage."""
    try:
        ids = await calls.call(*_MONITORING, "getJobs", {"Owner": list(owners)}, _format(cut))
    except DiracError as e:
        if e.errno == _NO_METHOD or "Unknown method" in e.message:
            raise NoDeltas(f"DIRAC at this URL has no getJobs ({e.message})") from None
        raise DiracError(f"getJobs: {e.message}") from None
    changed = _ids(ids)
    if changed is None:
        raise DiracError(f"getJobs answered {ids!r:.100}, not a list of job ids")
    return changed, {}


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
        #: States the last question brought along, by DIRAC id (see `take_states`).
        self.states: dict[int, JobState] = {}

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
        cut = math.floor(self._server_time(since) - self.margin)
        try:
            changed, self.states = await self.transport.changed_since(owners, cut)
        except NoDeltas as e:
            self.off = e.message
            log.warning("backend %s: %s; polling every job", self.name, self.off)
            return None
        except DiracError as e:
            self._doubting(e.message)
            return None
        if self._doubt is not None:
            log.info("backend %s: polling what changed again", self.name)
            self._doubt = None
        return changed

    def take_states(self, ids: Collection[int]) -> dict[int, JobState] | None:
        """The states of `ids` that the last question of what changed brought along (DiracX's
        search does), if it brought them all: no second call for them."""
        states = self.states
        if not ids or not all(i in states for i in ids):
            return None
        return {i: states.pop(i) for i in ids}

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
        if not jobs:
            return None
        try:
            reply = await self.transport.call(
                *_MONITORING, "getJobsSummary", [int(jobs[0].backend_id)]
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


def _format(epoch: int) -> str:
    """A cut date as DIRAC's database compares it: UTC, whole seconds."""
    return f"{dt.datetime.fromtimestamp(epoch, dt.UTC):%Y-%m-%d %H:%M:%S}"


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
