"""The simulator's DIRAC services, sans-IO: what each method answers of simulated jobs, and
that the answers agree with each other (one job's summary, logging info, parameters, files)."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import random
import re
import tarfile

import pytest
from hypothesis import given, strategies as st

from gangamon.backends.dirac import DiracStatus as D
from gangamon.backends.dirac._wire import FrameReader, jdecode
from gangamon.sim import _job_facts as facts
from gangamon.sim._dirac_model import Outcomes, SimJob, WallClock, draw_path
from gangamon.sim._dirac_service import JobMonitoring
from gangamon.sim._diset import PACKET, transfer_frames
from gangamon.sim._file_catalog import NO_SUCH_FILE, FileCatalog
from gangamon.sim._resource_status import ResourceStatus
from gangamon.sim._sandbox_store import SandboxStore

#: 2026-12-01 00:00:00 UTC at server time 0.
OFFSET = 1_796_083_200.0
ENDED = {D.DONE, D.FAILED, D.KILLED}

seeds = st.integers(0, 2**32)
#: When to look, as a fraction of the job's life (beyond 1: after its end).
moments = st.floats(0, 1.2)


def simulated_job(seed: int, job_id: int = 1001) -> SimJob:
    path = draw_path(random.Random(seed), 100.0, 60.0, Outcomes(0.2, 0.1, 0.2, 0.2, 0.2))
    return SimJob(job_id, path[0][0], tuple(path))


def at(job: SimJob, moment: float) -> float:
    return job.submitted + moment * (job.finished_at() - job.submitted)


def monitoring(*jobs: SimJob) -> JobMonitoring:
    return JobMonitoring({job.id: job for job in jobs}, WallClock(OFFSET))


@given(seed=seeds, moment=moments)
def test_a_summary_row_names_the_logging_infos_instants(seed: int, moment: float) -> None:
    job = simulated_job(seed)
    now = at(job, moment)
    service = monitoring(job)
    row = service.call("getJobsSummary", [[job.id]], now)["Value"][job.id]  # type: ignore[index]
    rows = service.call("getJobLoggingInfo", [job.id], now)["Value"]
    assert isinstance(row, dict)
    assert isinstance(rows, list)
    first = {status: when for status, _, _, when, _ in reversed(rows)}
    status, minor = job.state_at(now)
    assert (row["Status"], row["MinorStatus"]) == (status.value, minor) == tuple(rows[-1][:2])
    assert str(row["SubmissionTime"]) == rows[0][3]
    assert str(row["LastUpdateTime"]) == rows[-1][3]
    assert _text(row["StartExecTime"]) == first.get("Running")
    ended = [first[s.value] for s in (D.DONE, D.FAILED, D.KILLED) if s.value in first]
    assert _text(row["EndExecTime"]) == (ended[0] if ended else None)
    assert row["RescheduleCounter"] == sum(r[0] == "Rescheduled" for r in rows)
    assert row["Site"] == ("ANY" if "Matched" not in first else facts.site_of(job.id))
    for name in ("SubmissionTime", "LastUpdateTime"):
        assert isinstance(row[name], dt.datetime)
        assert row[name].microsecond == 0
    assert service.call("getJobAttributes", [job.id], now)["Value"] == row
    assert service.call("getJobsSites", [[job.id]], now)["Value"] == {job.id: {"Site": row["Site"]}}


def _text(value: object) -> str | None:
    return None if value is None else str(value)


@given(seed=seeds, moment=moments)
def test_parameters_appear_as_the_job_wrapper_reports_them(seed: int, moment: float) -> None:
    job = simulated_job(seed, job_id=1000 + seed % 5000)
    now = at(job, moment)
    found = monitoring(job).call("getJobParameters", [[job.id, 99]], now)["Value"]
    assert isinstance(found, dict)
    taken = {s for _, s, _ in job.steps_until(now)}
    if D.RUNNING not in taken:
        assert found == {}  # no JobParametersDB document yet; 99 is unknown: left out
        return
    values = found[job.id]
    assert set(found) == {job.id}
    assert values["HostName"] == facts.host_of(job.id)
    assert values["CPUNormalizationFactor"] == facts.cpu_factor(job.id)
    assert ("NormCPUTime(s)" in values) == bool(taken & {D.DONE, D.FAILED, D.COMPLETED})
    uploaded = bool(taken & {D.DONE, D.COMPLETED}) and bool(facts.output_lfns(job.id))
    assert ("UploadedOutputData" in values) == uploaded
    if uploaded:
        assert values["UploadedOutputData"] == ", ".join(facts.output_lfns(job.id))


def test_parameters_differ_between_jobs_and_can_be_picked_by_name() -> None:
    jobs = [
        SimJob(i, 0.0, ((0.0, D.RUNNING, "Application"), (5.0, D.DONE, "Done")))
        for i in range(1001, 1021)
    ]
    service = monitoring(*jobs)
    found = service.call("getJobParameters", [[j.id for j in jobs]], 10.0)["Value"]
    assert isinstance(found, dict)
    assert len(found) == 20
    for name in ("HostName", "CPUNormalizationFactor", "NormCPUTime(s)"):
        assert len({values[name] for values in found.values()}) > 5
    with_data = [i for i, values in found.items() if "UploadedOutputData" in values]
    assert 0 < len(with_data) < 20
    assert {len(found[i]["UploadedOutputData"].split(", ")) for i in with_data} == {1, 2}
    picked = service.call("getJobParameters", ["1001,1002", "HostName"], 10.0)["Value"]
    assert picked == {i: {"HostName": facts.host_of(i)} for i in (1001, 1002)}
    assert service.call("getJobParameter", [1001, "HostName"], 10.0)["Value"] == {
        "HostName": facts.host_of(1001)
    }


def test_job_attributes_by_name_and_their_errors() -> None:
    job = simulated_job(3)
    service = monitoring(job)
    now = job.finished_at()
    assert service.call("getJobAttributes", [job.id, ["Status", "Site"]], now)["Value"] == {
        "Status": job.state_at(now)[0].value,
        "Site": facts.site_of(job.id),
    }
    assert service.call("getJobAttribute", [job.id, "Owner"], now)["Value"] == "gangamon"
    assert service.call("getJobAttributes", [12345], now)["Value"] == {}
    assert not service.call("getJobAttributes", [job.id, ["Nope"]], now)["OK"]
    assert not service.call("getJobAttributes", ["x"], now)["OK"]


def test_the_wall_clock_names_an_instant_alike_every_time() -> None:
    clock = WallClock()
    clock.fix(50.0)
    first = clock.at(49.3)
    clock.fix(1e6)  # already fixed: the offset stays
    assert clock.at(49.3) == first
    assert first.microsecond == 0
    assert WallClock(OFFSET).at(0.7) == dt.datetime(2026, 12, 1)


def finished(job_id: int, status: D = D.DONE) -> SimJob:
    path = ((0.0, D.RECEIVED, "Job accepted"), (1.0, D.RUNNING, "Application"), (2.0, status, ""))
    return SimJob(job_id, 0.0, path)


def test_sandboxes_are_named_and_served_as_dirac_does() -> None:
    jobs = {i: finished(i) for i in (1001, 1002)}
    store = SandboxStore(jobs, "https://sim", "dirac")
    assert store.call("getSandboxesAssignedToEntity", ["Job:1001"], 1.5)["Value"] == {}
    [location] = store.call("getSandboxesAssignedToEntity", ["Job:1001"], 3.0)["Value"]["Output"]  # type: ignore[index]
    se, pfn = location.removeprefix("SB:").split("|")
    md5 = hashlib.md5(facts.sandbox_tarball(1001)).hexdigest()
    assert se == "SimSandboxSE"
    assert pfn == f"/SandBox/g/gangamon.gangamon_user/{md5[:3]}/{md5[3:6]}/{md5}.tar.bz2"
    # DIRAC's DIPStorage asks for the whole URL; the service finds the PFN in it.
    url = f"dips://127.0.0.1:9196/WorkloadManagement/SandboxStore{pfn}"
    assert store.call("transfer_toClient", [url, "CheckSum"], 3.0)[
        "Value"
    ] == facts.sandbox_tarball(1001)
    assert store.call("streamToClient", [pfn], 3.0)["Value"] == facts.sandbox_tarball(1001)
    # Not registered (never named by getSandboxesAssignedToEntity): DIRAC has no such sandbox.
    other = store.pfn(1002)
    assert store.call("transfer_toClient", [other, ""], 3.0) == {
        "OK": False,
        "Message": "Sandbox does not exist",
        "Errno": 0,
    }
    assert store.call("getSandboxesAssignedToEntity", ["Job:77"], 3.0)["Value"] == {}
    assert SandboxStore(jobs, "https://sim", "url").call(
        "getSandboxesAssignedToEntity", ["Job:1002"], 3.0
    )["Value"] == {"Output": ["SB:SimSandboxSE|https://sim/sandbox/1002.tar.bz2"]}


def test_a_transfer_is_frames_of_at_most_a_packet_then_the_md5() -> None:
    data = random.Random(1).randbytes(2 * PACKET + 5)
    frames = transfer_frames({"OK": True, "Value": data})
    reader = FrameReader()
    for chunk in frames.chunks:
        reader.feed(chunk)
    got = [jdecode(p)["Value"] for p in reader.frames()]
    assert [flag for flag, _ in got] == [True, True, True]
    assert b"".join(part for _, part in got) == data
    reader.feed(frames.end)
    eof, result = (jdecode(p) for p in reader.frames())
    assert eof["Value"] == [False, hashlib.md5(data).hexdigest()]
    assert result == {"OK": True, "Value": None}
    failed = transfer_frames({"OK": False, "Message": "Sandbox does not exist"})
    assert failed.chunks == []
    assert re.fullmatch(rb"\d+:\{.*Sandbox does not exist.*\}", failed.end)


lfn_forms = st.sampled_from(["list", "dict", "str"])


@given(seed=seeds, moment=moments, form=lfn_forms)
def test_the_catalogue_has_a_jobs_files_once_it_uploaded_them(
    seed: int, moment: float, form: str
) -> None:
    job = simulated_job(seed, job_id=1000 + seed % 5000)
    now = at(job, moment)
    catalogue = FileCatalog({job.id: job}, WallClock(OFFSET))
    lfns = [*facts.output_lfns(job.id), f"{facts.LFN_ROOT}/{job.id}/other.dat"]
    arg: object = {"list": lfns, "dict": dict.fromkeys(lfns, False), "str": lfns[0]}[form]
    asked = lfns if form != "str" else lfns[:1]
    uploaded = bool({s for _, s, _ in job.steps_until(now)} & {D.DONE, D.COMPLETED})
    meta = catalogue.call("getFileMetadata", [arg], now)["Value"]
    places = catalogue.call("getReplicas", [arg, False], now)["Value"]
    assert isinstance(meta, dict)
    assert isinstance(places, dict)
    have = [lfn for lfn in asked if uploaded and lfn in facts.output_lfns(job.id)]
    assert sorted(meta["Successful"]) == sorted(have) == sorted(places["Successful"])
    assert meta["Failed"] == dict.fromkeys(sorted(set(asked) - set(have)), NO_SUCH_FILE)
    for lfn in have:
        assert meta["Successful"][lfn]["GUID"] == facts.guid_of(lfn)
        assert set(places["Successful"][lfn]) <= set(facts.SITE_SES.values())
        assert facts.SITE_SES[facts.site_of(job.id)] in places["Successful"][lfn]
    directory = catalogue.call("getDirectoryMetadata", [[f"{facts.LFN_ROOT}/{job.id}", "/x"]], now)
    assert list(directory["Value"]["Failed"]) == (  # type: ignore[index]
        ["/x"] if uploaded and facts.output_lfns(job.id) else [f"{facts.LFN_ROOT}/{job.id}", "/x"]
    )


@given(job_id=st.integers(1, 10**9))
def test_job_facts_are_the_jobs_own(job_id: int) -> None:
    assert facts.site_of(job_id) in facts.SITES
    assert facts.site_of(job_id) == facts.site_of(job_id)
    assert 8.0 <= facts.cpu_factor(job_id) <= 24.0
    for lfn in facts.output_lfns(job_id):
        assert facts.job_of_lfn(lfn) == job_id
    assert facts.job_of_lfn(f"/other/{job_id}/output_0.dat") is None


def test_resource_status_says_every_se_is_active() -> None:
    status = ResourceStatus(["SimSandboxSE", "CERN-USER"])
    meta = {"Meta": {"columns": ["Name", "ElementType", "StatusType", "Status", "VO"]}}
    rows = status.call("select", ["ResourceStatus", meta], 0.0)["Value"]
    assert isinstance(rows, list)
    assert len(rows) == 8
    assert ["SimSandboxSE", "StorageElement", "ReadAccess", "Active", "all"] in rows
    named = status.call("select", ["ResourceStatus", {"Name": "CERN-USER"}], 0.0)["Value"]
    assert isinstance(named, list)
    assert len(named) == 4
    assert status.call("select", ["SiteStatus", {}], 0.0)["Value"] == []


@pytest.mark.parametrize("method", ["getJobsSummary", "getJobParameters"])
def test_bulk_methods_leave_unknown_jobs_out(method: str) -> None:
    service = monitoring(finished(1001))
    found = service.call(method, [[1001, 5, 6]], 3.0)["Value"]
    assert isinstance(found, dict)
    assert set(found) == {1001}
    assert service.call(method, [[]], 3.0)["Value"] == {}


def test_a_sandbox_is_the_same_tarball_of_the_jobs_files_every_time() -> None:
    facts.sandbox_tarball.cache_clear()
    first = facts.sandbox_tarball(1001)
    facts.sandbox_tarball.cache_clear()
    assert facts.sandbox_tarball(1001) == first != facts.sandbox_tarball(1002)
    with tarfile.open(fileobj=io.BytesIO(first), mode="r:bz2") as tar:
        members = {m.name: tar.extractfile(m).read().decode() for m in tar}  # type: ignore[union-attr]
    assert members == facts.sandbox_files(1001)


# -- getJobs: which jobs changed since a cut ---------------------------------------------------


@given(
    seeds=st.lists(seeds, min_size=1, max_size=6, unique=True),
    now=st.floats(100, 400),
    back=st.floats(0, 300),
    fraction=st.booleans(),
)
def test_get_jobs_gives_the_jobs_whose_last_update_is_at_or_after_the_cut(
    seeds: list[int], now: float, back: float, fraction: bool
) -> None:
    jobs = [simulated_job(seed, job_id=1001 + i) for i, seed in enumerate(seeds)]
    service = monitoring(*jobs)
    cut = service.wall.at(now - back) + dt.timedelta(microseconds=500_000 if fraction else 0)
    answer = service.call("getJobs", [{"Owner": "gangamon"}, str(cut)], now)
    summary = service.call("getJobsSummary", [[j.id for j in jobs]], now)["Value"]
    assert isinstance(summary, dict)
    # DIRAC compares a DATETIME column of whole seconds with the cut, fraction and all.
    expected = [str(i) for i, row in sorted(summary.items()) if row["LastUpdateTime"] >= cut]
    assert answer == {"OK": True, "Value": expected}


def test_get_jobs_selects_on_attributes_and_refuses_unknown_ones() -> None:
    jobs = [simulated_job(seed, job_id=1001 + seed) for seed in range(8)]
    service = monitoring(*jobs)
    now = max(j.finished_at() for j in jobs) + 1
    done = [str(j.id) for j in jobs if j.state_at(now)[0] is D.DONE]
    assert service.call("getJobs", [{"Status": "Done"}], now)["Value"] == done
    both = service.call("getJobs", [{"Status": ["Done", "Failed"], "Owner": "gangamon"}], now)
    assert both["Value"] == [str(j.id) for j in jobs if j.state_at(now)[0] in (D.DONE, D.FAILED)]
    assert service.call("getJobs", [{"Owner": "someone else"}], now)["Value"] == []
    assert service.call("getJobs", [], now)["Value"] == [str(j.id) for j in jobs]
    bad = service.call("getJobs", [{"Colour": "red"}], now)
    assert bad["OK"] is False
    assert "Unknown column 'Colour'" in str(bad["Message"])
    assert service.call("getJobs", [{}, "not a date"], now)["OK"] is False


def test_a_skewed_server_names_its_own_seconds() -> None:
    job = simulated_job(1)
    service = JobMonitoring({job.id: job}, WallClock(OFFSET, skew=-42.0))
    row = service.call("getJobsSummary", [[job.id]], 500.0)["Value"][job.id]  # type: ignore[index]
    assert row["LastUpdateTime"] == WallClock(OFFSET - 42.0).at(job.steps_until(500.0)[-1][0])
