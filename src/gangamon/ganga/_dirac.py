"""Ganga's DIRAC jobs on gangamon's `DiracBackend`.

A Ganga Dirac job is tracked under its DIRAC id; gangamon polls DIRAC in bulk
(`getJobsStates`, 1000 ids a call, bounded calls in flight) and, for Done jobs, downloads the
output sandbox into `<root>/<DIRAC id>/`. Before Ganga's `updateStatus` runs, the applier
records DIRAC's status and minor status on the Ganga backend (`backend.status`,
`backend.statusInfo`) and, on completion, moves the downloaded output into the job's output
directory, so that Ganga's postprocessors find it where Ganga would have put it.

What Ganga's own DIRAC finalisation does beyond that (LFN records of DiracFile outputs,
normCPUTime) is not done here.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from .._status import Status
from .._store import JournalEntry, NewJob


def is_dirac_class(cls: type) -> bool:
    """Whether a Ganga backend class is a Dirac one (DiracBase or a subclass: LHCb's Dirac)."""
    return any(c.__name__ == "DiracBase" for c in cls.__mro__)


def is_dirac(backend: Any) -> bool:
    return is_dirac_class(type(backend))


def dirac_new_job(name: str, job: Any, status: Status) -> NewJob | None:
    """The gangamon job for Ganga job `job`, or None if DIRAC has not given it an id yet."""
    dirac_id = getattr(job.backend, "id", None)
    if dirac_id is None:
        return None
    return NewJob(name, str(int(dirac_id)), status)


class DiracApplier:
    """Copies DIRAC's view onto the Ganga backend; hands over the downloaded output."""

    def __init__(self, output_root: Path) -> None:
        self.output_root = output_root

    def before(self, job: Any, entry: JournalEntry) -> None:
        backend = job.backend
        if entry.native_status is not None:
            backend.status = entry.native_status
        if entry.reason:
            backend.statusInfo = entry.reason
        if entry.new == Status.COMPLETED:
            downloaded = self.output_root / str(backend.id)
            if downloaded.is_dir():
                _move_into(downloaded, Path(job.getOutputWorkspace().getPath()))

    def after(self, job: Any, entry: JournalEntry) -> None:
        pass


def _move_into(source: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        destination = target / item.name
        if destination.is_dir() and item.is_dir():
            shutil.rmtree(destination)
        shutil.move(str(item), str(destination))
    source.rmdir()
