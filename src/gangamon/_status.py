"""Ganga's job status model: the 14 statuses, the transition graph, master aggregation.

Pure and synchronous: no I/O, no trio. Everything that changes a job's status (the store, the
engine's writer, the Ganga shim) asks this module whether the move is legal, so the rules live
in exactly one place. The graph is Ganga 8.7.12's `Job.status_graph`; a move to the same status
is always legal, as in Ganga's `updateStatus`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping


class Status(enum.StrEnum):
    """A Ganga job status. The values are Ganga's own spellings."""

    NEW = "new"
    SUBMITTING = "submitting"
    SUBMITTED = "submitted"
    RUNNING = "running"
    COMPLETING = "completing"
    COMPLETED = "completed"
    FAILED = "failed"
    KILLED = "killed"
    UNKNOWN = "unknown"
    REMOVED = "removed"
    INCOMPLETE = "incomplete"
    COMPLETED_FROZEN = "completed_frozen"
    FAILED_FROZEN = "failed_frozen"
    TEMPLATE = "template"


S = Status

TRANSITIONS: Mapping[Status, frozenset[Status]] = {
    S.NEW: frozenset({S.SUBMITTING, S.REMOVED}),
    S.SUBMITTING: frozenset({S.NEW, S.SUBMITTED, S.UNKNOWN, S.FAILED}),
    S.SUBMITTED: frozenset(
        {S.RUNNING, S.KILLED, S.UNKNOWN, S.FAILED, S.COMPLETING, S.COMPLETED, S.SUBMITTING}
    ),
    S.RUNNING: frozenset(
        {S.COMPLETING, S.COMPLETED, S.FAILED, S.KILLED, S.UNKNOWN, S.SUBMITTING, S.SUBMITTED}
    ),
    S.COMPLETING: frozenset({S.COMPLETED, S.FAILED, S.UNKNOWN, S.SUBMITTING, S.SUBMITTED}),
    S.KILLED: frozenset({S.REMOVED, S.FAILED, S.SUBMITTING, S.SUBMITTED, S.FAILED_FROZEN}),
    S.FAILED: frozenset({S.REMOVED, S.SUBMITTING, S.COMPLETED, S.SUBMITTED, S.FAILED_FROZEN}),
    S.COMPLETED: frozenset({S.REMOVED, S.FAILED, S.SUBMITTING, S.SUBMITTED, S.COMPLETED_FROZEN}),
    S.COMPLETED_FROZEN: frozenset({S.COMPLETED}),
    S.FAILED_FROZEN: frozenset({S.FAILED}),
    S.INCOMPLETE: frozenset({S.REMOVED}),
    S.UNKNOWN: frozenset({S.REMOVED}),
    S.TEMPLATE: frozenset({S.REMOVED}),
    S.REMOVED: frozenset(),
}

#: Statuses in which a backend still has something to report: the engine polls these.
ACTIVE: frozenset[Status] = frozenset({S.SUBMITTING, S.SUBMITTED, S.RUNNING, S.COMPLETING})

#: Statuses a job reaches when its run is over. Resubmission can still leave them, but no
#: backend report moves a job out of them on its own.
FINAL: frozenset[Status] = frozenset(
    {S.COMPLETED, S.FAILED, S.KILLED, S.COMPLETED_FROZEN, S.FAILED_FROZEN, S.REMOVED}
)

# Ganga's updateMasterJobStatus: the first of these present among the subjobs wins.
_MASTER_PRIORITY = (
    S.SUBMITTING,
    S.SUBMITTED,
    S.RUNNING,
    S.COMPLETING,
    S.FAILED,
    S.KILLED,
    S.COMPLETED,
)

# Where Ganga logs "undefined state" we decide, in this order: (present, master's status).
_UNDEFINED_PRIORITY = (
    (S.FAILED_FROZEN, S.FAILED),
    (S.COMPLETED_FROZEN, S.COMPLETED),
    (S.UNKNOWN, S.UNKNOWN),
    (S.INCOMPLETE, S.INCOMPLETE),
    (S.NEW, S.NEW),
    (S.TEMPLATE, S.TEMPLATE),
    (S.REMOVED, S.REMOVED),
)


_BY_NAME = {s.value: s for s in Status}


class UnknownStatus(ValueError):
    """A status name that is not one of Ganga's 14."""

    def __init__(self, value: object) -> None:
        self.value = value
        known = ", ".join(s.value for s in Status)
        super().__init__(f"unknown job status {value!r} (known: {known})")


class IllegalTransition(ValueError):
    """A move that Ganga's status graph forbids."""

    def __init__(self, job: object, old: Status, new: Status) -> None:
        self.job, self.old, self.new = job, old, new
        super().__init__(f"job {job}: illegal status transition {old.value!r} -> {new.value!r}")


def parse_status(value: object) -> Status:
    """The `Status` spelled `value` exactly as Ganga spells it, else `UnknownStatus`."""
    if isinstance(value, Status):
        return value
    status = _BY_NAME.get(value) if isinstance(value, str) else None
    if status is None:
        raise UnknownStatus(value)
    return status


def can_transition(old: Status, new: Status) -> bool:
    """Whether Ganga allows `old -> new`. A move to the same status is always allowed."""
    return old == new or new in TRANSITIONS[old]


def check_transition(job: object, old: Status, new: Status) -> None:
    """Raise `IllegalTransition` naming `job` unless `old -> new` is allowed."""
    if not can_transition(old, new):
        raise IllegalTransition(job, old, new)


def master_status(subjob_statuses: Iterable[Status]) -> Status:
    """The status of a master job whose subjobs have these statuses.

    Ganga's rule first: the first of submitting > submitted > running > completing > failed >
    killed > completed present among the subjobs. Where Ganga has no answer (it logs
    "undefined state" and leaves the master alone) we define one, in this order:

    - failed_frozen, then completed_frozen subjobs make the master failed, then completed
      (the master itself is not frozen: freezing is a user's act on a job);
    - then unknown > incomplete > new > template > removed: a lost subjob makes the master
      unknown, a master whose subjobs were never submitted stays new, and only a master all of
      whose subjobs were removed is removed.

    Raises `ValueError` for an empty collection: a job without subjobs is not a master.
    """
    present = set(subjob_statuses)
    if not present:
        raise ValueError("a master job needs at least one subjob status")
    for status in _MASTER_PRIORITY:
        if status in present:
            return status
    for status, master in _UNDEFINED_PRIORITY:
        if status in present:
            return master
    raise AssertionError(f"unreachable: statuses {present} not ranked")  # pragma: no cover
