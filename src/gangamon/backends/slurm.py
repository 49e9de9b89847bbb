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
from collections.abc import AsyncIterator
from dataclasses import dataclass

import trio

from .._status import Status
from ._batch import (
    BATCH_SETTINGS,
    BatchBackend,
    BatchConfig,
    BatchState,
    batch_kind,
    output,
    run_command,
)
from ._kind import Finding
from ._protocol import BackendError, BackendSettings, BackendUnavailable

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


def slurm_status(state: str) -> Status:
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


class SlurmBackend(BatchBackend):
    """Jobs on the local Slurm cluster, identified by their Slurm job ids."""

    name = "slurm"
    query_name = "squeue"

    def __init__(
        self,
        *,
        settings: BackendSettings = BATCH_SETTINGS,
        vanish_grace: float = 600.0,
        name: str = "slurm",
    ) -> None:
        super().__init__(settings=settings, vanish_grace=vanish_grace, name=name)
        self.probe: SlurmProbe | None = None

    @contextlib.asynccontextmanager
    async def _probing(self) -> AsyncIterator[None]:
        try:
            with trio.fail_after(self.settings.call_deadline):
                self.probe = await self._probe()
        except trio.TooSlowError:
            raise BackendUnavailable(
                f"Slurm did not answer the start-up probe in {self.settings.call_deadline} s"
            ) from None
        log.info("slurm: accounting %s, MinJobAge %s, squeue --json %s",
                 "on" if self.probe.accounting else "off", self.probe.min_job_age,
                 "yes" if self.probe.json else "no")  # fmt: skip
        yield

    def lifespan(self) -> contextlib.AbstractAsyncContextManager[None]:
        return self._probing()

    async def _probe(self) -> SlurmProbe:
        ping = await run_command(["scontrol", "ping"], check=False)
        if ping.returncode != 0 or b"UP" not in ping.stdout:
            raise BackendUnavailable(f"Slurm's controller does not answer: {output(ping)}")
        sacct = await run_command(["sacct", "-n", "-X", "-j", "1", "-o", "JobID"], check=False)
        config = await run_command(["scontrol", "show", "config"], check=False)
        min_job_age = None
        for line in config.stdout.decode(errors="replace").splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "MinJobAge":
                digits = value.split()[0] if value.split() else ""
                min_job_age = int(digits) if digits.isdigit() else None
        squeue_json = await run_command(["squeue", "--json", "--me"], check=False)
        return SlurmProbe(sacct.returncode == 0, min_job_age, squeue_json.returncode == 0)

    async def query(self) -> dict[str, BatchState]:
        """`squeue --me --states=all`: every job of ours Slurm still lists, no ids named."""
        result = await run_command(["squeue", "--me", "-h", "--states=all", "-o", "%i|%T|%r"])
        return {job: BatchState(state, slurm_status(state), reason)
                for job, (state, reason) in parse_squeue(_text(result)).items()}  # fmt: skip

    async def history(self, ids: list[str]) -> dict[str, BatchState]:
        """sacct when accounting works (500 ids a call), else scontrol while Slurm remembers."""
        found: dict[str, tuple[str, str]] = {}
        if self.probe is not None and self.probe.accounting:
            for i in range(0, len(ids), 500):
                result = await run_command(["sacct", "-X", "-P", "-n", "-j",
                                            ",".join(ids[i : i + 500]),
                                            "-o", "JobID,State,ExitCode"])  # fmt: skip
                found.update(parse_sacct(_text(result)))
        else:
            for job_id in ids:
                result = await run_command(["scontrol", "show", "job", job_id], check=False)
                known = parse_scontrol_job(_text(result))
                if known is not None:
                    found[job_id] = known
        return {job: BatchState(state.split()[0], slurm_status(state), f"exit code {code}")
                for job, (state, code) in found.items()}  # fmt: skip

    def kill_command(self, job_id: str) -> list[str]:
        return ["scancel", job_id]


def _text(result: subprocess.CompletedProcess[bytes]) -> str:
    return result.stdout.decode(errors="replace")


async def _doctor_probe(backend: SlurmBackend, config: BatchConfig) -> AsyncIterator[Finding]:
    name = backend.name
    try:
        async with backend.lifespan():
            probe = backend.probe
    except (BackendError, OSError) as e:
        yield Finding(False, name, f"Slurm not usable: {e}")
        return
    assert probe is not None
    yield Finding(True, name, "Slurm controller answers")
    yield Finding(
        probe.accounting,
        name,
        "accounting (sacct) works"
        if probe.accounting
        else "no accounting: jobs Slurm has forgotten (after MinJobAge) can only end as unknown",
    )
    yield Finding(True, name, f"MinJobAge {probe.min_job_age} s")


#: Plain jobs, array tasks (1234_7) and heterogeneous components (1234+1).
SLURM = batch_kind(SlurmBackend, "Slurm", r"[1-9]\d{0,17}(?:[_+]\d{1,9})?", _doctor_probe)
