"""gangamon inside the real `ganga` package (8.7.12): `install()` replaces Ganga's monitoring.

From a Ganga startup file, or after `import ganga.ganga`::

    import gangamon.ganga
    gangamon.ganga.install()

Ganga's AsyncMonitoringService is stopped and a `GangamonService` takes its place in
`GangaCore.Core.monitoring_component`, where Ganga's `enableMonitoring`, `disableMonitoring`,
`runMonitoring` and its shutdown find it. This module imports nothing of Ganga until
`install()` is called.
"""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path
from typing import Any

from ..backends._protocol import Backend
from ._select import BadJobSelection as BadJobSelection, select_jobs as select_jobs
from ._service import (
    WATCHED,
    GangaHooks as GangaHooks,
    GangamonService as GangamonService,
)

log = logging.getLogger("gangamon.ganga")

_original_hook: Any = None


def install(
    *,
    dirac: Backend | None = None,
    dirac_output: Path | None = None,
    deadline: float = 1.5,
    enable: bool | None = None,
) -> GangamonService:
    """Put gangamon in the place of Ganga's monitoring service; return the service.

    `dirac`: a `gangamon.backends.dirac.DiracBackend` for Ganga's Dirac jobs (they are
    otherwise monitored by Ganga's own DIRAC code through the asyncio adapter).
    `deadline`: the longest `disableMonitoring()` or the session's exit waits on monitoring.
    `enable`: start monitoring now; by default, if Ganga's service was enabled.
    Idempotent: a second call returns the installed service.
    """
    try:
        import GangaCore.Core as core
    except ImportError:
        raise ImportError(
            "gangamon.ganga.install() needs the ganga package (pip install ganga==8.7.12)"
        ) from None
    current = core.monitoring_component
    if isinstance(current, GangamonService):
        return current
    was_enabled = bool(current is not None and current.enabled)
    if current is not None:
        _stop_ganga_monitor(current, deadline)
    service = GangamonService(
        _ganga_hooks(current), dirac=dirac, dirac_output=dirac_output, deadline=deadline
    )
    core.monitoring_component = service
    _export(service)
    _hook_submissions()
    if was_enabled if enable is None else enable:
        service.enable()
    return service


def _stop_ganga_monitor(service: Any, deadline: float) -> None:
    """Stop Ganga's AsyncMonitoringService, waiting at most `deadline` seconds: its
    `disable()` waits for its executor's calls, which may hang, so it runs aside."""

    def stop() -> None:
        if service.enabled:
            service.disable()
        service.stop()

    if service.alive:
        stopper = threading.Thread(target=stop, name="gangamon-stop-ganga", daemon=True)
        stopper.start()
        stopper.join(deadline)
        service.alive = service.enabled = False
        service.join(max(0.0, deadline / 2))
        if stopper.is_alive() or service.is_alive():
            log.warning("Ganga's own monitoring did not stop within %.1f s; left behind", deadline)


def _ganga_hooks(current: Any) -> GangaHooks:
    from GangaCore.Core.GangaRepository import getRegistrySlice
    from GangaCore.GPIDev.Base.Proxy import getName, stripProxy
    from GangaCore.GPIDev.Lib.Job.Job import Job, lazyLoadJobBackend, lazyLoadJobStatus
    from GangaCore.Utility.Config import getConfig
    from GangaCore.Utility.Plugin import allPlugins

    registry = current.registry_slice if current is not None else getRegistrySlice("jobs")

    def registry_jobs() -> list[Any]:
        jobs = []
        for i in registry.ids():
            try:
                jobs.append(stripProxy(registry(i)))
            except Exception:  # removed meanwhile
                continue
        return jobs

    def job_by_id(job_id: int) -> Any:
        try:
            return stripProxy(registry(job_id))
        except Exception:
            return None

    def is_job(value: object) -> bool:
        return isinstance(stripProxy(value), Job)

    def active_subjobs(job: Any) -> list[Any]:
        job = stripProxy(job)
        subjobs = job.subjobs
        if not len(subjobs):
            return []
        cache = subjobs.getAllCachedData() if hasattr(subjobs, "getAllCachedData") else None
        if cache is None:
            return [sj for sj in subjobs if sj.status in WATCHED]
        # Ganga's subjob index: only the active subjobs are loaded.
        return [subjobs[i] for i in range(len(subjobs)) if cache[i].get("status") in WATCHED]

    def status_of(job: Any) -> str:
        return str(lazyLoadJobStatus(stripProxy(job)))

    def backend_name(job: Any) -> str:
        return str(getName(lazyLoadJobBackend(stripProxy(job))))

    def backend_classes() -> dict[str, type]:
        return {str(name): cls for name, cls in allPlugins.allClasses("backends").items()}

    return GangaHooks(
        registry_jobs=registry_jobs,
        job_by_id=job_by_id,
        is_job=is_job,
        status_of=status_of,
        backend_name=backend_name,
        active_subjobs=active_subjobs,
        backend_classes=backend_classes,
        poll_config=getConfig("PollThread"),
    )


def _export(service: GangamonService) -> None:
    """Ganga exported its service's bound runMonitoring; export ours in its place."""
    from GangaCore.Runtime.GPIexport import exportToInterface

    def runMonitoring(jobs: object = None) -> bool:
        """Monitor these jobs (ids, Job objects, a slice, or a list of them; None: all),
        starting monitoring if it is off. Returns at once."""
        from GangaCore.GPIDev.Base.Proxy import stripProxy

        return service.runMonitoring(_strip(jobs, stripProxy))

    for name in ("ganga", "GangaCore.GPI"):
        interface = sys.modules.get(name)
        if interface is not None and hasattr(interface, "runMonitoring"):
            exportToInterface(interface, "runMonitoring", runMonitoring, "Functions")


def _strip(value: object, strip: Any) -> object:
    if isinstance(value, list | tuple):
        return [_strip(v, strip) for v in value]
    return strip(value)


def _hook_submissions() -> None:
    """Ganga calls `Job.monitorSubmitted_hook` on every move to submitted (submit, resubmit,
    each subjob of a bulk submit): the moment to start watching a job, without a rescan."""
    global _original_hook
    from GangaCore.GPIDev.Lib.Job.Job import Job

    if _original_hook is not None:
        return
    _original_hook = original = Job.monitorSubmitted_hook

    def monitorSubmitted_hook(self: Any) -> None:
        original(self)
        import GangaCore.Core as core

        service = core.monitoring_component
        if isinstance(service, GangamonService):
            service.submitted(self)

    Job.monitorSubmitted_hook = monitorSubmitted_hook
