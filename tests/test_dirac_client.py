"""The real DIRAC client (installed by `nox -s dirac`) against the simulator.

Skipped where DIRAC is not installed: the plain `nox -s tests` environment does not have it
(its M2Crypto needs swig and a build; `nox -s dirac` does all that).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from gangamon import BackendSettings, Monitor, NewJob, Status, Store
from gangamon.backends.dirac import DiracBackend, DiracClientTransport, DiracHttps, ganga_status
from gangamon.backends.dirac._states import parse_dirac_status
from gangamon.sim._job_facts import SITE_SES, guid_of, sandbox_files, sandbox_tarball
from gangamon.sim.process import dirac_sim_process

pytest.importorskip("DIRAC", reason="the real DIRAC client is installed by `nox -s dirac`")

PROBE = Path(__file__).with_name("dirac_client_probe.py")
DIRACX_PROBE = Path(__file__).with_name("diracx_client_probe.py")


def client_env() -> dict[str, str]:
    # These override DIRAC's CALocation inside requests (reference/dirac.md, "Gotcha").
    return {
        k: v for k, v in os.environ.items() if k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
    }


@pytest.fixture(scope="module")
def still_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Jobs that will not move during the test: every client must see the same."""
    with dirac_sim_process(
        tmp_path_factory.mktemp("still"),
        jobs=50,
        mean_runtime=1e9,
        latency=0.001,
        tail_probability=0,
    ) as facts:
        yield facts


@pytest.fixture(scope="module")
def ended_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Jobs that have all ended by the time a client starts (their whole path takes
    microseconds), named by DIRAC-style sandbox PFNs."""
    with dirac_sim_process(
        tmp_path_factory.mktemp("ended"),
        jobs=12,
        mean_runtime=1e-6,
        latency=0.001,
        tail_probability=0,
        sandbox_pfns="dirac",
    ) as facts:
        yield facts


def run_probe(*args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, str(PROBE), *args],
        capture_output=True,
        text=True,
        env=client_env(),
        timeout=120,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def probe(url: str, facts: dict[str, Any], ids: list[int]) -> dict[str, Any]:
    return run_probe(url, facts["ca_dir"], facts["proxy"], *map(str, ids))


@pytest.mark.parametrize("transport", ["https", "dips"])
def test_real_client_reads_the_simulator(transport: str, still_sim: dict[str, Any]) -> None:
    first, last = still_sim["jobs"]
    ids = [first, first + 1, last, 99]  # 99 does not exist: silently left out
    got = probe(still_sim[transport], still_sim, ids)
    status = got["getJobsStatus"]
    assert status["OK"], status["Message"]
    assert sorted(status["Value"]) == sorted(str(i) for i in ids[:3])
    for value in status["Value"].values():
        parse_dirac_status(value["Status"])
    combined = got["Dirac.getJobStatus"]
    assert combined["OK"], combined["Message"]
    assert set(combined["Value"][str(first)]) == {
        "Status",
        "MinorStatus",
        "ApplicationStatus",
        "Site",
    }
    # getJobs: the ids as strings, as DIRAC's SQL layer gives them.
    every = [str(i) for i in range(first, last + 1)]
    assert got["getJobs since long ago"] == {"OK": True, "Value": every, "Message": None}
    assert got["getJobs since the future"] == {"OK": True, "Value": [], "Message": None}
    unknown = got["getJobs on an unknown column"]
    assert not unknown["OK"]
    assert "Unknown column 'Colour'" in unknown["Message"]


async def test_our_https_transport_agrees_with_the_real_client(still_sim: dict[str, Any]) -> None:
    first, last = still_sim["jobs"]
    ids = list(range(first, last + 1))
    theirs = await trio.to_thread.run_sync(probe, still_sim["https"], still_sim, ids)
    transport = DiracHttps(
        still_sim["https"], proxy=Path(still_sim["proxy"]), ca=Path(still_sim["ca_file"])
    )
    async with transport.session():
        ours = await transport.call("WorkloadManagement", "JobMonitoring", "getJobsStatus", ids)
    assert ours == theirs["getJobsStatus"]["Value"]


@pytest.mark.parametrize("wire", ["https", "dips"])
async def test_threaded_real_client_transport_end_to_end(wire: str, tmp_path: Path) -> None:
    import DIRAC

    with dirac_sim_process(
        tmp_path / "sim", jobs=10_000, mean_runtime=2, latency=0.002, tail_probability=0
    ) as facts:
        for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
            os.environ.pop(name, None)
        os.environ["X509_USER_PROXY"] = facts["proxy"]
        DIRAC.initialize(
            require_auth=False,
            extra_config={"DIRAC": {"Security": {"CALocation": facts["ca_dir"]}}},
        )
        section = "TornadoJobMonitoring" if wire == "https" else "JobMonitoring"
        url = f"{facts[wire]}/WorkloadManagement/{section}"
        transport = DiracClientTransport(proxy=Path(facts["proxy"]), url=url, threads=8)
        settings = BackendSettings(
            poll_interval=0.5, chunk_size=1000, concurrency=8, call_deadline=30.0
        )
        backend = DiracBackend(
            transport, output_dir=tmp_path, settings=settings, download_output=False
        )
        store = Store(tmp_path / "jobs.sqlite")
        first, last = facts["jobs"]
        ids = store.add_jobs(
            [NewJob("dirac", str(i), Status.SUBMITTED) for i in range(first, last + 1)]
        )
        monitor = Monitor(store, [backend])
        with trio.fail_after(120):
            async with trio.open_nursery() as nursery:
                await nursery.start(monitor.run)
                for job in ids:
                    await monitor.wait_for(job, [Status.COMPLETED, Status.FAILED, Status.KILLED])
                monitor.stop()
        check = DiracHttps(facts["https"], proxy=Path(facts["proxy"]), ca=Path(facts["ca_file"]))
        async with check.session():
            truth = await check.call(
                "WorkloadManagement", "JobMonitoring", "getJobsStates", list(range(first, last + 1))
            )
    for record in store.jobs():
        state = truth[str(record.backend_id)]
        expected = ganga_status(parse_dirac_status(state["Status"]), state["MinorStatus"])
        assert record.status == expected
    assert monitor.statistics().backends["dirac"].errors == 0


@pytest.mark.parametrize("wire", ["https", "dips"])
async def test_real_client_kills_jobs_of_the_simulator(wire: str, tmp_path: Path) -> None:
    with dirac_sim_process(
        tmp_path, jobs=3, mean_runtime=1e9, latency=0.001, tail_probability=0
    ) as facts:
        first, last = facts["jobs"]
        got = await trio.to_thread.run_sync(
            run_probe, "--kill", facts[wire], facts["ca_dir"], facts["proxy"], str(first),
            str(first + 1),
        )  # fmt: skip
        assert got["Dirac.killJob"]["OK"], got
        check = DiracHttps(facts["https"], proxy=Path(facts["proxy"]), ca=Path(facts["ca_file"]))
        async with check.session():
            states = await check.job_states([first, first + 1, last])
    assert [states[i].Status for i in (first, first + 1)] == ["Killed", "Killed"]
    assert states[last].Status != "Killed"


@pytest.mark.parametrize("wire", ["https", "dips"])
def test_real_client_finalises_jobs_as_ganga_does(
    wire: str, ended_sim: dict[str, Any], tmp_path: Path
) -> None:
    """With only gangamon.sim.dirac_cfg's dirac.cfg, DIRAC's own client downloads and unpacks
    output sandboxes (its StorageElement over DISET file transfer), and reads summaries,
    logging info, parameters, attributes and the file catalogue, all consistent."""
    first, last = ended_sim["jobs"]
    ids = list(range(first, last + 1))
    got = run_probe("--finalise", json.dumps(ended_sim), wire, str(tmp_path), *map(str, ids))
    states = got["status"]["Value"]
    done = [i for i in ids if states[str(i)]["Status"] == "Done"]
    assert done, states
    for i in done:
        sandbox = got["sandboxes"][str(i)]
        assert sandbox["result"]["OK"], sandbox["result"]["Message"]
        assert sandbox["files"] == sandbox_files(i)
        assert sandbox["in_memory_md5"] == hashlib.md5(sandbox_tarball(i)).hexdigest()

    summary, attributes = got["summary"]["Value"], got["attributes"]
    for i in ids:
        row, rows = summary[str(i)], got["logging"][str(i)]["Value"]
        times = {status: when for status, _, _, when, _ in reversed(rows)}  # the first of each
        assert row["Status"] == states[str(i)]["Status"] == rows[-1][0]
        assert row["SubmissionTime"] == rows[0][3]
        assert row["LastUpdateTime"] == rows[-1][3]
        assert row["StartExecTime"] == times.get("Running")
        ended = [times[s] for s in ("Done", "Failed", "Killed") if s in times]
        assert row["EndExecTime"] == (ended[0] if ended else None)
        assert (row["Site"] == "ANY") == ("Matched" not in times)
        assert row["Site"] == states[str(i)]["Site"]
        assert attributes[str(i)]["Value"] == row

    parameters = got["parameters"]["Value"]
    ran = {i for i in ids if any(r[0] == "Running" for r in got["logging"][str(i)]["Value"])}
    assert {int(i) for i in parameters} == ran  # no parameters before the job wrapper ran
    assert all("NormCPUTime(s)" in parameters[str(i)] for i in done)
    assert len({p["HostName"] for p in parameters.values()}) > 1
    assert len({p["CPUNormalizationFactor"] for p in parameters.values()}) > 1
    uploaded = [i for i in done if "UploadedOutputData" in parameters[str(i)]]
    assert 0 < len(uploaded) < len(done)

    lfns = got["lfns"]
    assert len(lfns) >= len(uploaded)
    assert got["metadata"]["OK"], got["metadata"]["Message"]
    assert got["replicas"]["OK"], got["replicas"]["Message"]
    metadata, replicas = got["metadata"]["Value"], got["replicas"]["Value"]
    assert {lfn: m["GUID"] for lfn, m in metadata["Successful"].items()} == {
        lfn: guid_of(lfn) for lfn in lfns
    }
    assert list(metadata["Failed"]) == [got["missing"]]
    assert set(replicas["Successful"]) == set(lfns)
    for places in replicas["Successful"].values():
        assert places
        assert set(places) <= set(SITE_SES.values())


@pytest.mark.parametrize("credentials", ["diracx_credentials", "diracx_credentials_expired"])
def test_diracx_client_searches_the_simulator(credentials: str, still_sim: dict[str, Any]) -> None:
    # The expired one: the client refreshes it through the token endpoint first.
    first, last = still_sim["jobs"]
    args = [still_sim["https"], still_sim["ca_file"], still_sim[credentials], str(first)]
    run = subprocess.run(
        [sys.executable, str(DIRACX_PROBE), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=client_env(),
    )
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout.splitlines()[-1])
    assert [row["JobID"] for row in got["page"]] == [first, first + 1]
    assert {row["Owner"] for row in got["page"]} == {"gangamon"}
    assert got["content_range"] == [f"jobs 3-5/{last - first + 1}"]
    assert got["since_long_ago"] == last - first + 1


def test_diracx_client_kills_a_job_of_the_simulator(tmp_path: Path) -> None:
    with dirac_sim_process(
        tmp_path, jobs=2, mean_runtime=1e9, latency=0.001, tail_probability=0
    ) as facts:
        first, _ = facts["jobs"]
        args = [facts["https"], facts["ca_file"], facts["diracx_credentials"], str(first)]
        run = subprocess.run(
            [sys.executable, str(DIRACX_PROBE), "--kill", *args],
            capture_output=True, text=True, timeout=120, env=client_env(),
        )  # fmt: skip
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout.splitlines()[-1])
    assert list(got["answer"]["success"]) == [str(first)]
    assert (got["after"]["Status"], got["after"]["MinorStatus"]) == (
        "Killed", "Marked for termination",
    )  # fmt: skip
