"""Run by test_dirac_client in a fresh process: the real DIRAC client against the simulator.

Usage:
  dirac_client_probe.py URL CA_DIR PROXY ID...
      getJobsStatus, Dirac().getJobStatus and getJobs at one URL. Prints one JSON line.
  dirac_client_probe.py --finalise FACTS_JSON WIRE OUT_DIR ID...
      what Ganga's monitor does to finalise jobs, with a dirac.cfg from gangamon.sim.dirac_cfg
      (JobMonitoring over WIRE, https or dips): job summaries, logging info, parameters,
      attributes, output sandboxes of the Done jobs into OUT_DIR (and their tarballs' MD5s as
      SandboxStoreClient downloads them in memory), and the file catalogue's
      records of their output data. Prints one JSON line (datetimes as "YYYY-mm-dd HH:MM:SS").
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any


def main() -> None:
    if sys.argv[1] == "--finalise":
        facts_json, wire, out_dir, *ids = sys.argv[2:]
        print(json.dumps(finalise(json.loads(facts_json), wire, Path(out_dir), ids), default=_time))
        return
    if sys.argv[1] == "--kill":
        url, ca_dir, proxy, *ids = sys.argv[2:]
        _initialize(url, ca_dir, proxy)
        from DIRAC.Interfaces.API.Dirac import Dirac

        print(json.dumps({"Dirac.killJob": _plain(Dirac().killJob([int(i) for i in ids]))}))
        return
    url, ca_dir, proxy, *ids = sys.argv[1:]
    _initialize(url, ca_dir, proxy)
    from DIRAC.Interfaces.API.Dirac import Dirac
    from DIRAC.WorkloadManagementSystem.Client.JobMonitoringClient import JobMonitoringClient

    job_ids = [int(i) for i in ids]
    monitoring = JobMonitoringClient()
    status = monitoring.getJobsStatus(job_ids)
    dirac = Dirac().getJobStatus(job_ids)
    # What changed since a cut: everything since long ago, nothing since the future.
    since_long_ago = monitoring.getJobs({"Owner": "gangamon"}, "2000-01-01 00:00:00")
    since_the_future = monitoring.getJobs({"Owner": ["gangamon", "x"]}, "2100-01-01 00:00:00")
    unknown_column = monitoring.getJobs({"Colour": "red"})
    print(
        json.dumps(
            {
                "getJobsStatus": _plain(status),
                "Dirac.getJobStatus": _plain(dirac),
                "getJobs since long ago": _plain(since_long_ago),
                "getJobs since the future": _plain(since_the_future),
                "getJobs on an unknown column": _plain(unknown_column),
            }
        )
    )


def _initialize(url: str, ca_dir: str, proxy: str) -> None:
    """DIRAC's client configured for the simulator at `url`: JobMonitoring and JobManager."""
    os.environ["X509_USER_PROXY"] = proxy
    import DIRAC

    tornado = "Tornado" if url.startswith("https") else ""
    services = {
        name: f"{url}/WorkloadManagement/{tornado}{name}"
        for name in ("JobMonitoring", "JobManager")
    }
    DIRAC.initialize(
        require_auth=False,
        extra_config={
            "DIRAC": {"Security": {"CALocation": ca_dir}},
            "Systems": {"WorkloadManagement": {"URLs": services}},
        },
    )


def finalise(facts: dict[str, Any], wire: str, out_dir: Path, ids: list[str]) -> dict[str, Any]:
    from gangamon.sim import dirac_cfg

    cfg = dirac_cfg(
        out_dir / f"dirac-{wire}.cfg",
        https=facts["https"],
        dips=facts["dips"],
        ca_dir=Path(facts["ca_dir"]),
        job_monitoring="dips" if wire == "dips" else "https",
    )
    os.environ["DIRACSYSCONFIG"] = str(cfg)
    os.environ["X509_USER_PROXY"] = facts["proxy"]
    import DIRAC

    DIRAC.initialize(require_auth=False)
    from DIRAC.Core.DISET.RPCClient import RPCClient
    from DIRAC.Interfaces.API.Dirac import Dirac
    from DIRAC.WorkloadManagementSystem.Client.JobMonitoringClient import JobMonitoringClient
    from DIRAC.WorkloadManagementSystem.Client.SandboxStoreClient import SandboxStoreClient

    job_ids = [int(i) for i in ids]
    dirac, monitoring = Dirac(), JobMonitoringClient()
    states = _plain(dirac.getJobStatus(job_ids))
    done = [i for i in job_ids if states["Value"][i]["Status"] == "Done"]
    found: dict[str, Any] = {
        "status": states,
        "summary": _plain(monitoring.getJobsSummary(job_ids)),
        "logging": {i: _plain(monitoring.getJobLoggingInfo(i)) for i in job_ids},
        "parameters": _plain(monitoring.getJobParameters(job_ids)),
        "Dirac.getJobParameters": {i: _plain(dirac.getJobParameters(i)) for i in done},
        "sandboxes": {},
    }
    if wire == "dips":
        # Ganga's finished_job asks this way: DISET's RPCClient, which refuses https URLs.
        jm = RPCClient("WorkloadManagement/JobMonitoring")
        found["attributes"] = {i: _plain(jm.getJobAttributes(i)) for i in job_ids}
    else:
        found["attributes"] = {i: _plain(monitoring.getJobAttributes(i)) for i in job_ids}
    for i in done:
        result = dirac.getOutputSandbox(i, outputDir=str(out_dir / wire))
        where = out_dir / wire / str(i)
        files = {p.name: p.read_text() for p in where.iterdir()} if where.is_dir() else {}
        # What a threaded client transport would do: the tarball's bytes, not unpacked.
        tarball = SandboxStoreClient().downloadSandboxForJob(i, "Output", inMemory=True)
        md5 = hashlib.md5(tarball["Value"]).hexdigest() if tarball["OK"] else tarball["Message"]
        found["sandboxes"][i] = {"result": _plain(result), "files": files, "in_memory_md5": md5}
    lfns = sorted(
        lfn
        for i in done
        for lfn in found["Dirac.getJobParameters"][i]["Value"]
        .get("UploadedOutputData", "")
        .split(", ")
        if lfn
    )
    missing = f"{lfns[0]}.missing" if lfns else "/gangamon/user/g/gangamon/none"
    found["lfns"] = lfns
    found["metadata"] = _plain(dirac.getLfnMetadata([*lfns, missing]))
    found["replicas"] = _plain(dirac.getReplicas(lfns))
    found["missing"] = missing
    return found


def _plain(result: dict[str, Any]) -> dict[str, Any]:
    return {"OK": result["OK"], "Value": result.get("Value"), "Message": result.get("Message")}


def _time(value: object) -> str:
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    raise TypeError(f"not JSON: {value!r:.100}")


if __name__ == "__main__":
    main()
