"""Simulated DIRAC jobs: each follows a path through DIRAC's own state machine on a clock.

Pure and synchronous: a job's path is drawn once, from a seeded generator, when it is
submitted; its state at any time is looked up. Every path is legal under DIRAC's
JobsStateMachine (a property test walks them).
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
import math
import random
import time
from collections.abc import Collection
from dataclasses import dataclass, field

from ..backends.dirac._states import DIRAC_TRANSITIONS, DiracStatus as D
from ._job_facts import site_of

#: (status, minor status) steps of the common paths. Durations are drawn per step.
_QUEUE = [
    (D.RECEIVED, "Job accepted"),
    (D.CHECKING, "JobSanity"),
    (D.WAITING, "Pilot Agent Submission"),
    (D.MATCHED, "Assigned"),
]
_RUN = [(D.RUNNING, "Job Initialization"), (D.RUNNING, "Application")]
_FINISH = [
    (D.COMPLETING, "Application Finished Successfully"),
    (D.COMPLETING, "Uploading Output Sandbox"),
]


@dataclass(frozen=True, slots=True)
class Outcomes:
    """How often each ending happens. What is left over ends Done."""

    failed: float = 0.08
    killed: float = 0.02
    rescheduled: float = 0.05
    stalled: float = 0.05
    lingering_completed: float = 0.05


@dataclass(frozen=True, slots=True)
class SimJob:
    """A simulated job: its whole path is drawn at submission. Frozen, so that the lookups
    made from the path once, at creation, stay true."""

    id: int
    submitted: float
    #: (time, status, minor status), in time order; the first is at `submitted`.
    path: tuple[tuple[float, D, str], ...]
    application_status: str = "Unknown"
    #: Where the job runs once matched ("" draws it from the id); DIRAC says ANY before.
    site: str = ""
    job_group: str = "00000000"
    #: The steps' times, and each step's getJobsStates record: made once, as a sweep looks up
    #: 10^5 jobs (the records are shared: not to be changed).
    _times: list[float] = field(init=False, repr=False)
    _states: list[dict[str, str]] = field(init=False, repr=False)
    _matched_at: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # Frozen: the derived lookups are set past the dataclass's guard, once, in one pass
        # (10^5 jobs are made at a benchmark's start).
        if not self.site:
            object.__setattr__(self, "site", site_of(self.id))
        times, states, matched = [], [], math.inf
        for when, status, minor in self.path:
            times.append(when)
            states.append(
                {
                    "Status": status.value,
                    "MinorStatus": minor,
                    "ApplicationStatus": self.application_status,
                }
            )
            if status is D.MATCHED and when < matched:
                matched = when
        object.__setattr__(self, "_times", times)
        object.__setattr__(self, "_states", states)
        object.__setattr__(self, "_matched_at", matched)

    def _step_at(self, now: float) -> int:
        return max(bisect.bisect_right(self._times, now) - 1, 0)

    def state_at(self, now: float) -> tuple[D, str]:
        _, status, minor = self.path[self._step_at(now)]
        return status, minor

    def states_at(self, now: float) -> dict[str, str]:
        """Status, MinorStatus and ApplicationStatus at `now`, as getJobsStates has them."""
        return self._states[self._step_at(now)]

    def stepped_between(self, since: float, now: float) -> bool:
        """Whether the job took a step in [since, now]."""
        return bisect.bisect_left(self._times, since) < bisect.bisect_right(self._times, now)

    def finished_at(self) -> float:
        return self.path[-1][0]

    def site_at(self, now: float) -> str:
        return self.site if now >= self._matched_at else "ANY"

    def steps_until(self, now: float) -> tuple[tuple[float, D, str], ...]:
        """The steps the job has taken by `now` (the first, at least)."""
        return self.path[: self._step_at(now) + 1]

    def first_time(self, statuses: Collection[D], now: float = math.inf) -> float | None:
        """When the job first entered one of `statuses`, by `now`; None if it has not."""
        return next((t for t, s, _ in self.path if s in statuses and t <= now), None)

    def last_time(self, statuses: Collection[D], now: float) -> float | None:
        """When the job last entered one of `statuses`, by `now`; None if it has not."""
        return next((t for t, s, _ in reversed(self.steps_until(now)) if s in statuses), None)


_EPOCH = dt.datetime(1970, 1, 1)


class WallClock:
    """Server times as UTC wall-clock times in whole seconds, as DIRAC's database keeps them.

    One offset, fixed at the first `fix`, maps every server time, so that each reply names
    an instant by the same second (a fresh offset per reply would move it by the drift
    between the clocks). `skew` sets the server's clock that many seconds off the client's.
    """

    def __init__(self, offset: float | None = None, *, skew: float = 0.0) -> None:
        self._offset = offset
        self.skew = skew

    def fix(self, now: float) -> None:
        """Tie server time `now` to the wall clock's now, unless already tied."""
        if self._offset is None:
            self._offset = time.time() - now

    def _shift(self) -> float:
        if self._offset is None:
            raise RuntimeError("WallClock used before fix: no offset yet")
        return self._offset + self.skew

    def at(self, t: float) -> dt.datetime:
        return _EPOCH + dt.timedelta(seconds=math.floor(self.epoch_seconds(t)))

    def epoch_seconds(self, t: float) -> float:
        """Server time `t` on the server's wall clock, in seconds of the Unix epoch."""
        return self._shift() + t

    def server_time(self, epoch_seconds: float) -> float:
        """The server time at which the server's wall clock reads `epoch_seconds`."""
        return epoch_seconds - self._shift()


def draw_path(
    rng: random.Random, start: float, mean_runtime: float, outcomes: Outcomes
) -> list[tuple[float, D, str]]:
    """A path from Received to an end state, with step durations around `mean_runtime`."""
    steps: list[tuple[D, str]] = list(_QUEUE)
    roll = rng.random()
    if roll < outcomes.killed:
        steps = [*steps[:3], (D.KILLED, "Marked for termination")]
    else:
        if rng.random() < outcomes.rescheduled:
            steps += [
                (D.RESCHEDULED, "Job Rescheduled"),
                (D.WAITING, "Pilot Agent Submission"),
                (D.MATCHED, "Assigned"),
            ]
        steps += _RUN
        if rng.random() < outcomes.stalled:
            steps += [
                (D.STALLED, "Watchdog identified this job as stalled"),
                (D.RUNNING, "Application"),
            ]
        if roll < outcomes.killed + outcomes.failed:
            steps += [(D.FAILED, "Application Finished With Errors")]
        else:
            steps += _FINISH
            if rng.random() < outcomes.lingering_completed:
                steps += [(D.COMPLETED, "Pending Requests")]
            steps += [(D.DONE, "Execution Complete")]
    path, t = [], start
    for i, (status, minor) in enumerate(steps):
        if i:
            t += rng.expovariate(len(steps) / mean_runtime)
        path.append((t, status, minor))
    return path


def killed(job: SimJob, now: float) -> SimJob | None:
    """`job` killed at `now` (`Killed`, "Marked for termination", as DIRAC's JobManager marks
    it), its later steps not taken; None if it has ended already (DIRAC leaves it alone)."""
    path = list(job.steps_until(now))
    if D.KILLED not in DIRAC_TRANSITIONS[path[-1][1]]:
        return None
    path.append((now, D.KILLED, "Marked for termination"))
    return dataclasses.replace(job, path=tuple(path))
