"""Ganga's Dirac jobs on gangamon, without Ganga: the `[gangamon]` options, finding DIRAC
from its configuration, the details fetched in bulk, and what the applier leaves on a job."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, strategies as st

from gangamon import Status
from gangamon._store import JournalEntry
from gangamon.backends.dirac import DiracError
from gangamon.backends.dirac._details import job_details, uploaded_lfns
from gangamon.backends.dirac._states import DiracStatus, UnknownDiracStatus, ganga_mapping
from gangamon.ganga import _dirac
from gangamon.ganga._dirac import DiracApplier
from gangamon.ganga._dirac_setup import DiracNotFound, find_dirac
from gangamon.ganga._options import GangamonOptions, OptionError, parse_options
from gangamon.ganga._writer import GangaWriter, Target

S = Status

# -- [gangamon] options ---------------------------------------------------------------------


def test_options_default_and_parse_gangarc_text() -> None:
    assert parse_options({}) == GangamonOptions()
    parsed = parse_options(
        {
            "enable": "False",
            "poll_interval": "5",
            "ending_interval": "0.5",
            "concurrency": " 4 ",
            "url": "",
            "transport": "",
        }
    )
    assert parsed == GangamonOptions(
        enable=False, poll_interval=5.0, ending_interval=0.5, concurrency=4
    )


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("poll_interval", "fast", r"\[gangamon\] poll_interval = 'fast': expected a positive"),
        ("poll_interval", "inf", "poll_interval = 'inf'"),
        ("deadline", "-1", "deadline = '-1'"),
        ("ending_interval", "0", "ending_interval = '0': expected a positive"),
        ("concurrency", "0", "concurrency = '0': expected a whole number"),
        ("transport", "dips", "transport = 'dips': expected https or client"),
        ("url", "dirac.cern.ch", "url = 'dirac.cern.ch': expected an https:// or dips://"),
        ("enable", "maybe", "enable = 'maybe': expected True or False"),
        ("url", "https://a\x1b:1", "url = 'https://a\\\\x1b:1': expected printable text"),
        ("pol_interval", "5", r"pol_interval: no such option \(known: concurrency"),
    ],
)
def test_bad_option_is_one_line_naming_it(option: str, value: str, message: str) -> None:
    with pytest.raises(OptionError, match=message) as caught:
        parse_options({option: value})
    assert "\n" not in str(caught.value)


@given(st.text().filter(lambda t: t.strip() != ""))
def test_any_poll_interval_is_a_positive_number_or_an_error_naming_it(text: str) -> None:
    try:
        interval = parse_options({"poll_interval": text}).poll_interval
    except OptionError as e:
        message = str(e)
    else:
        assert interval is not None
        assert 0 < interval < float("inf")
        return
    assert message.startswith(f"[gangamon] poll_interval = {text!r}")


# -- finding DIRAC -------------------------------------------------------------------------

_CFG = """
DIRAC
{{
  Security
  {{
    CALocation = {ca}
  }}
}}
Systems
{{
  WorkloadManagement
  {{
    URLs
    {{
      JobMonitoring = {urls}
    }}
  }}
}}
"""


def _cfg(tmp_path: Path, urls: str, ca: str = "/sim/ca") -> Path:
    path = tmp_path / "dirac.cfg"
    path.write_text(_CFG.format(urls=urls, ca=ca))
    return path


def test_dirac_found_from_diracsysconfig_https_preferred(tmp_path: Path) -> None:
    cfg = _cfg(
        tmp_path,
        "dips://h:9130/WorkloadManagement/JobMonitoring, "
        "https://h:8443/WorkloadManagement/TornadoJobMonitoring",
    )
    env = {"DIRACSYSCONFIG": str(cfg), "X509_USER_PROXY": "/p/proxy"}
    setup = find_dirac(env)
    assert (setup.url, setup.proxy, setup.ca, setup.https) == (
        "https://h:8443",
        Path("/p/proxy"),
        Path("/sim/ca"),
        True,
    )
    assert str(cfg) in setup.source
    # X509_CERT_DIR wins over the configuration's CALocation, as in DIRAC.
    assert find_dirac({**env, "X509_CERT_DIR": "/certs"}).ca == Path("/certs")


def test_dips_only_server_keeps_its_whole_url(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, "dips://h:9130/WorkloadManagement/JobMonitoring")
    setup = find_dirac({"DIRACSYSCONFIG": str(cfg)})
    assert (setup.url, setup.https) == ("dips://h:9130/WorkloadManagement/JobMonitoring", False)


def test_no_url_names_the_files_and_the_way_out(tmp_path: Path) -> None:
    cfg = tmp_path / "dirac.cfg"
    cfg.write_text("DIRAC\n{\n  Setup = x\n}\n")
    with pytest.raises(
        DiracNotFound, match=f"no Systems/.*JobMonitoring.*{cfg}.*set \\[gangamon\\] url"
    ):
        find_dirac({"DIRACSYSCONFIG": str(cfg)})
    with pytest.raises(DiracNotFound, match="DIRACSYSCONFIG and DIRAC unset"):
        find_dirac({})


def test_url_option_overrides_and_is_checked(tmp_path: Path) -> None:
    assert find_dirac({}, url="https://x:1/anything").url == "https://x:1"
    with pytest.raises(DiracNotFound, match="'https://x:99999' has no valid port"):
        find_dirac({}, url="https://x:99999")


# -- Ganga's status mapping ----------------------------------------------------------------


def test_ganga_statusmapping_laid_over_gangamons() -> None:
    mapping = ganga_mapping({"Killed": "failed", "Done": "completed", "Running": "running"})
    assert mapping[DiracStatus.KILLED] == S.FAILED  # Ganga's choice, so both monitors agree
    assert mapping[DiracStatus.RESCHEDULED] == S.SUBMITTED  # Ganga's hole stays filled
    with pytest.raises(UnknownDiracStatus, match="'Runing'"):
        ganga_mapping({"Runing": "running"})


# -- details in bulk -----------------------------------------------------------------------


class Recorder:
    """Answers DIRAC calls from a table; records them."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers, self.calls = answers, list[tuple[str, tuple[object, ...]]]()

    async def call(self, system: str, service: str, method: str, *args: object) -> Any:
        self.calls.append((method, args))
        answer = self.answers[method]
        if isinstance(answer, DiracError):
            raise answer
        return answer


async def test_details_of_many_jobs_come_from_four_bulk_calls() -> None:
    when = dt.datetime(2026, 12, 1, 10, 0, 5)
    summary = {
        str(i): {
            "Site": f"LCG.S{i}.ch",
            "ApplicationStatus": "Finished",
            "StartExecTime": when,
            "EndExecTime": "2026-12-01 10:05:00",
            "LastUpdateTime": "2026-12-01 10:05:00",
        }
        for i in range(1, 101)
    }
    parameters = {
        str(i): {"NormCPUTime(s)": "42", "UploadedOutputData": f"/lhcb/u/{i}.root"}
        for i in range(1, 51)
    }
    lfns = [f"/lhcb/u/{i}.root" for i in range(1, 51)]
    transport = Recorder(
        {
            "getJobsSummary": summary,
            "getJobParameters": parameters,
            "getFileMetadata": {"Successful": {f: {"GUID": f"G-{f}"} for f in lfns}},
            "getReplicas": {"Successful": {f: {"CERN-USER": "root://x"} for f in lfns[:10]}},
        }
    )
    statuses = {i: "Done" if i <= 50 else "Running" for i in range(1, 101)}
    details = await job_details(transport, statuses)
    # Two at a time: the summary and the parameters, then the catalogue's two.
    methods = [m for m, _ in transport.calls]
    assert sorted(methods[:2]) == ["getJobParameters", "getJobsSummary"]
    assert sorted(methods[2:]) == ["getFileMetadata", "getReplicas"]
    assert dict(transport.calls)["getJobParameters"] == (list(range(1, 51)),)  # only Done jobs
    assert details[1] == {
        "site": "LCG.S1.ch",
        "application_status": "Finished",
        "running_at": "2026-12-01 10:00:05",
        "ended_at": "2026-12-01 10:05:00",
        "norm_cpu_time": "42",
        "output_data": [
            {"lfn": "/lhcb/u/1.root", "guid": "G-/lhcb/u/1.root", "locations": ["CERN-USER"]}
        ],
    }
    assert details[20]["output_data"] == [
        {"lfn": "/lhcb/u/20.root", "guid": "G-/lhcb/u/20.root", "locations": ["NotAvailable"]}
    ]
    assert "ended_at" not in details[60]
    assert "norm_cpu_time" not in details[60]


async def test_an_s_error_leaves_its_facts_out_not_the_others() -> None:
    transport = Recorder(
        {
            "getJobsSummary": {"7": {"Site": "LCG.CERN.cern"}},
            "getJobParameters": DiracError("JobParametersDB unavailable"),
        }
    )
    assert await job_details(transport, {7: "Done"}) == {7: {"site": "LCG.CERN.cern"}}


def test_uploaded_lfns_leave_the_sandbox_out() -> None:
    row = {"UploadedOutputData": "/a/x.root, /a/sb.tar", "OutputSandboxLFN": "/a/sb.tar"}
    assert uploaded_lfns(row) == ["/a/x.root"]
    assert uploaded_lfns({}) == [] == uploaded_lfns({"UploadedOutputData": " "})


# -- what the applier leaves on a Ganga job ------------------------------------------------


class DiracBase:
    """Named like GangaDirac's base class: `is_dirac` goes by the class name."""

    def __init__(self, dirac_id: int) -> None:
        self.id = dirac_id
        self.status: str | None = None
        self.statusInfo = self.extraInfo = ""
        self.actualCE: str | None = None
        self.normCPUTime: object = None


class GangaJob:
    def __init__(self, dirac_id: int, outputdir: Path, status: str = "running") -> None:
        self.backend = DiracBase(dirac_id)
        self.time = SimpleNamespace(timestamps={})
        self.outputdir = outputdir
        self.status = status
        self.moves: list[str] = []

    def updateStatus(self, new: str, update_master: bool = True) -> None:  # Ganga's name
        self.moves.append(new)
        self.status = new

    def getOutputWorkspace(self) -> Any:  # Ganga's name
        return SimpleNamespace(getPath=lambda: str(self.outputdir))


def _entry(
    old: Status, new: Status, native: str, reason: str, details: Mapping[str, object] | None
) -> JournalEntry:
    return JournalEntry(1, 1, old, new, native, reason, 0.0, details)


def test_applier_leaves_what_gangas_dirac_monitor_leaves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_dirac, "_dirac_file_patterns", lambda job: ["*.root", "hist.root"])
    job = GangaJob(1001, tmp_path / "out")
    applier = DiracApplier(tmp_path / "dirac")
    running = {"site": "LCG.CERN.cern", "running_at": "2026-12-01 10:00:05"}
    applier.before(job, _entry(S.SUBMITTED, S.RUNNING, "Running", "Application", running))
    assert (job.backend.status, job.backend.statusInfo, job.backend.actualCE) == (
        "Running",
        "Application",
        "LCG.CERN.cern",
    )
    assert job.time.timestamps == {"backend_running": dt.datetime(2026, 12, 1, 10, 0, 5)}
    (tmp_path / "dirac" / "1001").mkdir(parents=True)
    (tmp_path / "dirac" / "1001" / "std.out").write_text("output")
    (tmp_path / "dirac" / "1001" / "Ganga_Executable.log").write_text("log")
    done = {
        **running,
        "application_status": "Finished",
        "ended_at": "2026-12-01 10:05:00",
        "norm_cpu_time": 42,
        "output_data": [{"lfn": "/lhcb/u/hist.root", "guid": "G1", "locations": ["CERN-USER"]}],
    }
    applier.before(job, _entry(S.RUNNING, S.COMPLETING, "Done", "Execution Complete", done))
    applier.before(job, _entry(S.COMPLETING, S.COMPLETED, "Done", "output in /x", None))
    backend = job.backend
    assert (backend.statusInfo, backend.extraInfo, backend.normCPUTime) == (
        "Execution Complete",
        "Finished",
        42,  # as DIRAC gave it, as Ganga keeps it
    )
    assert job.time.timestamps == {
        "backend_running": dt.datetime(2026, 12, 1, 10, 0, 5),
        "backend_completing": None,  # as Ganga's: DIRAC never said Completed
        "backend_final": dt.datetime(2026, 12, 1, 10, 5),
    }
    assert (tmp_path / "out" / "std.out").read_text() == "output"
    # Ganga's getOutputSandbox links stdout to the Ganga log of the sandbox.
    assert (tmp_path / "out" / "stdout").read_text() == "log"
    # Ganga's DiracFile record: one line per matching wildcard pattern.
    assert (tmp_path / "out" / "__postprocesslocations__").read_text() == (
        "DiracFile:::*.root&&hist.root->/lhcb/u/hist.root:::['CERN-USER']:::G1\n"
    )


def test_a_job_without_diracfile_outputs_gets_an_empty_locations_file(tmp_path: Path) -> None:
    job = GangaJob(1002, tmp_path / "out")
    DiracApplier(tmp_path / "dirac").before(
        job, _entry(S.RUNNING, S.COMPLETED, "Done", "Execution Complete", None)
    )
    assert (tmp_path / "out" / "__postprocesslocations__").read_text() == ""


def test_a_job_killed_in_the_queue_gets_the_stamps_ganga_writes(tmp_path: Path) -> None:
    job = GangaJob(1003, tmp_path / "out")
    ended = {"ended_at": "2026-12-01 10:01:00"}
    DiracApplier(tmp_path / "dirac").before(
        job, _entry(S.SUBMITTED, S.FAILED, "Killed", "Marked for termination", ended)
    )
    assert job.time.timestamps == {
        "backend_running": None,  # it never ran: Ganga writes the None it finds
        "backend_completing": None,
        "backend_final": dt.datetime(2026, 12, 1, 10, 1),
    }


def test_a_job_that_ran_between_two_polls_passes_through_running_as_in_ganga(
    tmp_path: Path,
) -> None:
    job = GangaJob(1004, tmp_path / "out", status="submitted")
    done = {"running_at": "2026-12-01 10:00:05", "ended_at": "2026-12-01 10:05:00"}
    DiracApplier(tmp_path / "dirac").before(
        job, _entry(S.SUBMITTED, S.COMPLETING, "Done", "Execution Complete", done)
    )
    assert job.moves == ["running"]  # the writer's updateStatus('completing') follows
    queued = GangaJob(1005, tmp_path / "out2", status="submitted")
    DiracApplier(tmp_path / "dirac").before(
        queued, _entry(S.SUBMITTED, S.FAILED, "Killed", "Marked for termination", {})
    )
    assert queued.moves == []  # killed in the queue: it never ran


def test_a_queued_job_whose_details_say_it_started_is_moved_only_by_its_end(
    tmp_path: Path,
) -> None:
    # The details of a Matched job came after it had started (running_at), and the copy of
    # Matched moved it to running: its later failed (from submitted, as gangamon stored it)
    # then found it moved "by Ganga" and was dropped. One of 1000 subjobs ran for ever.
    job = GangaJob(1008, tmp_path / "out", status="submitted")
    applier = DiracApplier(tmp_path / "dirac")
    writer = GangaWriter(track=lambda jobs: None, resolve=lambda job_id: Target(job, applier))
    started = {"site": "LCG.GRIDKA.de", "running_at": "2026-12-02 16:14:46"}
    ended = {**started, "ended_at": "2026-12-02 16:14:54"}
    writer.apply([_entry(S.SUBMITTED, S.SUBMITTED, "Matched", "Assigned", started)])
    assert (job.status, job.moves) == ("submitted", [])
    writer.apply([_entry(S.SUBMITTED, S.FAILED, "Failed", "Application Finished", ended)])
    assert (job.status, job.backend.status) == ("failed", "Failed")
    assert job.moves == ["running", "failed"]


def test_the_completed_time_a_poll_saw_is_kept_until_the_end(tmp_path: Path) -> None:
    job = GangaJob(1006, tmp_path / "out")
    applier = DiracApplier(tmp_path / "dirac")
    seen = {"completed_at": "2026-12-01 10:04:00"}
    applier.before(job, _entry(S.RUNNING, S.RUNNING, "Completed", "Pending Requests", seen))
    applier.before(job, _entry(S.RUNNING, S.COMPLETING, "Done", "Execution Complete", {}))
    assert job.time.timestamps["backend_completing"] == dt.datetime(2026, 12, 1, 10, 4)


def test_a_change_of_dirac_status_alone_is_copied_without_gangas_hooks(tmp_path: Path) -> None:
    job = GangaJob(1007, tmp_path / "out", status="running")
    applier = DiracApplier(tmp_path / "dirac")
    writer = GangaWriter(track=lambda jobs: None, resolve=lambda job_id: Target(job, applier))
    seen = {"completed_at": "2026-12-01 10:04:00"}
    writer.apply([_entry(S.RUNNING, S.RUNNING, "Completed", "Pending Requests", seen)])
    assert (job.backend.status, job.backend.statusInfo) == ("Completed", "Pending Requests")
    assert job.time.timestamps["backend_completing"] == dt.datetime(2026, 12, 1, 10, 4)
    assert job.moves == []  # no updateStatus: Ganga's hooks do not run again


def test_failed_jobs_sandboxes_go_to_the_ganga_output_directory_with_its_stdout_link(
    tmp_path: Path,
) -> None:
    failed = _dirac.FailedSandboxes()
    family = _dirac.DiracFamily(
        SimpleNamespace(name="Dirac"),  # type: ignore[arg-type]
        tmp_path / "dirac",
        failed=failed,
    )
    job = GangaJob(1004, tmp_path / "out")
    made = family.new_job(job, "Dirac", S.RUNNING)
    assert made is not None
    # What the backend does once DIRAC says Failed: where, the files, the hand-over.
    assert failed.target(1004) == tmp_path / "out"
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "Script1_Ganga_Executable.log").write_text("log\n")
    failed.unpacked(1004, tmp_path / "out")
    assert (tmp_path / "out" / "stdout").resolve().name == "Script1_Ganga_Executable.log"
    assert failed.target(1004) is None  # once only


def test_a_job_ended_otherwise_is_forgotten_by_the_failed_sandboxes(tmp_path: Path) -> None:
    failed = _dirac.FailedSandboxes()
    failed.register(1005, tmp_path / "out")
    DiracApplier(tmp_path / "dirac", failed=failed).before(
        GangaJob(1005, tmp_path / "out"), _entry(S.RUNNING, S.KILLED, "Killed", "", None)
    )
    assert failed.target(1005) is None
