"""Developer sessions: `nox -s tests lint` is the CI line; `fuzz` runs the long property tests."""

from __future__ import annotations

import os
import zipfile
from itertools import chain
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import nox
from packaging.requirements import Requirement

nox.needs_version = ">=2025.2.9"
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_external_run = True
nox.options.sessions = ["tests", "lint"]

PYPROJECT = nox.project.load_toml("pyproject.toml")
# The supported Pythons (as pyproject's classifiers say): the tests run on each, the other
# sessions on 3.11, as does `oldest` (the floors are oldest there).
PYTHONS = ["3.11", "3.12", "3.13"]
GANGA_VERSION = "8.7.12"
DIRAC_VERSION = "9.1.22"


# Every extra: the sessions test the command, the simulator and asyncio backends too.
EXTRAS = ",".join(PYPROJECT["project"]["optional-dependencies"])


def _install(session: nox.Session, group: str) -> None:
    session.install("-e", f".[{EXTRAS}]", *nox.project.dependency_groups(PYPROJECT, group))


@nox.session(python=PYTHONS[0])
def tests(session: nox.Session) -> None:
    """The unit, property and integration tests that need nothing beyond pip."""
    _install(session, "test")
    session.run("pytest", *session.posargs)


@nox.session(name="tests-newer", python=PYTHONS[1:], default=False)
def tests_newer(session: nox.Session) -> None:
    """The same tests on the newer Pythons. Not green yet, so not in CI: on 3.12, two
    asyncio-backend tests (trio-asyncio: "You can't change the event loop policy in Trio
    context") and one embed exit test fail; on 3.13, unclosed sqlite3 connections of some
    tests are warnings, errors here."""
    _install(session, "test")
    session.run("pytest", *session.posargs)


@nox.session(python=PYTHONS[0], default=False)
def oldest(session: nox.Session) -> None:
    """The tests with every dependency at its floor in pyproject.toml (the oldest releases
    gangamon claims to work with), on the oldest Python."""
    constraints = Path(session.create_tmp(), "floors.txt")
    constraints.write_text("".join(f"{pin}\n" for pin in floors(PYPROJECT)))
    session.install(
        "-c",
        str(constraints),
        "-e",
        f".[{EXTRAS}]",
        *nox.project.dependency_groups(PYPROJECT, "test"),
    )
    session.run("python", "-m", "pip", "list")
    session.run("pytest", *session.posargs)


def floors(pyproject: dict[str, Any]) -> list[str]:
    """`name==version` for each `name>=version` among the project's dependencies and extras."""
    project = pyproject["project"]
    requirements = [
        Requirement(r)
        for r in [*project["dependencies"], *chain(*project["optional-dependencies"].values())]
    ]
    pins = set()
    for requirement in requirements:
        if requirement.name == project["name"]:
            continue  # an extra made of other extras
        (floor,) = (s.version for s in requirement.specifier if s.operator == ">=")
        pins.add(f"{requirement.name}=={floor}")
    return sorted(pins)


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """ruff (with the ASYNC rules), ruff format, mypy --strict on src and tests."""
    _install(session, "lint")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")


@nox.session(python="3.11", default=False)
def fuzz(session: nox.Session) -> None:
    """The Hypothesis tests (Hypothesis marks them `hypothesis`) under the `fuzz` profile:
    thousands of examples each. The other tests, the same under any profile, ran in `tests`."""
    _install(session, "fuzz")
    session.run(
        "pytest",
        "--hypothesis-profile=fuzz",
        "-o",
        "faulthandler_timeout=1800",
        "-m",
        "hypothesis and not realtime",
        *session.posargs,
    )


@nox.session(python="3.11", default=False)
def bench(session: nox.Session) -> None:
    """Benchmarks with their goals side by side; `nox -s bench -- --quick` for CI. The real
    ganga package (with GangaDirac) is installed for the side-by-side with Ganga's own monitors,
    the real DIRAC client for the transport comparison and Ganga's DIRAC monitor."""
    # ganga 8.7.12 and DIRAC 9.1.22's client pin nothing against each other: pip moves no
    # package between these installs, and pip check finds only the gfal2 left out. DIRAC's
    # diracx adds a .pth import hook to every Python process here: about 50 ms more at start,
    # no change seen in the engine's figures. ganga[dirac]: GangaDirac's process manager imports
    # UltraDict and psutil.
    session.install(f"ganga[dirac]=={GANGA_VERSION}")
    _install_dirac_client(session)
    _install(session, "bench")
    _check_requirements(session)
    session.run("python", "-m", "benchmarks", *session.posargs)


def _install_dirac_client(session: nox.Session) -> None:
    """The real DIRAC client, DIRAC_VERSION, into the session's venv.

    DIRAC's wheel cannot be installed as is: M2Crypto builds only with swig on PATH (swig from
    PyPI, with SWIG_LIB pointing into it), and gfal2-python needs a C library Debian's Python
    cannot build against here. So: swig, then DIRAC's own requirements minus gfal2, then
    DIRAC without dependencies. The client side needs nothing of gfal2.
    """
    session.install("swig")
    # run_install: these are install steps, to be run under --install-only too.
    found = session.run_install(
        "python",
        "-c",
        "import os, swig; print(os.path.join(os.path.dirname(swig.__file__), 'data'))",
        silent=True,
    )
    if found is None:
        return  # --no-install (-R): install steps do not run, the venv has the client already
    swig = str(found).strip()
    swig_lib = next(Path(swig, "share", "swig").iterdir())
    # The venv's `swig` is a Python wrapper; pip's build isolation (26.3 and newer) hides the
    # venv's packages from it, so it cannot import itself. Put the binary in its place.
    wrapper = Path(str(session.bin), "swig")
    wrapper.unlink(missing_ok=True)
    wrapper.symlink_to(Path(swig, "bin", "swig"))
    env = {"PATH": f"{swig}/bin:{os.environ['PATH']}", "SWIG_LIB": str(swig_lib)}
    wheels = Path(session.create_tmp()) / "dirac-wheel"
    session.run_install(
        "pip", "download", "--no-deps", "-q", "-d", str(wheels), f"DIRAC=={DIRAC_VERSION}"
    )
    wheel = next(wheels.glob("*.whl"))
    session.install(*_client_requirements(wheel), env=env)
    session.install("--no-deps", str(wheel))


@nox.session(python="3.11", default=False)
def dirac(session: nox.Session) -> None:
    """The real DIRAC client against our simulator (HTTPS and dips), and the transport
    benchmark beside it."""
    _install_dirac_client(session)
    _install(session, "test")
    _check_requirements(session)
    session.run("pytest", "tests/test_dirac_client.py", "-p", "no:cacheprovider", *session.posargs)
    session.run("python", "-m", "benchmarks.dirac_transport")


def _client_requirements(wheel: Path) -> list[str]:
    """DIRAC's Requires-Dist without extras and without gfal2-python."""
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = archive.read(name).decode()
    requirements = []
    for line in metadata.splitlines():
        if line.startswith("Requires-Dist:") and "extra ==" not in line:
            requirement = line.removeprefix("Requires-Dist:").strip()
            if not requirement.lower().startswith("gfal2"):
                requirements.append(requirement)
    return requirements


def _check_requirements(session: nox.Session) -> None:
    """`pip check` of the session's venv, failing on anything but DIRAC's gfal2-python (left
    out on purpose): separate installs can break what an earlier one installed."""
    report = session.run_install("python", "-m", "pip", "check", silent=True, success_codes=[0, 1])
    if report is None:
        return  # --no-install: nothing was installed
    broken = [
        line
        for line in str(report).splitlines()
        if "requires gfal2-python" not in line and not line.startswith("No broken requirements")
    ]
    if broken:
        session.error("\n".join(broken))


@nox.session(python="3.11", default=False)
def ganga(session: nox.Session) -> None:
    """The real ganga package from PyPI with gangamon installed in it: headless Ganga
    sessions (tests/real_ganga), then exit-to-completed latency of Local jobs under Ganga's own
    monitor and under gangamon, measured in the same run."""
    session.install(f"ganga=={GANGA_VERSION}")
    _install(session, "test")
    session.run("pytest", "tests/real_ganga", "-p", "no:cacheprovider", *session.posargs)
    session.run("python", "-m", "benchmarks.ganga_local")


@nox.session(name="ganga-dirac", python="3.11", default=False)
def ganga_dirac(session: nox.Session) -> None:
    """Real Ganga Dirac jobs (GangaDirac, the real DIRAC client) against the simulator,
    monitored by Ganga's own DIRAC monitor and then by gangamon in the same session: the
    equal-work test (20 subjobs), then the benchmark; `-- --quick` in CI."""
    # ganga[dirac]: GangaDirac's process manager imports UltraDict and psutil.
    session.install(f"ganga[dirac]=={GANGA_VERSION}")
    _install_dirac_client(session)
    _install(session, "test")
    _check_requirements(session)
    # The benchmark runs even when the test fails, so that its figures (and differences)
    # are there to read; the session fails after it.
    junit = Path(session.create_tmp(), "real_ganga_dirac.xml")
    junit.unlink(missing_ok=True)
    test = ["pytest", "tests/real_ganga_dirac", "-p", "no:cacheprovider", f"--junitxml={junit}"]
    session.run(*test, success_codes=[0, 1])
    session.run("python", "-m", "benchmarks.ganga_dirac", *session.posargs)
    if not junit.exists():  # --install-only: nothing ran
        return
    suites = ElementTree.parse(junit).getroot().iter("testsuite")
    if any(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites):
        session.error("tests/real_ganga_dirac failed: see its report above")
