"""The simulated DIRAC jobs' schedule: the same for each monitor, shifted in time. Pure.

Subjob i of n ends at `LEAD + spread * i / n` seconds after the schedule starts: the ends are
spread evenly, so that the latency is sampled at every phase of a monitor's poll. One in ten
ends Failed, one in twenty Killed (from Waiting, as DIRAC kills a job that never ran), the
rest Done; every fourth Done job lingers in Completed ("Pending Requests": its output's
failover requests wait for DIRAC's RequestExecutingAgent) for `pending` seconds first, so that
Ganga's completing timestamp has something to find; those end `pending` later.
"""

from __future__ import annotations

#: Seconds from the schedule's start to the first end: time for a monitor's first poll to
#: see every job Running.
LEAD = 10.0

Path = list[tuple[float, str, str]]


def final_status(i: int) -> str:
    if i % 20 == 7:
        return "Killed"
    if i % 10 == 3:
        return "Failed"
    return "Done"


def path(i: int, n: int, start: float, spread: float, pending: float = 0.5) -> Path:
    """Subjob i's path, times in seconds since the epoch; the last step is its end."""
    final = final_status(i)
    linger = pending if final == "Done" and i % 4 == 1 else 0.0
    end = start + LEAD + spread * i / n + linger
    queued = [
        (start, "Received", "Job accepted"),
        (start + 0.5, "Checking", "JobSanity"),
        (start + 1.0, "Waiting", "Pilot Agent Submission"),
    ]
    if final == "Killed":
        return [*queued, (end, "Killed", "Marked for termination")]
    running = [
        *queued,
        (start + 1.5, "Matched", "Assigned"),
        (end - linger - 8.0, "Running", "Job Initialization"),
        (end - linger - 6.0, "Running", "Application"),
    ]
    if final == "Failed":
        return [*running, (end, "Failed", "Application Finished With Errors")]
    finishing = [
        (end - linger - 2.0, "Completing", "Application Finished Successfully"),
        (end - linger - 1.0, "Completing", "Uploading Output Sandbox"),
    ]
    if linger:
        finishing.append((end - linger - 0.5, "Completed", "Pending Requests"))
    return [*running, *finishing, (end, "Done", "Execution Complete")]


def end_time(i: int, n: int, start: float, spread: float, pending: float = 0.5) -> float:
    return path(i, n, start, spread, pending)[-1][0]
