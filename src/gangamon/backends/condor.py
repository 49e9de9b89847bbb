"""HTCondor: `condor_q -json` lists the user's jobs; `condor_history -json` the finished ones.

Job ids are "cluster.proc". JobStatus: 1 idle, 2 running, 3 removed, 4 completed, 5 held,
6 transferring output, 7 suspended. A completed job's ExitCode (or ExitBySignal) decides
completed or failed; removed is killed; held is shown as submitted with its HoldReason.
Where HTCondor says where the job runs and how much CPU it has used, they are the change's
details: `host` (RemoteHost) and `cpu` (RemoteUserCpu, seconds).
"""

from __future__ import annotations

import json
from typing import Any

from .._status import Status
from ._batch import BatchBackend, BatchState, batch_kind, run_command
from ._protocol import BackendError

_ATTRIBUTES = ("ClusterId,ProcId,JobStatus,ExitCode,ExitBySignal,ExitSignal,HoldReason,"
               "RemoteHost,RemoteUserCpu")  # fmt: skip
_NAMES = {1: "Idle", 2: "Running", 3: "Removed", 4: "Completed", 5: "Held",
          6: "TransferringOutput", 7: "Suspended"}  # fmt: skip


def parse_condor_json(text: str) -> dict[str, BatchState]:
    """condor_q/condor_history -json output (a JSON list of ClassAds; empty when no jobs)."""
    if not text.strip():
        return {}
    try:
        ads = json.loads(text)
    except ValueError as e:
        raise BackendError(f"condor output is not JSON ({e}): {text[:200]!r}") from None
    if not isinstance(ads, list):
        raise BackendError(f"condor output is not a list of jobs: {text[:200]!r}")
    return dict(_job(ad) for ad in ads)


def _job(ad: Any) -> tuple[str, BatchState]:
    try:
        job_id = f"{int(ad['ClusterId'])}.{int(ad['ProcId'])}"
        code = int(ad["JobStatus"])
    except (TypeError, KeyError, ValueError):
        raise BackendError(
            f"condor job ad without ClusterId/ProcId/JobStatus: {ad!r:.200}"
        ) from None
    name = _NAMES.get(code)
    if name is None:
        raise BackendError(f"unknown condor JobStatus {code} for job {job_id}")
    found = {key: ad[attribute] for key, attribute in (("host", "RemoteHost"),
             ("cpu", "RemoteUserCpu")) if ad.get(attribute) is not None}  # fmt: skip
    details = found or None
    if code in (1, 5):
        hold = str(ad.get("HoldReason") or "")
        return job_id, BatchState(name, Status.SUBMITTED, hold, details)
    if code in (2, 6, 7):
        return job_id, BatchState(name, Status.RUNNING, "", details)
    if code == 3:
        return job_id, BatchState(name, Status.KILLED, "removed (condor_rm)", details)
    if ad.get("ExitBySignal"):
        signal = f"killed by signal {ad.get('ExitSignal')}"
        return job_id, BatchState(name, Status.FAILED, signal, details)
    exit_code = ad.get("ExitCode")
    status = Status.COMPLETED if exit_code == 0 else Status.FAILED
    return job_id, BatchState(name, status, f"exit code {exit_code}", details)


class CondorBackend(BatchBackend):
    name = "condor"
    query_name = "condor_q"

    async def query(self) -> dict[str, BatchState]:
        result = await run_command(["condor_q", "-json", "-attributes", _ATTRIBUTES])
        return parse_condor_json(result.stdout.decode(errors="replace"))

    async def history(self, ids: list[str]) -> dict[str, BatchState]:
        result = await run_command(["condor_history", "-json", "-attributes", _ATTRIBUTES, *ids])
        return parse_condor_json(result.stdout.decode(errors="replace"))

    def kill_command(self, job_id: str) -> list[str]:
        return ["condor_rm", job_id]


#: cluster.proc
CONDOR = batch_kind(CondorBackend, "HTCondor", r"\d{1,18}(?:\.\d{1,9})?")
