"""Local jobs: launched through a wrapper, their exit awaited, never polled.

Each job has a directory holding `launch.json` (pid and the kernel's start time of the
wrapper, written by us), `start.json` and `exit.json` (written by the wrapper, atomically),
and the command's stdout and stderr. Every job, launched in this run or an earlier one, is
found by pid *and* start time (a reused pid is another process) and awaited through a pidfd;
our own children are then reaped. The exit record decides completed or failed; a wrapper that
died without writing one was killed from outside, and the job fails saying so.

Jobs outlive the monitor: stopping it leaves them running, and the next run reattaches.
"""

from __future__ import annotations

import errno
import itertools
import json
import os
import signal
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import trio

from .._status import Status
from ._kind import HOME, BackendKind, Finding, Polling
from ._protocol import Backend, BackendError, BackendSettings, JobRef, Update

#: Seconds between SIGTERM and SIGKILL when killing a job.
KILL_GRACE = 5.0

#: Exits are awaited, not polled: the interval is only how often the engine looks at all.
LOCAL_SETTINGS = BackendSettings(poll_interval=60.0, call_deadline=30.0)


@dataclass(frozen=True, slots=True)
class ExitRecord:
    code: int
    end: float


class LocalBackend(Backend):
    """Jobs run as processes on this machine, under `root/<n>/`."""

    name = "local"
    polls = False
    watches = True
    launches = True

    def __init__(
        self, root: Path, *, name: str = "local", settings: BackendSettings = LOCAL_SETTINGS
    ) -> None:
        self.root = root
        self.name = name
        self.settings = settings
        self._numbers = itertools.count(1)

    async def launch(self, command: Sequence[str]) -> str:
        """Start `command` (an argument list, never a shell string) in a new job directory;
        return the job's backend id (its directory).

        The spawn (a couple of milliseconds) runs in a worker thread, so that launching many
        jobs never holds up the detection of others ending. Cancelled: waits for the spawn to
        finish (it is not abandoned), then raises; the job runs, its directory says so.
        """
        if not command or isinstance(command, str):
            raise ValueError(f"a local job needs an argument list, not {command!r}")
        return await trio.to_thread.run_sync(self._spawn, list(command))

    def _spawn(self, command: list[str]) -> str:
        self.root.mkdir(parents=True, exist_ok=True)
        directory = self._new_directory()
        wrapper = str(resources.files(__package__).joinpath("_local_wrapper.sh"))
        # posix_spawn, not subprocess: no Popen object to outlive (and warn about) when the
        # monitor stops before the job does. A session of its own, so kill reaches the group.
        pid = os.posix_spawn(
            "/bin/sh", ["/bin/sh", wrapper, str(directory), *command], os.environ,
            setsid=True,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0),
                (os.POSIX_SPAWN_OPEN, 2, str(directory / "wrapper.log"),
                 os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644),
            ],
        )  # fmt: skip
        _write_json(directory / "launch.json", {"pid": pid, "starttime": _start_time(pid)})
        return str(directory)

    def _new_directory(self) -> Path:
        while True:
            directory = self.root / str(next(self._numbers))
            try:
                directory.mkdir()
                return directory
            except FileExistsError:
                continue

    async def watch(self, job: JobRef) -> AsyncIterator[Update]:
        """Running while the wrapper lives; completed or failed from its exit record.

        Cancelled (untracked, killed, stopping): the process is left alone.
        """
        directory = Path(job.backend_id)
        launch = _read_json(directory / "launch.json") or {}
        pid = launch.get("pid")
        signal_note = ""
        if isinstance(pid, int) and _start_time(pid) == launch.get("starttime"):
            if job.status != Status.RUNNING:
                yield Update(job.id, Status.RUNNING, "running", f"pid {pid}")
            signal_note = _signal_note(await _wait_for_exit(pid))
        yield _final_update(job, directory, signal_note)

    async def kill(self, job: JobRef) -> None:
        """SIGTERM to the job's process group, SIGKILL after `KILL_GRACE` seconds. The job's
        directory says it was killed on request, for whoever watches it (another process,
        `gangamon kill` beside `gangamon run`): its end is then killed, not failed."""
        directory = Path(job.backend_id)
        launch = _read_json(directory / "launch.json") or {}
        pid = launch.get("pid")
        if not isinstance(pid, int) or _start_time(pid) != launch.get("starttime"):
            return  # already gone: nothing to kill
        try:
            _write_json(directory / "kill.json", {"time": time.time()})
            os.killpg(pid, signal.SIGTERM)
            with trio.move_on_after(KILL_GRACE):
                await _wait_for_exit(pid)
                return
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        except PermissionError as e:
            raise BackendError(f"cannot kill local job {job.id} (pid {pid}): {e}") from None


def _final_update(job: JobRef, directory: Path, signal_note: str) -> Update:
    record = exit_record(directory)
    if (directory / "kill.json").exists() and (record is None or record.code > 128):
        return Update(job.id, Status.KILLED, "killed", "killed on request")
    if record is None:
        reason = "the wrapper died without an exit record: killed from outside"
        return Update(job.id, Status.FAILED, "killed", f"{reason}{signal_note}")
    native = f"exit {record.code}"
    if record.code == 0:
        return Update(job.id, Status.COMPLETED, native, "exit code 0", record.end)
    if record.code > 128:
        name = _signal_name(record.code - 128)
        return Update(job.id, Status.FAILED, native, f"killed by {name}", record.end)
    return Update(job.id, Status.FAILED, native, f"exit code {record.code}", record.end)


def exit_record(directory: Path) -> ExitRecord | None:
    """The exit code and end time (Unix) the wrapper recorded in a job's directory, if any."""
    data = _read_json(directory / "exit.json")
    if data is None:
        return None
    code, end = data.get("code"), data.get("end")
    if not isinstance(code, int) or not isinstance(end, int | float):
        return None
    return ExitRecord(code, float(end))


def _signal_note(wait_status: int | None) -> str:
    if wait_status is not None and os.WIFSIGNALED(wait_status):
        return f" (wrapper killed by {_signal_name(os.WTERMSIG(wait_status))})"
    return ""


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


async def _wait_for_exit(pid: int) -> int | None:
    """Until process `pid` has exited (a pidfd: no polling). Reaps it if it is our child and
    returns its wait status; None for another's process, whose status is not ours to read."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return _reap(pid)
    try:
        await trio.lowlevel.wait_readable(fd)
    finally:
        os.close(fd)
    return _reap(pid)


def _reap(pid: int) -> int | None:
    try:
        reaped, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return None
    return status if reaped == pid else None


def _start_time(pid: int) -> int | None:
    """The kernel's start time of `pid` (clock ticks since boot), or None if there is none.

    With the pid it names one process for good: a reused pid has another start time.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ESRCH):
            return None
        raise
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[19])


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_json(path: Path, data: dict[str, Any]) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(data))
    temporary.rename(path)


class LocalConfig(Polling, frozen=True, kw_only=True):
    directory: str = str(HOME / "local")


def _build(name: str, config: LocalConfig) -> LocalBackend:
    root = Path(config.directory).expanduser()
    return LocalBackend(root, name=name, settings=config.settings(LOCAL_SETTINGS))


async def _probe(backend: LocalBackend, config: LocalConfig) -> AsyncIterator[Finding]:
    root = backend.root
    parent = next((p for p in (root, *root.parents) if p.exists()), Path("/"))
    if not os.access(parent, os.W_OK):
        yield Finding(False, backend.name, f"{root}: cannot write in {parent}")
    elif not hasattr(os, "pidfd_open"):
        yield Finding(False, backend.name, "no pidfd_open: process exits cannot be awaited here")
    else:
        yield Finding(True, backend.name, f"job directories in {root}; exits awaited by pidfd")


def _job_directory(token: str) -> str:
    directory = Path(token).expanduser()
    if not (directory / "launch.json").is_file():
        raise ValueError("is not a local job directory (no launch.json in it)")
    return str(directory.resolve())


LOCAL = BackendKind(
    name="local",
    display_name="local",
    config=LocalConfig,
    build=_build,
    probe=_probe,
    job_id=_job_directory,
)
