from __future__ import annotations

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


@pytest.fixture(params=KINDS)
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | Path]:
    """Where a new store can be opened: once an SQLite file, once a PostgreSQL schema."""
    with fresh_location(request.param, tmp_path) as where:
        yield where
