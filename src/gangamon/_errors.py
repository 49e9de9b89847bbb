"""The typed errors of gangamon's public surface. Each message names the offending value."""

from __future__ import annotations

from pathlib import Path


class GangamonError(Exception):
    """Base of every error gangamon raises on purpose."""


class StoreError(GangamonError):
    """The job store cannot be opened or used as asked."""

    def __init__(self, where: Path | str, problem: str) -> None:
        #: The store's path, or its URL without the password.
        self.where = str(where)
        self.problem = problem
        super().__init__(f"job store {self.where!r}: {problem}")


class StoreMissing(StoreError):
    """A store that is not there yet, for reading: `gangamon track` or `run` makes it."""


class StoreUnwritable(StoreError):
    """A write the store refused for now: a full disk, a read-only mount, an I/O error, a
    lock held too long, a database server gone. Nothing of it was written."""


class UnknownJob(GangamonError, KeyError):
    """A job id that the store does not hold."""

    def __init__(self, job: object) -> None:
        self.job = job
        super().__init__(job)

    def __str__(self) -> str:
        return f"unknown job id {self.job!r}"


class DuplicateJob(GangamonError):
    """A job to add or revive under a backend id that another active job holds."""

    def __init__(self, backend: str, backend_id: str, holder: int) -> None:
        self.backend, self.backend_id, self.holder = backend, backend_id, holder
        super().__init__(f"{backend}:{backend_id} is already watched, as job {holder}")


class StaleTransition(GangamonError):
    """A compare-and-set transition whose expected status is no longer the stored one."""

    def __init__(self, job: int, expected: str, actual: str) -> None:
        self.job, self.expected, self.actual = job, expected, actual
        super().__init__(f"job {job}: expected status {expected!r} but the store has {actual!r}")


def single_exception(exc: BaseException) -> BaseException:
    """The exception inside nested one-member groups, or `exc` itself.

    At the public edge (`Monitor.run`, `open_monitor`, the CLI) a lone exception
    (KeyboardInterrupt included) comes out bare; a group of several stays a group.
    """
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc
