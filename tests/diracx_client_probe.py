"""Run by test_dirac_client in a fresh process: DiracX's own client (`diracx-client`, as
DIRAC 9.1.22 installs it) against the simulator's DiracX face.

Usage: diracx_client_probe.py [--kill] URL CA_FILE CREDENTIALS FIRST_ID
Its settings come from the environment, read once per process (DIRACX_URL, DIRACX_CA_PATH,
DIRACX_CREDENTIALS_PATH): hence a process of its own. Prints one JSON line: a page of the
first jobs, the Content-Range of a partial page, and the jobs changed since long ago; with
--kill, what DiracX answered to killing the first job, and its status after.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

LONG_AGO = "2000-01-01T00:00:00Z"


async def probe(first: int) -> dict[str, Any]:
    from diracx.client.aio import AsyncDiracClient

    async with AsyncDiracClient() as client:
        page = await client.jobs.search(
            parameters=["JobID", "Status", "Owner"],
            search=[{"parameter": "JobID", "operator": "in", "values": [first, first + 1]}],
            sort=[{"parameter": "JobID", "direction": "asc"}],
        )
        ranges: list[str] = []
        await client.jobs.search(
            parameters=["JobID"],
            per_page=3,
            page=2,
            cls=lambda _, jobs, headers: ranges.append(headers["Content-Range"]),
        )
        since = await client.jobs.search(
            parameters=["JobID", "LastUpdateTime"],
            search=[{"parameter": "LastUpdateTime", "operator": "gt", "value": LONG_AGO}],
        )
    return {"page": page, "content_range": ranges, "since_long_ago": len(since)}


async def kill(first: int) -> dict[str, Any]:
    from diracx.client.aio import AsyncDiracClient

    update = {"Status": "Killed", "MinorStatus": "Marked for termination", "Source": "probe"}
    async with AsyncDiracClient() as client:
        answer = await client.jobs.set_job_statuses({str(first): {"2026-12-04T00:00:00Z": update}})
        [row] = await client.jobs.search(
            parameters=["JobID", "Status", "MinorStatus"],
            search=[{"parameter": "JobID", "operator": "eq", "value": first}],
        )
    return {"answer": answer.as_dict(), "after": row}


def main() -> None:
    killing = sys.argv[1] == "--kill"
    url, ca_file, credentials, first = sys.argv[2:] if killing else sys.argv[1:]
    os.environ.update(
        {"DIRACX_URL": url, "DIRACX_CA_PATH": ca_file, "DIRACX_CREDENTIALS_PATH": credentials}
    )
    print(json.dumps(asyncio.run((kill if killing else probe)(int(first))), default=str))


if __name__ == "__main__":
    main()
