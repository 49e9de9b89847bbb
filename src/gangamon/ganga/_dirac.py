"""Ganga's DIRAC jobs on gangamon's `DiracBackend`, leaving on each job what Ganga's own
DIRAC monitor leaves.

A Ganga Dirac job is tracked under its DIRAC id. gangamon polls DIRAC in bulk
(`getJobsStates`, 1000 ids a call) and fetches, in bulk too, what DIRAC knows of the jobs
that changed (`backends.dirac._details`); Done jobs' output sandboxes are downloaded into
`<output root>/<DIRAC id>/`. Before Ganga's `updateStatus` runs, the applier copies onto the
Ganga job what Ganga's `DiracBase` sets at each step: `backend.status`, `statusInfo`,
`actualCE`, `extraInfo` (the application status), `normCPUTime`, the `backend_running`,
`backend_completing` and `backend_final` timestamps (DIRAC's own times), and on completion
the output sandbox and the DiracFile records of the output data
(`__postprocesslocations__`) in the job's output directory, where Ganga's postprocessors
and `DiracFile` look for them.

Where Ganga's own writes a wrong value (the application status is "unknown
ApplicationStatus": its `getJobAttributes` goes through a DISET client that refuses
https URLs; a failed job's `backend_final` is None: it looks for a Done time), DIRAC's true
value is written.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .._status import FINAL, Status
from .._store import JournalEntry, NewJob
from ..backends._protocol import Backend, BackendSettings
from ..backends.dirac import DiracBackend, DiracClientTransport, DiracHttps, DiracTransport
from ..backends.dirac._states import ganga_mapping
from ._dirac_setup import DiracNotFound, DiracSetup, find_dirac
from ._family import poll_interval
from ._options import GangamonOptions

#: Ganga's test for a DiracFile name pattern that is a wildcard (`DiracBase.regex`).
_WILDCARD = re.compile(r"[*?\[\]]")
#: Where a Dirac job gets only by way of running (or straight from the queue, between polls).
_PAST_RUNNING = frozenset({Status.COMPLETING, Status.COMPLETED, Status.FAILED})
#: Ganga's `[Output] PostProcessLocationsFileName` default.
POSTPROCESS_LOCATIONS = "__postprocesslocations__"


def is_dirac_class(cls: type) -> bool:
    """Whether a Ganga backend class is a Dirac one (DiracBase or a subclass: LHCb's Dirac)."""
    return any(c.__name__ == "DiracBase" for c in cls.__mro__)


def is_dirac(backend: Any) -> bool:
    return is_dirac_class(type(backend))


def dirac_new_job(name: str, job: Any, status: Status) -> NewJob | None:
    """The gangamon job for Ganga job `job`, or None if DIRAC has not given it an id yet."""
    dirac_id = getattr(job.backend, "id", None)
    if dirac_id is None:
        return None
    return NewJob(name, str(int(dirac_id)), status)


def ganga_dirac_backend(
    options: GangamonOptions,
    dirac_config: Any,
    poll_config: Any,
    gangadir: str,
    failed: FailedSandboxes | None = None,
) -> DiracBackend:
    """gangamon's DIRAC backend for a Ganga session, configured as its GangaDirac is: the
    DIRAC its DIRAC processes use (`find_dirac` on GangaDirac's `getDiracEnv()`), Ganga's
    `statusmapping`, sandbox download defaults (Failed jobs' into `failed`), chunk size and
    `[PollThread] Dirac` rate, and the user's `[gangamon]` options. `DiracNotFound` says
    what is missing."""
    from GangaDirac.Lib.Utilities.DiracUtilities import getDiracEnv

    try:
        env = dict(getDiracEnv())
    except Exception as e:  # GangaDirac's own failure, of any kind: named, not raised on
        raise DiracNotFound(
            f"GangaDirac has no DIRAC environment ([DIRAC] DiracEnvJSON or DiracEnvSource): "
            f"{type(e).__name__}: {e}"
        ) from None
    setup = find_dirac(env, url=options.url)
    transport: DiracTransport
    if setup.https and options.transport == "https":
        pool = options.concurrency + options.downloads  # a connection for every call
        transport = DiracHttps(setup.url, proxy=setup.proxy, ca=setup.ca, pool=pool)
    else:
        transport = _client_transport(setup, options)
    settings = BackendSettings(
        poll_interval=options.poll_interval or poll_interval(poll_config, "Dirac"),
        chunk_size=int(dirac_config["numParallelJobs"]),
        concurrency=options.concurrency,
        call_deadline=options.deadline,
        # Each Done job's sandbox is two calls (a lookup, the file) of one round trip or
        # more each: with 8 at a time and 50 ms a call, 80 sandboxes a second at most.
        finalise_concurrency=options.downloads,
        ending_interval=options.ending_interval,
    )
    return DiracBackend(
        transport,
        # In the user's gangadir: a sandbox downloaded but not yet handed over when a session
        # dies is found again (and downloaded again, idempotently) by the next one.
        output_dir=Path(gangadir, "gangamon", "dirac-output"),
        settings=settings,
        name="Dirac",
        download_output=bool(dirac_config["default_downloadOutputSandbox"]),
        details=True,
        status_map=ganga_mapping(dirac_config["statusmapping"]),
        failed_output=failed if dirac_config["failed_sandbox_download"] else None,
    )


def _client_transport(setup: DiracSetup, options: GangamonOptions) -> DiracTransport:
    """DIRAC's own client (dips), in this process: DIRAC must be importable here."""
    try:
        import DIRAC
    except ImportError:
        raise DiracNotFound(
            f"{setup.source}: {setup.url} needs DIRAC's own client (no https endpoint, or "
            "[gangamon] transport = client), and DIRAC is not importable in Ganga's Python"
        ) from None
    DIRAC.initialize()
    url = setup.url if setup.url.startswith("dips:") else None
    threads = options.concurrency + options.downloads  # a thread for every call
    return DiracClientTransport(proxy=setup.proxy, url=url, threads=threads)


class FailedSandboxes:
    """Failed Ganga Dirac jobs' sandboxes go straight into the job's output directory, with
    the `stdout` link, as Ganga's `failed_sandbox_download` leaves them (a `FailedOutput`)."""

    def __init__(self) -> None:
        #: Each tracked job's output directory, by DIRAC id, until it has ended.
        self._directories: dict[int, Path] = {}

    def register(self, dirac_id: int, directory: Path) -> None:
        self._directories[dirac_id] = directory

    def forget(self, dirac_id: int) -> None:
        self._directories.pop(dirac_id, None)

    def target(self, dirac_id: int) -> Path | None:
        return self._directories.pop(dirac_id, None)

    def unpacked(self, dirac_id: int, directory: Path) -> None:
        _link_stdout(directory)


class DiracFamily:
    """Ganga's Dirac backends (GangaDirac's `Dirac`, LHCb's) on one gangamon DIRAC backend."""

    def __init__(
        self,
        backend: Backend,
        output_root: Path | None = None,
        *,
        locations_file: str = POSTPROCESS_LOCATIONS,
        failed: FailedSandboxes | None = None,
    ) -> None:
        """`output_root`: where `backend` downloads sandboxes (default: a `DiracBackend`'s
        `output_dir`); `failed`: where it puts Failed jobs' (each job's output directory is
        registered there when it is tracked)."""
        self.backend = backend
        if output_root is None:
            if not isinstance(backend, DiracBackend):
                raise TypeError(f"DiracFamily of {backend!r} needs the output_root it uses")
            output_root = backend.output_dir
        self.failed = failed
        self.applier = DiracApplier(output_root, locations_file, failed)

    def claims(self, backend_name: str, backend: Any) -> bool:
        return is_dirac(backend)

    def backends(self) -> Sequence[Backend]:
        return [self.backend]

    def new_job(
        self, job: Any, backend_name: str, start: Status
    ) -> tuple[NewJob, DiracApplier] | None:
        """The job under its DIRAC id; None while DIRAC has not given it one."""
        new = dirac_new_job(self.backend.name, job, start)
        if new is None:
            return None
        if self.failed is not None:
            output = Path(job.getOutputWorkspace().getPath())
            self.failed.register(int(new.backend_id or 0), output)
        return new, self.applier


class DiracApplier:
    """Copies DIRAC's view onto the Ganga job, as Ganga's `DiracBase` does, before its
    `updateStatus`; hands over the downloaded output."""

    def __init__(
        self,
        output_root: Path,
        locations_file: str = POSTPROCESS_LOCATIONS,
        failed: FailedSandboxes | None = None,
    ) -> None:
        self.output_root = output_root
        self.locations_file = locations_file
        self.failed = failed

    def before(self, job: Any, entry: JournalEntry) -> None:
        backend = job.backend
        details: Mapping[str, object] = entry.details or {}
        if entry.native_status is not None:
            backend.status = entry.native_status
        # The move out of completing is gangamon's finalisation: its reason is not DIRAC's.
        if entry.reason and entry.old != Status.COMPLETING:
            backend.statusInfo = entry.reason
        for key, attribute in (("site", "actualCE"), ("application_status", "extraInfo")):
            value = details.get(key)
            if isinstance(value, str):
                setattr(backend, attribute, value)
        if details.get("norm_cpu_time") is not None:
            backend.normCPUTime = details["norm_cpu_time"]  # as DIRAC gives it, as Ganga does
        _stamp(job, entry.new, details)
        if entry.new in FINAL and self.failed is not None:
            self.failed.forget(int(backend.id))
        ran = details.get("running_at") is not None
        if ran and job.status == Status.SUBMITTED.value and entry.new in _PAST_RUNNING:
            # It ran between two polls. Ganga's own monitor moves every job it finalises
            # through running (its hooks run, its running timestamp is written). Not on a
            # change within the queue (Matched), whose details may come after it started:
            # its end would then find it moved, and be dropped.
            job.updateStatus(Status.RUNNING.value, update_master=False)
        if entry.new in (Status.COMPLETING, Status.COMPLETED):
            # The output data came with the change to Done, whichever entry that is.
            output = Path(job.getOutputWorkspace().getPath())
            self._write_locations(job, output, details.get("output_data"))
            downloaded = self.output_root / str(backend.id)
            if entry.new == Status.COMPLETED and downloaded.is_dir():
                _move_into(downloaded, output)
                _link_stdout(output)

    def after(self, job: Any, entry: JournalEntry) -> None:
        pass

    def _write_locations(self, job: Any, output: Path, files: object) -> None:
        """Ganga's DiracFile records of the job's output data, as `DiracBase` writes them
        (the file is made even when there are none, as Ganga's is)."""
        output.mkdir(parents=True, exist_ok=True)
        store = output / self.locations_file
        store.touch()
        patterns = _dirac_file_patterns(job)
        if patterns is None or not isinstance(files, list):
            return
        wildcards = [p for p in patterns if _WILDCARD.search(p)]
        lines = []
        for record in files:
            if not isinstance(record, Mapping):
                continue
            name = os.path.basename(str(record.get("lfn", "")))
            lfn = record.get("lfn", "Error Getting LFN!")
            where = record.get("locations", ["NotAvailable"])
            guid = record.get("guid", "NotAvailable")
            matching = [w for w in wildcards if fnmatch.fnmatch(name, w)] or [""]
            lines += [f"DiracFile:::{w}&&{name}->{lfn}:::{where!s}:::{guid}\n" for w in matching]
        with store.open("a") as out:
            out.writelines(lines)


def _stamp(job: Any, new: Status, details: Mapping[str, object]) -> None:
    """The backend timestamps Ganga's `DiracBase._getStateTime` writes on the way to `new`."""
    stamps = job.time.timestamps
    if new in (Status.RUNNING, Status.COMPLETING) or new in FINAL:
        running = _utc(details.get("running_at"))
        # At the end Ganga writes what it found, None included (a job killed in the queue).
        if "backend_running" not in stamps and (running is not None or new in FINAL):
            stamps["backend_running"] = running
    completed = _utc(details.get("completed_at"))
    if "backend_completing" not in stamps and (
        completed is not None or new == Status.COMPLETING or new in FINAL
    ):
        # The time DIRAC said Completed, from the poll that saw it there (still running in
        # Ganga's terms); by the end, Ganga has written what it found, None included.
        stamps["backend_completing"] = completed
    ended = _utc(details.get("ended_at"))
    if ended is not None and (new == Status.COMPLETING or new in FINAL):
        # Known from the change to Done, before gangamon's finalisation completes the job.
        stamps["backend_final"] = ended


def _link_stdout(output: Path) -> None:
    """`stdout` pointing at the sandbox's Ganga log, as Ganga's getOutputSandbox links it."""
    stdout = output / "stdout"
    logs = sorted(output.glob("*Ganga_*.log"))
    if logs and not stdout.exists() and not stdout.is_symlink():
        stdout.symlink_to(logs[0])


def _utc(value: object) -> dt.datetime | None:
    """DIRAC's "YYYY-MM-DD HH:MM:SS" (UTC) as the naive datetime Ganga keeps."""
    if not isinstance(value, str):
        return None
    try:
        return dt.datetime.strptime(value, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None


def _dirac_file_patterns(job: Any) -> list[str] | None:
    """The name patterns of the job's DiracFile outputs, or None if it has none."""
    outputs: Any = getattr(job, "outputfiles", None)
    if not hasattr(outputs, "get"):
        return None
    try:
        from GangaDirac.Lib.Files.DiracFile import DiracFile
    except ImportError:
        return None
    files = outputs.get(DiracFile)
    return [str(f.namePattern) for f in files] if files else None


def _move_into(source: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        destination = target / item.name
        if destination.is_dir() and item.is_dir():
            shutil.rmtree(destination)
        shutil.move(str(item), str(destination))
    source.rmdir()
