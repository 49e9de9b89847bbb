"""The one thread that changes Ganga jobs: every status gangamon stores goes through here.

The engine's callback (in the trio thread) only queues journal entries; this thread applies
them with Ganga's own `updateStatus`, so its hooks and postprocessors run as they always did,
with `update_master=False`, then calls each touched master's `updateMasterJobStatus`, at most
once per `MASTER_EVERY` seconds. Tracking requests (from Ganga's submit hook, in the user's
thread) go through the same queue, so a job is always known here before its first change
arrives.

A change to a job Ganga is still submitting is retried shortly, until its submit has returned:
while it shows submitting, and while its own `submit()` or `resubmit()` runs (they set it
submitted once more before returning, from whatever status it has then, and would undo the
change); a master's status is likewise updated only after its own submit. A job
already in the reported status is left alone (an adapted backend set it itself, and Ganga would
rerun its hooks on a same-status update), and so is one Ganga has moved since gangamon last
saw it (a user's kill): only a change from the status gangamon knew is applied. A job's
first journal entry (no old status) is the status gangamon took from Ganga when it tracked
the job: it is never written back.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from math import inf
from typing import Any, Protocol

from .._status import FINAL
from .._store import JournalEntry

log = logging.getLogger("gangamon.ganga")

#: How long a change waits for a job Ganga shows as submitting, outside any submit of this
#: session (a session that died mid-submit), before it is dropped.
SUBMITTING_PATIENCE = 30.0
_RETRY = 0.02
#: The least time between two updates of one master: Ganga's `updateMasterJobStatus` reads
#: every subjob's status (with its locks), and once per batch of changes it was most of the
#: writer's time with thousands of subjobs ending.
MASTER_EVERY = 1.0


class Applier(Protocol):
    """Backend-specific work around `updateStatus` (exit codes, native statuses, outputs)."""

    def before(self, job: Any, entry: JournalEntry) -> None: ...

    def after(self, job: Any, entry: JournalEntry) -> None: ...


class PlainApplier:
    def before(self, job: Any, entry: JournalEntry) -> None:
        pass

    def after(self, job: Any, entry: JournalEntry) -> None:
        pass


@dataclass(frozen=True, slots=True)
class TrackRequest:
    """A Ganga job (or master) to monitor."""

    job: Any
    #: Ganga is (re)submitting it: what was tracked for it before is an earlier run.
    new_run: bool = False


@dataclass(frozen=True, slots=True)
class Target:
    """A gangamon job's Ganga job object and how to apply its changes."""

    job: Any
    applier: Applier


class _Stop:
    pass


class GangaWriter:
    """Applies gangamon's changes to Ganga jobs, from one daemon thread."""

    def __init__(
        self,
        *,
        track: Callable[[Sequence[TrackRequest]], None],
        resolve: Callable[[int], Target | None],
        finished: Callable[[int], None] = lambda job: None,
        submitting: Callable[[Any], bool] = lambda job: False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`track(requests)` registers Ganga jobs with gangamon (run here, in order);
        `resolve(id)` finds the Ganga job of a gangamon id; `finished(id)` is told when a
        job's run is over (a resubmission is then tracked afresh); `submitting(job)` says
        whether the job's own submit or resubmit is still running."""
        self._track = track
        self._resolve = resolve
        self._finished = finished
        self._submitting = submitting
        self._clock = clock
        self._queue: queue.SimpleQueue[JournalEntry | TrackRequest | _Stop] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._deferred: list[JournalEntry] = []
        #: Masters whose status is to be updated (once their own submit has returned, and
        #: `MASTER_EVERY` after their last update).
        self._masters: dict[int, Any] = {}
        #: When each master's status was last updated (monotonic).
        self._master_updated: dict[int, float] = {}
        #: When each job's first change was deferred (Ganga still submitting it).
        self._waiting_since: dict[int, float] = {}
        #: Changes applied, refused by Ganga, and looked at at all (deferred ones once done).
        self.applied = 0
        self.refused = 0
        self.processed = 0

    def start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="gangamon-ganga", daemon=True)
            self._thread.start()

    def stop(self, deadline: float) -> bool:
        """Stop after the item in hand; True if the thread ended within `deadline` seconds.
        Changes still queued are dropped: Ganga finds those jobs active at its next start,
        and gangamon reads their state again then."""
        thread, self._thread = self._thread, None
        if thread is None:
            return True
        self._queue.put(_Stop())
        thread.join(deadline)
        return not thread.is_alive()

    # -- fed from other threads ----------------------------------------------------------------

    def change(self, entry: JournalEntry) -> None:
        """Queue a stored change (called in the engine's thread: never blocks)."""
        self._queue.put(entry)

    def request_track(self, job: Any, *, new_run: bool = False) -> None:
        self._queue.put(TrackRequest(job, new_run))

    # -- the thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            items = self._next_items()
            if any(isinstance(item, _Stop) for item in items):
                return
            to_track = [item for item in items if isinstance(item, TrackRequest)]
            if to_track:
                try:
                    self._track(to_track)
                except Exception:
                    log.exception("gangamon could not track %d Ganga jobs", len(to_track))
            entries = [item for item in items if isinstance(item, JournalEntry)]
            deferred, self._deferred = self._deferred, []
            self.apply(deferred + entries)

    def _next_items(self) -> list[JournalEntry | TrackRequest | _Stop]:
        timeout = _RETRY if self._deferred else self._masters_due()
        try:
            items = [self._queue.get(timeout=timeout)]
        except queue.Empty:
            return []
        while True:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                return items

    def apply(self, entries: Sequence[JournalEntry]) -> None:
        """Apply `entries` in order; then update each touched master once."""
        masters, self._masters = self._masters, {}
        waiting: set[int] = set()
        for entry in entries:
            target = self._resolve(entry.job)
            if target is None:
                continue  # not a job this session tracks (untracked meanwhile)
            job = target.job
            if entry.old is None:
                self.processed += 1  # what Ganga said when the job was tracked: Ganga's own
                continue
            if entry.job in waiting or job.status == "submitting" or self._submitting(job):
                self._defer(entry, job)
                waiting.add(entry.job)
                continue
            self.processed += 1
            self._waiting_since.pop(entry.job, None)
            if job.status == entry.new.value or job.status != entry.old.value:
                # Already there, or moved by Ganga meanwhile (the user killed it, say: a
                # killed job may go to failed in Ganga's graph, and must not).
                if entry.new == entry.old and job.status == entry.new.value:
                    self._copy(target, job, entry)
                if entry.new in FINAL:
                    self._finished(entry.job)
                continue
            try:
                target.applier.before(job, entry)
                job.updateStatus(entry.new.value, update_master=False)
                target.applier.after(job, entry)
                self.applied += 1
            except Exception as exc:
                self.refused += 1
                log.warning(
                    "Ganga refused job %s: %s -> %s (%s): %s",
                    _fqid(job),
                    job.status,
                    entry.new.value,
                    entry.reason,
                    exc,
                )
            master = getattr(job, "master", None)
            if master is not None:
                masters[id(master)] = master
            if entry.new in FINAL:
                self._finished(entry.job)
        now = self._clock()
        for key, master in masters.items():
            if self._submitting(master) or now < self._master_updated.get(key, -inf) + MASTER_EVERY:
                self._masters[key] = master
                continue
            self._master_updated[key] = now
            try:
                master.updateMasterJobStatus()
            except Exception as exc:
                log.warning("Ganga could not update master job %s: %s", _fqid(master), exc)

    def _masters_due(self) -> float | None:
        """Seconds until the next pending master may be updated; None if none is pending."""
        if not self._masters:
            return None
        last = min(self._master_updated.get(key, -inf) for key in self._masters)
        return min(max(_RETRY, last + MASTER_EVERY - self._clock()), MASTER_EVERY)

    def _copy(self, target: Target, job: Any, entry: JournalEntry) -> None:
        """Only the backend's own status moved (DIRAC's Running to Completed, say): what the
        applier copies onto the job, with no `updateStatus` (Ganga would rerun its hooks)."""
        try:
            target.applier.before(job, entry)
        except Exception as exc:
            log.warning("gangamon could not update job %s (%s): %s", _fqid(job), entry.reason, exc)

    def _defer(self, entry: JournalEntry, job: Any) -> None:
        if self._submitting(job):
            # Its submit returns, however long that takes: nothing to give up on.
            self._deferred.append(entry)
            return
        since = self._waiting_since.setdefault(entry.job, self._clock())
        if self._clock() - since > SUBMITTING_PATIENCE:
            log.warning(
                "job %d still submitting after %.0f s; change to %s dropped",
                entry.job,
                SUBMITTING_PATIENCE,
                entry.new.value,
            )
            return
        self._deferred.append(entry)


def _fqid(job: Any) -> str:
    try:
        return str(job.getFQID("."))
    except Exception:
        return repr(job)
