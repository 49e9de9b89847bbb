"""LSF: `bjobs -json -a` lists the user's jobs, finished ones too for LSF's CLEAN_PERIOD.

STAT: PEND, PSUSP, WAIT -> submitted; RUN, USUSP, SSUSP, PROV, UNKWN (contact lost, the job
is believed running) -> running; DONE -> completed; EXIT -> failed; ZOMBI -> killed.
"""

from __future__ import annotations

import json
from typing import Any

from .._status import Status
from ._batch import BatchBackend, BatchState, batch_kind, run_command
from ._protocol import BackendError

_FIELDS = "jobid stat exit_code"
_STATUS = {"PEND": Status.SUBMITTED, "PSUSP": Status.SUBMITTED, "WAIT": Status.SUBMITTED,
           "RUN": Status.RUNNING, "USUSP": Status.RUNNING, "SSUSP": Status.RUNNING,
           "PROV": Status.RUNNING, "UNKWN": Status.RUNNING, "DONE": Status.COMPLETED,
           "EXIT": Status.FAILED, "ZOMBI": Status.KILLED}  # fmt: skip


def parse_bjobs_json(text: str) -> dict[str, BatchState]:
    """`bjobs -json -o "jobid stat exit_code"` output. Records with an ERROR (job not found)
    are left out, as unknown ids are."""
    try:
        data = json.loads(text)
        records = data["RECORDS"]
    except (ValueError, TypeError, KeyError):
        raise BackendError(f"bjobs output is not bjobs JSON: {text[:200]!r}") from None
    if not isinstance(records, list):
        raise BackendError(f"bjobs RECORDS is not a list: {text[:200]!r}")
    return dict(_job(record) for record in records if not _not_found(record))


def _not_found(record: Any) -> bool:
    return isinstance(record, dict) and "ERROR" in record


def _job(record: Any) -> tuple[str, BatchState]:
    try:
        job_id, stat = str(record["JOBID"]), str(record["STAT"])
    except (TypeError, KeyError):
        raise BackendError(f"bjobs record without JOBID/STAT: {record!r:.200}") from None
    if stat not in _STATUS:
        raise BackendError(f"unknown LSF job state {stat!r} for job {job_id}")
    exit_code = record.get("EXIT_CODE") or "0"
    detail = f"exit code {exit_code}" if stat in ("DONE", "EXIT") else ""
    return job_id, BatchState(stat, _STATUS[stat], detail)


class LsfBackend(BatchBackend):
    name = "lsf"
    query_name = "bjobs"

    async def query(self) -> dict[str, BatchState]:
        result = await run_command(["bjobs", "-json", "-a", "-o", _FIELDS])
        return parse_bjobs_json(result.stdout.decode(errors="replace"))

    async def history(self, ids: list[str]) -> dict[str, BatchState]:
        # bjobs names finished jobs by id for as long as mbatchd remembers them.
        result = await run_command(["bjobs", "-json", "-a", "-o", _FIELDS, *ids], check=False)
        return parse_bjobs_json(result.stdout.decode(errors="replace"))

    def kill_command(self, job_id: str) -> list[str]:
        return ["bkill", job_id]


#: Plain jobs and array elements (1234[7]).
LSF = batch_kind(LsfBackend, "LSF", r"[1-9]\d{0,17}(?:\[\d{1,9}\])?")
