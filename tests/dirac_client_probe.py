"""Run by test_dirac_client in a fresh process: the real DIRAC client against one URL.

Usage: dirac_client_probe.py URL CA_DIR PROXY ID...   Prints one JSON line.
"""

from __future__ import annotations

import json
import os
import sys


def main() -> None:
    url, ca_dir, proxy, *ids = sys.argv[1:]
    os.environ["X509_USER_PROXY"] = proxy
    import DIRAC

    service = "TornadoJobMonitoring" if url.startswith("https") else "JobMonitoring"
    DIRAC.initialize(
        require_auth=False,
        extra_config={
            "DIRAC": {"Security": {"CALocation": ca_dir}},
            "Systems": {
                "WorkloadManagement": {
                    "URLs": {"JobMonitoring": f"{url}/WorkloadManagement/{service}"}
                }
            },
        },
    )
    from DIRAC.Interfaces.API.Dirac import Dirac
    from DIRAC.WorkloadManagementSystem.Client.JobMonitoringClient import JobMonitoringClient

    job_ids = [int(i) for i in ids]
    status = JobMonitoringClient().getJobsStatus(job_ids)
    dirac = Dirac().getJobStatus(job_ids)
    print(json.dumps({"getJobsStatus": _plain(status), "Dirac.getJobStatus": _plain(dirac)}))


def _plain(result: dict[str, object]) -> object:
    return {"OK": result["OK"], "Value": result.get("Value"), "Message": result.get("Message")}


if __name__ == "__main__":
    main()
