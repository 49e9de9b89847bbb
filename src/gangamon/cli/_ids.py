"""Job ids as users type them: a backend's ids (single ids, ranges `1200-1299`, files of
ids), and jobs named by store id or as `backend:id`.

Each backend kind has its own id grammar (in its record); anything else is refused, naming
the id and where it came from, before a single job is stored or changed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from .._errors import GangamonError
from .._status import ACTIVE
from .._store import JobStore
from ..backends._kinds import KINDS

#: Longest range accepted in one token: a typo like 1-100000000 should not fill the store.
MAX_RANGE = 1_000_000

_RANGE = re.compile(r"(\d{1,18})-(\d{1,18})", re.ASCII)


class BadJobId(GangamonError):
    """An id that is not one of its backend's, or a file of ids that cannot be read."""


def parse_ids(kind: str, tokens: Iterable[str], *, source: str = "the command line") -> list[str]:
    """Every id the tokens name, in order, without repeats. `BadJobId` for the first bad one."""
    ids: dict[str, None] = {}
    for token in tokens:
        for job in _expand(kind, token.strip(), source):
            ids[job] = None
    return list(ids)


def read_id_file(kind: str, path: Path) -> list[str]:
    """Ids from a file: whitespace- or comma-separated, `#` starts a comment."""
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise BadJobId(f"cannot read job ids from {path}: {e}") from None
    ids: dict[str, None] = {}
    for number, line in enumerate(lines, 1):
        tokens = line.split("#", 1)[0].replace(",", " ").split()
        for job in parse_ids(kind, tokens, source=f"{path} line {number}"):
            ids[job] = None
    return list(ids)


def _expand(kind_name: str, token: str, source: str) -> list[str]:
    kind = KINDS.get(kind_name)
    if kind is None:
        raise BadJobId(f"no job id grammar for backend type {kind_name!r}")
    if kind.job_id is not None:
        try:
            return [kind.job_id(token)]
        except ValueError as e:
            raise BadJobId(f"{token!r} in {source} {e}") from None
    name, grammar = kind.display_name, kind.id_grammar
    if grammar is None or grammar.fullmatch(token):
        return [token]
    span = _RANGE.fullmatch(token)
    if span:
        first, last = int(span[1]), int(span[2])
        if first < 1 or last < first or last - first >= MAX_RANGE:
            raise BadJobId(
                f"bad {name} id range {token!r} in {source}: first >= 1, last >= first, "
                f"at most {MAX_RANGE:,} ids"
            )
        return [str(i) for i in range(first, last + 1)]
    raise BadJobId(f"malformed {name} job id {token!r} in {source}")


_STORE_IDS = re.compile(r"([1-9]\d{0,17})(?:-([1-9]\d{0,17}))?", re.ASCII)


def resolve_jobs(store: JobStore, tokens: Iterable[str], kinds: Mapping[str, str]) -> list[int]:
    """The store ids of the jobs `tokens` name, in order, without repeats: store ids (`17`,
    ranges `17-20`) or a backend's own ids as `backend:id` (`dirac:1536`, `slurm:1234_7`,
    `dirac:1500-1536`), read by the grammar of the backend's kind (`kinds`: name -> kind, the
    configured backends; a backend only the store knows takes the id as written). Where
    several runs share a backend id, the active one, else the latest. `BadJobId` for the first
    token that names no job in the store."""
    jobs: dict[int, None] = {}
    for token in tokens:
        for job in _resolve(store, token.strip(), kinds):
            jobs[job] = None
    return list(jobs)


def _resolve(store: JobStore, token: str, kinds: Mapping[str, str]) -> list[int]:
    span = _STORE_IDS.fullmatch(token)
    if span:
        first, last = int(span[1]), int(span[2] or span[1])
        if last < first or last - first >= MAX_RANGE:
            raise BadJobId(f"bad store id range {token!r}: first >= 1, last >= first")
        for job in range(first, last + 1):
            store.get(job)  # UnknownJob: "unknown job id 999"
        return list(range(first, last + 1))
    backend, colon, backend_id = token.partition(":")
    if not colon:
        raise BadJobId(
            f"malformed job {token!r}: a store id (17) or backend:id (dirac:1536) expected"
        )
    known = set(kinds) | {name for name, _, _ in store.counts()}
    if backend not in known:
        raise BadJobId(
            f"unknown backend {backend!r} in {token!r} (known: {', '.join(sorted(known))})"
        )
    ids = parse_ids(kinds[backend], [backend_id]) if backend in kinds else [backend_id]
    found = []
    for one in ids:
        runs = store.jobs(backend=backend, backend_id=one)
        if not runs:
            raise BadJobId(f"no job {backend}:{one} in the store")
        active = [r.id for r in runs if r.status in ACTIVE]
        found.append(active[0] if active else runs[-1].id)
    return found
