"""DIRAC's 16 job statuses, its JobsStateMachine, and their meaning in Ganga's terms.

Pure and synchronous. The table is DIRAC 9.1's (`DIRACCommon/.../JobStatus.py`); the mapping
is Ganga's `[DIRAC]statusmapping` without its hole: Submitting, Scouting and Rescheduled are
on their way to running, not failures, and Killed is killed.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Mapping

from ..._status import Status, parse_status


class DiracStatus(enum.StrEnum):
    SUBMITTING = "Submitting"
    RECEIVED = "Received"
    CHECKING = "Checking"
    SCOUTING = "Scouting"
    STAGING = "Staging"
    WAITING = "Waiting"
    MATCHED = "Matched"
    RESCHEDULED = "Rescheduled"
    RUNNING = "Running"
    STALLED = "Stalled"
    COMPLETING = "Completing"
    DONE = "Done"
    COMPLETED = "Completed"
    FAILED = "Failed"
    DELETED = "Deleted"
    KILLED = "Killed"


D = DiracStatus

#: DIRAC's JobsStateMachine: where each status may go next. DIRAC silently ignores others.
DIRAC_TRANSITIONS: Mapping[DiracStatus, frozenset[DiracStatus]] = {
    D.SUBMITTING: frozenset({D.RECEIVED, D.CHECKING, D.DELETED, D.KILLED}),
    D.RECEIVED: frozenset(
        {D.SCOUTING, D.CHECKING, D.STAGING, D.WAITING, D.FAILED, D.DELETED, D.KILLED}
    ),
    D.CHECKING: frozenset(
        {D.SCOUTING, D.STAGING, D.WAITING, D.RESCHEDULED, D.FAILED, D.DELETED, D.KILLED}
    ),
    D.SCOUTING: frozenset({D.CHECKING, D.FAILED, D.STALLED, D.KILLED}),
    D.STAGING: frozenset({D.CHECKING, D.WAITING, D.FAILED, D.KILLED}),
    D.WAITING: frozenset({D.MATCHED, D.RESCHEDULED, D.DELETED, D.KILLED}),
    D.MATCHED: frozenset({D.RUNNING, D.FAILED, D.RESCHEDULED, D.KILLED}),
    D.RESCHEDULED: frozenset({D.WAITING, D.RECEIVED, D.DELETED, D.FAILED, D.KILLED}),
    D.RUNNING: frozenset(
        {D.STALLED, D.DONE, D.FAILED, D.RESCHEDULED, D.COMPLETING, D.KILLED, D.RECEIVED}
    ),
    D.STALLED: frozenset({D.RUNNING, D.FAILED, D.KILLED}),
    D.COMPLETING: frozenset({D.DONE, D.FAILED, D.COMPLETED, D.STALLED, D.KILLED}),
    D.COMPLETED: frozenset({D.DONE, D.FAILED}),
    D.DONE: frozenset({D.DELETED}),
    D.FAILED: frozenset({D.RESCHEDULED, D.DELETED}),
    D.KILLED: frozenset({D.DELETED}),
    D.DELETED: frozenset(),
}

_GANGA: Mapping[DiracStatus, Status] = {
    D.SUBMITTING: Status.SUBMITTED,
    D.RECEIVED: Status.SUBMITTED,
    D.CHECKING: Status.SUBMITTED,
    D.SCOUTING: Status.SUBMITTED,
    D.STAGING: Status.SUBMITTED,
    D.WAITING: Status.SUBMITTED,
    D.MATCHED: Status.SUBMITTED,
    # Rescheduled goes back to Waiting or Received: the job is queued again, not lost.
    D.RESCHEDULED: Status.SUBMITTED,
    D.RUNNING: Status.RUNNING,
    D.STALLED: Status.RUNNING,
    D.COMPLETING: Status.RUNNING,
    # Completed: the payload ended but requests (uploads) are pending; Done or Failed follows.
    D.COMPLETED: Status.RUNNING,
    D.DONE: Status.COMPLETED,
    D.FAILED: Status.FAILED,
    D.KILLED: Status.KILLED,
    D.DELETED: Status.FAILED,
}

#: The minor status under which DIRAC uploads output: still running, whatever the major says.
UPLOADING = "Uploading Output Data"


_BY_VALUE = {s.value: s for s in DiracStatus}


class UnknownDiracStatus(ValueError):
    def __init__(self, value: object) -> None:
        self.value = value
        super().__init__(f"unknown DIRAC job status {value!r}")


def parse_dirac_status(value: object) -> DiracStatus:
    """The `DiracStatus` spelled `value`, else `UnknownDiracStatus` naming it."""
    status = _BY_VALUE.get(value) if isinstance(value, str) else None
    if status is None:
        raise UnknownDiracStatus(value)
    return status


def can_move(old: DiracStatus, new: DiracStatus) -> bool:
    """Whether DIRAC's state machine allows `old -> new` (staying put is allowed)."""
    return old == new or new in DIRAC_TRANSITIONS[old]


def ganga_status(
    status: DiracStatus, minor: str | None = None, mapping: Mapping[DiracStatus, Status] = _GANGA
) -> Status:
    """The Ganga status of a DIRAC job in `status` with minor status `minor` (by `mapping`:
    by default gangamon's, see `ganga_mapping` for a Ganga user's)."""
    ganga = mapping[status]
    if minor == UPLOADING and ganga == Status.COMPLETED:
        return Status.RUNNING  # Ganga's own rule: output is still on its way
    return ganga


@functools.lru_cache(maxsize=4096)
def reported_state(status: str, minor: str | None) -> tuple[str, Status]:
    """(DIRAC status, Ganga status) of a state as DIRAC reports it; `UnknownDiracStatus` if
    `status` is not one of DIRAC's.

    Cached, with a bound as minor statuses are free text: a reply holds 1000 jobs in a handful
    of distinct states, and mapping each anew was most of the CPU a reply cost.
    """
    dirac = parse_dirac_status(status)
    return dirac.value, ganga_status(dirac, minor)


def ganga_mapping(statusmapping: Mapping[str, str]) -> Mapping[DiracStatus, Status]:
    """gangamon's mapping with a Ganga user's `[DIRAC] statusmapping` (DIRAC status -> Ganga
    status) laid over it, so that both monitors put a job in the same Ganga status. The
    statuses Ganga's map leaves out (its hole: Submitting, Scouting, Rescheduled) keep
    gangamon's; `UnknownDiracStatus` or `UnknownStatus` names a value that is neither's."""
    mapping = dict(_GANGA)
    for dirac, ganga in statusmapping.items():
        mapping[parse_dirac_status(dirac)] = parse_status(ganga)
    return mapping
