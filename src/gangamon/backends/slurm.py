"""Slurm: one `squeue` per poll for every tracked job, `sacct` or `scontrol` for the rest.

`squeue --me --states=all` lists the user's jobs without naming ids, so neither the number
of tracked jobs nor a purged id can break the call. A tracked job squeue no longer shows is
resolved by `sacct` when accounting works, else by `scontrol show job` while Slurm still
remembers it (MinJobAge), else, after a grace period, it becomes unknown with the evidence
logged: never guessed completed. Every command is an argument list, under a deadline.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import trio

from .._status import Status
from ._protocol import Backend, BackendError, BackendSettings, BackendUnavailable, JobRef, Update

log = logging.getLogger("gangamon.slurm")

_SUBMITTED = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED",
              "RESV_DEL_HOLD", "SPECIAL_EXIT"}  # fmt: skip
_RUNNING = {"RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING", "RESIZING", "SUSPENDED",
            "STOPPED"}  # fmt: skip
_FAILED = {"FAILED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE",
           "PREEMPTED"}  # fmt: skip
_KILLED = {"CANCELLED", "REVOKED"}


class UnknownSlurmState(BackendError):
    def __init__(self, state: str) -> None:
        super().__init__(f"unknown Slurm job state {state!r}")


def ganga_status(state: str) -> Status:
    """Ganga's status for a Slurm job state ("CANCELLED by 0" counts as CANCELLED)."""
    word = state.split()[0] if state.strip() else state
    if word == "COMPLETED":
        return Status.COMPLETED
    for states, status in ((_SUBMITTED, Status.SUBMITTED), (_RUNNING, Status.RUNNING),
                           (_FAILED, Status.FAILED), (_KILLED, Status.KILLED)):  # fmt: skip
        if word in states:
            return status
    raise UnknownSlurmState(state)


@dataclass(frozen=True, slots=True)
class SlurmProbe:
    """What this Slurm can tell us, found at start."""

    accounting: bool
    min_job_age: int | None
    json: bool


def parse_squeue(output: str) -> dict[str, tuple[str, str]]:
    """`squeue -h -o %i|%T|%r` lines -> {job id: (state, reason)}; `BackendError` on garbage."""
    return _parse_three_columns(output, "squeue")


def parse_sacct(output: str) -> dict[str, tuple[str, str]]:
    """`sacct -X -P -n -o JobID,State,ExitCode` lines -> {job id: (state, exit code)}."""
    return _parse_three_columns(output, "sacct")


def _parse_three_columns(output: str, command: str) -> dict[str, tuple[str, str]]:
    jobs = {}
    for line in output.splitlines():
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split("|")]
        if len(fields) != 3 or not fields[0]:
            raise BackendError(f"unexpected {command} line {line!r:.200}")
        jobs[fields[0]] = (fields[1], fields[2])
    return jobs


def parse_scontrol_job(output: str) -> tuple[str, str] | None:
    """(JobState, ExitCode) from `scontrol show job`, or None if it is not there."""
    fields = dict(item.split("=", 1) for item in output.split() if "=" in item)
    state = fields.get("JobState")
    return (state, fields.get("ExitCode", "")) if state else None


class SlurmBackend(Backend):
    """Jobs on the local Slurm cluster, identified by their Slurm job ids."""

    name = "slurm"

    def __init__(
        self,
        *,
        settings: BackendSettings | None = None,
        vanish_grace: float = 600.0,
        name: str = "slurm",
    ) -> None:
        # One squeue answers for every job: one "chunk", one call in flight.
        self.settings = settings or BackendSettings(
            poll_interval=30.0, chunk_size=10**9, concurrency=1, call_deadline=60.0
        )
        self.name = name
        self.vanish_grace = vanish_grace
        self.probe: SlurmProbe | None = None
        self.squeue_calls = 0
        self._vanished: dict[str, float] = {}

    @contextlib.asynccontextmanager
    async def _probing(self) -> AsyncIterator[None]:
        self.probe = await self._probe()
        log.info("slurm: accounting %s, MinJobAge %s, squeue --json %s",
                 "on" if self.probe.accounting else "off", self.probe.min_job_age,
                 "yes" if self.probe.json else "no")  # fmt: skip
        yield

    def lifespan(self) -> contextlib.AbstractAsyncContextManager[None]:
        return self._probing()

    async def _probe(self) -> SlurmProbe:
        ping = await _run(["scontrol", "ping"], check=False)
        if ping.returncode != 0 or b"UP" not in ping.stdout:
            raise BackendUnavailable(f"Slurm's controller does not answer: {_text(ping)}")
        sacct = await _run(["sacct", "-n", "-X", "-j", "1", "-o", "JobID"], check=False)
        config = await _run(["scontrol", "show", "config"], check=False)
        min_job_age = None
        for line in config.stdout.decode(errors="replace").splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "MinJobAge":
                digits = value.split()[0] if value.split() else ""
                min_job_age = int(digits) if digits.isdigit() else None
        squeue_json = await _run(["squeue", "--json", "--me"], check=False)
        return SlurmProbe(sacct.returncode == 0, min_job_age, squeue_json.returncode == 0)

    async def poll(self, jobs: Sequence[JobRef]) -> Sequence[Update]:
        """One squeue for all; the jobs it no longer shows through sacct or scontrol."""
        self.squeue_calls += 1
        listed = parse_squeue(
            (await _run(["squeue", "--me", "-h", "--states=all", "-o", "%i|%T|%r"])).stdout
            .decode(errors="replace")
        )  # fmt: skip
        updates, vanished = [], []
        for job in jobs:
            if job.backend_id in listed:
                self._vanished.pop(job.backend_id, None)
                state, reason = listed[job.backend_id]
                updates.append(Update(job.id, ganga_status(state), state, reason))
            else:
                vanished.append(job)
        if vanished:
            updates += await self._resolve(vanished)
        return updates

    async def _resolve(self, jobs: list[JobRef]) -> list[Update]:
        found: dict[str, tuple[str, str]] = {}
        if self.probe is not None and self.probe.accounting:
            ids = [j.backend_id for j in jobs]
            for i in range(0, len(ids), 500):
                result = await _run(["sacct", "-X", "-P", "-n", "-j", ",".join(ids[i : i + 500]),
                                     "-o", "JobID,State,ExitCode"])  # fmt: skip
                found.update(parse_sacct(result.stdout.decode(errors="replace")))
        else:
            for job in jobs:
                result = await _run(["scontrol", "show", "job", job.backend_id], check=False)
                known = parse_scontrol_job(result.stdout.decode(errors="replace"))
                if known is not None:
                    found[job.backend_id] = known
        updates = []
        now = trio.current_time()
        for job in jobs:
            if job.backend_id in found:
                state, exit_code = found[job.backend_id]
                self._vanished.pop(job.backend_id, None)
                updates.append(Update(job.id, ganga_status(state), state.split()[0],
                                      f"exit code {exit_code}"))  # fmt: skip
                continue
            first_missed = self._vanished.setdefault(job.backend_id, now)
            if now - first_missed >= self.vanish_grace:
                sacct = "no record" if self.probe and self.probe.accounting else "off"
                evidence = (
                    f"not in squeue, sacct {sacct}, unknown to scontrol, "
                    f"for {now - first_missed:.0f} s"
                )
                log.warning("slurm job %s (job %d) lost: %s", job.backend_id, job.id, evidence)
                updates.append(Update(job.id, Status.UNKNOWN, "vanished", evidence))
        return updates

    async def kill(self, job: JobRef) -> None:
        """scancel; never abandoned (the engine waits for it)."""
        await _run(["scancel", job.backend_id])


async def _run(args: list[str], *, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    """Run a Slurm command (an argument list). Cancelled: the command is killed."""
    try:
        result = await trio.run_process(args, capture_stdout=True, capture_stderr=True,
                                        check=False)  # fmt: skip
    except FileNotFoundError:
        raise BackendUnavailable(f"{args[0]} is not installed: is this a Slurm machine?") from None
    if check and result.returncode != 0:
        raise BackendError(f"{' '.join(args[:3])} failed ({result.returncode}): {_text(result)}")
    return result


def _text(result: subprocess.CompletedProcess[bytes]) -> str:
    return (result.stderr or result.stdout).decode(errors="replace").strip()[:200]
