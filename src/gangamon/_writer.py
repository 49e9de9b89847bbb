"""The writer: the one task that changes the store's jobs and tells whoever follows them.

Everything that writes reaches it on one channel, in order: the backends' reports
(`Report`, plain data) and the callers' commands (`Command`: `track` storing new jobs,
`untrack` and `kill` taking jobs out of their runners' tables, `kill` storing a killed job,
`load_new` taking another process's jobs). It owns the journal cursor, the subscribers, the
`on_change` callbacks, the waiters and the detection histogram, and it alone updates the
runners' tables of tracked jobs (commands run in its task).

Where reports are sifted: a runner keeps off the channel a report equal to the job's last
stored status (most of a sweep); the writer drops one that is stale (older than the last
applied, or about a job no longer tracked) or unchanged against what it has pending, and
refuses an illegal move. The store then applies each move by compare-and-set.
"""

from __future__ import annotations

import collections
import logging
import math
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any, Generic, TypeVar

import trio

from ._astore import AsyncStore
from ._backoff import backoff
from ._control import move_from_stored
from ._errors import GangamonError, StoreUnwritable
from ._histogram import Histogram
from ._outbox import Report
from ._status import ACTIVE, Status, can_transition
from ._store import JournalEntry, Outcome, Transition
from ._subscribe import Subscription
from ._supervise import BackendRunner
from .backends._protocol import JobRef

log = logging.getLogger("gangamon.engine")

T = TypeVar("T")

#: The longest wait between two tries at a store that refuses writes.
MAX_WRITE_RETRY_DELAY = 60.0


class Command(Generic[T]):
    """`action`, to be carried out by the writer in its turn; `reply()` waits for its outcome."""

    def __init__(self, action: Callable[[], Awaitable[T]]) -> None:
        self.action = action
        self._done = trio.Event()
        self._value: tuple[T] | None = None
        self._error: Exception | None = None

    async def carry_out(self) -> None:
        """Run the action, keeping its value or its error for `reply`; a cancellation is the
        writer's own and goes on up."""
        try:
            self._value = (await self.action(),)
        except Exception as e:
            self._error = e
        finally:
            self._done.set()

    def abandon(self) -> None:
        """Never to be carried out: `reply` raises, unless it was already."""
        self._done.set()

    async def reply(self) -> T:
        await self._done.wait()
        if self._error is not None:
            raise self._error
        if self._value is None:
            raise GangamonError("the monitor stopped before it carried this out")
        return self._value[0]


Item = Report | Command[Any]


class Writer:
    """Applies reports and commands to `store` for `runners` (by backend name)."""

    def __init__(
        self, store: AsyncStore, runners: Mapping[str, BackendRunner], *, batch_size: int
    ) -> None:
        self.store = store
        self._runners = runners
        self._batch_size = batch_size
        #: Where commands go while the writer takes them (see `open_commands`).
        self._commands: trio.MemorySendChannel[Item] | None = None
        self._last_seq = 0
        self.subscribers: set[Subscription] = set()
        self.callbacks: list[Callable[[JournalEntry], object]] = []
        self._waiters: dict[int, list[tuple[frozenset[Status], trio.Event]]] = {}
        #: Seconds from a change at the backend (where it says when) to its being stored:
        #: of every backend, and of each by name.
        self.detection = Histogram()
        self.backend_detection = {name: Histogram() for name in runners}
        self.batches = self.applied = self.illegal = self.out_of_order = 0

    # -- the task --------------------------------------------------------------------------

    async def run(self, receive: trio.MemoryReceiveChannel[Item]) -> None:
        """Carry out what arrives, in batches, until every sender has closed.

        Each batch is written under a shielded scope; cancelled, what is already in the
        channel is written too (within one second).
        """
        started = False
        pending: collections.deque[Item] = collections.deque()
        async with receive:
            try:
                self._last_seq = await self.store.last_seq()
                started = True
                async for first in receive:
                    pending.append(first)
                    while len(pending) < self._batch_size:
                        try:
                            pending.append(receive.receive_nowait())
                        except (trio.WouldBlock, trio.EndOfChannel):
                            break
                    await self._handle_until_written(pending, receive)
            finally:
                rest = [*pending, *_drain(receive)]
                if started:
                    with trio.move_on_after(1.0, shield=True):
                        try:
                            await self._handle(collections.deque(rest))
                        except StoreUnwritable as e:
                            log.error("%s: the last reports are not written (polled again)", e)
                # Callers must not wait for ever on what was never carried out.
                for item in [*rest, *_drain(receive)]:
                    if isinstance(item, Command):
                        item.abandon()

    async def _handle_until_written(
        self, pending: collections.deque[Item], receive: trio.MemoryReceiveChannel[Item]
    ) -> None:
        """Carry out `pending` (each write shielded), waiting out a store that cannot be
        written (a full disk...) with backoff: nothing received is dropped meanwhile, and
        each kind of refusal is logged once, its end too. Once every sender has closed (the
        monitor stops) or when cancelled, it gives up, leaving the rest in `pending`."""
        refusals = 0
        logged: set[str] = set()
        while pending:
            try:
                with trio.CancelScope(shield=True):
                    await self._handle(pending)
            except StoreUnwritable as e:
                refusals += 1
                if str(e) not in logged:
                    logged.add(str(e))
                    log.error("%s; retrying, nothing is lost meanwhile", e)
                delay = backoff(refusals, 1.0, MAX_WRITE_RETRY_DELAY)
                if not await _sleep_while_sent_to(receive, delay):
                    return  # the monitor stops: its end tries once more
        if refusals:
            log.warning("the store takes writes again (after %d refusals)", refusals)

    def take_commands(self, send: trio.MemorySendChannel[Item] | None) -> None:
        """Commands go through `send` (a clone the caller closes) from now on; None: they are
        carried out at once, in the caller's task (no writer is running)."""
        self._commands = send

    async def submit(self, action: Callable[[], Awaitable[T]]) -> T:
        """Have `action` carried out in the writer's turn, after what is already queued; its
        result. Cancelled: the writer still carries it out."""
        command = Command(action)
        send = self._commands
        if send is None:
            await command.carry_out()
        else:
            try:
                await send.send(command)
            except (trio.ClosedResourceError, trio.BrokenResourceError):  # stopped meanwhile
                await command.carry_out()
        return await command.reply()

    async def _handle(self, items: collections.deque[Item]) -> None:
        """Carry out `items` in order, taking each out once done: a run of reports is one
        batch (put back whole when the store refuses it)."""
        while items:
            item = items.popleft()
            if isinstance(item, Command):
                await item.carry_out()
                continue
            reports = [item]
            while items and isinstance(items[0], Report):
                reports.append(items.popleft())  # type: ignore[arg-type]
            try:
                await self._apply(reports)
            except StoreUnwritable:
                items.extendleft(reversed(reports))
                raise

    # -- reports ---------------------------------------------------------------------------

    async def _apply(self, reports: list[Report]) -> None:
        transitions: list[Transition] = []
        owners: list[tuple[BackendRunner, float, float | None]] = []
        pending: dict[int, tuple[Status, str | None]] = {}
        for report in reports:
            runner, update = self._runners[report.backend], report.update
            ref = runner.jobs.get(update.job)
            if ref is None:
                continue  # finished, untracked or killed since the call started
            if report.observed < runner.jobs.observed.get(update.job, -math.inf):
                self.out_of_order += 1
                continue
            status, native = pending.get(ref.id, (ref.status, ref.native_status))
            target = update.status
            if target == Status.COMPLETED and runner.backend.finalises and not report.finalised:
                target = Status.COMPLETING
            if target == status and update.native_status == native:
                continue
            if not can_transition(status, target):
                self.illegal += 1
                log.warning(
                    "backend %s: job %d: refused %s -> %s (%s)",
                    runner.name,
                    ref.id,
                    status,
                    target,
                    update.reason or "no reason given",
                    extra={"backend": runner.name, "job": ref.id},
                )
                continue
            transitions.append(
                Transition(
                    ref.id, status, target, update.native_status, update.reason, update.details
                )
            )
            owners.append((runner, report.observed, update.changed))
            pending[ref.id] = (target, update.native_status)
        if not transitions:
            return
        outcomes = await self.store.apply(transitions)
        stored_at = time.time()
        self.batches += 1
        for t, (runner, observed, changed), result in zip(
            transitions, owners, outcomes, strict=True
        ):
            tracked = runner.jobs.get(t.job)
            if tracked is None:
                continue  # untracked or killed while the batch was being written
            if result is Outcome.APPLIED:
                self.applied += 1
                if changed is not None:
                    self.detection.observe(stored_at - changed)
                    self.backend_detection[runner.name].observe(stored_at - changed)
                runner.jobs.observed[t.job] = observed
                self._stored(runner, ref_of(t.job, tracked.backend_id, t.new, t.native_status))
            elif result is Outcome.STALE:
                # Someone else (a CLI, Ganga) changed the job: believe the store.
                record = await self.store.get(t.job)
                self._stored(
                    runner, ref_of(t.job, record.backend_id, record.status, record.native_status)
                )
            elif result is Outcome.UNKNOWN_JOB:
                runner.discard(t.job)
        await self.publish()

    def _stored(self, runner: BackendRunner, ref: JobRef) -> None:
        """Tell `runner` what the store now holds for a job it tracks."""
        if ref.id not in runner.jobs:
            return  # untracked meanwhile
        if ref.status in ACTIVE:
            runner.replace(ref)
        else:
            runner.discard(ref.id)

    # -- what commands write ---------------------------------------------------------------

    async def store_killed(self, job: int, status: Status) -> tuple[Status, Outcome]:
        """Store `job`, last known in `status`, as killed; (the status moved from, outcome).
        A stale move is tried again from the stored status; a job that ended meanwhile keeps
        its end (UNCHANGED)."""
        status, result = await move_from_stored(self.store, job, status, Status.KILLED, "killed")
        if result is Outcome.UNCHANGED and status != Status.KILLED:
            log.info("job %d ended %s before its kill took effect", job, status.value)
        await self.publish()
        return status, result

    # -- followers -------------------------------------------------------------------------

    async def publish(self) -> None:
        """Hand each journal entry written since the last call to every follower, once."""
        entries = await self.store.journal(after=self._last_seq)
        # Outside the writer's task (no writer running) calls can overlap: drop what another
        # delivered during the await. Nothing awaits from here on.
        entries = [e for e in entries if e.seq > self._last_seq]
        if not entries:
            return
        self._last_seq = entries[-1].seq
        self._follow(entries)
        for entry in entries:
            for subscription in list(self.subscribers):
                if not subscription.offer(entry):
                    self.subscribers.discard(subscription)
            for callback in self.callbacks:
                try:
                    callback(entry)
                except Exception:
                    log.exception("change callback %r failed on %s", callback, entry)
            for statuses, event in self._waiters.get(entry.job, ()):
                if entry.new in statuses:
                    event.set()

    def _follow(self, entries: list[JournalEntry]) -> None:
        """Tell the runners what other processes (`gangamon kill` or `untrack`, Ganga) stored
        for jobs they track: a job's last entry here is what the store holds. The writer's own
        entries already agree with its runners, and change nothing."""
        last = {entry.job: entry for entry in entries}
        for runner in self._runners.values():
            for job, entry in last.items():
                ref = runner.jobs.get(job)
                if ref is not None and (ref.status, ref.native_status) != (
                    entry.new,
                    entry.native_status,
                ):
                    self._stored(
                        runner, ref_of(job, ref.backend_id, entry.new, entry.native_status)
                    )

    async def wait_for(
        self,
        job: int,
        statuses: Collection[Status],
        timeout: float,  # noqa: ASYNC109 - Monitor.wait_for's, part of its API
    ) -> Status:
        """See `Monitor.wait_for`."""
        wanted = frozenset(statuses)
        event = trio.Event()
        entry = (wanted, event)
        self._waiters.setdefault(job, []).append(entry)
        current: Status | None = None
        try:
            current = (await self.store.get(job)).status
            if current in wanted:
                return current
            with trio.fail_after(timeout):
                await event.wait()
            return (await self.store.get(job)).status
        except trio.TooSlowError:
            raise TimeoutError(
                f"job {job} not in {sorted(s.value for s in wanted)} after {timeout} s"
                f" (now {current})"
            ) from None
        finally:
            self._waiters[job].remove(entry)
            if not self._waiters[job]:
                del self._waiters[job]


async def _sleep_while_sent_to(receive: trio.MemoryReceiveChannel[Item], seconds: float) -> bool:
    """Sleep `seconds`, looking every second whether anyone can still send on `receive`;
    False as soon as nobody can."""
    until = trio.current_time() + seconds
    while receive.statistics().open_send_channels:
        if trio.current_time() >= until:
            return True
        await trio.sleep(min(1.0, until - trio.current_time()))
    return False


def _drain(receive: trio.MemoryReceiveChannel[Item]) -> list[Item]:
    """What is in the channel now, without waiting."""
    items: list[Item] = []
    try:
        while True:
            items.append(receive.receive_nowait())
    except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
        return items


def ref_of(job: int, backend_id: str | None, status: Status, native: str | None) -> JobRef:
    return JobRef(job, backend_id or "", status, native)
