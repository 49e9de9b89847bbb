"""gangamon turned on by one line of `.gangarc` (Ganga loads `gangamon.ganga` as a runtime
package), in real ganga 8.7.12 sessions (`nox -s ganga`)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from .session import run_session

pytestmark = [
    pytest.mark.skipif(
        importlib.util.find_spec("ganga") is None,
        reason="the ganga package is installed by `nox -s ganga`",
    ),
    pytest.mark.realtime,
]

RUNTIME = "RUNTIME_PATH = gangamon.ganga"

BODY = """
import GangaCore.Core as core
from ganga import Executable, Job, Local, enableMonitoring
enableMonitoring()
j = Job(application=Executable(exe="/bin/sh", args=["-c", "exit 3"]), backend=Local())
j.submit()
wait_until(lambda: final(j), 60)
report(
    service=type(core.monitoring_component).__name__,
    status=j.status,
    exitcode=stripProxy(j).backend.exitcode,
    interval=gangamon.ganga.read_options().poll_interval,
)
"""


def test_one_gangarc_line_puts_gangamon_in_the_monitors_place(tmp_path: Path) -> None:
    figures = run_session(
        tmp_path, BODY, configuration=RUNTIME, sections="[gangamon]\npoll_interval = 7\n"
    )
    assert figures == {
        "service": "GangamonService",
        "status": "failed",
        "exitcode": 3,
        "interval": 7.0,
    }


def test_a_bad_option_leaves_gangas_own_monitor_in_place(tmp_path: Path) -> None:
    body = """
    import GangaCore.Core as core
    try:
        gangamon.ganga.read_options()
    except gangamon.ganga.OptionError as e:
        problem = str(e)
    report(service=type(core.monitoring_component).__name__, problem=problem)
    """
    figures = run_session(
        tmp_path, body, configuration=RUNTIME, sections="[gangamon]\npoll_interval = fast\n"
    )
    assert figures == {
        "service": "AsyncMonitoringService",
        "problem": "[gangamon] poll_interval = 'fast': expected a positive number of seconds",
    }
