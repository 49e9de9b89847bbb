"""The blocking facade: real threads and real time (a portal's thread and MockClock do not mix),
every wait bounded, nothing waited for by sleeping."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import pytest
import trio

from gangamon import (
    Backend,
    BackendSettings,
    JobRef,
    NewJob,
    Status,
    Store,
    ThreadedBackend,
    UnknownJob,
    Update,
)
from gangamon.embed import EmbeddedMonitor, NotRunning

S = Status


class Gate(Backend):
    """A push backend: each job runs until the test opens its gate, then completes."""

    name = "gate"
    polls = False
    watches = True

    def __init__(self) -> None:
        self.settings = BackendSettings(poll_interval=60.0)
        self.gates: dict[str, trio.Event] = {}

    def _gate(self, backend_id: str) -> trio.Event:
        return self.gates.setdefault(backend_id, trio.Event())

    async def open(self, backend_id: str) -> None:
        self._gate(backend_id).set()

    async def watch(self, job: JobRef) -> AsyncIterator[Update]:
        yield Update(job.id, S.RUNNING, "running")
        await self._gate(job.backend_id).wait()
        yield Update(job.id, S.COMPLETED, "done")


@pytest.fixture
def gate() -> Gate:
    return Gate()


@pytest.fixture
def embedded(tmp_path: Path, gate: Gate) -> Iterator[EmbeddedMonitor]:
    embedded = EmbeddedMonitor(tmp_path / "jobs.sqlite", [gate], deadline=5.0)
    yield embedded
    embedded.stop()


def test_track_wait_and_status_through_the_thread(embedded: EmbeddedMonitor, gate: Gate) -> None:
    seen: list[tuple[int, Status]] = []
    embedded.on_change(lambda entry: seen.append((entry.job, entry.new)))
    embedded.start()
    [job] = embedded.track([NewJob("gate", "a", S.SUBMITTED)])
    assert embedded.wait_for(job, [S.RUNNING], timeout=10) == S.RUNNING
    embedded.call(gate.open, "a")
    assert embedded.wait_for(job, [S.COMPLETED], timeout=10) == S.COMPLETED
    assert embedded.status(job) == S.COMPLETED
    assert (job, S.COMPLETED) in seen
    assert embedded.statistics().applied == 2


def test_untrack_stops_monitoring_and_keeps_the_record(
    embedded: EmbeddedMonitor, gate: Gate
) -> None:
    embedded.start()
    [job] = embedded.track([NewJob("gate", "u", S.SUBMITTED)])
    embedded.wait_for(job, [S.RUNNING], timeout=10)
    assert embedded.statistics().backends["gate"].jobs == 1
    embedded.untrack([job])
    assert embedded.statistics().backends["gate"].jobs == 0
    embedded.call(gate.open, "u")  # its completion is no longer watched
    # A job opened after it and seen completed: had "u" still been watched, the writer
    # would have stored its completion by now.
    [later] = embedded.track([NewJob("gate", "v", S.SUBMITTED)])
    embedded.call(gate.open, "v")
    embedded.wait_for(later, [S.COMPLETED], timeout=10)
    assert embedded.record(job).status == S.RUNNING


def test_start_and_stop_are_idempotent(embedded: EmbeddedMonitor) -> None:
    assert embedded.stop() is True  # never started
    embedded.start()
    thread_count = threading.active_count()
    embedded.start()
    assert threading.active_count() == thread_count  # no second engine thread
    running_before = embedded.running
    assert embedded.stop() is True
    assert (running_before, embedded.running) == (True, False)
    assert embedded.stop() is True
    with pytest.raises(NotRunning, match="not running"):
        embedded.status(1)


def test_restart_after_stop_keeps_the_store(tmp_path: Path, gate: Gate) -> None:
    path = tmp_path / "jobs.sqlite"
    with EmbeddedMonitor(path, [gate]) as first:
        [job] = first.track([NewJob("gate", "a", S.SUBMITTED)])
        first.wait_for(job, [S.RUNNING], timeout=10)
    with EmbeddedMonitor(path, [Gate()]) as second:
        assert second.status(job) == S.RUNNING


def test_a_store_passed_in_stays_the_callers(tmp_path: Path, gate: Gate) -> None:
    store = Store(tmp_path / "jobs.sqlite")
    with EmbeddedMonitor(store, [gate]) as embedded:
        [job] = embedded.track([NewJob("gate", "a", S.SUBMITTED)])
        embedded.wait_for(job, [S.RUNNING], timeout=10)
    assert store.get(job).status == S.RUNNING  # still open after stop
    store.close()


def test_unknown_job_and_timeout_are_one_clear_error(embedded: EmbeddedMonitor) -> None:
    embedded.start()
    with pytest.raises(UnknownJob, match="unknown job id 4242"):
        embedded.status(4242)
    [job] = embedded.track([NewJob("gate", "b", S.SUBMITTED)])
    with pytest.raises(TimeoutError, match=rf"job {job} not in \['completed'\] after 0.05 s"):
        embedded.wait_for(job, [S.COMPLETED], timeout=0.05)
    with pytest.raises(ValueError, match="unknown backend 'nowhere'"):
        embedded.track([NewJob("nowhere", "c", S.SUBMITTED)])


@pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(), reason="needs the main thread"
)
def test_ctrl_c_in_a_blocking_call_cancels_the_trio_task(embedded: EmbeddedMonitor) -> None:
    embedded.start()
    cancelled = threading.Event()
    main = threading.main_thread().ident
    assert main is not None

    async def hang() -> None:
        try:
            # A real SIGINT to the main thread, as the terminal sends on Ctrl-C.
            signal.pthread_kill(main, signal.SIGINT)
            await trio.sleep_forever()
        except trio.Cancelled:
            cancelled.set()
            raise

    with pytest.raises(KeyboardInterrupt):
        embedded.call(hang)
    assert cancelled.wait(timeout=10), "the trio task kept running after Ctrl-C"
    # The engine is still usable afterwards.
    [job] = embedded.track([NewJob("gate", "d", S.SUBMITTED)])
    assert embedded.wait_for(job, [S.RUNNING], timeout=10) == S.RUNNING


def test_importing_gangamon_leaves_asyncio_alone() -> None:
    # An embedding host's own asyncio loops stay asyncio's (trio_asyncio is imported lazily).
    script = "import asyncio, gangamon.embed; print(type(asyncio.new_event_loop()).__name__)"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.stdout.strip() == "_UnixSelectorEventLoop", result.stderr


def test_asyncio_host_is_not_blocked_and_cancelling_cancels_the_trio_task(
    embedded: EmbeddedMonitor, gate: Gate
) -> None:
    embedded.start()
    cancelled = threading.Event()

    async def never() -> None:
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            cancelled.set()
            raise

    async def host() -> Status:
        [job] = await embedded.track_async([NewJob("gate", "e", S.SUBMITTED)])
        waiting = asyncio.ensure_future(embedded.wait_for_async(job, [S.COMPLETED], timeout=10))
        # Only this loop opens the gate: if the wait blocked the loop, it would time out.
        await asyncio.wrap_future(embedded.call_soon(gate.open, "e"))
        status = await waiting
        assert await embedded.status_async(job) == S.COMPLETED
        task = asyncio.ensure_future(asyncio.wrap_future(embedded.call_soon(never)))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return status

    # A plain asyncio loop, whatever earlier tests imported (trio_asyncio swaps the default).
    with asyncio.Runner(loop_factory=asyncio.SelectorEventLoop) as runner:
        assert runner.run(host()) == S.COMPLETED
    assert cancelled.wait(timeout=10), "cancelling the asyncio side left the trio task running"


def test_stop_is_bounded_even_when_a_write_hangs(tmp_path: Path) -> None:
    release = threading.Event()
    entered = threading.Event()

    def hung_write(jobs: Sequence[JobRef]) -> Sequence[Update]:
        entered.set()
        release.wait()
        return []

    # read_only=False: cancellation must wait for the call, which never returns.
    legacy = ThreadedBackend(
        "legacy", hung_write, BackendSettings(poll_interval=60.0), read_only=False
    )
    embedded = EmbeddedMonitor(
        tmp_path / "jobs.sqlite", lambda: [legacy], grace=0.2, deadline=1.0
    ).start()
    try:
        embedded.track([NewJob("legacy", "1", S.SUBMITTED)])
        assert entered.wait(timeout=10)
        started = time.monotonic()
        assert embedded.stop() is False  # abandoned, not waited for
        assert time.monotonic() - started < 1.5
    finally:
        release.set()


def test_interpreter_exit_waits_no_longer_than_the_deadline(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import threading
        from gangamon import BackendSettings, NewJob, Status, ThreadedBackend
        from gangamon.embed import EmbeddedMonitor

        entered = threading.Event()

        def hung(jobs):
            entered.set()
            threading.Event().wait()

        legacy = ThreadedBackend(
            "legacy", hung, BackendSettings(poll_interval=60.0), read_only=False
        )
        embedded = EmbeddedMonitor({str(tmp_path / "jobs.sqlite")!r}, [legacy], deadline=1.0)
        embedded.start()
        embedded.track([NewJob("legacy", "1", Status.SUBMITTED)])
        entered.wait()
        print("exiting", flush=True)
        """
    )
    with subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        assert process.stdout is not None
        assert process.stderr is not None
        assert process.stdout.readline() == "exiting\n", process.stderr.read()
        started = time.monotonic()
        try:
            code = process.wait(timeout=10)
        finally:
            process.kill()
        took = time.monotonic() - started
        assert code == 0, process.stderr.read()
    assert took < 2.0, f"exit took {took:.2f} s with a 1 s deadline"


def test_a_start_that_fails_closes_the_store_it_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gangamon.embed

    closed: list[Path] = []

    class RecordedStore(Store):
        def close(self) -> None:
            closed.append(self.path)
            super().close()

    def open_recorded(where: Path | str) -> Store:
        return RecordedStore(where)

    monkeypatch.setattr(gangamon.embed, "open_store", open_recorded)

    def no_backends() -> list[Backend]:
        raise RuntimeError("no backend could be built")

    monitor = EmbeddedMonitor(tmp_path / "jobs.sqlite", no_backends)
    with pytest.raises(RuntimeError, match="no backend could be built"):
        monitor.start()
    assert closed == [tmp_path / "jobs.sqlite"]
    assert not monitor.running
