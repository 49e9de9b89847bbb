"""Ganga's own DIRAC monitor and gangamon, in one real Ganga session (GangaDirac, the real
DIRAC client) against the simulator, on the same small schedule: every subjob ends in the
status Ganga's [DIRAC] statusmapping gives its DIRAC status, and gangamon leaves on each
subjob what Ganga's own monitor leaves (benchmarks/_ganga_dirac_compare.py says what).

Needs ganga[dirac]==8.7.12 and DIRAC 9.1.22's client: `nox -s ganga-dirac` runs it.
"""

from __future__ import annotations

from typing import Any

import pytest
from benchmarks import ganga_dirac

MISSING = ganga_dirac.available()
pytestmark = [
    pytest.mark.skipif(MISSING is not None, reason=f"needs {MISSING} (nox -s ganga-dirac)"),
    pytest.mark.realtime,
]


@pytest.fixture(scope="module")
def session() -> dict[str, Any]:
    # 20 subjobs per monitor, polled every 2 s, ending over 20 s: about a minute each.
    return ganga_dirac.measure_session(jobs=20, interval=2, spread=20.0)


def test_gangamon_monitors_the_dirac_jobs(session: dict[str, Any]) -> None:
    # install() falls back to Ganga's own DIRAC code (with a warning) when it finds no DIRAC.
    backends = session["gangamon"]["gangamon_backends"]
    assert any("dirac" in name.lower() for name in backends), backends


@pytest.mark.parametrize("monitor", ["ganga", "gangamon"])
def test_no_wrong_status(session: dict[str, Any], monitor: str) -> None:
    assert session[monitor]["not_final"] == 0
    assert session[monitor]["wrong_statuses"]["count"] == 0, session[monitor]["wrong_statuses"]


def test_gangamon_leaves_what_ganga_leaves(session: dict[str, Any]) -> None:
    comparison = session["comparison"]
    differences = [
        f"{name}: {count} of {comparison['pairs']} subjobs, e.g. {comparison['examples'][name][0]}"
        for name, count in comparison["differences"].items()
    ]
    assert comparison["clean"], "\n".join(differences)
