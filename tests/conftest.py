from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from .stores import KINDS, fresh_location

# `ci` is the default; `nox -s fuzz` selects `fuzz` for the long runs.
settings.register_profile("ci", max_examples=100, deadline=None)
settings.register_profile(
    "fuzz",
    max_examples=2_000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("ci")


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Each test's logging as it found it: a command configures gangamon's logger to the
    stderr of its moment, which pytest closes after the test."""
    logger = logging.getLogger("gangamon")
    saved = logger.handlers[:], logger.level, logger.propagate
    yield
    logger.handlers[:], logger.level, logger.propagate = saved


@pytest.fixture(params=KINDS)
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | Path]:
    """Where a new store can be opened: once an SQLite file, once a PostgreSQL schema."""
    with fresh_location(request.param, tmp_path) as where:
        yield where
