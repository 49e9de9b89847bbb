"""Which simulated jobs changed since a time: DIRAC's `LastUpdateTime` index, over paths.

A job's `LastUpdateTime` at server time `now` is the time of its last step by `now` (DIRAC
sets it on every status and minor-status change). Whether it is at or after a cut is whether
the job has a step between the cut and `now`: one bisection in the sorted times of every
step of every job, as DIRAC's indexed query is one range scan.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Mapping

from ._dirac_model import SimJob


class ChangeIndex:
    """Every step's (time, job id) of the jobs of `jobs`, a mapping that grows in insertion
    order: the jobs added since the last question are indexed at the next. A job whose path
    is replaced (killed or deleted) is indexed again with `reindex`."""

    def __init__(self, jobs: Mapping[int, SimJob]) -> None:
        self._jobs = jobs
        self._indexed = 0
        self._steps: list[tuple[float, int]] = []

    def changed(self, since: float, now: float) -> set[int]:
        """The jobs with a step in [since, now]: their LastUpdateTime at `now` is >= since."""
        if len(self._jobs) > self._indexed:
            added = itertools.islice(self._jobs.values(), self._indexed, None)
            self._indexed = len(self._jobs)
            self._add([(when, job.id) for job in added for when, _, _ in job.path])
        steps = self._steps
        first = bisect.bisect_left(steps, (since, -1))
        last = bisect.bisect_right(steps, (now, float("inf")))
        # Steps of a replaced path that the job no longer takes are left out.
        return {
            job
            for _, job in steps[first:last]
            if job in self._jobs and self._jobs[job].stepped_between(since, now)
        }

    def reindex(self, *jobs: SimJob) -> None:
        """The paths of `jobs` have changed: index their steps (again)."""
        self._add([(when, job.id) for job in jobs for when, _, _ in job.path])

    def _add(self, steps: list[tuple[float, int]]) -> None:
        # A new list, put in place whole: a question asked in another thread meanwhile reads
        # the old one, never one half sorted (a list being sorted looks empty).
        self._steps = sorted([*self._steps, *steps])
