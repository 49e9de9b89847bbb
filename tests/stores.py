"""Where the store tests keep their stores: an SQLite file, or a schema of its own in the
PostgreSQL that `scripts/postgresql-local.sh up` starts (its URL in $GANGAMON_TEST_POSTGRESQL).

Without that variable the PostgreSQL cases skip, saying so; with it, a server that does not
answer fails them: CI sets it only once the server is up.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

ENV = "GANGAMON_TEST_POSTGRESQL"
KINDS = ["sqlite", "postgresql"]


def server_url() -> str:
    """The test server's URL; skips the test if there is none."""
    url = os.environ.get(ENV)
    if not url:
        pytest.skip(
            f"no PostgreSQL to test against: ${ENV} is unset (scripts/postgresql-local.sh up)"
        )
    return url


def in_schema(url: str, schema: str) -> str:
    """`url` with `schema` first on its search_path."""
    joiner = "&" if "?" in url else "?"
    # The server's own crash is not what these tests are about: commits need not wait for its disk.
    return f"{url}{joiner}options=-csearch_path%3D{schema}%20-csynchronous_commit%3Doff"


@contextlib.contextmanager
def fresh_schema() -> Iterator[str]:
    """The URL of an empty schema of its own on the test server, dropped afterwards."""
    import psycopg

    url = server_url()
    schema = f"test_{secrets.token_hex(6)}"
    with psycopg.connect(url, autocommit=True) as db:
        db.execute(f"CREATE SCHEMA {schema}")
    try:
        yield in_schema(url, schema)
    finally:
        with psycopg.connect(url, autocommit=True) as db:
            db.execute(f"DROP SCHEMA {schema} CASCADE")


@contextlib.contextmanager
def fresh_location(kind: str, directory: Path) -> Iterator[str | Path]:
    """Where a new, empty store of `kind` can be opened."""
    if kind == "sqlite":
        yield directory / "jobs.sqlite"
    else:
        with fresh_schema() as url:
            yield url
