"""`gangamon doctor`: what works and what does not, each configured part probed once.

Every probe runs under a deadline and says in one line what it found; a failed probe says
what to do about it where we know.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import trio

from ._config import Config, DiracConfig, LocalConfig, build_backends
from ._errors import GangamonError
from ._store import Store
from .backends import Backend, BackendError
from .backends.dirac import DiracBackend, DiracHttps, check_proxy
from .backends.local import LocalBackend
from .backends.slurm import SlurmBackend

PROBE_DEADLINE = 15.0


@dataclass(frozen=True)
class Finding:
    ok: bool
    part: str
    says: str


async def examine(config: Config) -> AsyncIterator[Finding]:
    """One finding per check, as each completes."""
    yield _store(config.store)
    for backend in build_backends(config):
        kind, settings = config.backends[backend.name]
        try:
            with trio.fail_after(PROBE_DEADLINE):
                async for finding in _probe(backend, kind, settings):
                    yield finding
        except trio.TooSlowError:
            yield Finding(False, backend.name, f"no answer within {PROBE_DEADLINE:g} s")


def _store(path: Path) -> Finding:
    if not path.exists():
        parent = next((p for p in path.parents if p.exists()), Path("/"))
        writable = os.access(parent, os.W_OK)
        says = f"{path} does not exist yet; " + (
            "it will be created" if writable else f"cannot be created ({parent} is read-only)"
        )
        return Finding(writable, "store", says)
    try:
        with Store(path) as store:
            jobs = sum(n for _, _, n in store.counts())
    except GangamonError as e:
        return Finding(False, "store", str(e))
    return Finding(True, "store", f"{path}: {jobs:,} jobs")


async def _probe(backend: Backend, kind: str, settings: object) -> AsyncIterator[Finding]:
    name = backend.name
    if isinstance(backend, DiracBackend) and isinstance(settings, DiracConfig):
        async for finding in _dirac(backend, settings):
            yield finding
    elif isinstance(backend, LocalBackend) and isinstance(settings, LocalConfig):
        yield _local(name, backend.root)
    elif isinstance(backend, SlurmBackend):
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
            else "no accounting: jobs Slurm "
            "has forgotten (after MinJobAge) can only end as unknown",
        )
        yield Finding(True, name, f"MinJobAge {probe.min_job_age} s")
    else:
        command = getattr(backend, "query_name", kind)
        found = shutil.which(command)
        yield Finding(found is not None, name, f"{command}: {found or 'not on PATH'}")


async def _dirac(backend: DiracBackend, settings: DiracConfig) -> AsyncIterator[Finding]:
    name = backend.name
    proxy = backend.transport.proxy
    if proxy is not None:
        try:
            expiry = check_proxy(proxy)
        except BackendError as e:
            yield Finding(False, name, str(e))
            return
        left = expiry - dt.datetime.now(dt.UTC)
        yield Finding(
            True, name, f"proxy {proxy} valid until {expiry:%Y-%m-%d %H:%M} UTC ({_hours(left)})"
        )
    transport = backend.transport
    if isinstance(transport, DiracHttps) and transport.ca is not None and not transport.ca.exists():
        yield Finding(False, name, f"CA {transport.ca} does not exist")
        return
    try:
        async with transport.session():
            await transport.call("WorkloadManagement", "JobMonitoring", "getJobsStatus", [])
    except (BackendError, GangamonError, OSError) as e:
        yield Finding(False, name, f"{settings.url}: {e}")
        return
    yield Finding(True, name, f"{settings.url} answers JobMonitoring calls")


def _local(name: str, root: Path) -> Finding:
    parent = next((p for p in (root, *root.parents) if p.exists()), Path("/"))
    if not os.access(parent, os.W_OK):
        return Finding(False, name, f"{root}: cannot write in {parent}")
    if not hasattr(os, "pidfd_open"):
        return Finding(False, name, "no pidfd_open: process exits cannot be awaited here")
    return Finding(True, name, f"job directories in {root}; exits awaited by pidfd")


def _hours(left: dt.timedelta) -> str:
    hours = left.total_seconds() / 3600
    return f"{hours:.1f} h left" if hours >= 1 else f"{hours * 60:.0f} min left: renew soon"
