"""DataManagement/FileCatalog over the simulated jobs' output files. Sans-IO.

A job's files (`_job_facts.output_lfns`) are in the catalogue once the job is Done or
Completed. As DIRAC's FileCatalog does, each call takes many LFNs (a list, a dict keyed by
LFN, or one string) and answers S_OK({"Successful": {lfn: ...}, "Failed": {lfn: reason}}).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..backends.dirac._states import DiracStatus as D
from ..backends.dirac._wire import s_error, s_ok
from . import _job_facts as facts
from ._dirac_cfg import GROUP, USER
from ._dirac_model import SimJob, WallClock
from ._dirac_service import Result, dispatch

_UPLOADED = frozenset({D.DONE, D.COMPLETED})
#: What DIRAC's FileCatalog says of a path it does not have.
NO_SUCH_FILE = "No such file or directory"


def _lfns(arg: object) -> list[str] | None:
    """DIRAC's `types_ = [[list, dict, str]]` for LFNs."""
    if isinstance(arg, str):
        return [arg]
    if isinstance(arg, list | dict):
        return [str(lfn) for lfn in arg]
    return None


class FileCatalog:
    """The catalogue's read methods for the files of `jobs`."""

    def __init__(self, jobs: Mapping[int, SimJob], wall: WallClock) -> None:
        self.jobs, self.wall = jobs, wall
        self.methods: dict[str, Callable[..., Result]] = {
            "getFileMetadata": self._bulk(self.metadata),
            "getReplicas": self._bulk(self.replicas),
            "getDirectoryMetadata": self._directories,
        }

    def call(self, method: str, args: list[Any], now: float) -> Result:
        self.wall.fix(now)
        return dispatch(self.methods, method, args, now)

    def uploaded_at(self, lfn: str, now: float) -> tuple[SimJob, float] | None:
        """The job that uploaded `lfn` and when, if it has by `now`."""
        job = self.jobs.get(facts.job_of_lfn(lfn) or -1)
        if job is None or lfn not in facts.output_lfns(job.id):
            return None
        when = job.first_time(_UPLOADED, now)
        return None if when is None else (job, when)

    def metadata(self, lfn: str, job: SimJob, when: float) -> dict[str, object]:
        created = self.wall.at(when)
        return {
            "Size": facts.file_size(lfn),
            "Checksum": facts.checksum_of(lfn),
            "ChecksumType": "Adler32",
            "GUID": facts.guid_of(lfn),
            "Status": "AprioriGood",
            "CreationDate": created,
            "ModificationDate": created,
            "Mode": 0o775,
            "Owner": USER,
            "OwnerGroup": GROUP,
            "UID": 1,
            "GID": 1,
            "FileID": int(facts.guid_of(lfn)[:7], 16),
        }

    def directory_at(self, path: str, now: float) -> float | None:
        """When directory `path` came to be, by `now`, if it is one: a job's output directory
        once the job uploaded, or one of the directories above them (there from the
        clock's start)."""
        path = path.rstrip("/") or "/"
        if path == "/" or facts.LFN_ROOT.startswith(path + "/") or path == facts.LFN_ROOT:
            return 0.0
        parent, _, number = path.rpartition("/")
        job = self.jobs.get(int(number)) if parent == facts.LFN_ROOT and number.isdigit() else None
        if job is None or not facts.output_lfns(job.id):
            return None
        return job.first_time(_UPLOADED, now)

    def _directories(self, now: float, paths: object) -> Result:
        wanted = _lfns(paths)
        if wanted is None:
            return s_error(f"Type mismatch in parameter 0: {type(paths).__name__}")
        successful: dict[str, object] = {}
        failed: dict[str, str] = {}
        for path in wanted:
            when = self.directory_at(path, now)
            if when is None:
                failed[path] = NO_SUCH_FILE
                continue
            created = self.wall.at(when)
            successful[path] = {
                "Type": "Directory",
                "Mode": 0o775,
                "Owner": USER,
                "OwnerGroup": GROUP,
                "UID": 1,
                "GID": 1,
                "Status": 0,
                "CreationDate": created,
                "ModificationDate": created,
            }
        return s_ok({"Successful": successful, "Failed": failed})

    @staticmethod
    def replicas(lfn: str, job: SimJob, when: float) -> dict[str, str]:
        # DIRAC's catalogue keeps no PFN; its client then names each replica by the LFN.
        return dict.fromkeys(facts.replicas_of(job.id, lfn), lfn)

    def _bulk(self, describe: Callable[[str, SimJob, float], object]) -> Callable[..., Result]:
        def handler(now: float, lfns: object, *_options: object) -> Result:
            wanted = _lfns(lfns)
            if wanted is None:
                return s_error(f"Type mismatch in parameter 0: {type(lfns).__name__}")
            successful: dict[str, object] = {}
            failed: dict[str, str] = {}
            for lfn in wanted:
                found = self.uploaded_at(lfn, now)
                if found is None:
                    failed[lfn] = NO_SUCH_FILE
                else:
                    successful[lfn] = describe(lfn, *found)
            return s_ok({"Successful": successful, "Failed": failed})

        return handler
