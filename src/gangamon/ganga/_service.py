"""`GangamonService`: what Ganga's `GangaCore.Core.monitoring_component` holds after install.

It answers Ganga's calls to its monitoring service (`enable`, `disable`, `stop`, `join`,
`runMonitoring`, `enabled`, `alive`) with an `EmbeddedMonitor` and a `GangaWriter`:

- `enable()` starts both and tracks every active job of the registry once (a scan of Ganga's
  index, not a 2 s rescan); jobs submitted afterwards are tracked from Ganga's own
  submitted-hook, at once.
- `runMonitoring(jobs)` tracks the active jobs among `jobs` (ids, Job objects, slices, lists),
  starting the engine if needed; the engine never tracks a monitored job twice, so repeated
  calls and enable/disable cycles never add polling.
- `disable()` stops both within the deadline; `stop()` also refuses later enables.

Which gangamon backend monitors a Ganga job, and what is set on the job besides its status,
is its backend family's (`_family.Family`: `_local`, `_dirac`, the caller's, `_adapter`).
The engine's store is a scratch SQLite file per enable: Ganga's repository stays the record.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._engine import MonitorStatistics
from .._status import ACTIVE, Status, parse_status
from .._store import NewJob
from ..backends._protocol import Backend, JobRef
from ..embed import EmbeddedMonitor
from ._adapter import AdapterFamily
from ._family import Family
from ._local import LocalFamily
from ._select import select_jobs
from ._writer import Applier, GangaWriter, Target, TrackRequest

log = logging.getLogger("gangamon.ganga")

#: The statuses Ganga's monitor looks at: the active ones but completing, which is left to
#: Ganga's own recovery.
WATCHED = frozenset(s.value for s in ACTIVE - {Status.COMPLETING})


@dataclass(frozen=True, slots=True)
class _Run:
    """One run of a Ganga job, as gangamon tracks it."""

    fqid: str
    #: (gangamon backend, backend id)
    ref: tuple[str, str]
    target: Target


@dataclass(frozen=True, slots=True)
class GangaHooks:
    """How the service reaches Ganga: injected, so that it is tested with stand-ins."""

    #: Every top-level job of the registry (cheap: Ganga's index, jobs not loaded).
    registry_jobs: Callable[[], Sequence[Any]]
    #: A top-level job by id, or None.
    job_by_id: Callable[[int], Any]
    is_job: Callable[[object], bool]
    #: A job's status without loading it (`lazyLoadJobStatus`).
    status_of: Callable[[Any], str]
    #: The Ganga name of a job's backend ("Local", "Dirac", "PBS"...).
    backend_name: Callable[[Any], str]
    #: The active subjobs of a master (from the subjob index where Ganga has one).
    active_subjobs: Callable[[Any], Sequence[Any]]
    #: Ganga's backend plugin classes by name (for those without a gangamon backend).
    backend_classes: Callable[[], dict[str, type]]
    poll_config: Any


class GangamonService:
    """Stands in for Ganga's AsyncMonitoringService. Thread-safe."""

    def __init__(
        self,
        hooks: GangaHooks,
        *,
        dirac: Family | None = None,
        families: Sequence[Family] = (),
        deadline: float = 1.5,
        workdir: Path | None = None,
    ) -> None:
        """A Ganga job is monitored by the first family that claims its backend, asked in
        this order: Local, `dirac`, `families`, and last the adapter for every other Ganga
        backend plugin (Ganga's own monitoring code).
        """
        self.hooks = hooks
        self.deadline = deadline
        self.alive = True
        self._own_workdir = workdir is None
        self._workdir = workdir or Path(tempfile.mkdtemp(prefix="gangamon-"))
        self._families: list[Family] = [LocalFamily()]
        self._families += [dirac] if dirac is not None else []
        self._families += families
        self._adapter = AdapterFamily(hooks.backend_classes, hooks.poll_config, self._job_of)
        self._lock = threading.RLock()
        self._embedded: EmbeddedMonitor | None = None
        self._writer: GangaWriter | None = None
        self._enables = 0
        # Written only in the writer thread while running, and under the lock otherwise.
        #: Each tracked run of a Ganga job, by its gangamon id.
        self._runs: dict[int, _Run] = {}
        #: The latest run of each Ganga job ("3", "3.1"): a resubmission replaces it.
        self._latest: dict[str, int] = {}
        #: What a poll of (gangamon backend, backend id) is about: registered before the job
        #: is tracked, so that the engine's first poll finds it.
        self._by_ref: dict[tuple[str, str], Target] = {}
        #: id() of each job inside its own submit or resubmit (how many such calls).
        self._in_submit: Counter[int] = Counter()
        self._in_submit_lock = threading.Lock()

    # -- Ganga's interface -------------------------------------------------------------------

    @property
    def enabled(self) -> bool:
        embedded = self._embedded
        return embedded is not None and embedded.running

    def enable(self) -> bool:
        """Start monitoring every active job of the registry. Idempotent."""
        if not self._start():
            return False
        self.runMonitoring(None)
        return True

    def disable(self) -> bool:
        """Stop monitoring within the deadline (the engine gets most of it, the writer the
        rest). Idempotent. True if everything stopped in time."""
        with self._lock:
            embedded, writer = self._embedded, self._writer
            self._embedded = self._writer = None
            end = time.monotonic() + self.deadline
            clean = True
            if embedded is not None:
                clean = embedded.stop(self.deadline * 0.75)
            if writer is not None:
                clean = writer.stop(max(0.05, end - time.monotonic())) and clean
            self._runs.clear()
            self._latest.clear()
            self._by_ref.clear()
            if clean:
                for store in self._workdir.glob("jobs-*.sqlite*"):
                    store.unlink(missing_ok=True)
            return clean

    def stop(self) -> None:
        """Disable for good (Ganga's shutdown); the scratch directory goes if it was ours."""
        clean = self.disable()
        self.alive = False
        if clean and self._own_workdir:
            shutil.rmtree(self._workdir, ignore_errors=True)

    def join(self, timeout: float | None = None) -> None:
        """Nothing to wait for: `disable` already bounded the stop."""

    def runMonitoring(self, jobs: object = None) -> bool:
        """Monitor the active jobs among `jobs` (None: all), starting monitoring if needed.

        Non-blocking, as in Ganga 8.7.12. A value that names no job raises `BadJobSelection`
        (a TypeError) naming it.
        """
        hooks = self.hooks
        selected = select_jobs(
            jobs, lookup=hooks.job_by_id, is_job=hooks.is_job, all_jobs=hooks.registry_jobs
        )
        if not self._start():
            return False
        writer = self._writer
        if writer is None:
            return False
        for job in selected:
            if hooks.status_of(job) in WATCHED:
                writer.request_track(job)
        return True

    def run_monitoring_task(self, task: Callable[..., Any], jobs: Sequence[Any]) -> None:
        """For Ganga code that hands its monitor a task (`master_updateMonitoringInformation`):
        the jobs are tracked instead, and gangamon runs their backend's monitoring."""
        writer = self._writer
        if writer is not None:
            for job in jobs:
                writer.request_track(job)

    # -- from Ganga's submitted-hook ------------------------------------------------------------

    def submitted(self, job: Any) -> None:
        """A job (or subjob) has just been submitted or resubmitted: track this new run of
        it now, if monitoring is on."""
        writer = self._writer
        if writer is not None and self.enabled:
            # Ganga hooks only the move from submitting to submitted: each call is a run.
            writer.request_track(job, new_run=True)

    @contextlib.contextmanager
    def submitting(self, job: Any) -> Iterator[None]:
        """Around a job's own `submit()` or `resubmit()`: its changes wait until it returns."""
        key = id(job)
        with self._in_submit_lock:
            self._in_submit[key] += 1
        try:
            yield
        finally:
            with self._in_submit_lock:
                self._in_submit[key] -= 1
                if not self._in_submit[key]:
                    del self._in_submit[key]

    def _is_submitting(self, job: Any) -> bool:
        return id(job) in self._in_submit

    # -- inside -------------------------------------------------------------------------------

    @property
    def changes_processed(self) -> int:
        """Changes the writer has dealt with (applied, left alone, or refused by Ganga)."""
        writer = self._writer
        return writer.processed if writer is not None else 0

    def statistics(self) -> MonitorStatistics | None:
        """The engine's figures per backend, or None while monitoring is off."""
        embedded = self._embedded
        return embedded.statistics() if embedded is not None else None

    def _start(self) -> bool:
        with self._lock:
            if not self.alive:
                log.error("gangamon: monitoring was stopped for this session; cannot start it")
                return False
            if self.enabled:
                return True
            self._enables += 1
            store = self._workdir / f"jobs-{self._enables}.sqlite"
            store.unlink(missing_ok=True)
            writer = GangaWriter(
                track=self._track,
                resolve=self._target,
                finished=self._forget,
                submitting=self._is_submitting,
            )
            embedded = EmbeddedMonitor(store, self._backends, deadline=self.deadline)
            embedded.on_change(writer.change)
            embedded.start()
            writer.start()
            self._embedded, self._writer = embedded, writer
            return True

    def _backends(self) -> list[Backend]:
        """Called in the engine's thread: every family's backends, the adapter's last."""
        backends = [backend for family in self._families for backend in family.backends()]
        return backends + self._adapter.backends(taken={b.name for b in backends})

    def _job_of(self, backend_name: str, ref: JobRef) -> Any:
        target = self._by_ref.get((backend_name, ref.backend_id))
        return target.job if target is not None else None

    def _target(self, gangamon_id: int) -> Target | None:
        run = self._runs.get(gangamon_id)
        return run.target if run is not None else None

    def _track(self, requests: Sequence[TrackRequest]) -> None:
        """In the writer thread: register the requested jobs (masters stand for their active
        subjobs). A new run replaces the job's earlier one, which is untracked first: its
        late reports then find no job to change. A job already monitored is kept as it is
        by the engine."""
        embedded = self._embedded
        if embedded is None:
            return
        earlier: list[int] = []
        new: list[NewJob] = []
        runs: list[_Run] = []
        for request in _latest_requests(requests):
            jobs = self._expand([request.job])
            for job in jobs:
                fqid = str(job.getFQID("."))
                if request.new_run and jobs == [request.job] and fqid in self._latest:
                    earlier.append(self._latest[fqid])
                    self._forget(self._latest[fqid])
                made = self._new_job(job)
                if made is None:
                    continue
                job_ref = (made[0].backend, made[0].backend_id or "")
                target = Target(job, made[1])
                self._by_ref[job_ref] = target
                new.append(made[0])
                runs.append(_Run(fqid, job_ref, target))
        if earlier:
            embedded.untrack(earlier)
        if not new:
            return
        ids = embedded.track(new)
        for gangamon_id, run in zip(ids, runs, strict=True):
            self._runs[gangamon_id] = run
            self._latest[run.fqid] = gangamon_id

    def _forget(self, gangamon_id: int) -> None:
        """In the writer thread: this run is over (or replaced by a newer one)."""
        run = self._runs.pop(gangamon_id, None)
        if run is None:
            return
        if self._latest.get(run.fqid) == gangamon_id:
            del self._latest[run.fqid]
        if self._by_ref.get(run.ref) is run.target:
            del self._by_ref[run.ref]

    def _expand(self, jobs: Sequence[Any]) -> list[Any]:
        expanded: list[Any] = []
        for job in jobs:
            subjobs = self.hooks.active_subjobs(job)
            expanded.extend(subjobs if subjobs else [job])
        return expanded

    def _new_job(self, job: Any) -> tuple[NewJob, Applier] | None:
        status = self.hooks.status_of(job)
        if status not in WATCHED:
            return None
        # Tracked from the submitted-hook, the job is still submitting: it is submitted by
        # the time anything can happen to it.
        start = Status.SUBMITTED if status == "submitting" else parse_status(status)
        name = self.hooks.backend_name(job)
        for family in (*self._families, self._adapter):
            if family.claims(name, job.backend):
                return family.new_job(job, name, start)
        log.warning("gangamon: Ganga backend %r is not monitored (no such plugin)", name)
        return None


def _latest_requests(requests: Sequence[TrackRequest]) -> list[TrackRequest]:
    """`requests` without a new run that a later one of the same job replaces: that run is
    over before it was tracked."""
    last = {id(r.job): i for i, r in enumerate(requests) if r.new_run}
    return [r for i, r in enumerate(requests) if not r.new_run or last[id(r.job)] == i]
