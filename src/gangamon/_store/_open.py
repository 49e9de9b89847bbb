"""Opening a store by where it is: a path is an SQLite file, a postgresql:// URL a database."""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable
from pathlib import Path

from .._errors import StoreError
from ._base import JobStore
from ._location import is_postgresql_url, redacted
from ._sqlite import Store


def open_store(
    where: Path | str, *, clock: Callable[[], float] = time.time, read_only: bool = False
) -> JobStore:
    """The store at `where`; `StoreError` naming it (without a password) if it cannot be used.

    PostgreSQL needs psycopg (`gangamon[postgresql]`), imported only when a URL asks for it.
    """
    if isinstance(where, str) and is_postgresql_url(where):
        if not _installed("psycopg"):
            raise StoreError(
                redacted(where), "PostgreSQL needs psycopg 3: pip install 'gangamon[postgresql]'"
            )
        from ._postgres import PostgresStore

        return PostgresStore(where, clock=clock, read_only=read_only)
    return Store(where, clock=clock, read_only=read_only)


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ValueError:  # in sys.modules as None: its import was made to fail
        return False
