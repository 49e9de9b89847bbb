"""PBS Pro / OpenPBS: `qstat -f -F json -x` lists jobs, finished ones included (-x).

job_state: Q, H, W, T, M -> submitted; R, E, S, U, B -> running; F and X (finished) ->
completed if Exit_status is 0, else failed (PBS reports a job killed by signal N as 256+N, and
its own kills, such as walltime, as negative codes).

A job may be tracked by its full id ("2001.pbs-head") or by its sequence number alone
("2001": what some clients keep of qsub's answer), unless two listed jobs share that number.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from .._status import Status
from ._batch import BatchBackend, BatchState, batch_kind, run_command
from ._protocol import BackendError

_SUBMITTED, _RUNNING, _FINISHED = set("QHWTM"), set("RESUB"), set("FX")


def parse_qstat_json(text: str) -> dict[str, BatchState]:
    """`qstat -f -F json -x` output: {"Jobs": {"<id>": {"job_state": ..., ...}}}."""
    try:
        data = json.loads(text) if text.strip() else {}
    except ValueError as e:
        raise BackendError(f"qstat output is not JSON ({e}): {text[:200]!r}") from None
    if not isinstance(data, dict):
        raise BackendError(f"qstat JSON is not an object: {text[:200]!r}")
    jobs = data.get("Jobs", {})
    if not isinstance(jobs, dict):
        raise BackendError(f"qstat Jobs is not an object: {text[:200]!r}")
    return {job_id: _state(job_id, job) for job_id, job in jobs.items()}


def _state(job_id: str, job: Any) -> BatchState:
    state = job.get("job_state") if isinstance(job, dict) else None
    if not isinstance(state, str) or len(state) != 1:
        raise BackendError(f"qstat job {job_id} has no job_state: {job!r:.200}")
    if state in _SUBMITTED:
        return BatchState(state, Status.SUBMITTED)
    if state in _RUNNING:
        return BatchState(state, Status.RUNNING)
    if state in _FINISHED:
        code = job.get("Exit_status")
        status = Status.COMPLETED if code == 0 else Status.FAILED
        return BatchState(state, status, f"exit status {code}")
    raise BackendError(f"unknown PBS job_state {state!r} for job {job_id}")


def with_sequence_numbers(jobs: dict[str, BatchState]) -> dict[str, BatchState]:
    """`jobs` plus each job under its sequence number, unless two servers share that number."""
    sequences = {job_id: job_id.partition(".")[0] for job_id in jobs}
    counts = Counter(sequences.values())
    aliases = {sequences[job_id]: state for job_id, state in jobs.items()
               if counts[sequences[job_id]] == 1}  # fmt: skip
    return {**aliases, **jobs}


class PbsBackend(BatchBackend):
    name = "pbs"
    query_name = "qstat"

    async def query(self) -> dict[str, BatchState]:
        result = await run_command(["qstat", "-f", "-F", "json", "-x"])
        return with_sequence_numbers(parse_qstat_json(result.stdout.decode(errors="replace")))

    def kill_command(self, job_id: str) -> list[str]:
        return ["qdel", job_id]


#: 1234, 1234.server, 1234[7].server
PBS = batch_kind(PbsBackend, "PBS", r"[1-9]\d{0,17}(?:\[\d{0,9}\])?(?:\.[A-Za-z0-9][\w.-]{0,252})?")
