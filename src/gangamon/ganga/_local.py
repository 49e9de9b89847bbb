"""Ganga's Local jobs, watched through their wrapper process instead of polled every 10 s.

Ganga's Localhost backend runs a Python wrapper per job (per subjob, under a batch script,
for split jobs). Once the application runs, the wrapper writes `WRAPPER: <its pid>` and
`PID: <app>` into `<outputdir>/__jobstatus__`, and `EXITCODE: <n>` just before it exits.
We read the file until the wrapper's pid appears, then hold a pidfd on the wrapper: its exit
wakes us, and the file then says completed or failed at once. A wrapper gone without an exit
code was killed from outside; Ganga would leave that job running forever, we fail it
(after a grace period in which Ganga's own kill, which ends the wrapper the same way, sets
the job killed first).

Only the start is polled (the file, every `START_CHECK` seconds, slower after a minute):
without inotify the wrapper's start is not an event we can wait on. The end is not polled.

`LocalFamily` claims Ganga's Local jobs for this watch; `LocalApplier` sets on the Ganga
backend what Ganga's own Localhost monitoring sets besides the status.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from .._status import Status
from .._store import JournalEntry, NewJob
from ..backends._protocol import Backend, BackendSettings, JobRef, Update

#: How long a job whose wrapper vanished without an exit code waits before it is reported
#: failed: Ganga's own kill ends the wrapper first and sets "killed" just after, and that
#: must win (a killed job may still move to failed in Ganga's graph).
VANISHED_GRACE = 3.0
#: Seconds between reads of the status file while waiting for the wrapper to start.
START_CHECK = 0.25
#: After this long without a start, read it only every `SLOW_START_CHECK` seconds.
SLOW_START_AFTER = 60.0
SLOW_START_CHECK = 5.0

_WRAPPER = re.compile(r"^WRAPPER: (\d+)", re.M)
_PID = re.compile(r"^PID: (\d+)", re.M)
_EXITCODE = re.compile(r"^EXITCODE: (-?\d+)", re.M)


@dataclass(frozen=True, slots=True)
class LocalJob:
    """What the watch needs of a Ganga Local job, carried in its backend id."""

    status_file: str
    #: The wrapper's script: a pid whose command line lacks it is another process.
    script: str

    def backend_id(self) -> str:
        return json.dumps({"status_file": self.status_file, "script": self.script})

    @classmethod
    def parse(cls, backend_id: str) -> LocalJob:
        data = json.loads(backend_id)
        return cls(str(data["status_file"]), str(data["script"]))


@dataclass(frozen=True, slots=True)
class StatusFile:
    wrapper: int | None
    pid: int | None
    exitcode: int | None


def read_status_file(path: str) -> StatusFile:
    """What the wrapper has recorded so far (None for what it has not)."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return StatusFile(None, None, None)
    found = [pattern.search(text) for pattern in (_WRAPPER, _PID, _EXITCODE)]
    wrapper, pid, code = (int(m[1]) if m else None for m in found)
    return StatusFile(wrapper, pid, code)


class GangaLocalBackend(Backend):
    """Watches Ganga Local jobs; one watch task per job, a pidfd each."""

    polls = False
    watches = True

    def __init__(self, name: str = "Local", *, vanished_grace: float = VANISHED_GRACE) -> None:
        self.name = name
        self.vanished_grace = vanished_grace
        self.settings = BackendSettings(poll_interval=60.0, call_deadline=30.0)

    async def watch(self, job: JobRef) -> AsyncIterator[Update]:
        """Running once the application has started, then completed or failed when the
        wrapper exits. Cancelled: the pidfd is closed, the job left alone."""
        local = LocalJob.parse(job.backend_id)
        running = job.status == Status.RUNNING
        started = trio.current_time()
        fd: int | None = None
        exited = False
        try:
            while True:
                state = read_status_file(local.status_file)
                if state.exitcode is not None:
                    yield _final(job.id, state.exitcode)
                    return
                if state.pid is not None and not running:
                    running = True
                    yield Update(job.id, Status.RUNNING, f"PID: {state.pid}", "application started")
                if fd is None and state.wrapper is not None and not exited:
                    fd = _open_pidfd(state.wrapper, local.script)
                    exited = fd is None
                if exited:
                    await trio.sleep(self.vanished_grace)
                    if read_status_file(local.status_file).exitcode is None:
                        yield Update(job.id, Status.FAILED, "no exit code", _KILLED)
                        return
                    continue
                if fd is None:
                    slow = trio.current_time() - started > SLOW_START_AFTER
                    await trio.sleep(SLOW_START_CHECK if slow else START_CHECK)
                    continue
                await trio.lowlevel.wait_readable(fd)
                os.close(fd)
                fd, exited = None, True
                # One more read: the wrapper wrote its exit code before it exited.
                state = read_status_file(local.status_file)
                if state.exitcode is not None:
                    yield _final(job.id, state.exitcode)
                    return
        finally:
            if fd is not None:
                os.close(fd)


_KILLED = "the job's wrapper ended without writing an exit code: killed from outside"


def _final(job: int, code: int) -> Update:
    status = Status.COMPLETED if code == 0 else Status.FAILED
    return Update(job, status, f"EXITCODE: {code}", f"exit code {code}")


def _open_pidfd(pid: int | None, script: str) -> int | None:
    """A pidfd on the wrapper, or None if it is gone or the pid is now another process's.

    Our own child (Ganga started it in this process) cannot have its pid reused before we
    reap it, so it is trusted as is; its command line may still be empty just after the
    fork. A wrapper from an earlier session must show its script on its command line.
    """
    if pid is None:
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    parent = int(stat.rsplit(")", 1)[1].split()[1])
    if parent != os.getpid() and script.encode() not in cmdline.split(b"\0"):
        return None
    try:
        return os.pidfd_open(pid)
    except ProcessLookupError:
        return None


class LocalFamily:
    """Ganga's Local jobs, on one `GangaLocalBackend` named "Local"."""

    def __init__(self, *, vanished_grace: float = VANISHED_GRACE) -> None:
        self.vanished_grace = vanished_grace

    def claims(self, backend_name: str, backend: Any) -> bool:
        return backend_name == "Local"

    def backends(self) -> list[Backend]:
        return [GangaLocalBackend("Local", vanished_grace=self.vanished_grace)]

    def new_job(self, job: Any, backend_name: str, start: Status) -> tuple[NewJob, LocalApplier]:
        local = LocalJob(
            str(Path(job.getOutputWorkspace().getPath(), "__jobstatus__")),
            str(job.getInputWorkspace().getPath("__jobscript__")),
        )
        return NewJob("Local", local.backend_id(), start), LocalApplier()


class LocalApplier:
    """What Ganga's Localhost monitoring sets besides the status: pid, exit code, workdir."""

    def before(self, job: Any, entry: JournalEntry) -> None:
        native = entry.native_status or ""
        if native.startswith("PID: "):
            job.backend.id = int(native.removeprefix("PID: "))
        elif native.startswith("EXITCODE: "):
            job.backend.exitcode = int(native.removeprefix("EXITCODE: "))

    def after(self, job: Any, entry: JournalEntry) -> None:
        if entry.new in (Status.COMPLETED, Status.FAILED):
            job.backend.remove_workdir()
