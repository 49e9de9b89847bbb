"""Grid Engine: `qstat -xml` lists the user's pending and running jobs; `qacct -j` tells how
a finished one ended.

state letters: qw, hqw, ... (no r/t) -> submitted; r, t, R, s, S, T, d (running, transferring,
suspended, being deleted) -> running; E (error) -> failed. qacct: failed 0 and exit_status 0
-> completed, anything else failed.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from .._status import Status
from ._batch import BatchBackend, BatchState, batch_kind, run_command
from ._protocol import BackendError


def parse_qstat_xml(text: str) -> dict[str, BatchState]:
    """`qstat -xml` output: job_list elements with JB_job_number and state."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        raise BackendError(f"qstat output is not XML ({e}): {text[:200]!r}") from None
    jobs = {}
    for element in root.iter("job_list"):
        job_id, state = element.findtext("JB_job_number"), element.findtext("state")
        if not job_id or not state:
            raise BackendError(f"qstat job_list without JB_job_number/state: "
                               f"{ET.tostring(element)[:200]!r}")  # fmt: skip
        jobs[job_id.strip()] = _state(state.strip())
    return jobs


def _state(state: str) -> BatchState:
    if "E" in state:
        return BatchState(state, Status.FAILED, "error state (qstat -j tells why)")
    if set(state) & set("rtRsSTd"):
        return BatchState(state, Status.RUNNING)
    if "q" in state or "w" in state or "h" in state:
        return BatchState(state, Status.SUBMITTED)
    raise BackendError(f"unknown Grid Engine job state {state!r}")


def parse_qacct(text: str) -> BatchState | None:
    """`qacct -j <id>`: the job's last run, or None if qacct has no record."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.strip().partition(" ")
        if key in ("failed", "exit_status"):
            fields[key] = value.strip()
    if not fields:
        return None
    failed, exit_status = fields.get("failed", "0"), fields.get("exit_status", "")
    ok = failed.split()[0] == "0" and exit_status == "0"
    detail = f"exit status {exit_status}" + ("" if failed.startswith("0") else f", failed {failed}")
    return BatchState("finished", Status.COMPLETED if ok else Status.FAILED, detail)


class SgeBackend(BatchBackend):
    name = "sge"
    query_name = "qstat"

    async def query(self) -> dict[str, BatchState]:
        result = await run_command(["qstat", "-xml"])
        return parse_qstat_xml(result.stdout.decode(errors="replace"))

    async def history(self, ids: list[str]) -> dict[str, BatchState]:
        found = {}
        for job_id in ids:  # qacct takes one job at a time
            result = await run_command(["qacct", "-j", job_id], check=False)
            state = parse_qacct(result.stdout.decode(errors="replace"))
            if state is not None:
                found[job_id] = state
        return found

    def kill_command(self, job_id: str) -> list[str]:
        return ["qdel", job_id]


#: job or job.task
SGE = batch_kind(SgeBackend, "SGE", r"[1-9]\d{0,17}(?:\.\d{1,9})?")
