"""`gangamon run`: the monitor as a long-running process over a store, from a configuration.

Beside the monitor it runs three small tasks: one picks up jobs that other processes
(`gangamon track`, Ganga) add to the store; one writes the monitor's statistics next to the
store once a second, for `gangamon watch` in another terminal; and, on request, the metrics
endpoint. SIGINT or SIGTERM stops it gracefully: no new calls, the grace period for calls in
flight, everything received written to the store.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from functools import partial
from pathlib import Path

import msgspec
import trio
from prometheus_client import generate_latest

from .._engine import Monitor, MonitorStatistics
from .._errors import StoreError
from .._store import open_store
from .._storelock import holding
from ._config import Config, build_backends
from ._metrics import metrics_registry
from ._metrics_http import serve_metrics

log = logging.getLogger("gangamon.run")

#: How often the store is checked for jobs added by other processes, in seconds.
FOLLOW_INTERVAL = 2.0
#: Statistics older than this mean that no monitor is running on the store.
STALE_AFTER = 5.0
#: How often a line of what the monitor does is logged (at -v).
SUMMARY_INTERVAL = 60.0


class Snapshot(msgspec.Struct, frozen=True):
    """What `run` tells `watch` about itself."""

    time: float
    pid: int
    statistics: MonitorStatistics


def statistics_path(store: Path) -> Path:
    return store.with_name(store.name + ".monitor.json")


def read_snapshot(store: Path | str) -> Snapshot | None:
    """The running monitor's latest statistics, or None if none is running (or it is stale),
    or the store is not a file (a PostgreSQL store's monitor keeps them to itself)."""
    if not isinstance(store, Path):
        return None
    try:
        snapshot = msgspec.json.decode(statistics_path(store).read_bytes(), type=Snapshot)
    except (OSError, msgspec.DecodeError):
        return None
    return snapshot if time.time() - snapshot.time < STALE_AFTER else None


async def serve(
    config: Config,
    *,
    metrics_port: int | None = None,
    task_status: trio.TaskStatus[Monitor] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Monitor until SIGINT or SIGTERM (must run in the main thread), then stop gracefully.
    With `metrics_port`, serve Prometheus metrics on it at `config.metrics_address`.

    Errors that stop it before it starts (the store, another monitor holding it, the metrics
    port) leave nothing behind.
    Cancelled: the monitor is cancelled (see `Monitor.run`); the store keeps what was written.
    """
    backends = build_backends(config)
    store = open_store(config.store)
    # A file can be deleted or replaced under us, and has a place beside it for statistics.
    in_file = config.store if isinstance(config.store, Path) else None
    watch = _StoreWatch(in_file)
    monitor = Monitor(store, backends, grace=config.grace)
    snapshot_file = None if in_file is None else statistics_path(in_file)
    with (
        contextlib.closing(store),
        holding(config.store),
        trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals,
    ):
        try:
            async with trio.open_nursery() as nursery:
                async with trio.open_nursery() as helpers:
                    if metrics_port is not None:
                        registry = metrics_registry(monitor.statistics, monitor.histograms)
                        await helpers.start(
                            partial(
                                serve_metrics,
                                partial(generate_latest, registry),
                                port=metrics_port,
                                host=config.metrics_address,
                            )
                        )
                    await nursery.start(monitor.run)
                    waiting = trio.CancelScope()
                    helpers.start_soon(_follow_store, monitor, watch, waiting)
                    helpers.start_soon(_summarise, monitor)
                    if snapshot_file is not None:
                        await helpers.start(_write_snapshots, monitor, snapshot_file)
                    names = ", ".join(b.name for b in backends)
                    log.warning("monitoring %s with %s (pid %d)", store.where, names, os.getpid())
                    task_status.started(monitor)
                    with waiting:
                        async for signum in signals:
                            log.warning("%s: stopping", signal.Signals(signum).name)
                            break
                    helpers.cancel_scope.cancel()
                monitor.stop()
        finally:
            if snapshot_file is not None:
                snapshot_file.unlink(missing_ok=True)
    if watch.lost is not None:
        raise StoreError(store.where, f"{watch.lost} under the running monitor, which stopped")


class _StoreWatch:
    """Whether the store's file (if it is one) is still the one the monitor opened."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        #: The store and its WAL file, which its writes go to until a checkpoint.
        self._files: dict[str, Path] = {}
        if path is not None:
            real = path.resolve()
            self._files = {"the file": real, "its WAL file": real.with_name(real.name + "-wal")}
        self._identity = {name: _identity(file) for name, file in self._files.items()}
        #: What became of it, once it is gone.
        self.lost: str | None = None

    def check(self) -> bool:
        for name, file in self._files.items():
            try:
                now = _identity(file)
            except FileNotFoundError:
                self.lost = f"{name} was deleted"
            except OSError as e:
                self.lost = f"{name} cannot be looked at ({e.strerror})"
            else:
                if now != self._identity[name]:
                    self.lost = f"{name} was replaced by another file"
            if self.lost is not None:
                return False
        return True


def _identity(path: Path) -> tuple[int, int]:
    st = path.stat()
    return (st.st_dev, st.st_ino)


async def _follow_store(monitor: Monitor, watch: _StoreWatch, waiting: trio.CancelScope) -> None:
    """Pick up the jobs other processes add; stop the run (`waiting`) if the store's file was
    deleted or replaced: what it wrote since would be lost with the unlinked file."""
    while True:
        if not watch.check():
            log.error("the store %s: %s; stopping", watch.path, watch.lost)
            waiting.cancel()
            return
        found = await monitor.load_new()
        if found:
            log.info("picked up %d jobs added to the store", found)
        await trio.sleep(FOLLOW_INTERVAL)


async def _summarise(monitor: Monitor) -> None:
    """A line of what the monitor does every `SUMMARY_INTERVAL` seconds, at info level."""
    while True:
        await trio.sleep(SUMMARY_INTERVAL)
        log.info("%s", summary(monitor.statistics()))


def summary(stats: MonitorStatistics) -> str:
    """`dirac: 812 tracked (running 700, submitted 112), 4 calls, 0 errors; ...; 31 stored`."""
    parts = []
    for b in stats.backends.values():
        statuses = ", ".join(
            f"{s.value} {n}" for s, n in sorted(b.jobs_by_status.items(), key=lambda i: -i[1])
        )
        health = f"; {b.problem}" if b.problem else ""
        parts.append(
            f"{b.name}: {b.jobs} tracked ({statuses or 'none'}), {b.calls} calls, "
            f"{b.errors} errors{health}"
        )
    return "; ".join([*parts, f"{stats.applied} changes stored"])


async def _write_snapshots(
    monitor: Monitor, path: Path, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """Every second; started once the first is written."""
    encoder = msgspec.json.Encoder()
    temporary = path.with_name(path.name + ".tmp")
    failing: str | None = None
    while True:
        data = encoder.encode(Snapshot(time.time(), os.getpid(), monitor.statistics()))
        # Written whole, then renamed: a reader never sees half of it.
        try:
            await trio.to_thread.run_sync(_replace, temporary, path, data)
        except OSError as e:  # a full disk: `watch` waits, the monitor goes on
            if e.strerror != failing:
                failing = e.strerror
                log.error("cannot write the statistics %s: %s", path, e.strerror)
        else:
            failing = None
        task_status.started()
        task_status = trio.TASK_STATUS_IGNORED
        await trio.sleep(1.0)


def _replace(temporary: Path, path: Path, data: bytes) -> None:
    temporary.write_bytes(data)
    temporary.replace(path)
