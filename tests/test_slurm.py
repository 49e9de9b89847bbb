"""Slurm: parsers always; a real single-node Slurm when one is up (`scripts/slurm-local.sh up`,
which .ci/run does). Skipped, saying why, on machines without it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import trio

from gangamon import BackendError, BackendSettings, Monitor, NewJob, Status, Store
from gangamon.backends.slurm import (
    SlurmBackend,
    UnknownSlurmState,
    parse_sacct,
    parse_scontrol_job,
    parse_squeue,
    slurm_status,
)

FINISHED = [Status.COMPLETED, Status.FAILED, Status.KILLED, Status.UNKNOWN]


@pytest.mark.parametrize(
    ("state", "status"),
    [("PENDING", "submitted"), ("RUNNING", "running"), ("COMPLETING", "running"),
     ("COMPLETED", "completed"), ("FAILED", "failed"), ("TIMEOUT", "failed"),
     ("NODE_FAIL", "failed"), ("PREEMPTED", "failed"), ("OUT_OF_MEMORY", "failed"),
     ("CANCELLED", "killed"), ("CANCELLED by 0", "killed"), ("SUSPENDED", "running")],
)  # fmt: skip
def test_states(state: str, status: str) -> None:
    assert slurm_status(state) == status


def test_unknown_state_names_it() -> None:
    with pytest.raises(UnknownSlurmState, match="'EXPLODED'"):
        slurm_status("EXPLODED")


def test_parsers() -> None:
    assert parse_squeue("12|RUNNING|None\n13|PENDING|Priority\n") == {
        "12": ("RUNNING", "None"), "13": ("PENDING", "Priority")}  # fmt: skip
    assert parse_sacct("847|COMPLETED|0:0\n849|CANCELLED by 0|0:0\n") == {
        "847": ("COMPLETED", "0:0"), "849": ("CANCELLED by 0", "0:0")}  # fmt: skip
    shown = "JobId=2 JobName=wrap\n   JobState=FAILED Reason=NonZeroExitCode ExitCode=3:0\n"
    assert parse_scontrol_job(shown) == ("FAILED", "3:0")
    assert parse_scontrol_job("slurm_load_jobs error: Invalid job id specified") is None


@pytest.mark.parametrize("garbage", ["12 RUNNING", "|RUNNING|x", "a|b|c|d"])
def test_garbage_is_a_backend_error(garbage: str) -> None:
    with pytest.raises(BackendError, match="unexpected"):
        parse_squeue(garbage)
    with pytest.raises(BackendError, match="unexpected"):
        parse_sacct(garbage)


def _slurm_up() -> str | None:
    """Why Slurm cannot be used here, or None if it can."""
    if shutil.which("sbatch") is None:
        return "no Slurm on this machine (scripts/slurm-local.sh up installs and starts one)"
    ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, check=False)
    if "UP" not in ping.stdout:
        return f"Slurm is installed but its controller is down: {ping.stdout.strip()[:100]}"
    config = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True,
                            check=False).stdout  # fmt: skip
    age = next((line.split("=")[1].split()[0] for line in config.splitlines()
                if line.startswith("MinJobAge")), "")  # fmt: skip
    if not age.isdigit() or int(age) > 30:
        return f"MinJobAge is {age} s: start Slurm with SLURM_MIN_JOB_AGE=10, as .ci/run does"
    return None


needs_slurm = pytest.mark.skipif(_slurm_up() is not None, reason=str(_slurm_up()))


async def sbatch(tmp_path: Path, *args: str) -> str:
    result = await trio.run_process(
        ["sbatch", "--parsable", f"--output={tmp_path}/slurm-%j.out", *args],
        capture_stdout=True,
    )
    return result.stdout.decode().strip().split(";")[0]


@needs_slurm
@pytest.mark.realtime
async def test_two_hundred_real_jobs(tmp_path: Path) -> None:
    purged = await sbatch(tmp_path, "--wrap", "true")  # tracked only once Slurm forgot it
    kinds = ["ok"] * 120 + ["fail"] * 40 + ["cancel"] * 20 + ["timeout"] * 20
    commands = {"ok": ["--wrap", "true"], "fail": ["--wrap", "exit 3"],
                "cancel": ["--wrap", "sleep 600"],
                "timeout": ["--time=0:0:01", "--wrap", "sleep 600"]}  # fmt: skip
    slurm_ids = [await sbatch(tmp_path, *commands[kind]) for kind in kinds]
    store = Store(tmp_path / "jobs.sqlite")
    backend = SlurmBackend(
        settings=BackendSettings(
            poll_interval=1.0, chunk_size=10**9, concurrency=1, call_deadline=30.0
        )
    )
    monitor = Monitor(store, [backend])
    with trio.fail_after(600):
        async with trio.open_nursery() as nursery:
            started = trio.current_time()
            await nursery.start(monitor.run)
            ids = await monitor.track([NewJob("slurm", i, Status.SUBMITTED) for i in slurm_ids])
            for job, kind in zip(ids, kinds, strict=True):
                if kind == "cancel":
                    await monitor.wait_for(job, [Status.RUNNING])
                    await monitor.kill(job)
            for job in ids:
                await monitor.wait_for(job, FINISHED)
            # MinJobAge is short in CI: by now squeue has forgotten the first job; sacct has not.
            listed = await trio.run_process(["squeue", "-h", "--states=all", "-o", "%i"],
                                            capture_stdout=True)  # fmt: skip
            assert purged not in listed.stdout.decode().split()
            [late] = await monitor.track([NewJob("slurm", purged, Status.SUBMITTED)])
            assert await monitor.wait_for(late, FINISHED) == Status.COMPLETED
            elapsed = trio.current_time() - started
            monitor.stop()
    expected = {"ok": Status.COMPLETED, "fail": Status.FAILED, "cancel": Status.KILLED,
                "timeout": Status.FAILED}  # fmt: skip
    assert [store.get(j).status for j in ids] == [expected[k] for k in kinds]
    timeouts = [store.get(j) for j, k in zip(ids, kinds, strict=True) if k == "timeout"]
    assert {j.native_status for j in timeouts} == {"TIMEOUT"}
    # One squeue per interval, plus one prompt poll per track() call.
    assert backend.queries <= elapsed / 1.0 + 1 + 2
    assert backend.probe is not None
    assert backend.probe.accounting
