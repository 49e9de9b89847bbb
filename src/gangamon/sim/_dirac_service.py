"""DIRAC's JobMonitoring over simulated jobs, and what every simulated service shares. Sans-IO.

Each handler takes the decoded positional arguments and the server time of the call, and
returns an S_OK/S_ERROR structure, as DIRAC's service handlers do.
Unknown job ids are silently left out. The simulator runs handlers in worker threads, as DIRAC
runs its handlers; those that change a job (JobManager's kill) replace it whole, by one
assignment. Times are DIRAC's: datetimes of whole seconds
on one wall clock (`WallClock`), the same instant alike in every reply.
"""

from __future__ import annotations

import datetime as dt
import enum
import math
from collections.abc import Callable, Collection, Mapping
from typing import Any, Protocol

from ..backends.dirac._states import DiracStatus as D
from ..backends.dirac._wire import s_error, s_ok
from . import _job_facts as facts
from ._changes import ChangeIndex
from ._dirac_cfg import GROUP, USER, VO
from ._dirac_model import SimJob, WallClock

Result = dict[str, object]
_ENDED = frozenset({D.DONE, D.FAILED, D.KILLED})
_WRAPPER_DONE = frozenset({D.DONE, D.FAILED, D.COMPLETED})
_UPLOADED = frozenset({D.DONE, D.COMPLETED})
#: DIRAC's DErrno.EMYSQL: what its SQL layer's errors carry.
_EMYSQL = 1131


class Hangup(enum.Enum):
    """What a call ended in instead of a result: the connection is to be dropped."""

    RESET = "reset"
    HTTP500 = "http500"


class Service(Protocol):
    def call(self, method: str, args: list[Any], now: float) -> Result: ...


def dispatch(
    methods: Mapping[str, Callable[..., Result]], method: str, args: list[Any], now: float
) -> Result:
    """`methods[method](now, *args)`, or DIRAC's S_ERROR for an unknown method or a wrong
    number of arguments."""
    handler = methods.get(method)
    if handler is None:
        return s_error(f"Unknown method {method}", 38)
    try:
        return handler(now, *args)
    except TypeError:
        return s_error(f"Wrong number of arguments for {method}: {len(args)}")


def job_ids(arg: object) -> list[int] | None:
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


def _names(arg: object) -> set[str] | None:
    """An optional list of names, as DIRAC takes it: None (all), "a,b", or a list."""
    if arg is None:
        return None
    if isinstance(arg, str):
        return {name.strip() for name in arg.split(",") if name.strip()}
    return {str(name) for name in arg} if isinstance(arg, list) else set()


_EPOCH = dt.datetime(1970, 1, 1)

#: The Jobs table's columns getJobs can select on, as the simulator knows them at a time.
_SELECTABLE: dict[str, Callable[[SimJob, float], str]] = {
    "Owner": lambda j, t: USER,
    "OwnerGroup": lambda j, t: GROUP,
    "VO": lambda j, t: VO,
    "JobGroup": lambda j, t: j.job_group,
    "JobType": lambda j, t: "User",
    "Status": lambda j, t: j.state_at(t)[0].value,
    "MinorStatus": lambda j, t: j.state_at(t)[1],
    "ApplicationStatus": lambda j, t: j.application_status,
    "Site": lambda j, t: j.site_at(t),
    "JobID": lambda j, t: str(j.id),
}


def _cut_seconds(cut: object) -> float | None:
    """A cut date as whole seconds of the epoch that a LastUpdateTime (whole seconds) must
    reach (-inf: none given); None if it is not a date. A fraction rounds up, as MySQL's
    comparison of a DATETIME with '...:05.5' does."""
    if cut is None or cut == "":
        return -math.inf
    if isinstance(cut, str):
        try:
            cut = dt.datetime.fromisoformat(cut.strip())
        except ValueError:
            return None
    if isinstance(cut, dt.date) and not isinstance(cut, dt.datetime):
        cut = dt.datetime(cut.year, cut.month, cut.day)
    if not isinstance(cut, dt.datetime):
        return None
    if cut.tzinfo is not None:
        cut = cut.astimezone(dt.UTC).replace(tzinfo=None)
    return float(math.ceil((cut - _EPOCH).total_seconds()))


class JobMonitoring:
    """WorkloadManagement/JobMonitoring over `jobs`."""

    def __init__(self, jobs: Mapping[int, SimJob], wall: WallClock | None = None) -> None:
        self.jobs = jobs
        self.wall = wall or WallClock()
        self.changes = ChangeIndex(jobs)
        self.methods: dict[str, Callable[..., Result]] = {
            "getJobs": self._jobs,
            "getJobsStatus": self._per_job(lambda j, t: {"Status": j.state_at(t)[0].value}),
            "getJobsMinorStatus": self._per_job(lambda j, t: {"MinorStatus": j.state_at(t)[1]}),
            "getJobsApplicationStatus": self._per_job(
                lambda j, t: {"ApplicationStatus": j.application_status}
            ),
            "getJobsSites": self._per_job(lambda j, t: {"Site": j.site_at(t)}),
            "getJobsStates": self._per_job(lambda j, t: j.states_at(t)),
            "getJobsSummary": self._per_job(self.attributes),
            "getJobParameters": self._parameters,
            "getJobParameter": self._parameter,
            "getJobAttributes": self._job_attributes,
            "getJobAttribute": self._job_attribute,
            "getJobSummary": self._job_attributes,
            "getJobLoggingInfo": self._logging_info,
        }

    def call(self, method: str, args: list[Any], now: float) -> Result:
        self.wall.fix(now)
        return dispatch(self.methods, method, args, now)

    def _per_job(self, describe: Callable[[SimJob, float], object]) -> Callable[..., Result]:
        def handler(now: float, ids: object) -> Result:
            wanted = job_ids(ids)
            if wanted is None:
                return s_error(f"Type mismatch in parameter 0: {type(ids).__name__}")
            return s_ok({i: describe(self.jobs[i], now) for i in wanted if i in self.jobs})

        return handler

    def attributes(self, job: SimJob, now: float) -> dict[str, object]:
        """The job's row of DIRAC's Jobs table at `now`."""
        wall = self.wall.at
        started = ended = rescheduled = beat = None
        reschedules = 0
        steps = job.steps_until(now)
        for when, status, _ in steps:  # one pass: getJobsSummary asks this of 10^3 jobs
            if status is D.RUNNING and started is None:
                started = wall(when)
            elif status in _ENDED and ended is None:
                ended = wall(when)
            elif status is D.RESCHEDULED:
                rescheduled, reschedules = when, reschedules + 1
            # The job wrapper beats while the payload runs; a Stalled job has stopped beating.
            if status is D.RUNNING or status is D.COMPLETING:
                beat = when
        _, status, minor = steps[-1]
        return {
            "JobID": job.id,
            "JobType": "User",
            "JobGroup": job.job_group,
            "JobName": f"sim_{job.id}",
            "Site": job.site_at(now),
            "Owner": USER,
            "OwnerGroup": GROUP,
            "VO": VO,
            "SubmissionTime": wall(job.submitted),
            "RescheduleTime": None if rescheduled is None else wall(rescheduled),
            "LastUpdateTime": wall(steps[-1][0]),
            "StartExecTime": started,
            "HeartBeatTime": None if beat is None else wall(beat),
            "EndExecTime": ended,
            "Status": status.value,
            "MinorStatus": minor,
            "ApplicationStatus": job.application_status,
            "UserPriority": 1,
            "RescheduleCounter": reschedules,
            "VerifiedFlag": "True",
            "AccountedFlag": "False",
        }

    def _jobs(self, now: float, attr_dict: object = None, cut_date: object = None) -> Result:
        """DIRAC's getJobs: the ids (strings, as DIRAC's SQL layer gives them) of the jobs
        whose attributes match `attr_dict` (a value, or a list of values, per attribute) and
        whose LastUpdateTime is at or after `cut_date`."""
        if attr_dict is None:
            attr_dict = {}
        if not isinstance(attr_dict, dict):
            return s_error(f"Type mismatch in parameter 0: {type(attr_dict).__name__}")
        cut = _cut_seconds(cut_date)
        if cut is None:
            return s_error(f"Execution failed.: (Incorrect DATETIME value: {cut_date!r})", _EMYSQL)
        for name in attr_dict:
            if name not in _SELECTABLE:
                return s_error(
                    f"Execution failed.: ((1054, \"Unknown column '{name}' in 'where clause'\") )",
                    _EMYSQL,
                )
        if cut == -math.inf:
            candidates: Collection[int] = self.jobs.keys()
        else:
            candidates = self.changes.changed(self.wall.server_time(cut), now)
        wanted = {
            name: {str(v) for v in value} if isinstance(value, list) else {str(value)}
            for name, value in attr_dict.items()
        }
        found = []
        for job_id in sorted(candidates):
            job = self.jobs.get(job_id)
            if job is None:
                continue
            if all(_SELECTABLE[name](job, now) in values for name, values in wanted.items()):
                found.append(str(job_id))
        return s_ok(found)

    @staticmethod
    def parameters(job: SimJob, now: float) -> dict[str, object] | None:
        """What the job wrapper has reported of the job by `now` (DIRAC's JobParametersDB
        document), or None before it ran: DIRAC then has no document for it."""
        started = job.first_time({D.RUNNING}, now)
        if started is None:
            return None
        factor = facts.cpu_factor(job.id)
        found: dict[str, object] = {
            "JobID": job.id,
            "HostName": facts.host_of(job.id),
            "CPUNormalizationFactor": factor,
            "GridCE": f"ce.{job.site.split('.')[1].lower()}.sim",
            "LocalAccount": "gangamon001",
        }
        ended = job.first_time(_WRAPPER_DONE, now)
        if ended is not None:
            cpu = facts.cpu_seconds(job.id, ended - started)
            found["TotalCPUTime(s)"] = cpu
            found["NormCPUTime(s)"] = round(cpu * factor, 1)
        if job.first_time(_UPLOADED, now) is not None and (lfns := facts.output_lfns(job.id)):
            found["UploadedOutputData"] = ", ".join(lfns)
        return found

    def _parameters(self, now: float, ids: object, par_name: object = None) -> Result:
        wanted, names = job_ids(ids), _names(par_name)
        if wanted is None:
            return s_error(f"Type mismatch in parameter 0: {type(ids).__name__}")
        found = {}
        for i in wanted:
            job = self.jobs.get(i)
            values = None if job is None else self.parameters(job, now)
            if values is not None:
                found[i] = (
                    values if names is None else {k: values[k] for k in names & values.keys()}
                )
        return s_ok(found)

    def _parameter(self, now: float, job_id: object, par_name: object) -> Result:
        result = self._parameters(now, job_id, par_name)
        if not result["OK"] or not isinstance(job_id, int | str):
            return result
        value = result["Value"]
        assert isinstance(value, dict)
        return s_ok(value.get(int(job_id), {}))

    def _job_attributes(self, now: float, job_id: object, names: object = None) -> Result:
        if not isinstance(job_id, int) or isinstance(job_id, bool):
            return s_error(f"Type mismatch in parameter 0: {type(job_id).__name__}")
        job = self.jobs.get(job_id)
        if job is None:
            return s_ok({})
        row, wanted = self.attributes(job, now), _names(names)
        unknown = (wanted or set()) - row.keys()
        if unknown:
            return s_error(f"Unknown job attribute: {sorted(unknown)[0]}")
        return s_ok(row if wanted is None else {k: row[k] for k in wanted})

    def _job_attribute(self, now: float, job_id: object, name: object) -> Result:
        result = self._job_attributes(now, job_id, [name])
        value = result.get("Value")
        return s_ok(value.get(str(name))) if result["OK"] and isinstance(value, dict) else result

    def _logging_info(self, now: float, job_id: object) -> Result:
        if not isinstance(job_id, int) or job_id not in self.jobs:
            return s_error(f"No Logging information for job {job_id}")
        job = self.jobs[job_id]
        # DIRAC's JobLoggingDB gives its times as str(datetime): "YYYY-mm-dd HH:MM:SS".
        rows = [
            [status.value, minor, job.application_status, str(self.wall.at(when)), "JobWrapper"]
            for when, status, minor in job.steps_until(now)
            if when <= now
        ]
        return s_ok(rows)
