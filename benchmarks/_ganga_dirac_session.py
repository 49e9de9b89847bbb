"""One headless Ganga session with GangaDirac against the simulator: the Ganga child's side of
benchmarks.ganga_dirac. Ganga changes its process for good (HOME, a configuration read once):
this runs in a process of its own, started by `measure_session`.

Per monitor, one master job of n Dirac subjobs made without a real submission (recipe item 6
of reference/ganga-dirac.md), their DIRAC ids jobs of the simulator; once every subjob is
made, the simulator starts their schedule and the monitor is started; the phase ends when
the master is final.

The second master's subjobs are the first's DIRAC jobs run again on the shifted schedule
(unless `fresh_ids`): the simulator draws what DIRAC knows of a job besides its path (site,
CPU time, output files and their LFNs, the sandbox) from its id, so only the same ids make
the two masters' subjobs the same jobs, whose records can be compared as they are.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

from . import _ganga_dirac_cpu as cpu, _ganga_dirac_schedule as schedule
from ._dirac_sim_child import SimControl
from ._ganga_dirac_compare import latency_summary, wrong_statuses
from ._ganga_dirac_config import prepare_process, write_config

FINAL = ("completed", "failed", "killed")


def run_session(settings: dict[str, Any]) -> dict[str, Any]:
    """`settings`: directory, facts (the simulator's), jobs, interval, monitors (in order),
    spread, download, explicit, fresh_ids. Returns each monitor's figures and records."""
    directory = Path(settings["directory"])
    facts = settings["facts"]
    gangarc = write_config(
        directory, facts, interval=settings["interval"], download=settings["download"]
    )
    prepare_process(directory, gangarc, facts)
    # Only now: Ganga reads HOME and its configuration, once, when it is imported.
    import ganga as gpi
    import ganga.ganga  # bootstraps Ganga, with GangaDirac
    from GangaCore.Utility.Config import getConfig

    statusmapping = dict(getConfig("DIRAC")["statusmapping"])
    logging.getLogger("gangamon").addHandler(WARNINGS)
    control = SimControl(facts["control_port"])
    results: dict[str, Any] = {"statusmapping": statusmapping}
    ids: list[int] | None = None
    try:
        for monitor in settings["monitors"]:
            if settings["fresh_ids"]:
                ids = None
            results[monitor], ids = _phase(gpi, control, monitor, settings, statusmapping, ids)
    finally:
        control.close()
    return results


def _phase(
    gpi: Any,
    control: SimControl,
    monitor: str,
    settings: dict[str, Any],
    mapping: dict[str, str],
    ids: list[int] | None,
) -> tuple[dict[str, Any], list[int]]:
    """One monitor's phase on a new master; `ids`: the simulated jobs to run again (their
    earlier master is final and no longer watched), or None for new ones."""
    n, spread = int(settings["jobs"]), float(settings["spread"])
    made = time.monotonic()
    if ids is None:
        ids = control.add(n)
    master = _create_master(gpi, ids)
    made_s = time.monotonic() - made
    start = time.time()
    # Completed lasts longer than a poll, as failover requests wait for an agent's cycle:
    # no bulk call tells when a job was Completed, only a poll that sees it there.
    pending = 1.5 * float(settings["interval"])
    control.schedule(
        {dirac_id: schedule.path(i, n, start, spread, pending) for i, dirac_id in enumerate(ids)}
    )
    if settings["download"]:
        # Both monitors take sandboxes as DIRAC names them (SB:<SE>|/SandBox/...).
        control.sandbox_pfns("dirac")
    calls_before = control.calls()
    cpu_before = cpu.snapshot()
    began = time.monotonic()
    service = None
    if monitor == "ganga":
        gpi.enableMonitoring()
    else:
        service = _start_gangamon(settings)
    # The longest a phase may take: Ganga's own needs about 1.5 intervals per job plus its
    # per-job finalisation (reference/ganga-dirac.md: p99 181 s at 1000 jobs and 50 s).
    _wait_final(master, schedule.LEAD + spread + 10 * settings["interval"] + 120 + n * 0.5)
    wall_s = time.monotonic() - began
    cpu_after = cpu.snapshot()
    calls_after = control.calls()
    backends = _gangamon_backends(service) if service is not None else None
    if service is None:
        gpi.disableMonitoring()
    records = [_record(sj, start) for sj in master.subjobs]
    expected = {i: mapping[schedule.final_status(i)] for i in range(n)}
    latencies = [
        r["final"] - schedule.end_time(r["index"], n, start, spread, pending)
        for r in records
        if r["final"] is not None
    ]
    return {
        "master": int(master.id),
        "dirac_ids": [ids[0], ids[-1]],
        "create_s": made_s,
        "wall_s": wall_s,
        "latency": latency_summary(latencies),
        "latencies_s": sorted(latencies),
        "not_final": sum(r["final"] is None for r in records),
        "cpu": cpu.between(cpu_before, cpu_after),
        "calls": {
            method: count - calls_before.get(method, 0)
            for method, count in sorted(calls_after.items())
            if count != calls_before.get(method, 0)
        },
        "wrong_statuses": wrong_statuses(records, expected),
        "gangamon_backends": backends,
        "gangamon_warnings": WARNINGS.take(),
        "records": records,
    }, ids


def _start_gangamon(settings: dict[str, Any]) -> Any:
    """gangamon in the place of Ganga's monitoring: the one place it is started. By default
    `install()` finds DIRAC from Ganga's own configuration (DiracEnvJSON, its dirac.cfg, the
    proxy) and polls at [PollThread] Dirac; `explicit`: the backend built here instead."""
    import gangamon.ganga

    if not settings["explicit"]:
        return gangamon.ganga.install(enable=True)
    import dataclasses

    from gangamon.backends.dirac import DIRAC_SETTINGS, DiracBackend, DiracHttps

    facts = settings["facts"]
    output = Path(settings["directory"], "gangamon-dirac-output")
    dirac = DiracBackend(
        DiracHttps(facts["https"], proxy=Path(facts["proxy"]), ca=Path(facts["ca_dir"])),
        output_dir=output,
        # Ganga's [PollThread] Dirac, as Ganga's own monitor has it.
        settings=dataclasses.replace(DIRAC_SETTINGS, poll_interval=float(settings["interval"])),
        name="Dirac",
        download_output=settings["download"],
    )
    return gangamon.ganga.install(dirac=dirac, dirac_output=output, enable=True)


def _gangamon_backends(service: Any) -> list[str]:
    """The names of the backends gangamon's engine runs: a DIRAC one among them, or
    `install()` left the Dirac jobs to Ganga's own code (it logs why, and goes on)."""
    statistics = service.statistics()
    return sorted(statistics.backends) if statistics is not None else []


def _create_master(gpi: Any, ids: list[int]) -> Any:
    """A submitted master of Dirac subjobs whose DIRAC ids are `ids`, one each."""
    from GangaCore.GPIDev.Base.Proxy import stripProxy

    job = gpi.Job(
        application=gpi.Executable(),
        backend=gpi.Dirac(),
        splitter=gpi.ArgSplitter(args=[[str(i)] for i in range(len(ids))]),
    )
    master = stripProxy(job)
    master.updateStatus("submitting")
    master._doSplitting()
    for subjob, dirac_id in zip(master.subjobs, ids, strict=True):
        subjob.backend.id = dirac_id
        # The master's status once, at the end: updating it from every subjob reads every
        # subjob's status each time, hours at 10,000 subjobs.
        subjob.updateStatus("submitting", update_master=False)
        subjob.updateStatus("submitted", update_master=False)
    master.updateStatus("submitted")
    master._getRegistry().flush_all()
    return master


class _Warnings(logging.Handler):
    """gangamon's warnings and errors in the Ganga session, kept for the phase's result."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(f"{record.levelname} {record.name}: {record.getMessage()}")

    def take(self) -> list[str]:
        taken, self.messages = self.messages, []
        return taken


WARNINGS = _Warnings()


def _wait_final(master: Any, timeout: float) -> None:
    # Ganga has no event for a job's status: poll the master's (it is final only once every
    # subjob is), under a deadline.
    deadline = time.monotonic() + timeout
    while master.status not in FINAL:
        if time.monotonic() > deadline:
            left = Counter(
                (j.status, j.backend.status) for j in master.subjobs if j.status not in FINAL
            )
            raise TimeoutError(
                f"job {master.id} ({master.status}) not final within {timeout:.0f} s; "
                f"subjobs not final, by (status, DIRAC status): {dict(left)}; "
                f"gangamon's warnings: {WARNINGS.take()}"
            )
        time.sleep(0.5)


def _unix(stamp: object) -> float | None:
    """Ganga's timestamps and DIRAC's state times are naive UTC datetimes."""
    if not isinstance(stamp, dt.datetime):
        return None
    return stamp.replace(tzinfo=dt.UTC).timestamp()


def _record(subjob: Any, start: float) -> dict[str, Any]:
    """What the monitor left on one subjob; the backend's state times as seconds since the
    schedule's start (the two masters' schedules differ by their start)."""
    backend = subjob.backend
    stamps = dict(subjob.time.timestamps)
    backend_stamps: dict[str, float | str | None] = {}
    for key in ("backend_running", "backend_completing", "backend_final"):
        if key in stamps:
            when = _unix(stamps[key])
            backend_stamps[key] = None if when is None else round(when - start, 1)
    outputdir = Path(subjob.outputdir)
    names = sorted(os.listdir(outputdir)) if outputdir.is_dir() else []
    locations = outputdir / "__postprocesslocations__"
    return {
        "index": int(subjob.id),
        "dirac_id": _plain(backend.id),
        "status": str(subjob.status),
        "final": _unix(stamps.get("final")),
        "backend.status": _plain(backend.status),
        "backend.statusInfo": _plain(backend.statusInfo),
        "backend.actualCE": _plain(backend.actualCE),
        "backend.normCPUTime": _plain(backend.normCPUTime),
        "backend.extraInfo": _plain(backend.extraInfo),
        "stamps": sorted(stamps),
        "backend_stamps": backend_stamps,
        "outputs": names,
        "postprocess": locations.read_text() if locations.is_file() else None,
    }


def _plain(value: object) -> object:
    return value if value is None or isinstance(value, int | float | str | bool) else str(value)
