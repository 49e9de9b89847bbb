"""What goes into a job store and what comes out: plain frozen records, the same for every
kind of store."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .._status import Status, can_transition


@dataclass(frozen=True, slots=True)
class NewJob:
    """A job to register. `status` is where it starts: `submitted` for a job already on a grid."""

    backend: str
    backend_id: str | None = None
    status: Status = Status.NEW
    parent: int | None = None
    native_status: str | None = None


@dataclass(frozen=True, slots=True)
class JobRecord:
    id: int
    parent: int | None
    backend: str
    backend_id: str | None
    status: Status
    native_status: str | None
    created: float
    updated: float
    transitions: int


@dataclass(frozen=True, slots=True)
class Transition:
    """Move `job` from `expected` to `new`, if it is still in `expected`."""

    job: int
    expected: Status
    new: Status
    native_status: str | None = None
    reason: str = ""
    #: What the backend knows of the job besides its status (site, times, output data...),
    #: kept in the journal as JSON.
    details: Mapping[str, object] | None = None


class Outcome(enum.Enum):
    APPLIED = "applied"
    #: Same status and same native status: nothing to write (Ganga would rerun hooks here).
    UNCHANGED = "unchanged"
    #: The stored status is no longer the expected one.
    STALE = "stale"
    #: Ganga's graph forbids the move.
    ILLEGAL = "illegal"
    #: A move back to an active status under a backend id another active job holds.
    HELD = "backend id held by another active job"
    UNKNOWN_JOB = "unknown job"


@dataclass(frozen=True, slots=True)
class JournalEntry:
    seq: int
    job: int
    old: Status | None
    new: Status
    native_status: str | None
    reason: str
    time: float
    details: Mapping[str, object] | None = None


@dataclass(frozen=True, slots=True)
class StoreStatistics:
    batches: int
    applied: int
    unchanged: int
    refused: int
    last_batch_seconds: float


JOB_COLUMNS = (
    "id, parent, backend, backend_id, status, native_status, created, updated, transitions"
)


def job_record(row: tuple[Any, ...]) -> JobRecord:
    """The record of a row of `JOB_COLUMNS`."""
    job, parent, backend, backend_id, status, native, created, updated, transitions = row
    return JobRecord(
        job, parent, backend, backend_id, Status(status), native, created, updated, transitions
    )


def judge(t: Transition, current: tuple[Status, str | None, int | None] | None) -> Outcome:
    """What becomes of `t` against the stored (status, native status, parent), if any."""
    if current is None:
        return Outcome.UNKNOWN_JOB
    status, native, _ = current
    if status != t.expected:
        return Outcome.STALE
    if t.new == status and t.native_status == native:
        return Outcome.UNCHANGED
    if not can_transition(status, t.new):
        return Outcome.ILLEGAL
    return Outcome.APPLIED
