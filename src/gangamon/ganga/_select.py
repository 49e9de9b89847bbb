"""What `runMonitoring(jobs)` accepts (Ganga issue #2380): ids, Job objects, slices, lists.

Pure: Ganga is reached only through the `lookup` and `is_job` callables, so the rules are
tested without it. Anything else is refused with one line naming the value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

J = TypeVar("J")


class BadJobSelection(TypeError):
    """A `runMonitoring` argument that names no jobs we can find."""


def select_jobs(
    value: object,
    *,
    lookup: Callable[[int], J | None],
    is_job: Callable[[object], bool],
    all_jobs: Callable[[], Iterable[J]],
) -> list[J]:
    """The jobs `value` names, in order, each once.

    `value` is None (every job), a job id, a Job, or an iterable of those (a list, a tuple,
    a job slice, a subjob list); nested iterables are flattened. `lookup(id)` returns None
    for an id the registry does not hold.
    """
    if value is None:
        return _unique(all_jobs())
    found: list[J] = []
    _collect(value, lookup, is_job, found, top=value)
    return _unique(found)


def _collect(
    value: object,
    lookup: Callable[[int], J | None],
    is_job: Callable[[object], bool],
    found: list[J],
    *,
    top: object,
) -> None:
    if is_job(value):
        found.append(value)  # type: ignore[arg-type]  # is_job vouches for it
        return
    if isinstance(value, bool | str | bytes):
        raise BadJobSelection(_refusal(value, top))
    if isinstance(value, int):
        job = lookup(value)
        if job is None:
            raise BadJobSelection(f"runMonitoring: no job with id {value}")
        found.append(job)
        return
    if isinstance(value, Iterable):
        for item in value:
            _collect(item, lookup, is_job, found, top=top)
        return
    raise BadJobSelection(_refusal(value, top))


def _refusal(value: object, top: object) -> str:
    where = "" if value is top else f" in {_short(top)}"
    return (
        f"runMonitoring cannot monitor {_short(value)}{where}: give job ids, Job objects, "
        "a job slice, or a list of them"
    )


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


def _unique(jobs: Iterable[J]) -> list[J]:
    seen: set[int] = set()
    unique = []
    for job in jobs:
        if id(job) not in seen:
            seen.add(id(job))
            unique.append(job)
    return unique
