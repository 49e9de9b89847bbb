"""The DIRAC backend against the simulator over real HTTPS on loopback (real clock)."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import logging
import tarfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from gangamon import (
    AsyncStore,
    BackendSettings,
    GangamonError,
    Monitor,
    NewJob,
    Status,
    Store,
    Transition,
    fetch_output,
)
from gangamon._control import kill_jobs
from gangamon.backends import BackendError, JobRef
from gangamon.backends.dirac import DiracBackend, DiracHttps, DiracStatus as D, ganga_status
from gangamon.backends.dirac._prefetch import SandboxPrefetch
from gangamon.backends.dirac._wire import JobState, decode_job_states, tornado_body
from gangamon.sim import _job_facts as facts
from gangamon.sim._certs import Credentials, make_credentials
from gangamon.sim.dirac import DiracSim, LatencyModel

FAST = LatencyModel(base=0.002, per_id=1e-7, tail_probability=0.0)


@pytest.fixture(scope="module")
def credentials(tmp_path_factory: pytest.TempPathFactory) -> Credentials:
    return make_credentials(tmp_path_factory.mktemp("pki"))


@pytest.fixture
async def sim(credentials: Credentials, nursery: trio.Nursery) -> DiracSim:
    sim = DiracSim(seed=7, mean_runtime=1.0, latency=FAST, credentials=credentials)
    await nursery.start(sim.serve)
    return sim


def backend(
    sim: DiracSim,
    credentials: Credentials,
    tmp_path: Path,
    *,
    download: bool = True,
    **settings: Any,
) -> DiracBackend:
    transport = DiracHttps(sim.url, proxy=credentials.proxy, ca=credentials.ca_file)
    base: dict[str, Any] = {
        "poll_interval": 0.5,
        "chunk_size": 1000,
        "concurrency": 8,
        "call_deadline": 2.0,
        "restart_delay": 0.1,
        "max_restart_delay": 0.5,
    }
    base.update(settings)
    return DiracBackend(
        transport,
        output_dir=tmp_path / "out",
        download_output=download,
        settings=BackendSettings(**base),
    )


def expected(sim: DiracSim, dirac_id: str) -> Status:
    status, minor = sim.jobs[int(dirac_id)].path[-1][1:]
    return ganga_status(status, minor)


async def wait_restarts(monitor: Monitor, n: int) -> None:
    """Until the backend has restarted `n` times (checked every 0.1 s; the restarts are the
    event, and nothing signals them)."""
    while monitor.statistics().backends["dirac"].restarts < n:  # noqa: ASYNC110
        await trio.sleep(0.1)


async def run_until_final(store: Store, monitor: Monitor, jobs: list[int], limit: float) -> None:
    with trio.fail_after(limit):
        async with trio.open_nursery() as nursery:
            await nursery.start(monitor.run)
            for job in jobs:
                await monitor.wait_for(job, [Status.COMPLETED, Status.FAILED, Status.KILLED])
            monitor.stop()


@pytest.mark.realtime
async def test_ten_thousand_jobs_reach_the_right_status(
    sim: DiracSim, credentials: Credentials, tmp_path: Path
) -> None:
    store = Store(tmp_path / "jobs.sqlite")
    dirac_ids = sim.submit(10_000)
    ids = store.add_jobs([NewJob("dirac", str(i), Status.SUBMITTED) for i in dirac_ids])
    monitor = Monitor(store, [backend(sim, credentials, tmp_path, download=False)])
    await run_until_final(store, monitor, ids, limit=60)
    wrong = [j for j in store.jobs() if j.status != expected(sim, j.backend_id or "")]
    assert wrong == []
    stats = monitor.statistics().backends["dirac"]
    assert stats.errors == stats.timeouts == stats.garbage == 0
    assert sim.stats.peak_in_flight <= 8
    # Between full sweeps, what changed among the jobs of their owner (learnt once).
    assert set(sim.stats.calls) == {"getJobsStates", "getJobs", "getJobsSummary"}
    assert sim.stats.calls["getJobsSummary"] == 1


async def test_faults_lose_and_mismap_nothing(
    sim: DiracSim, credentials: Credentials, tmp_path: Path
) -> None:
    store = Store(tmp_path / "jobs.sqlite")
    dirac_ids = sim.submit(300)
    ids = store.add_jobs([NewJob("dirac", str(i), Status.SUBMITTED) for i in dirac_ids])
    for fault in ("s_error", "http500", "reset", "hang"):
        sim.inject(fault, 2)
    b = backend(sim, credentials, tmp_path, chunk_size=50, concurrency=3, call_deadline=0.5)
    monitor = Monitor(store, [b])
    await run_until_final(store, monitor, ids, limit=60)
    assert [j.id for j in store.jobs() if j.status != expected(sim, j.backend_id or "")] == []
    stats = monitor.statistics().backends["dirac"]
    assert sum(sim.stats.faults_served.values()) == 8
    assert stats.errors >= 6
    assert stats.timeouts >= 2
    assert sim.stats.peak_in_flight <= 3 + 4  # polls + finalisations (DIRAC_SETTINGS: 4)


async def test_finalisation_downloads_the_output_sandbox(
    sim: DiracSim, credentials: Credentials, tmp_path: Path
) -> None:
    store = Store(tmp_path / "jobs.sqlite")
    path = [
        (0.0, D.RECEIVED, "Job accepted"),
        (0.6, D.RUNNING, "Application"),
        (1.5, D.DONE, "Execution Complete"),
    ]
    dirac_id = sim.add_job([(trio.current_time() + t, s, m) for t, s, m in path])
    [job] = store.add_jobs([NewJob("dirac", str(dirac_id), Status.SUBMITTED)])
    monitor = Monitor(store, [backend(sim, credentials, tmp_path)])
    await run_until_final(store, monitor, [job], limit=20)
    assert [(e.new, e.native_status) for e in store.journal(job=job)] == [
        (Status.SUBMITTED, None),
        (Status.SUBMITTED, "Received"),
        (Status.RUNNING, "Running"),
        (Status.COMPLETING, "Done"),
        (Status.COMPLETED, "Done"),
    ]
    out = tmp_path / "out" / str(dirac_id) / "std.out"
    assert out.read_text() == f"output of simulated DIRAC job {dirac_id}\n"
    today = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    assert f"Done at {today}" in store.journal(job=job)[-1].reason
    # DIRAC's logging info said when the job was Done: one time-to-detect figure (seconds
    # resolution, so anything from 0 up to the poll interval and the download).
    detection = monitor.detection.statistics()
    assert detection.count == 1
    assert 0 <= detection.sum < 10


async def test_a_client_without_certificate_gets_one_clear_error(
    sim: DiracSim, credentials: Credentials, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = Store(tmp_path / "jobs.sqlite")
    [dirac_id] = sim.submit(1)
    store.add_jobs([NewJob("dirac", str(dirac_id), Status.SUBMITTED)])
    b = backend(sim, credentials, tmp_path)
    b.transport.proxy = None  # no client certificate at all
    monitor = Monitor(store, [b])
    with caplog.at_level(logging.ERROR, logger="gangamon.backend"):
        async with trio.open_nursery() as nursery:
            await nursery.start(monitor.run)
            await wait_restarts(monitor, 3)
            monitor.stop()
    problem = monitor.statistics().backends["dirac"].problem
    assert problem is not None
    assert "refused our credentials (401)" in problem
    assert len([r for r in caplog.records if "unavailable" in r.getMessage()]) == 1
    assert sim.stats.unauthenticated >= 3


@pytest.mark.parametrize("which", ["missing", "expired"])
async def test_missing_or_expired_proxy_is_one_clear_error(
    which: str,
    credentials: Credentials,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    autojump_clock: trio.testing.MockClock,
) -> None:
    # No network here (the proxy is checked before any call): virtual time is safe.
    proxy = tmp_path / "nope.pem" if which == "missing" else credentials.expired_proxy
    transport = DiracHttps("https://127.0.0.1:9", proxy=proxy, ca=credentials.ca_file)
    b = DiracBackend(transport, output_dir=tmp_path)
    store = Store(tmp_path / "jobs.sqlite")
    store.add_jobs([NewJob("dirac", "1", Status.SUBMITTED)])
    monitor = Monitor(AsyncStore(store, in_thread=False), [b])
    with caplog.at_level(logging.ERROR, logger="gangamon.backend"):
        async with trio.open_nursery() as nursery:
            await nursery.start(monitor.run)
            await trio.sleep(599)
            monitor.stop()
    stats = monitor.statistics().backends["dirac"]
    assert stats.restarts == 10  # one check per max_restart_delay (60 s), no crash loop
    words = "no DIRAC proxy at" if which == "missing" else "expired at"
    assert stats.problem is not None
    assert words in stats.problem
    assert str(proxy) in stats.problem
    assert len([r for r in caplog.records if "unavailable" in r.getMessage()]) == 1
    assert store.jobs()[0].status == Status.SUBMITTED


@pytest.mark.parametrize(
    ("accept", "ids", "gzipped"),
    [("gzip, deflate", 100, True), ("identity", 100, False), ("gzip", 1, False)],
)
async def test_json_replies_are_gzipped_as_dirac_tornado_server_does(
    sim: DiracSim, credentials: Credentials, accept: str, ids: int, gzipped: bool
) -> None:
    # DIRAC's Tornado server runs with compress_response: JSON of 1 KiB or more is gzipped
    # for a client that accepts it (the real client, through requests, always does).
    wanted = sim.submit(ids)
    context = DiracHttps(sim.url, proxy=credentials.proxy, ca=credentials.ca_file)._ssl_context()
    async with httpx.AsyncClient(verify=context) as client:
        response = await client.post(
            f"{sim.url}/WorkloadManagement/TornadoJobMonitoring",
            content=tornado_body("getJobsStates", [wanted]),
            headers={"Accept-Encoding": accept},
        )
    assert response.status_code == 200
    assert (response.headers.get("Content-Encoding") == "gzip") is gzipped
    assert len(response.content) >= 1024 or not gzipped  # decoded by httpx
    assert sorted(decode_job_states(response.content)) == wanted


async def test_poll_maps_each_state_and_names_an_unknown_one(tmp_path: Path) -> None:
    # The (Status, MinorStatus) memo must not blur states: same status, other minor status.
    replies: list[dict[int, JobState]] = [
        {
            1: JobState("Completed", "Pending Requests"),
            2: JobState("Completed", "Uploading Output Data"),
            3: JobState("Done", "Execution Complete"),
            4: JobState("Received", "Job accepted"),
        },
        {1: JobState("Exploded", "Boom")},
    ]

    class Replay:
        proxy = None

        async def job_states(self, ids: list[int]) -> dict[int, JobState]:
            return replies.pop(0)

    b = DiracBackend(Replay(), output_dir=tmp_path)  # type: ignore[arg-type]
    jobs = [JobRef(10 + i, str(i), Status.SUBMITTED, "Received") for i in (1, 2, 3, 4)]
    updates = {u.job: (u.status, u.native_status) for u in await b.poll(jobs)}
    assert updates == {
        11: (Status.RUNNING, "Completed"),
        12: (Status.RUNNING, "Completed"),
        13: (Status.COMPLETED, "Done"),
    }  # job 14 is unchanged: no update
    with pytest.raises(BackendError, match=r"DIRAC job 1: .*'Exploded'"):
        await b.poll(jobs[:1])


async def test_details_in_bulk_and_sandboxes_as_dirac_names_them(
    credentials: Credentials, nursery: trio.Nursery, tmp_path: Path
) -> None:
    """With `details`, what Ganga's DIRAC monitor asks per job comes from bulk calls, and the
    sandboxes DIRAC names `SB:<SE>|/SandBox/...` come through the Tornado SandboxStore."""
    sim = DiracSim(
        seed=11, mean_runtime=1.0, latency=FAST, credentials=credentials, sandbox_pfns="dirac"
    )
    await nursery.start(sim.serve)
    store = Store(tmp_path / "jobs.sqlite")
    dirac_ids = sim.submit(40)
    ids = store.add_jobs([NewJob("dirac", str(i), Status.SUBMITTED) for i in dirac_ids])
    b = DiracBackend(
        DiracHttps(sim.url, proxy=credentials.proxy, ca=credentials.ca_file),
        output_dir=tmp_path / "out",
        settings=BackendSettings(poll_interval=0.5, call_deadline=2.0),
        details=True,
    )
    monitor = Monitor(store, [b])
    await run_until_final(store, monitor, ids, limit=60)
    done = [j for j in store.jobs() if j.native_status == "Done"]
    ended = [j for j in store.jobs() if j.status in (Status.FAILED, Status.KILLED)]
    assert done
    assert ended
    for job in done:
        # The details came with the change to Done (the move to completing).
        [entry] = [e for e in store.journal(job=job.id) if e.new == Status.COMPLETING]
        details = entry.details or {}
        assert details["site"] == facts.site_of(int(job.backend_id or 0))
        assert {"running_at", "ended_at", "norm_cpu_time"} <= set(details)
        lfns = facts.output_lfns(int(job.backend_id or 0))
        if lfns:
            files = details["output_data"]
            assert isinstance(files, list)
            assert [(f["lfn"], f["guid"]) for f in files] == [(n, facts.guid_of(n)) for n in lfns]
        assert any((tmp_path / "out" / str(job.backend_id)).iterdir())
    for job in ended:
        assert "ended_at" in (store.journal(job=job.id)[-1].details or {})
    calls = sim.stats.calls
    assert calls["getJobLoggingInfo"] == 0  # no per-job state times
    # At most one summary and one parameters call a poll (the polls of jobs near their end
    # ask the summary alone), however many jobs changed.
    polls = monitor.statistics().backends["dirac"].calls
    assert calls["getJobsStates"] + calls["getJobsSummary"] <= 2 * polls
    assert calls["getJobParameters"] <= polls < len(dirac_ids)
    assert calls["getSandboxesAssignedToEntity"] == calls["streamToClient"] == len(done)


async def test_a_done_jobs_sandbox_is_fetched_while_its_details_are(
    credentials: Credentials, nursery: trio.Nursery, tmp_path: Path
) -> None:
    """The download starts when the poll sees Done, not once the move to completing (which
    waits for the details) is stored; finalise then takes it and downloads nothing again."""
    sim = DiracSim(seed=3, latency=FAST, credentials=credentials, sandbox_pfns="dirac")
    await nursery.start(sim.serve)
    now = trio.current_time()
    dirac_id = sim.add_job([(now - 2.0, D.RUNNING, "Application"), (now - 1.0, D.DONE, "")])
    b = DiracBackend(
        DiracHttps(sim.url, proxy=credentials.proxy, ca=credentials.ca_file),
        output_dir=tmp_path / "out",
        settings=BackendSettings(call_deadline=2.0),
        details=True,
    )
    running = JobRef(1, str(dirac_id), Status.RUNNING, "Running")
    async with b.lifespan():
        [update] = await b.poll([running])
        assert (update.status, update.native_status) == (Status.COMPLETED, "Done")
        # The lookup went out beside getJobsSummary and getJobParameters.
        assert sim.stats.calls["getSandboxesAssignedToEntity"] == 1
        completing = JobRef(1, str(dirac_id), Status.COMPLETING, "Done")
        done = await b.finalise(completing)
    assert done.status == Status.COMPLETED
    assert done.reason == f"output in {tmp_path / 'out' / str(dirac_id)}"
    assert sim.stats.calls["getSandboxesAssignedToEntity"] == 1
    assert sim.stats.calls["streamToClient"] == 1
    assert any((tmp_path / "out" / str(dirac_id)).iterdir())


async def test_jobs_near_their_end_are_asked_the_summary_alone_for_status_and_details(
    credentials: Credentials, nursery: trio.Nursery, tmp_path: Path
) -> None:
    sim = DiracSim(seed=3, latency=FAST, credentials=credentials)
    await nursery.start(sim.serve)
    now = trio.current_time()
    done = sim.add_job([(now - 3.0, D.RUNNING, ""), (now - 2.0, D.COMPLETING, ""),
                        (now - 1.0, D.DONE, "")])  # fmt: skip
    uploading = sim.add_job([(now - 2.0, D.RUNNING, ""), (now - 1.0, D.COMPLETING, "")])
    b = DiracBackend(
        DiracHttps(sim.url, proxy=credentials.proxy, ca=credentials.ca_file),
        output_dir=tmp_path / "out",
        settings=BackendSettings(call_deadline=2.0),
        details=True,
        download_output=False,
    )
    near_end = [
        JobRef(1, str(done), Status.RUNNING, "Completing"),
        JobRef(2, str(uploading), Status.RUNNING, "Completing"),
    ]
    async with b.lifespan():
        [update] = await b.poll(near_end)
        assert (update.job, update.status, update.native_status) == (1, Status.COMPLETED, "Done")
        assert {"site", "running_at", "ended_at", "norm_cpu_time"} <= set(update.details or {})
        assert (sim.stats.calls["getJobsSummary"], sim.stats.calls["getJobsStates"]) == (1, 0)
        # A chunk with a job that is not near its end is asked its states, as in a sweep.
        running = JobRef(
            3, str(sim.add_job([(now - 1.0, D.RUNNING, "")])), Status.RUNNING, "Running"
        )
        assert await b.poll([near_end[1], running]) == []
        assert (sim.stats.calls["getJobsSummary"], sim.stats.calls["getJobsStates"]) == (1, 1)


async def test_a_summary_without_a_status_fails_the_poll_naming_the_job(
    credentials: Credentials, nursery: trio.Nursery, tmp_path: Path
) -> None:
    class Garbled:
        proxy = None

        def session(self) -> contextlib.AbstractAsyncContextManager[None]:
            return contextlib.nullcontext()

        async def call(self, *args: object) -> Any:
            return {"5": {"MinorStatus": "Uploading", "Site": "LCG.CERN.cern"}}

    b = DiracBackend(Garbled(), output_dir=tmp_path, details=True)  # type: ignore[arg-type]
    with pytest.raises(BackendError, match=r"getJobsSummary: job 5: Status None"):
        await b.poll([JobRef(1, "5", Status.RUNNING, "Completing")])


class RecordedFailures:
    """A `FailedOutput`: each job's directory, and the hand-overs, signalled."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.unpacked_into: list[tuple[int, Path]] = []
        self.handed_over = trio.Event()

    def target(self, dirac_id: int) -> Path | None:
        return self.root / f"job-{dirac_id}"

    def unpacked(self, dirac_id: int, directory: Path) -> None:
        self.unpacked_into.append((dirac_id, directory))
        trio.from_thread.run_sync(self.handed_over.set)


async def test_a_failed_jobs_sandbox_is_downloaded_after_it_is_failed_a_killed_ones_never(
    credentials: Credentials, nursery: trio.Nursery, tmp_path: Path
) -> None:
    # Ganga's failed_sandbox_download (on by default): the job is failed first, then its
    # sandbox fetched; a Killed job has none to fetch.
    sim = DiracSim(seed=3, latency=FAST, credentials=credentials, sandbox_pfns="dirac")
    await nursery.start(sim.serve)
    now = trio.current_time()
    failed = sim.add_job([(now - 2.0, D.RUNNING, "Application"), (now - 1.0, D.FAILED, "")])
    killed = sim.add_job([(now - 2.0, D.WAITING, ""), (now - 1.0, D.KILLED, "")])
    failures = RecordedFailures(tmp_path / "ganga")
    b = DiracBackend(
        DiracHttps(sim.url, proxy=credentials.proxy, ca=credentials.ca_file),
        output_dir=tmp_path / "out",
        settings=BackendSettings(call_deadline=2.0),
        failed_output=failures,
    )
    asked = [
        JobRef(1, str(failed), Status.RUNNING, "Running"),
        JobRef(2, str(killed), Status.SUBMITTED, "Waiting"),
    ]
    async with b.lifespan():
        updates = await b.poll(asked)
        assert [u.status for u in updates] == [Status.FAILED, Status.KILLED]
        with trio.fail_after(10):
            await failures.handed_over.wait()
    directory = tmp_path / "ganga" / f"job-{failed}"
    assert failures.unpacked_into == [(failed, directory)]
    assert any(directory.iterdir())
    assert not (tmp_path / "ganga" / f"job-{killed}").exists()
    assert sim.stats.calls["getSandboxesAssignedToEntity"] == 1


async def test_early_downloads_count_against_the_finalisation_bound(
    sim: DiracSim, credentials: Credentials, tmp_path: Path
) -> None:
    """A finalisation waiting for its early download makes no call: the downloads share one
    bound with finalise's own calls, so finalise_concurrency bounds them all."""
    now = trio.current_time()
    dirac_ids = [
        sim.add_job([(now - 2.0, D.RUNNING, "Application"), (now - 1.0, D.DONE, "")])
        for _ in range(30)
    ]
    store = Store(tmp_path / "jobs.sqlite")
    ids = store.add_jobs([NewJob("dirac", str(i), Status.RUNNING) for i in dirac_ids])
    # One poll finds every job Done (the next is far off): then only finalisations call.
    b = backend(sim, credentials, tmp_path, poll_interval=600.0, finalise_concurrency=1)
    await run_until_final(store, Monitor(store, [b]), ids, limit=30)
    assert {j.status for j in store.jobs()} == {Status.COMPLETED}
    assert sim.stats.calls["getSandboxesAssignedToEntity"] == 30
    assert sim.stats.peak_in_flight == 1


async def test_a_finalisation_past_its_deadline_takes_the_early_download_on_its_retry(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """The early download may wait behind others for longer than a finalisation's deadline:
    the retry waits for the same download instead of fetching the sandbox again."""
    tarball = io.BytesIO()
    with tarfile.open(fileobj=tarball, mode="w:gz") as tar:
        info = tarfile.TarInfo("std.out")
        tar.addfile(info, io.BytesIO(b""))
    lookups: list[int] = []

    class SlowSandboxes:
        proxy = None

        def session(self) -> contextlib.AbstractAsyncContextManager[Any]:
            return contextlib.nullcontext()

        async def job_states(self, ids: list[int]) -> dict[int, JobState]:
            return {7: JobState("Done", "Execution Complete")}

        async def call(self, system: str, service: str, method: str, *args: object) -> Any:
            if method == "getJobLoggingInfo":
                return []
            assert method == "getSandboxesAssignedToEntity"
            lookups.append(7)
            return {"Output": ["SB:Store|/SandBox/7.tar.gz"]}

        async def sandbox(self, location: str) -> bytes:
            await trio.sleep(3.0)  # longer than the deadline below
            return tarball.getvalue()

    b = DiracBackend(SlowSandboxes(), output_dir=tmp_path)  # type: ignore[arg-type]
    async with b.lifespan():
        await b.poll([JobRef(1, "7", Status.RUNNING, "Running")])
        completing = JobRef(1, "7", Status.COMPLETING, "Done")
        with trio.move_on_after(2.0):
            await b.finalise(completing)
        done = await b.finalise(completing)
    assert done.status == Status.COMPLETED
    assert lookups == [7]  # one download, taken by the second attempt


class PartlyKnown:
    """A DIRAC that knows some jobs only (the others were mistyped, or removed)."""

    proxy = None

    def __init__(self, known: set[int]) -> None:
        self.known = known

    def session(self) -> contextlib.AbstractAsyncContextManager[None]:
        return contextlib.nullcontext()

    async def job_states(self, ids: list[int]) -> dict[int, JobState]:
        return {i: JobState("Running", "Application") for i in ids if i in self.known}


async def test_a_job_dirac_does_not_know_becomes_unknown_after_the_grace_with_the_evidence(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    # It stayed submitted for ever, without a word.
    dirac = PartlyKnown({1})
    b = DiracBackend(dirac, output_dir=tmp_path, vanish_grace=60.0)  # type: ignore[arg-type]
    jobs = [JobRef(10, "1", Status.RUNNING, "Running"), JobRef(20, "2", Status.SUBMITTED, "")]
    with caplog.at_level(logging.WARNING, logger="gangamon.dirac"):
        assert await b.poll(jobs) == []
        await trio.sleep(59)
        assert await b.poll(jobs) == []
        dirac.known.add(2)  # it was late to appear: the grace starts again when it goes
        await trio.sleep(30)
        await b.poll(jobs)
        dirac.known.discard(2)
        await trio.sleep(30)
        assert await b.poll(jobs) == []  # missed first now
        await trio.sleep(30)
        assert await b.poll(jobs) == []
        await trio.sleep(30)
        [lost] = await b.poll(jobs)
    assert (lost.job, lost.status) == (20, Status.UNKNOWN)
    assert lost.reason == "DIRAC has not known it for 60 s"
    [record] = caplog.records
    assert record.getMessage() == "DIRAC job 2 (job 20) unknown: DIRAC has not known it for 60 s"


async def test_fetch_output_again_completes_a_job_whose_download_had_failed_for_good(
    credentials: Credentials, nursery: trio.Nursery, tmp_path: Path
) -> None:
    sim = DiracSim(seed=3, latency=FAST, credentials=credentials, sandbox_pfns="dirac")
    await nursery.start(sim.serve)
    now = trio.current_time()
    done = sim.add_job([(now - 2.0, D.RUNNING, "Application"), (now - 1.0, D.DONE, "")])
    failed = sim.add_job([(now - 2.0, D.RUNNING, "Application"), (now - 1.0, D.FAILED, "")])
    store = Store(tmp_path / "jobs.sqlite")
    a, b = store.add_jobs([NewJob("dirac", str(i), Status.RUNNING) for i in (done, failed)])
    store.apply([
        Transition(a, Status.RUNNING, Status.COMPLETING, "Done"),
        Transition(a, Status.COMPLETING, Status.FAILED, "Done",
                   "finalisation failed: BackendError: SandboxStore: ConnectError: refused"),
        Transition(b, Status.RUNNING, Status.FAILED, "Failed", "Application Finished With Errors"),
    ])  # fmt: skip
    backend = DiracBackend(
        DiracHttps(sim.url, proxy=credentials.proxy, ca=credentials.ca_file),
        output_dir=tmp_path / "out",
        settings=BackendSettings(call_deadline=5.0),
    )
    fetched = await fetch_output(AsyncStore(store, in_thread=False), backend, [a, b])
    assert [(f.job, f.completed) for f in fetched] == [(a, True), (b, False)]
    assert fetched[0].reason.startswith(f"output in {tmp_path / 'out' / str(done)}")
    assert any((tmp_path / "out" / str(done)).iterdir())
    assert store.get(a).status == Status.COMPLETED
    assert store.journal(job=a)[-1].reason.startswith("output fetched again: output in ")
    assert store.get(b).status == Status.FAILED  # DIRAC's Failed stays failed


async def test_fetch_output_refuses_a_job_of_another_backend(tmp_path: Path) -> None:
    store = Store(tmp_path / "jobs.sqlite")
    [job] = store.add_jobs([NewJob("slurm", "12", Status.RUNNING)])
    backend = DiracBackend(DiracHttps("https://127.0.0.1:9"), output_dir=tmp_path)
    with pytest.raises(GangamonError, match=f"job {job} is not a job of backend dirac"):
        await fetch_output(AsyncStore(store, in_thread=False), backend, [job])


def slow_download(started: list[int]) -> Callable[[int, Path], Awaitable[str]]:
    """A download of 10 s that notes which jobs it was started for."""

    async def download(dirac_id: int, target: Path) -> str:
        started.append(dirac_id)
        await trio.sleep(10)
        return f"output of {dirac_id}"

    return download


async def test_an_early_download_that_would_wait_for_a_token_is_left_to_finalise(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    # Queued, 17,000 of them (a soak of 20,000 jobs) kept the finalisers past their deadlines
    # and held 100 MB of waiting tasks.
    started: list[int] = []
    prefetch = SandboxPrefetch(slow_download(started), trio.CapacityLimiter(1))
    async with prefetch.running():
        prefetch.start(1, tmp_path)
        await trio.testing.wait_all_tasks_blocked()
        prefetch.start(2, tmp_path)  # the one token is taken: not queued
        assert await prefetch.take(2) is None
        assert await prefetch.take(1) == "output of 1"
    assert started == [1]


async def test_early_downloads_started_at_once_take_only_the_free_tokens(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    # A poll starts the downloads of all its Done jobs in one go: each saw the same free
    # token, and all but the first waited in the limiter, a task each.
    started: list[int] = []
    limiter = trio.CapacityLimiter(2)
    prefetch = SandboxPrefetch(slow_download(started), limiter)
    async with prefetch.running():
        for dirac_id in range(1, 101):
            prefetch.start(dirac_id, tmp_path)
        await trio.testing.wait_all_tasks_blocked()
        assert (sorted(started), limiter.borrowed_tokens) == ([1, 2], 2)
        assert await prefetch.take(3) is None
        assert await prefetch.take(2) == "output of 2"
    assert limiter.borrowed_tokens == 0


async def test_kill_marks_a_running_job_killed_and_leaves_an_ended_one(
    sim: DiracSim, credentials: Credentials, tmp_path: Path
) -> None:
    now = trio.current_time()
    running = sim.add_job([(now - 5, D.RECEIVED, "Job accepted"), (now - 1, D.RUNNING, "App"),
                           (now + 600, D.DONE, "Execution Complete")])  # fmt: skip
    done = sim.add_job([(now - 5, D.RECEIVED, "Job accepted"), (now - 1, D.DONE, "Done")])
    store = Store(tmp_path / "jobs.sqlite")
    [job, ended] = store.add_jobs(
        [
            NewJob("dirac", str(running), Status.RUNNING),
            NewJob("dirac", str(done), Status.COMPLETED),
        ]
    )
    dirac = backend(sim, credentials, tmp_path, download=False)
    killed = await kill_jobs(AsyncStore(store, in_thread=False), dirac, [job, ended])
    assert [(k.job, k.done.value, k.status) for k in killed] == [
        (job, "killed", Status.KILLED), (ended, "had ended", Status.COMPLETED),
    ]  # fmt: skip
    assert sim.jobs[running].path[-1][1:] == (D.KILLED, "Marked for termination")
    assert sim.jobs[done].path[-1][1] == D.DONE
    assert sim.stats.calls["killJob"] == 1
    async with dirac.lifespan():
        [update] = await dirac.poll([JobRef(job, str(running), Status.RUNNING, "Running")])
    assert (update.status, update.native_status) == (Status.KILLED, "Killed")


async def test_a_kill_dirac_refuses_is_one_error_naming_the_job(
    sim: DiracSim, credentials: Credentials, tmp_path: Path
) -> None:
    sim.inject("s_error")
    dirac = backend(sim, credentials, tmp_path, download=False)
    async with dirac.lifespan():
        with pytest.raises(GangamonError, match=r"job 1234 not killed: Simulated DIRAC failure"):
            await dirac.kill(JobRef(1, "1234", Status.RUNNING, "Running"))


async def test_the_simulators_kill_answers_as_dirac_does() -> None:
    sim = DiracSim(seed=1, mean_runtime=1e6)
    [job] = sim.submit(1)
    manager = sim.services["WorkloadManagement/JobManager"]
    reply = manager.call("killJob", [[job, 999_999]], sim.clock())
    assert reply == {"OK": True, "Value": [job], "InvalidJobIDs": [999_999]}
    assert manager.call("killJob", [job], sim.clock()) == {"OK": True, "Value": []}
    assert manager.call("killJob", [[True]], sim.clock())["OK"] is False
    assert sim.jobs[job].path[-1][1] == D.KILLED
