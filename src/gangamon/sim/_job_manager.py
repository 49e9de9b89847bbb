"""DIRAC's WorkloadManagement/JobManager over simulated jobs: `killJob`, as DIRAC 9.1's handler
answers it. Sans-IO.

A kill replaces the job's path from now on (`Killed`, "Marked for termination"); a job that
has ended already is left alone and left out of the answer, as DIRAC's state filter does; an
id DIRAC does not know is named under `InvalidJobIDs` beside the S_OK.
"""

from __future__ import annotations

from typing import Any

from ..backends.dirac._wire import s_error, s_ok
from ._changes import ChangeIndex
from ._dirac_model import SimJob, killed
from ._dirac_service import Result, dispatch, job_ids


class JobManager:
    """WorkloadManagement/JobManager over `jobs`, whose changes `changes` indexes."""

    def __init__(self, jobs: dict[int, SimJob], changes: ChangeIndex) -> None:
        self.jobs = jobs
        self.changes = changes

    def call(self, method: str, args: list[Any], now: float) -> Result:
        return dispatch({"killJob": self._kill}, method, args, now)

    def _kill(self, now: float, ids: object, force: object = False) -> Result:
        wanted = job_ids(ids)
        if wanted is None:
            return s_error(f"Invalid job specification: {ids!r}")
        replaced, invalid = [], []
        for job_id in wanted:
            job = self.jobs.get(job_id)
            if job is None:
                invalid.append(job_id)
            elif (now_killed := killed(job, now)) is not None:
                self.jobs[job_id] = now_killed
                replaced.append(now_killed)
        self.changes.reindex(*replaced)
        result = s_ok([job.id for job in replaced])
        if invalid:
            result["InvalidJobIDs"] = invalid
        return result
