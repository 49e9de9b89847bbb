from __future__ import annotations

from hypothesis import HealthCheck, settings

# `ci` is the default; `nox -s fuzz` selects `fuzz` for the long runs.
settings.register_profile("ci", max_examples=100, deadline=None)
settings.register_profile(
    "fuzz",
    max_examples=2_000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("ci")
