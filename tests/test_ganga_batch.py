"""Ganga's batch classes on gangamon's batch backends, without Ganga: stand-ins for Ganga's job
objects, the recorded outputs of tests/batch_outputs and fake commands on PATH.

The real Ganga with the real Slurm: tests/ganga/test_slurm_jobs.py (`nox -s ganga`).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import trio

from gangamon import BackendSettings, JobRef, Monitor, Status, Store, can_transition
from gangamon._status import parse_status
from gangamon._store import JournalEntry
from gangamon.backends._batch import BatchBackend
from gangamon.ganga._batch import (
    BatchApplier,
    BatchFamily,
    CondorApplier,
    StartedWhenUsed,
    read_wrapper_status,
)
from gangamon.ganga._writer import GangaWriter, Target

from .test_batch import install_fakes, recorded

S = Status
EVERY_COMMAND = ("squeue", "bjobs", "qstat", "condor_q")


class StandInJob:
    """What the batch family uses of a Ganga Job: its backend, output dir, updateStatus."""

    def __init__(self, backend: Any, outputdir: Path, status: str = "submitted") -> None:
        self.backend, self.outputdir, self.status = backend, outputdir, status
        self.master = None

    def getOutputWorkspace(self) -> Any:  # Ganga's name
        # Ganga's output path ends with a slash.
        return SimpleNamespace(getPath=lambda: f"{self.outputdir}/")

    def getFQID(self, sep: str) -> str:  # Ganga's name
        return str(self.backend.id)

    def updateStatus(self, new: str, update_master: bool = True) -> None:  # Ganga's name
        if not can_transition(parse_status(self.status), parse_status(new)):
            raise ValueError(f"forbidden status transition {self.status!r} -> {new!r}")
        self.status = new


def batch_backend(batch_id: object = "") -> SimpleNamespace:
    """A Ganga `Batch` backend's monitored attributes (and Condor's), as after submission."""
    return SimpleNamespace(
        id=batch_id, exitcode=None, actualqueue="", actualCE="", status="", cputime=""
    )


def entry(
    new: Status, native: str | None = None, reason: str = "", **details: object
) -> JournalEntry:
    return JournalEntry(1, 1, None, new, native, reason, 0.0, details or None)


def family(*installed: str, poll: dict[str, float] | None = None) -> BatchFamily:
    config = poll if poll is not None else {"default_backend_poll_rate": 30}
    return BatchFamily(config, which=lambda c: f"/usr/bin/{c}" if c in installed else None)


# -- which classes, which backends ------------------------------------------------------------


def test_only_classes_whose_system_is_installed_are_claimed() -> None:
    batch = family("squeue", "condor_q")
    names = ("Slurm", "LSF", "PBS", "SGE", "Condor", "Local")
    assert [n for n in names if batch.claims(n, None)] == ["Slurm", "Condor"]
    assert family().backends() == []


def test_backends_are_named_for_their_system_and_polled_at_gangas_rates() -> None:
    # Ganga's [PollThread] defaults: LSF and PBS 20 s, Condor 30 s; SGE and Slurm have no
    # option of their own and take default_backend_poll_rate.
    poll = {"LSF": 20.0, "PBS": 20.0, "Condor": 30.0, "default_backend_poll_rate": 45.0}
    built = family(*EVERY_COMMAND, poll=poll).backends()
    assert {b.name: b.settings.poll_interval for b in built} == {
        "slurm": 45.0, "lsf": 20.0, "pbs": 20.0, "sge": 45.0, "condor": 30.0}  # fmt: skip
    assert {(b.settings.chunk_size, b.settings.concurrency) for b in built} == {(10**9, 1)}


def test_a_job_is_tracked_under_its_batch_id_once_it_has_one(tmp_path: Path) -> None:
    batch = family(*EVERY_COMMAND)
    assert batch.new_job(StandInJob(batch_backend(""), tmp_path), "Slurm", S.SUBMITTED) is None
    made = batch.new_job(StandInJob(batch_backend("1234"), tmp_path), "Slurm", S.SUBMITTED)
    assert made is not None
    new, applier = made
    assert (new.backend, new.backend_id, new.status) == ("slurm", "1234", S.SUBMITTED)
    assert isinstance(applier, BatchApplier)
    # Ganga makes the id a number once it has seen the job run (a job of an earlier session).
    made = batch.new_job(StandInJob(batch_backend(2001), tmp_path), "PBS", S.RUNNING)
    assert made is not None
    assert (made[0].backend, made[0].backend_id, made[0].status) == ("pbs", "2001", S.RUNNING)
    made = batch.new_job(StandInJob(batch_backend("101.1"), tmp_path), "Condor", S.SUBMITTED)
    assert made is not None
    assert (made[0].backend_id, type(made[1])) == ("101.1", CondorApplier)


# -- what Ganga's monitor sets, set here ------------------------------------------------------

STATUS_FILE = """START: Tue Dec 01 22:36:24 2026
PID: 4711
QUEUE: debug
ACTUALCE: wn01.example.org
EXITCODE: 3
STOP: Tue Dec 01 22:36:25 2026
"""


def test_the_wrapper_status_file_is_read_as_ganga_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "__jobstatus__"
    assert read_wrapper_status(path) == read_wrapper_status(tmp_path / "nothing")
    path.write_text(STATUS_FILE)
    found = read_wrapper_status(path)
    assert (found.pid, found.queue, found.actual_ce, found.exitcode) == (
        4711, "debug", "wn01.example.org", 3)  # fmt: skip


def test_running_sets_the_id_queue_and_host_from_the_wrapper(tmp_path: Path) -> None:
    job = StandInJob(batch_backend("4711"), tmp_path)
    (tmp_path / "__jobstatus__").write_text(STATUS_FILE.split("EXITCODE")[0])
    BatchApplier().before(job, entry(S.RUNNING, "RUNNING"))
    b = job.backend
    assert (b.id, b.actualqueue, b.actualCE) == (4711, "debug", "wn01.example.org")
    assert b.exitcode is None


def test_running_before_the_wrapper_wrote_sets_the_batch_jobs_number(tmp_path: Path) -> None:
    job = StandInJob(batch_backend("2001"), tmp_path)
    BatchApplier().before(job, entry(S.RUNNING, "R"))
    assert (job.backend.id, job.backend.actualqueue, job.backend.actualCE) == (2001, "", "")


def test_submitted_leaves_the_backend_alone(tmp_path: Path) -> None:
    (tmp_path / "__jobstatus__").write_text(STATUS_FILE)
    job = StandInJob(batch_backend("4711"), tmp_path)
    BatchApplier().before(job, entry(S.SUBMITTED, "PENDING"))
    assert vars(job.backend) == vars(batch_backend("4711"))


def test_the_end_sets_the_applications_exit_code_from_the_wrapper(tmp_path: Path) -> None:
    (tmp_path / "__jobstatus__").write_text(STATUS_FILE)
    job = StandInJob(batch_backend("4711"), tmp_path)
    # The batch system's exit code is the wrapper's; the file's is the application's.
    BatchApplier().before(job, entry(S.FAILED, "FAILED", "exit code 1:0"))
    assert (job.backend.id, job.backend.exitcode, job.backend.actualCE) == (
        4711, 3, "wn01.example.org")  # fmt: skip


@pytest.mark.parametrize(
    ("reason", "code"),
    [("exit code 3:0", 3), ("exit code 3", 3), ("exit status -29", -29), ("exit status 137", 137),
     ("NonZeroExitCode", None)],
)  # fmt: skip
def test_without_the_wrappers_exit_code_the_batch_systems_is_taken(
    tmp_path: Path, reason: str, code: int | None
) -> None:
    (tmp_path / "__jobstatus__").write_text("START: x\nPID: 12\n")
    job = StandInJob(batch_backend("12"), tmp_path, status="running")
    BatchApplier().before(job, entry(S.FAILED, "FAILED", reason))
    assert job.backend.exitcode == code


def test_a_kill_sets_no_exit_code(tmp_path: Path) -> None:
    (tmp_path / "__jobstatus__").write_text("PID: 12\n")
    job = StandInJob(batch_backend("12"), tmp_path, status="running")
    BatchApplier().before(job, entry(S.KILLED, "CANCELLED", "exit code 0:15"))
    assert (job.backend.id, job.backend.exitcode) == (12, None)


def test_condor_keeps_its_state_name_while_queued_and_clears_it_at_the_end(
    tmp_path: Path,
) -> None:
    job = StandInJob(batch_backend("101.0"), tmp_path)
    applier = CondorApplier()
    applier.before(job, entry(S.RUNNING, "Running", host="slot1@wn01", cpu=0.0))
    assert (job.backend.status, job.backend.actualCE, job.backend.cputime) == (
        "Running", "slot1@wn01", 0.0)  # fmt: skip
    applier.before(job, entry(S.COMPLETED, "Completed", "exit code 0", cpu=301.0))
    assert (job.backend.status, job.backend.actualCE, job.backend.cputime) == (
        "", "slot1@wn01", 301.0)  # fmt: skip


# -- started when used ------------------------------------------------------------------------


class Probed(BatchBackend):
    """A batch backend that records when its lifespan is entered and left."""

    name = "probed"

    def __init__(self) -> None:
        super().__init__(settings=BackendSettings(poll_interval=1.0, chunk_size=10**9))
        self.events: list[str] = []

    @contextlib.asynccontextmanager
    async def _life(self) -> AsyncIterator[None]:
        self.events.append("entered")
        yield
        self.events.append("left")

    def lifespan(self) -> contextlib.AbstractAsyncContextManager[None]:
        return self._life()

    async def query(self) -> dict[str, Any]:
        self.events.append("query")
        return {}

    def kill_command(self, job_id: str) -> list[str]:
        return ["true"]


async def test_a_backend_is_started_at_its_first_poll_and_stopped_with_monitoring() -> None:
    inner = Probed()
    backend = StartedWhenUsed(inner)
    assert (backend.name, backend.settings) == ("probed", inner.settings)
    async with backend.lifespan():
        assert inner.events == []  # nothing asked of a system no job uses
        ref = JobRef(1, "7", S.SUBMITTED)
        assert await backend.poll([ref]) == []
        assert await backend.poll([ref]) == []  # within the interval: the same listing
        assert inner.events == ["entered", "query"]
    assert inner.events == ["entered", "query", "left"]
    async with backend.lifespan():
        pass
    assert inner.events[-1] == "left"  # a run without jobs starts nothing


# -- the family's backends against fake commands, changes applied to stand-in jobs ------------

SLURM_FAKES = {
    # ping and show config: one output for both.
    "scontrol": "Slurmctld(primary) at localhost is UP\nMinJobAge = 10 sec\n",
    "sacct": "12|COMPLETED|0:0\n13|FAILED|3:0\n14|CANCELLED by 0|0:15\n",
    "squeue": "15|RUNNING|None\n16|PENDING|Priority\n",
}

SYSTEMS = [
    ("Slurm", SLURM_FAKES,
     {"12": S.COMPLETED, "13": S.FAILED, "14": S.KILLED, "15": S.RUNNING, "16": S.SUBMITTED}),
    ("LSF", {"bjobs": recorded("bjobs.json")},
     {"4711": S.RUNNING, "4712": S.SUBMITTED, "4713": S.COMPLETED, "4714": S.FAILED}),
    # Ganga keeps the number of qsub's "2003.pbs-head".
    ("PBS", {"qstat": recorded("qstat.json")},
     {"2001": S.RUNNING, "2003": S.COMPLETED, "2004.pbs-head": S.FAILED}),
    ("SGE", {"qstat": recorded("qstat.xml"), "qacct": recorded("qacct.txt")},
     {"301": S.RUNNING, "302": S.SUBMITTED, "303": S.FAILED, "300": S.COMPLETED}),
    ("Condor", {"condor_q": recorded("condor_q.json"),
                "condor_history": recorded("condor_history.json")},
     {"101.0": S.RUNNING, "103.0": S.FAILED, "99.0": S.COMPLETED, "98.0": S.KILLED}),
]  # fmt: skip

#: What each job's backend holds at the end, beside its status.
EXPECTED_BACKENDS = {
    "Slurm": {"12": (12, 0), "13": (13, 3), "14": (14, None), "15": (15, None),
              "16": ("16", None)},
    "LSF": {"4711": (4711, None), "4712": ("4712", None), "4713": (4713, 0),
            "4714": (4714, 3)},
    "PBS": {"2001": (2001, None), "2003": (2003, 0), "2004.pbs-head": (2004, -29)},
    "SGE": {"301": (301, None), "302": ("302", None), "303": (303, None), "300": (300, 0)},
}  # fmt: skip


async def wait_statuses(monitor: Monitor, ids: Sequence[int], expected: Sequence[Status]) -> None:
    for job, status in zip(ids, expected, strict=True):
        assert await monitor.wait_for(job, [status]) == status


@pytest.mark.parametrize(("ganga", "outputs", "expected"), SYSTEMS)
async def test_ganga_jobs_reach_their_batch_systems_statuses(
    ganga: str,
    outputs: dict[str, str],
    expected: dict[str, Status],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bin_dir = install_fakes(tmp_path, outputs)
    for name, text in outputs.items():
        (tmp_path / f"{name}.out").write_text(text)
    # Only the fakes (and the cat they run): a real system installed here stays unclaimed.
    (bin_dir / "cat").symlink_to("/bin/cat")
    monkeypatch.setenv("PATH", str(bin_dir))
    batch = BatchFamily({ganga: 0.2})
    assert batch.claims(ganga, None)
    jobs = []
    for batch_id in expected:
        outputdir = tmp_path / "out" / batch_id
        outputdir.mkdir(parents=True)
        jobs.append(StandInJob(batch_backend(batch_id), outputdir))
    made = [batch.new_job(job, ganga, S.SUBMITTED) for job in jobs]
    assert all(m is not None for m in made)
    pairs = [m for m in made if m is not None]
    store = Store(tmp_path / "jobs.sqlite")
    backends = batch.backends()
    monitor = Monitor(store, backends)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(monitor.run)
            ids = await monitor.track([new for new, _ in pairs])
            await wait_statuses(monitor, ids, list(expected.values()))
            monitor.stop()
    targets = {i: Target(job, applier) for i, job, (_, applier) in zip(ids, jobs, pairs,
                                                                         strict=True)}  # fmt: skip
    GangaWriter(track=lambda jobs: None, resolve=targets.get).apply(store.journal())
    assert [job.status for job in jobs] == [s.value for s in expected.values()]
    if ganga in EXPECTED_BACKENDS:
        assert {
            i: (job.backend.id, job.backend.exitcode) for i, job in zip(expected, jobs, strict=True)
        } == EXPECTED_BACKENDS[ganga]
    else:
        assert [(j.backend.status, j.backend.actualCE, j.backend.cputime) for j in jobs] == [
            ("Running", "slot1@wn01.example.org", 12.0), ("", "", ""),
            ("", "slot2@wn02.example.org", 301.0), ("", "", "")]  # fmt: skip
    # One listing per interval and no more: the prompt poll of the new jobs and the first
    # sweep share one.
    # PBS and SGE share the name qstat: both are built, only the used one is asked anything.
    [backend] = [b for b in backends if b.name == pairs[0][0].backend]
    assert isinstance(backend, StartedWhenUsed)
    assert all(b.inner.queries == 0 for b in backends if isinstance(b, StartedWhenUsed)
               and b is not backend)  # fmt: skip
    assert backend.inner.queries <= 3
