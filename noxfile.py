"""Developer sessions: `nox -s tests lint` is the CI line; `fuzz` runs the long property tests."""

from __future__ import annotations

import nox

nox.needs_version = ">=2025.2.9"
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_external_run = True
nox.options.sessions = ["tests", "lint"]

PYPROJECT = nox.project.load_toml("pyproject.toml")


def _install(session: nox.Session, group: str) -> None:
    session.install("-e", ".", *nox.project.dependency_groups(PYPROJECT, group))


@nox.session(python="3.11")
def tests(session: nox.Session) -> None:
    """The unit, property and integration tests that need nothing beyond pip."""
    _install(session, "test")
    session.run("pytest", *session.posargs)


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """ruff (with the ASYNC rules), ruff format, mypy --strict on src and tests."""
    _install(session, "lint")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")


@nox.session(python="3.11", default=False)
def fuzz(session: nox.Session) -> None:
    """The Hypothesis tests under the `fuzz` profile: thousands of examples each."""
    _install(session, "fuzz")
    session.run(
        "pytest", "--hypothesis-profile=fuzz", "-o", "faulthandler_timeout=1800", *session.posargs
    )


@nox.session(python="3.11", default=False)
def bench(session: nox.Session) -> None:
    """Benchmarks with their goals side by side; `nox -s bench -- --quick` for CI."""
    _install(session, "bench")
    session.run("python", "-m", "benchmarks", *session.posargs)
