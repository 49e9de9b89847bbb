"""`gangamon doctor`: what works and what does not, each configured part probed once (a
backend as its kind's record says).

Every probe runs under a deadline and says in one line what it found; a failed probe says
what to do about it where we know.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import trio

from .._errors import GangamonError, StoreError, StoreMissing
from .._store import open_store
from .._storelock import holder
from ..backends._kind import Finding
from ..backends._kinds import KINDS
from ._config import Config, build_backends

PROBE_DEADLINE = 15.0


async def examine(config: Config) -> AsyncIterator[Finding]:
    """One finding per check, as each completes."""
    yield _store(config.store)
    for backend in build_backends(config):
        kind, settings = config.backends[backend.name]
        try:
            with trio.fail_after(PROBE_DEADLINE):
                async for finding in KINDS[kind].probe(backend, settings):
                    yield finding
        except trio.TooSlowError:
            yield Finding(False, backend.name, f"no answer within {PROBE_DEADLINE:g} s")


def _store(where: Path | str) -> Finding:
    if isinstance(where, str):
        return _database(where)
    path = where
    if not path.exists():
        parent = next((p for p in path.parents if p.exists()), Path("/"))
        writable = os.access(parent, os.W_OK)
        says = f"{path} does not exist yet; " + (
            "it will be created" if writable else f"cannot be created ({parent} is read-only)"
        )
        return Finding(writable, "store", says)
    try:
        with open_store(path, read_only=True) as store:
            jobs = sum(n for _, _, n in store.counts())
    except GangamonError as e:
        return Finding(False, "store", str(e))
    running = holder(path)
    monitor = f"a monitor runs on it ({running})" if running else "no monitor runs on it"
    return Finding(True, "store", f"{path}: {jobs:,} jobs; {monitor}")


def _database(url: str) -> Finding:
    """The PostgreSQL store at `url`: reachable, and a gangamon store or an empty schema."""
    try:
        with open_store(url, read_only=True) as store:
            where, jobs = store.where, sum(n for _, _, n in store.counts())
    except StoreMissing as e:
        says = f"{e.where}: reachable, no tables yet; gangamon run or track creates them"
        return Finding(True, "store", says)
    except StoreError as e:
        return Finding(False, "store", str(e))
    running = holder(url)
    monitor = f"a monitor runs on it ({running})" if running else "no monitor runs on it"
    return Finding(True, "store", f"{where}: {jobs:,} jobs; {monitor}")
