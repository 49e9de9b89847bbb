"""gangamon.ganga without Ganga: its parts against stand-ins for Ganga's job objects, real
processes for the Local watch, and the DIRAC simulator over real HTTPS for the Dirac wiring.

The same code runs against the real ganga package in tests/real_ganga (`nox -s ganga`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import anyio.from_thread
import pytest
import trio
from hypothesis import given, strategies as st

from gangamon import BackendSettings, JobRef, Status, Update, can_transition, parse_status
from gangamon._store import JournalEntry
from gangamon.backends.dirac import DiracBackend, DiracHttps, DiracStatus as D
from gangamon.ganga import BadJobSelection, GangaHooks, GangamonService, select_jobs
from gangamon.ganga._dirac import DiracApplier, DiracFamily, is_dirac
from gangamon.ganga._local import GangaLocalBackend, LocalJob, read_status_file
from gangamon.ganga._writer import GangaWriter, PlainApplier, Target
from gangamon.sim._certs import Credentials, make_credentials
from gangamon.sim.dirac import DiracSim, LatencyModel

S = Status


# -- stand-ins for Ganga's objects ------------------------------------------------------------


class StandInMaster:
    def __init__(self) -> None:
        self.updates = 0

    def updateMasterJobStatus(self) -> None:  # Ganga's name
        self.updates += 1


class StandInJob:
    """What the shim uses of a Ganga Job: status, updateStatus (Ganga's graph), master."""

    def __init__(
        self,
        fqid: str,
        status: str = "submitted",
        *,
        backend: Any = None,
        master: StandInMaster | None = None,
        outputdir: Path | None = None,
        inputdir: Path | None = None,
    ) -> None:
        self.fqid, self.status, self.master = fqid, status, master
        self.backend = backend if backend is not None else SimpleNamespace()
        self.outputdir = outputdir or Path("/nonexistent")
        self.inputdir = inputdir or Path("/nonexistent")
        self.updates: list[tuple[str, bool]] = []
        self.changed = threading.Condition()
        self.time = SimpleNamespace(timestamps={})  # Ganga's JobTime

    def getFQID(self, sep: str) -> str:  # Ganga's name
        return self.fqid

    def getOutputWorkspace(self) -> Any:  # Ganga's name
        return SimpleNamespace(getPath=lambda: str(self.outputdir))

    def getInputWorkspace(self) -> Any:  # Ganga's name
        return SimpleNamespace(getPath=lambda name="": str(self.inputdir / name))

    def updateStatus(self, new: str, update_master: bool = True) -> None:  # Ganga's name
        if not can_transition(parse_status(self.status), parse_status(new)):
            raise ValueError(f"forbidden status transition {self.status!r} -> {new!r}")
        with self.changed:
            self.updates.append((new, update_master))
            self.status = new
            self.changed.notify_all()

    def wait_status(self, status: str, timeout: float = 20.0) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: self.status == status, timeout)


def entry(
    job: int, new: Status, native: str | None = None, seq: int = 1, old: Status | None = None
) -> JournalEntry:
    return JournalEntry(seq, job, old, new, native, "", 0.0)


# -- runMonitoring's argument -------------------------------------------------------------------


def _select(value: object, registry: dict[int, StandInJob]) -> list[StandInJob]:
    return select_jobs(
        value,
        lookup=registry.get,
        is_job=lambda v: isinstance(v, StandInJob),
        all_jobs=lambda: list(registry.values()),
    )


@pytest.fixture
def registry() -> dict[int, StandInJob]:
    return {i: StandInJob(str(i)) for i in range(5)}


def test_run_monitoring_accepts_ids_jobs_slices_and_lists(registry: dict[int, StandInJob]) -> None:
    r = registry
    assert _select(None, r) == list(r.values())
    assert _select(3, r) == [r[3]]
    assert _select(r[2], r) == [r[2]]
    assert _select([1, r[2], (3, [4, 1])], r) == [r[1], r[2], r[3], r[4]]
    assert _select(iter([r[0]]), r) == [r[0]]  # a job slice is an iterable of jobs


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("3", "runMonitoring cannot monitor '3': give job ids"),
        (4.5, "runMonitoring cannot monitor 4.5: give job ids"),
        (True, "runMonitoring cannot monitor True"),
        (99, "runMonitoring: no job with id 99"),
        ([1, None], "runMonitoring cannot monitor None in [1, None]"),
    ],
)
def test_run_monitoring_names_what_it_cannot_use(
    registry: dict[int, StandInJob], value: object, message: str
) -> None:
    with pytest.raises(BadJobSelection) as raised:
        _select(value, registry)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


@given(st.recursive(st.integers(0, 4), lambda inner: st.lists(inner, max_size=4), max_leaves=20))
def test_any_nesting_of_known_ids_gives_each_job_once_in_first_seen_order(value: object) -> None:
    registry = {i: StandInJob(str(i)) for i in range(5)}

    def flatten(v: object) -> Iterator[int]:
        if isinstance(v, int):
            yield v
        else:
            for item in v:  # type: ignore[attr-defined]
                yield from flatten(item)

    expected = list(dict.fromkeys(flatten(value)))
    assert [j.fqid for j in _select(value, registry)] == [str(i) for i in expected]


# -- the writer ---------------------------------------------------------------------------------


def writer_for(targets: dict[int, Target], finished: list[int] | None = None) -> GangaWriter:
    done = finished if finished is not None else []
    return GangaWriter(track=lambda jobs: None, resolve=targets.get, finished=done.append)


def test_subjob_changes_update_each_master_once_per_batch() -> None:
    master = StandInMaster()
    subjobs = [StandInJob(f"7.{i}", master=master) for i in range(3)]
    targets = {i: Target(sj, PlainApplier()) for i, sj in enumerate(subjobs)}
    finished: list[int] = []
    writer_for(targets, finished).apply(
        [entry(i, S.RUNNING, old=S.SUBMITTED) for i in range(3)]
        + [entry(i, S.COMPLETED, old=S.RUNNING) for i in range(3)]
    )
    assert [sj.updates for sj in subjobs] == [[("running", False), ("completed", False)]] * 3
    assert master.updates == 1
    assert finished == [0, 1, 2]


def test_a_job_already_in_the_status_is_left_alone_and_a_refusal_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # An adapted backend set it itself; Ganga would rerun the hooks on a same-status update.
    done = StandInJob("1", "completed")
    killed = StandInJob("2", "killed")
    writer = writer_for({1: Target(done, PlainApplier()), 2: Target(killed, PlainApplier())})
    writer.apply([entry(1, S.COMPLETED, old=S.RUNNING), entry(2, S.RUNNING, old=S.KILLED)])
    assert done.updates == []
    assert killed.status == "killed"
    assert writer.refused == 1
    assert "Ganga refused job 2: killed -> running" in caplog.text


def test_a_job_ganga_moved_meanwhile_is_not_moved_again() -> None:
    # The user killed it; its wrapper then died without an exit code, which gangamon saw as
    # failed. Ganga's graph allows killed -> failed: the writer must not take it.
    killed = StandInJob("8", "killed")
    finished: list[int] = []
    writer = writer_for({1: Target(killed, PlainApplier())}, finished)
    writer.apply([entry(1, S.FAILED, "no exit code", old=S.RUNNING)])
    assert (killed.status, killed.updates, writer.refused) == ("killed", [], 0)
    assert finished == [1]


def test_the_status_gangamon_took_from_ganga_is_never_written_back() -> None:
    # Tracked from its submitted-hook; the user set it failed (force_status) before the
    # journal's first entry for it (no old status: "added") reached the writer. Ganga allows
    # failed -> submitted: written back, it would refuse the user's next resubmit.
    job = StandInJob("0.0", "failed")
    writer = writer_for({1: Target(job, PlainApplier())})
    writer.apply([entry(1, S.SUBMITTED)])
    assert (job.status, job.updates, writer.refused) == ("failed", [], 0)


def test_changes_wait_for_ganga_to_finish_submitting_the_job() -> None:
    job = StandInJob("3", "submitting")
    writer = writer_for({1: Target(job, PlainApplier())})
    writer.start()
    try:
        writer.change(entry(1, S.RUNNING, seq=1, old=S.SUBMITTED))
        writer.change(entry(1, S.COMPLETED, seq=2, old=S.RUNNING))
        job.updateStatus("submitted")  # what Ganga's submit does once its hook has returned
        assert job.wait_status("completed")
        assert job.updates == [("submitted", True), ("running", False), ("completed", False)]
    finally:
        assert writer.stop(5.0)


class _SubmitCalls:
    """The writer's `submitting` predicate for one job object inside its own submit."""

    def __init__(self, job: object) -> None:
        self.job: object | None = job
        self.asked = threading.Event()

    def __call__(self, job: object) -> bool:
        if job is self.job:
            self.asked.set()
            return True
        return False


def test_changes_wait_for_the_jobs_own_submit_to_return() -> None:
    # Ganga's submit sets the job submitted in its backend's master_submit (the hook: gangamon
    # tracks it), then once more just before returning, from whatever status it has then: a
    # short job applied running and completed in between went back to submitted for good.
    job = StandInJob("3", "submitted")
    submit = _SubmitCalls(job)
    targets = {1: Target(job, PlainApplier())}
    writer = GangaWriter(track=lambda jobs: None, resolve=targets.get, submitting=submit)
    writer.start()
    try:
        writer.change(entry(1, S.RUNNING, seq=1, old=S.SUBMITTED))
        writer.change(entry(1, S.COMPLETED, seq=2, old=S.RUNNING))
        assert submit.asked.wait(20.0)
        assert job.updates == []
        job.status = "submitted"  # Ganga's second set (running -> submitted is in its graph)
        submit.job = None  # submit() has returned
        assert job.wait_status("completed")
        assert job.updates == [("running", False), ("completed", False)]
    finally:
        assert writer.stop(5.0)


class _CountedMaster(StandInMaster):
    def __init__(self) -> None:
        super().__init__()
        self.updated = threading.Event()

    def updateMasterJobStatus(self) -> None:  # Ganga's name
        super().updateMasterJobStatus()
        self.updated.set()


def test_a_master_is_updated_only_once_its_own_submit_has_returned() -> None:
    # Its submit ends with the master set submitted, whatever its subjobs made it meanwhile.
    master = _CountedMaster()
    subjob = StandInJob("4.0", master=master)
    submit = _SubmitCalls(master)
    targets = {1: Target(subjob, PlainApplier())}
    writer = GangaWriter(track=lambda jobs: None, resolve=targets.get, submitting=submit)
    writer.start()
    try:
        writer.change(entry(1, S.RUNNING, old=S.SUBMITTED))
        assert submit.asked.wait(20.0)
        assert subjob.wait_status("running")
        assert master.updates == 0
        submit.job = None
        assert master.updated.wait(20.0)
        assert master.updates == 1
    finally:
        assert writer.stop(5.0)


def test_a_master_is_updated_at_most_once_a_second_and_after_its_last_change() -> None:
    # Ganga's updateMasterJobStatus reads every subjob's status: once per batch of changes,
    # it was most of the writer's time with 3000 subjobs ending over 30 s.
    master = StandInMaster()
    subjobs = [StandInJob(f"9.{i}", master=master) for i in range(3)]
    now = [100.0]
    writer = GangaWriter(
        track=lambda jobs: None,
        resolve={i: Target(sj, PlainApplier()) for i, sj in enumerate(subjobs)}.get,
        clock=lambda: now[0],
    )
    writer.apply([entry(0, S.RUNNING, old=S.SUBMITTED)])
    assert master.updates == 1
    now[0] += 0.5
    writer.apply([entry(1, S.RUNNING, old=S.SUBMITTED)])
    writer.apply([entry(2, S.RUNNING, old=S.SUBMITTED)])
    assert master.updates == 1
    assert writer._masters_due() == pytest.approx(0.5)
    now[0] += 0.5
    writer.apply([])  # what the thread does once that time is up, with nothing new
    assert master.updates == 2
    assert writer._masters_due() is None
    assert [sj.status for sj in subjobs] == ["running"] * 3


def test_the_service_knows_which_jobs_are_inside_their_own_submit(tmp_path: Path) -> None:
    service = GangamonService(adapter_hooks([], {}), workdir=tmp_path)
    job = StandInJob("5")
    with service.submitting(job):
        with service.submitting(job):  # resubmit() within submit(), say
            pass
        assert service._is_submitting(job)
    assert not service._is_submitting(job)


# -- Ganga's Local jobs ---------------------------------------------------------------------------

# What Ganga's LocalHostExec wrapper records, in its order; the application is `sh -c $1`.
FAKE_WRAPPER = """
import os, subprocess, sys
status = open(sys.argv[1], "w")
child = subprocess.Popen(["/bin/sh", "-c", sys.argv[2]])
print(f"WRAPPER: {os.getpid()}", file=status)
print(f"PID: {child.pid}", file=status, flush=True)
code = child.wait()
if sys.argv[3] == "record":
    print(f"EXITCODE: {code}", file=status)
status.close()
"""


@contextlib.contextmanager
def fake_ganga_job(tmp_path: Path, command: str, *, record: bool = True) -> Iterator[JobRef]:
    script = tmp_path / "__jobscript__"
    script.write_text(FAKE_WRAPPER)
    status_file = tmp_path / "__jobstatus__"
    argv = [sys.executable, str(script), str(status_file), command, "record" if record else "no"]
    with subprocess.Popen(argv) as wrapper:
        local = LocalJob(str(status_file), str(script))
        try:
            yield JobRef(1, local.backend_id(), S.SUBMITTED)
        finally:
            wrapper.kill()


def read_status_text(job: JobRef) -> str:
    return Path(LocalJob.parse(job.backend_id).status_file).read_text()


async def watch_all(job: JobRef) -> list[Update]:
    with trio.fail_after(20):
        return [u async for u in GangaLocalBackend().watch(job)]


@pytest.mark.parametrize(
    ("command", "status", "native"),
    [("exit 0", S.COMPLETED, "EXITCODE: 0"), ("exit 3", S.FAILED, "EXITCODE: 3")],
)
async def test_local_job_runs_then_ends_with_its_exit_code(
    tmp_path: Path, command: str, status: Status, native: str
) -> None:
    # Long enough for the start to be seen (the status file is read every 0.25 s until then).
    with fake_ganga_job(tmp_path, f"sleep 0.6; {command}") as job:
        updates = await watch_all(job)
    assert [u.status for u in updates] == [S.RUNNING, status]
    assert updates[0].native_status is not None
    assert updates[0].native_status.startswith("PID: ")
    assert updates[-1].native_status == native


async def test_a_wrapper_killed_from_outside_fails_the_job(tmp_path: Path) -> None:
    with fake_ganga_job(tmp_path, "sleep 30", record=False) as job, trio.fail_after(20):
        watch = GangaLocalBackend(vanished_grace=0.1).watch(job)
        running = await anext(watch)
        assert running.status == S.RUNNING
        # The wrapper wrote its pid before the application's, which the watch has seen.
        text = read_status_text(job)
        os.kill(int(text.split("WRAPPER: ")[1].split()[0]), signal.SIGKILL)
        failed = await anext(watch)
        assert [u async for u in watch] == []  # and the watch is over
    assert failed.status == S.FAILED
    assert "killed from outside" in failed.reason


status_lines = st.one_of(
    st.tuples(st.sampled_from(["WRAPPER", "PID", "EXITCODE"]), st.integers(-9999, 2**22)),
    st.tuples(st.sampled_from(["START", "STOP", "FAILED", "junk"]), st.text("ab :\t", max_size=8)),
)


@given(st.lists(status_lines, max_size=8))
def test_the_status_file_reader_takes_each_fields_first_value(
    lines: list[tuple[str, object]],
) -> None:
    # One file per example: tmp_path is per test, not per example.
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "__jobstatus__")
        path.write_text("".join(f"{key}: {value}\n" for key, value in lines))
        state = read_status_file(str(path))

    def first(key: str) -> object:
        values = [v for k, v in lines if k == key and (key == "EXITCODE" or int(str(v)) >= 0)]
        return values[0] if values else None

    assert (state.wrapper, state.pid, state.exitcode) == (
        first("WRAPPER"),
        first("PID"),
        first("EXITCODE"),
    )


def test_a_missing_status_file_reads_as_nothing_yet(tmp_path: Path) -> None:
    state = read_status_file(str(tmp_path / "nope"))
    assert (state.wrapper, state.pid, state.exitcode) == (None, None, None)


async def test_a_job_whose_wrapper_finished_before_tracking_is_final_at_once(
    tmp_path: Path,
) -> None:
    status_file = tmp_path / "__jobstatus__"
    status_file.write_text("START: x\nWRAPPER: 999999\nPID: 999998\nEXITCODE: 0\nSTOP: x\n")
    job = JobRef(1, LocalJob(str(status_file), "/nope").backend_id(), S.RUNNING)
    assert [(u.status, u.native_status) for u in await watch_all(job)] == [
        (S.COMPLETED, "EXITCODE: 0")
    ]


# -- Ganga's Dirac jobs on gangamon's DiracBackend --------------------------------------------


class DiracBase:
    """Named like GangaDirac's base class: `is_dirac` goes by the class name."""

    def __init__(self, dirac_id: int) -> None:
        self.id = dirac_id
        self.status: str | None = None
        self.statusInfo = ""


class Dirac(DiracBase):
    pass


def test_dirac_backends_are_recognised_by_their_base_class() -> None:
    assert is_dirac(Dirac(1))
    assert not is_dirac(SimpleNamespace(id=1))


def test_dirac_applier_records_dirac_status_and_hands_over_the_output(tmp_path: Path) -> None:
    downloaded = tmp_path / "dirac" / "1001"
    downloaded.mkdir(parents=True)
    (downloaded / "out.txt").write_text("result")
    job = StandInJob("4", "running", backend=Dirac(1001), outputdir=tmp_path / "job4")
    DiracApplier(tmp_path / "dirac").before(
        job, JournalEntry(1, 1, S.RUNNING, S.COMPLETED, "Done", "Execution Complete", 0.0)
    )
    assert (job.backend.status, job.backend.statusInfo) == ("Done", "Execution Complete")
    assert (tmp_path / "job4" / "out.txt").read_text() == "result"
    assert not downloaded.exists()


@pytest.fixture(scope="module")
def credentials(tmp_path_factory: pytest.TempPathFactory) -> Credentials:
    return make_credentials(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def dirac_sim(
    credentials: Credentials,
) -> Iterator[tuple[DiracSim, anyio.from_thread.BlockingPortal]]:
    """The DIRAC simulator serving HTTPS from a trio thread of its own."""
    sim = DiracSim(
        seed=3,
        latency=LatencyModel(base=0.002, per_id=0.0, tail_probability=0.0),
        credentials=credentials,
    )
    with anyio.from_thread.start_blocking_portal("trio") as portal:
        task, _ = portal.start_task(sim.serve)
        yield sim, portal
        task.cancel()


def stand_in_hooks(jobs: list[StandInJob]) -> GangaHooks:
    return GangaHooks(
        registry_jobs=lambda: jobs,
        job_by_id=lambda i: next((j for j in jobs if j.fqid == str(i)), None),
        is_job=lambda v: isinstance(v, StandInJob),
        status_of=lambda j: j.status,
        backend_name=lambda j: type(j.backend).__name__,
        active_subjobs=lambda j: [],
        backend_classes=lambda: {"Dirac": Dirac},
        poll_config={},
    )


def test_ganga_dirac_jobs_are_monitored_by_gangamons_dirac_backend(
    tmp_path: Path,
    credentials: Credentials,
    dirac_sim: tuple[DiracSim, anyio.from_thread.BlockingPortal],
) -> None:
    sim, portal = dirac_sim
    now = portal.call(trio.current_time)
    path = [
        (now, D.RECEIVED, ""),
        (now + 0.3, D.RUNNING, ""),
        (now + 0.6, D.DONE, "Execution Complete"),
    ]
    dirac_ids = [sim.add_job(path) for _ in range(3)]
    jobs = [
        StandInJob(str(i), backend=Dirac(d), outputdir=tmp_path / f"job{i}")
        for i, d in enumerate(dirac_ids)
    ]
    backend = DiracBackend(
        DiracHttps(sim.url, proxy=credentials.proxy, ca=credentials.ca_file),
        output_dir=tmp_path / "dirac",
        settings=BackendSettings(poll_interval=0.2, call_deadline=5.0),
        name="Dirac",
    )
    service = GangamonService(
        stand_in_hooks(jobs), dirac=DiracFamily(backend, tmp_path / "dirac"), workdir=tmp_path
    )
    assert service.enable()
    try:
        for job in jobs:
            assert job.wait_status("completed"), job.updates
    finally:
        assert service.disable()
    for job in jobs:
        assert job.updates == [
            ("running", False),
            ("completing", False),
            ("completed", False),
        ]
        assert job.backend.status == "Done"
        assert any((job.outputdir).iterdir())  # the sandbox, unpacked where Ganga looks
    assert sum(sim.stats.calls.values()) >= 1


# -- every other Ganga backend, through the adapter family ------------------------------------


class Hanging:
    """A Ganga backend class whose monitoring never returns: a batch system that hangs."""

    entered = threading.Event()
    release = threading.Event()

    @staticmethod
    def updateMonitoringInformation(jobs: list[StandInJob]) -> None:  # Ganga's name
        Hanging.entered.set()
        Hanging.release.wait()


class Marking:
    """A Ganga backend class that sets its jobs' statuses itself, as Ganga's Batch does."""

    @staticmethod
    def updateMonitoringInformation(jobs: list[StandInJob]) -> None:  # Ganga's name
        for job in jobs:
            job.updateStatus("running")


class AsyncMarking:
    """An asyncio Ganga backend (as Localhost and DiracBase are in 8.7.12)."""

    loops: ClassVar[list[object]] = []

    @staticmethod
    async def updateMonitoringInformation(jobs: list[StandInJob]) -> None:  # Ganga's name
        AsyncMarking.loops.append(asyncio.get_running_loop())
        await asyncio.sleep(0)
        for job in jobs:
            job.updateStatus("running")


def adapter_hooks(jobs: list[StandInJob], classes: dict[str, type]) -> GangaHooks:
    return dataclasses.replace(
        stand_in_hooks(jobs),
        backend_name=lambda j: j.backend.kind,
        backend_classes=lambda: classes,
        poll_config={"Marking": 0.2, "Hanging": 0.2, "AsyncMarking": 0.2},
    )


def test_an_adapted_backend_sets_its_jobs_itself_and_gangamon_follows(tmp_path: Path) -> None:
    job = StandInJob("5", backend=SimpleNamespace(kind="Marking"))
    service = GangamonService(adapter_hooks([job], {"Marking": Marking}), workdir=tmp_path)
    assert service.enable()
    try:
        assert job.wait_status("running")
        embedded = service._embedded
        assert embedded is not None
        assert embedded.wait_for(1, [S.RUNNING], timeout=20) == S.RUNNING  # the store follows
        assert job.updates == [("running", True)]  # Ganga's own call; never a second one
    finally:
        assert service.disable()


def test_an_asyncio_ganga_backend_runs_on_a_trio_asyncio_loop(tmp_path: Path) -> None:
    job = StandInJob("7", backend=SimpleNamespace(kind="AsyncMarking"))
    hooks = adapter_hooks([job], {"AsyncMarking": AsyncMarking})
    service = GangamonService(hooks, workdir=tmp_path)
    assert service.enable()
    try:
        assert job.wait_status("running")
        assert job.updates == [("running", True)]
    finally:
        assert service.disable()
    assert type(AsyncMarking.loops[0]).__module__.startswith("trio_asyncio")


def test_disabling_is_bounded_when_an_adapted_backend_hangs(tmp_path: Path) -> None:
    job = StandInJob("6", backend=SimpleNamespace(kind="Hanging"))
    service = GangamonService(
        adapter_hooks([job], {"Hanging": Hanging}), workdir=tmp_path, deadline=1.0
    )
    assert service.enable()
    try:
        assert Hanging.entered.wait(20)
        started = time.monotonic()
        assert service.disable() is False  # its thread abandoned, not waited for
        assert time.monotonic() - started < 2.0
        assert not service.enabled
    finally:
        Hanging.release.set()


class Recording:
    """A Ganga backend class that records the jobs each of its polls is given."""

    polls: ClassVar[list[list[str]]] = []

    @staticmethod
    def updateMonitoringInformation(jobs: list[StandInJob]) -> None:  # Ganga's name
        Recording.polls.append([job.fqid for job in jobs])
        for job in jobs:
            job.updateStatus("running")


def test_a_newly_tracked_adapter_job_is_in_the_first_poll(tmp_path: Path) -> None:
    # The next poll is an hour away: only the one made as the job is tracked can move it.
    job = StandInJob("9", backend=SimpleNamespace(kind="Recording"))
    hooks = dataclasses.replace(
        adapter_hooks([job], {"Recording": Recording}), poll_config={"Recording": 3600}
    )
    service = GangamonService(hooks, workdir=tmp_path)
    assert service.enable()
    try:
        assert job.wait_status("running")
        assert Recording.polls[0] == ["9"]
    finally:
        assert service.disable()


# -- runs: a resubmitted job is a new run ----------------------------------------------------


class StandInLocal:
    """What the shim touches of Ganga's Localhost backend."""

    kind = "Local"

    def __init__(self) -> None:
        self.id: int | None = None
        self.exitcode: int | None = None

    def remove_workdir(self) -> None:  # Ganga's name
        pass


def test_a_job_killed_and_resubmitted_at_once_is_monitored_in_its_new_run(
    tmp_path: Path,
) -> None:
    inputdir, outputdir = tmp_path / "input", tmp_path / "output"
    inputdir.mkdir()
    outputdir.mkdir()
    script = inputdir / "__jobscript__"
    script.write_text(FAKE_WRAPPER)
    status_file = outputdir / "__jobstatus__"
    job = StandInJob("1", "new", backend=StandInLocal(), outputdir=outputdir, inputdir=inputdir)
    service = GangamonService(adapter_hooks([job], {}), workdir=tmp_path)
    wrappers: list[subprocess.Popen[bytes]] = []

    def submit(command: str) -> None:
        # What Ganga's submit and resubmit do, in their order: the output directory emptied,
        # the submitted-hook called while the job is still submitting, the wrapper started.
        status_file.unlink(missing_ok=True)
        job.updateStatus("submitting")
        service.submitted(job)
        argv = [sys.executable, str(script), str(status_file), command, "record"]
        wrappers.append(subprocess.Popen(argv))
        job.updateStatus("submitted")

    assert service.enable()
    try:
        submit("sleep 30")
        assert job.wait_status("running")
        wrappers[0].kill()  # what j.kill() does, then sets the job killed
        job.updateStatus("killed")
        # Resubmitted at once: the first run's watch has yet to see its wrapper gone.
        submit("exit 0")
        assert job.wait_status("completed"), job.updates
        assert job.updates[-1] == ("completed", False)
        assert job.backend.exitcode == 0
    finally:
        for wrapper in wrappers:
            wrapper.kill()
            wrapper.wait()
        assert service.disable()
