"""`install()`: gangamon in the place of Ganga's monitoring service, and the hooks by which
Ganga loads it as a runtime package (`RUNTIME_PATH = ...:gangamon.ganga` in `.gangarc`).

Nothing of Ganga is imported until one of them is called.
"""

from __future__ import annotations

import functools
import logging
import sys
import threading
from pathlib import Path
from typing import Any

from ..backends._protocol import Backend
from ._batch import BatchFamily
from ._family import Family
from ._options import DOCS, SECTION, GangamonOptions, OptionError, parse_options
from ._service import WATCHED, GangaHooks, GangamonService

log = logging.getLogger("gangamon.ganga")

_original_hook: Any = None


def install(
    *,
    dirac: Family | Backend | None = None,
    dirac_output: Path | None = None,
    deadline: float = 1.5,
    enable: bool | None = None,
    options: GangamonOptions | None = None,
) -> GangamonService:
    """Put gangamon in the place of Ganga's monitoring service; return the service.

    `dirac`: a `gangamon.backends.dirac.DiracBackend` (its sandboxes in `dirac_output`, by
    default its `output_dir`) or a `Family` for Ganga's Dirac jobs; by default one
    is built from the DIRAC configuration Ganga's DIRAC environment uses (`_dirac_setup`)
    when GangaDirac is loaded, with `options` (default: the `[gangamon]` section of the
    session's configuration). Where none can be built, the reason is logged in one line and
    Ganga's own DIRAC code monitors Dirac jobs through the adapter.
    Jobs of Ganga's batch classes (Slurm, LSF, PBS, SGE, Condor) whose system's listing
    command is installed here are monitored by gangamon's batch backends (`_batch`).
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
    options = options if options is not None else read_options()
    if dirac is None:
        dirac = _zero_config_dirac(options)
    elif isinstance(dirac, Backend):
        from ._dirac import DiracFamily

        # Its sandboxes are handed over from where it downloads them.
        dirac = DiracFamily(dirac, dirac_output)
    was_enabled = bool(current is not None and current.enabled)
    if current is not None:
        _stop_ganga_monitor(current, deadline)
    hooks = _ganga_hooks(current)
    batch = BatchFamily(hooks.poll_config)
    service = GangamonService(hooks, dirac=dirac, families=[batch], deadline=deadline)
    core.monitoring_component = service
    _export(service)
    _hook_submissions()
    if was_enabled if enable is None else enable:
        service.enable()
    return service


def read_options() -> GangamonOptions:
    """The session's `[gangamon]` options: from Ganga's configuration once `loadPlugins`
    defined the section, else from the values Ganga read but holds for an unknown section."""
    from GangaCore.Utility.Config import Config

    raw: dict[str, object] = {}
    section = Config.allConfigs.get(SECTION)
    if section is not None:
        raw = {name: section[name] for name in DOCS if name in section.options}
    for pending in (
        Config.unknownConfigFileValues,
        Config.unknownGangarcFileValues,
        Config.unknownUserConfigValues,
    ):
        raw.update(pending.get(SECTION, {}))
    return parse_options(raw)


def loadPlugins(config: Any = None) -> None:
    """Ganga's runtime-package hook, during its bootstrap: define `[gangamon]`, so that
    `config.gangamon` shows the options and Ganga keeps the user's values for them."""
    from GangaCore.Utility.Config import makeConfig

    section = makeConfig(SECTION, "gangamon: Ganga's monitoring on trio (gangamon.ganga)")
    for name, doc in DOCS.items():
        section.addOption(name, "", doc)


def postBootstrapHook() -> None:
    """Ganga's runtime-package hook, after its monitoring service started: install gangamon
    in its place if `[gangamon] enable` (the default). A bad option is one error line, and
    Ganga's own monitoring stays."""
    try:
        options = read_options()
    except OptionError as e:
        log.error("gangamon not installed: %s", e)
        return
    if options.enable:
        install(options=options)
        log.info("gangamon monitors this session's jobs (Ganga's own monitoring is stopped)")


def _zero_config_dirac(options: GangamonOptions) -> Family | None:
    """gangamon's DIRAC backend for this session's GangaDirac, or None (reason logged)."""
    from GangaCore.Utility.Config import getConfig
    from GangaCore.Utility.Plugin import allPlugins

    if "Dirac" not in allPlugins.allClasses("backends"):
        return None  # GangaDirac is not loaded: no Dirac jobs in this session
    dirac_config = getConfig("DIRAC")
    poll_config = getConfig("PollThread")
    gangadir = getConfig("Configuration")["gangadir"]
    from ._dirac import DiracFamily, FailedSandboxes, ganga_dirac_backend
    from ._dirac_setup import DiracNotFound

    try:
        failed = FailedSandboxes()
        backend = ganga_dirac_backend(options, dirac_config, poll_config, gangadir, failed)
        return DiracFamily(backend, failed=failed)
    except DiracNotFound as e:
        log.warning("gangamon does not monitor Dirac jobs (Ganga's own code does): %s", e)
        return None


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
    each subjob of a bulk submit): the moment to start watching a job, without a rescan.

    A job's own `submit()` and `resubmit()` set it submitted twice: in its backend's
    `master_submit`, then again before they return (Ganga's "FIXME" in `Job._resubmit`), the
    second time from whatever status it has by then. So the service is told when a job is
    inside one of them: gangamon's changes to it wait until it has returned.
    """
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

    def submitting(method: Any) -> Any:
        @functools.wraps(method)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            import GangaCore.Core as core

            service = core.monitoring_component
            if not isinstance(service, GangamonService):
                return method(self, *args, **kwargs)
            with service.submitting(self):
                return method(self, *args, **kwargs)

        return wrapper

    Job.monitorSubmitted_hook = monitorSubmitted_hook
    Job.submit = submitting(Job.submit)
    Job._resubmit = submitting(Job._resubmit)
