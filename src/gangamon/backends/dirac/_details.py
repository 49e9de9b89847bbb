"""What DIRAC knows of changed jobs besides their status, fetched in bulk.

Ganga's own DIRAC monitor asks per job, at finalisation: three `getJobLoggingInfo` for the
state times, two `getJobParameters` for the CPU time and the output data, then the file
catalogue per file. The same facts come from a few bulk calls for all the jobs a poll saw
change: `getJobsSummary` (site, application status, start and end times), `getJobParameters`
on the list of Done jobs (normalised CPU time, uploaded output data), and the file
catalogue's `getFileMetadata` and `getReplicas` on all their files at once.

The details are plain JSON data (they are kept in the journal):

- `site`, `application_status`: strings, as DIRAC has them;
- `running_at`, `completed_at`, `ended_at`: DIRAC's own times ("YYYY-MM-DD HH:MM:SS", UTC)
  of the job's start, of its entering Completed (when a poll saw it there), of its end;
- `norm_cpu_time`: DIRAC's `NormCPUTime(s)` parameter, as DIRAC gives it;
- `output_data`: a list of `{"lfn", "guid", "locations"}` for the files it uploaded.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import trio

from ._wire import DiracError

log = logging.getLogger("gangamon.dirac")

#: DIRAC statuses after which the job's parameters are final (Ganga reads them on Done).
_FINISHED = frozenset({"Done"})
_ENDED = frozenset({"Done", "Failed", "Killed"})
_LFN_SEPARATOR = re.compile(r",\s*")
_MONITORING = ("WorkloadManagement", "JobMonitoring")
_CATALOGUE = ("DataManagement", "FileCatalog")


class Caller(Protocol):
    async def call(self, system: str, service: str, method: str, *args: object) -> Any: ...


async def job_details(
    transport: Caller,
    statuses: Mapping[int, str],
    summary: Mapping[int, Mapping[str, Any]] | None = None,
) -> dict[int, dict[str, object]]:
    """Details of the jobs `statuses` names (DIRAC id -> its DIRAC status now), from at most
    four bulk calls, two at a time; `summary` is a `getJobsSummary` already had (its rows by
    job). An S_ERROR leaves that call's facts out (logged); a transport failure raises, as a
    failed status call does.

    Cancelled: the calls in flight are abandoned (they only read).
    """
    ids = list(statuses)
    finished = [i for i in ids if statuses[i] in _FINISHED]
    details: dict[int, dict[str, object]] = {i: {} for i in ids}
    # The summary and the Done jobs' parameters are independent: asked at once.
    async with trio.open_nursery() as nursery:
        asked = (
            _Later(nursery, transport, _MONITORING, "getJobsSummary", ids)
            if summary is None
            else None
        )
        parameters = (
            _Later(nursery, transport, _MONITORING, "getJobParameters", finished)
            if finished
            else None
        )
    if asked is not None:
        summary = rows_by_job(asked.result)
    for job, row in (summary or {}).items():
        if job in details:
            details[job].update(summary_details(row, statuses[job]))
    if parameters is None:
        return details
    lfns: dict[int, list[str]] = {}
    for job, row in rows_by_job(parameters.result).items():
        if job in details:
            if "NormCPUTime(s)" in row:
                details[job]["norm_cpu_time"] = row["NormCPUTime(s)"]
            lfns[job] = uploaded_lfns(row)
    every_lfn = sorted({lfn for files in lfns.values() for lfn in files})
    if every_lfn:
        files = await catalogue_records(transport, every_lfn)
        for job, names in lfns.items():
            if names:
                details[job]["output_data"] = [files[lfn] for lfn in names]
    return details


class _Later:
    """A call to DIRAC `where` (system, service) started in `nursery`; its answer (None on
    an S_ERROR) in `result` once the nursery has closed."""

    def __init__(
        self,
        nursery: trio.Nursery,
        transport: Caller,
        where: tuple[str, str],
        method: str,
        *args: object,
    ) -> None:
        self.result: Any = None
        nursery.start_soon(self._run, transport, where, method, args)

    async def _run(
        self, transport: Caller, where: tuple[str, str], method: str, args: tuple[object, ...]
    ) -> None:
        self.result = await _call(transport, *where, method, *args)


def rows_by_job(reply: object) -> dict[int, Mapping[str, Any]]:
    """A reply's rows by job id, as `getJobsSummary` and `getJobParameters` on a list give
    them (rows that are not tables left out)."""
    rows: dict[int, Mapping[str, Any]] = {}
    for key, row in (reply if isinstance(reply, Mapping) else {}).items():
        job = _int(key)
        if job is not None and isinstance(row, Mapping):
            rows[job] = row
    return rows


def summary_details(row: Mapping[str, Any], status: str) -> dict[str, object]:
    """The details one `getJobsSummary` row gives of a job now in DIRAC status `status`."""
    found: dict[str, object] = {}
    for key, name in (("Site", "site"), ("ApplicationStatus", "application_status")):
        if isinstance(row.get(key), str):
            found[name] = row[key]
    started = _time(row.get("StartExecTime"))
    if started is not None:
        found["running_at"] = started
    if status == "Completed":
        changed = _time(row.get("LastUpdateTime"))
        if changed is not None:
            found["completed_at"] = changed
    if status in _ENDED:
        ended = _time(row.get("EndExecTime")) or _time(row.get("LastUpdateTime"))
        if ended is not None:
            found["ended_at"] = ended
    return found


def uploaded_lfns(parameters: Mapping[str, Any]) -> list[str]:
    """The LFNs of a job's `UploadedOutputData` parameter, its output sandbox's left out, as
    Ganga's getOutputDataLFNs reads them."""
    listed = parameters.get("UploadedOutputData")
    if not isinstance(listed, str) or not listed.strip():
        return []
    lfns = [lfn for lfn in _LFN_SEPARATOR.split(listed.strip()) if lfn]
    sandbox = parameters.get("OutputSandboxLFN")
    return [lfn for lfn in lfns if lfn != sandbox]


async def catalogue_records(transport: Caller, lfns: Sequence[str]) -> dict[str, dict[str, object]]:
    """{lfn: {"lfn", "guid", "locations"}} from the file catalogue, in two bulk calls; a file
    the catalogue does not know gets "NotAvailable", as in Ganga's DiracFile records.
    Both calls at once."""
    async with trio.open_nursery() as nursery:
        metadata = _Later(nursery, transport, _CATALOGUE, "getFileMetadata", lfns)
        replicas = _Later(nursery, transport, _CATALOGUE, "getReplicas", lfns, False)
    known = (metadata.result or {}).get("Successful", {})
    placed = (replicas.result or {}).get("Successful", {})
    records: dict[str, dict[str, object]] = {}
    for lfn in lfns:
        meta = known.get(lfn)
        guid = meta.get("GUID") if isinstance(meta, Mapping) else None
        where = placed.get(lfn)
        records[lfn] = {
            "lfn": lfn,
            "guid": guid if isinstance(guid, str) else "NotAvailable",
            "locations": sorted(where) if isinstance(where, Mapping) else ["NotAvailable"],
        }
    return records


async def _call(transport: Caller, system: str, service: str, method: str, *args: object) -> Any:
    try:
        return await transport.call(system, service, method, *args)
    except DiracError as e:
        log.warning("DIRAC's %s failed; its details are left out: %s", method, e.message)
        return None


def _time(value: object) -> str | None:
    """DIRAC's time as "YYYY-MM-DD HH:MM:SS": a datetime (DISET, JEncoded) or a string."""
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, str) and value not in ("", "None"):
        try:
            return dt.datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M:%S")
        except ValueError:
            return None
    return None


def _int(key: object) -> int | None:
    """A job id as a reply's key gives it: an int over DISET, a string over JSON."""
    try:
        return int(str(key))
    except ValueError:
        return None
