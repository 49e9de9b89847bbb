"""The DIRAC service methods the simulator answers, over simulated jobs. Sans-IO.

Each handler takes the decoded positional arguments and the server time of the call, and
returns an S_OK/S_ERROR structure, as DIRAC's JobMonitoring and SandboxStore handlers do.
Unknown job ids are silently left out. Handlers only read the jobs: the simulator runs them
in worker threads, as DIRAC runs its handlers.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable, Mapping
from typing import Any

from ..backends.dirac._wire import s_error, s_ok
from ._dirac_model import SimJob

Result = dict[str, object]


class Hangup(enum.Enum):
    """What a call ended in instead of a result: the connection is to be dropped."""

    RESET = "reset"
    HTTP500 = "http500"


def _job_ids(arg: object) -> list[int] | None:
    """DIRAC's `types_ = [[str, int, list]]` for job ids: an int, a list, or "1,2,3"."""
    if isinstance(arg, bool):
        return None
    if isinstance(arg, int):
        return [arg]
    if isinstance(arg, str):
        try:
            return [int(part) for part in arg.split(",") if part.strip()]
        except ValueError:
            return None
    if isinstance(arg, list) and all(isinstance(i, int) and not isinstance(i, bool) for i in arg):
        return list(arg)
    return None


class JobMonitoring:
    """WorkloadManagement/JobMonitoring over `jobs`."""

    def __init__(self, jobs: Mapping[int, SimJob]) -> None:
        self.jobs = jobs
        self.methods: dict[str, Callable[..., Result]] = {
            "getJobsStatus": self._per_job(lambda j, t: {"Status": j.state_at(t)[0].value}),
            "getJobsMinorStatus": self._per_job(lambda j, t: {"MinorStatus": j.state_at(t)[1]}),
            "getJobsApplicationStatus": self._per_job(
                lambda j, t: {"ApplicationStatus": j.application_status}
            ),
            "getJobsSites": self._per_job(lambda j, t: {"Site": j.site}),
            "getJobsStates": self._per_job(lambda j, t: j.states_at(t)),
            "getJobsSummary": self._per_job(self._summary),
            "getJobParameters": self._per_job(self._parameters),
            "getJobLoggingInfo": self._logging_info,
        }

    def call(self, method: str, args: list[Any], now: float) -> Result:
        handler = self.methods.get(method)
        if handler is None:
            return s_error(f"Unknown method {method}", 38)
        try:
            return handler(now, *args)
        except TypeError:
            return s_error(f"Wrong number of arguments for {method}: {len(args)}")

    def _per_job(self, describe: Callable[[SimJob, float], object]) -> Callable[..., Result]:
        def handler(now: float, ids: object, *_rest: object) -> Result:
            wanted = _job_ids(ids)
            if wanted is None:
                return s_error(f"Type mismatch in parameter 0: {type(ids).__name__}")
            return s_ok({i: describe(self.jobs[i], now) for i in wanted if i in self.jobs})

        return handler

    @staticmethod
    def _summary(job: SimJob, t: float) -> dict[str, object]:
        times = {"SubmissionTime": _wall(job.submitted, t), "LastUpdateTime": _wall(t, t)}
        return {
            **job.states_at(t),
            "JobID": job.id,
            "Site": job.site,
            "Owner": "simuser",
            **times,
        }

    @staticmethod
    def _parameters(job: SimJob, t: float) -> dict[str, object]:
        return {"CPUNormalizationFactor": 10.0, "NormCPUTime(s)": 42, "HostName": "wn.sim"}

    def _logging_info(self, now: float, job_id: object) -> Result:
        if not isinstance(job_id, int) or job_id not in self.jobs:
            return s_error(f"No Logging information for job {job_id}")
        rows = [
            [
                status.value,
                minor,
                "Unknown",
                _wall(when, now).strftime("%Y-%m-%d %H:%M:%S"),
                "JobWrapper",
            ]
            for when, status, minor in self.jobs[job_id].path
            if when <= now
        ]
        return s_ok(rows)


class SandboxStore:
    """WorkloadManagement/SandboxStore: where each finished job's output sandbox lies."""

    def __init__(self, jobs: Mapping[int, SimJob], base_url: str):
        self.jobs, self.base_url = jobs, base_url

    def call(self, method: str, args: list[Any], now: float) -> Result:
        if method != "getSandboxesAssignedToEntity" or len(args) != 1:
            return s_error(f"Unknown method {method}", 38)
        entity = args[0]
        try:
            kind, number = str(entity).split(":", 1)
            job = self.jobs[int(number)] if kind == "Job" else None
        except (ValueError, KeyError):
            job = None
        if job is None or job.state_at(now)[0].value not in ("Done", "Failed", "Completed"):
            return s_ok({})
        return s_ok({"Output": [f"SB:SimSandboxSE|{self.base_url}/sandbox/{job.id}.tar.bz2"]})


def _wall(t: float, now: float) -> dt.datetime:
    """The UTC date of server time `t`, `now` being the server time of this moment."""
    moment = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(seconds=now - t)
    return moment.replace(microsecond=0)
