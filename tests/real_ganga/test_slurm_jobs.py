"""Real Ganga Slurm jobs on the real Slurm, monitored by gangamon's Slurm backend (`nox -s
ganga`; Slurm from `scripts/slurm-local.sh up`, as .ci/run starts it).

The session puts counting wrappers of squeue, sacct and scontrol first on its PATH: each
call is logged with its time and arguments, then the real command runs. Slurm's own count of
the job listings it answered (sdiag's REQUEST_JOB_INFO) is taken around the session too; it
also counts any other client of this Slurm in that time, so it bounds ours from above.
"""

from __future__ import annotations

import importlib.util
import itertools
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from .session import run_session

#: Jobs: one killed with j.kill() once running, failures (exit 3), the rest succeed.
JOBS = 50
FAILURES = 10
#: The interval gangamon's Slurm backend polls at: Ganga's [PollThread] has no Slurm option
#: (nor takes one from .gangarc), so Slurm's rate is default_backend_poll_rate.
INTERVAL = 2


def _slurm_down() -> str | None:
    """Why Ganga's Slurm jobs cannot run here, or None if they can."""
    if shutil.which("sbatch") is None:
        return "no Slurm on this machine (scripts/slurm-local.sh up installs and starts one)"
    ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, check=False)
    if "UP" not in ping.stdout:
        return f"Slurm is installed but its controller is down: {ping.stdout.strip()[:100]}"
    return None


pytestmark = [
    pytest.mark.skipif(
        importlib.util.find_spec("ganga") is None,
        reason="the ganga package is installed by `nox -s ganga`",
    ),
    pytest.mark.skipif(_slurm_down() is not None, reason=str(_slurm_down())),
    pytest.mark.realtime,
]


def counting_wrappers(directory: Path, log: Path) -> Path:
    """A bin directory whose squeue, sacct and scontrol log each call, then run the real one."""
    directory.mkdir()
    for name in ("squeue", "sacct", "scontrol"):
        real = shutil.which(name)
        assert real is not None, f"{name} is not installed"
        wrapper = directory / name
        wrapper.write_text(
            "#!/bin/sh\n"
            f'printf "%s {name} %s\\n" "$(date +%s.%N)" "$*" >> "{log}"\n'
            f'exec "{real}" "$@"\n'
        )
        wrapper.chmod(0o755)
    return directory


def job_info_requests(*, any_yet: bool = True) -> int:
    """How many job listings (squeue, scontrol show job) Slurm's controller has answered.

    sdiag lists only the message types answered since the controller started: a fresh one
    has none yet (`any_yet=False` takes that as 0)."""
    report = subprocess.run(["sdiag"], capture_output=True, text=True, check=True).stdout
    found = re.search(r"^\s*REQUEST_JOB_INFO\s+\(\s*\d+\)\s+count:(\d+)", report, re.M)
    if found is None and not any_yet:
        return 0
    assert found is not None, f"sdiag reports no REQUEST_JOB_INFO:\n{report[:2000]}"
    return int(found[1])


def test_fifty_ganga_slurm_jobs_one_squeue_per_interval(tmp_path: Path) -> None:
    log = tmp_path / "calls.log"
    wrappers = counting_wrappers(tmp_path / "wrappers", log)
    before = job_info_requests(any_yet=False)
    figures = run_session(
        tmp_path,
        f"""
        from ganga import Executable, Job, Slurm
        os.environ["PATH"] = "{wrappers}:" + os.environ["PATH"]
        service = gangamon.ganga.install(enable=True)
        commands = ["sleep 300"] + ["exit 3"] * {FAILURES} + ["echo ok"] * {JOBS - FAILURES - 1}
        jobs = []
        for command in commands:
            app = Executable(exe="/bin/sh", args=["-c", command])
            j = Job(application=app, backend=Slurm())
            j.submit()
            jobs.append(j)
        killed = jobs[0]
        slurm = lambda: service.statistics().backends["slurm"]
        try:
            wait_until(lambda: killed.status == "running", 120)
            killed.kill()
            wait_until(lambda: all(final(j) for j in jobs), 300)
            # Once gangamon has seen every job end too, it tracks none.
            wait_until(lambda: slurm().jobs == 0, 60)
        except TimeoutError:
            pass  # the statuses reported say which jobs did not get there
        backends = [stripProxy(j).backend for j in jobs]
        report(
            statuses=[j.status for j in jobs],
            exitcodes=[b.exitcode for b in backends],
            ids=[b.id for b in backends],
            hosts=[b.actualCE for b in backends],
            queues=[b.actualqueue for b in backends],
            tracked=slurm().jobs,
        )
        """,
        # The wrapper checks on the application every heartbeat_frequency seconds (30 by
        # default): each job would last at least that long.
        poll=f"default_backend_poll_rate = {INTERVAL}\n[Slurm]\nheartbeat_frequency = 1\n",
        timeout=600,
    )
    answered = job_info_requests() - before
    # A job left running (never seen running, so never killed) would hold a CPU for 300 s.
    left = [str(i) for i, status in zip(figures["ids"], figures["statuses"], strict=True)
            if status in ("submitted", "running")]  # fmt: skip
    if left:
        subprocess.run(["scancel", *left], check=False)
    calls = [line.split(" ", 2) for line in log.read_text().splitlines()]
    listings = [float(t) for t, name, args in calls if name == "squeue" and "--states=all" in args]
    histories = [float(t) for t, name, args in calls if name == "sacct" and "-j" in args]
    gaps = [b - a for a, b in itertools.pairwise(listings)]
    span = listings[-1] - listings[0]
    print(
        f"{len(listings)} squeue listings in {span:.1f} s at {INTERVAL} s "
        f"(at most {span / INTERVAL + 1:.0f}), shortest gap {min(gaps):.2f} s; "
        f"{len(histories)} sacct; Slurm answered {answered} job listings in all"
    )
    expected = ["killed"] + ["failed"] * FAILURES + ["completed"] * (JOBS - FAILURES - 1)
    assert figures["statuses"] == expected
    assert figures["exitcodes"] == [None] + [3] * FAILURES + [0] * (JOBS - FAILURES - 1)
    ran = slice(1, None)  # the killed job's attributes depend on when it was killed
    assert all(isinstance(i, int) for i in figures["ids"])
    assert set(figures["hosts"][ran]) == {"localhost"}
    assert set(figures["queues"][ran]) == {"debug"}
    assert figures["tracked"] == 0

    assert len(listings) <= span / INTERVAL + 1
    # A listing is reused for polls within 0.9 of an interval; the sweeps come one apart.
    assert min(gaps) >= 0.85 * INTERVAL
    assert len(histories) <= len(listings)
    # Every listing we counted reached the controller (others' count there too).
    assert answered >= len(listings)
