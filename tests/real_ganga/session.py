"""Headless Ganga sessions for the tests: each in a process of its own (Ganga's state is
global), with a gangadir, a config file and a HOME in a temporary directory.

The script's `report(**figures)` prints one JSON line that `run_session` returns.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

GANGARC = """\
# Ganga configuration file ($Name: 8.7.12 $)
[Configuration]
gangadir = {gangadir}
{configuration}
[PollThread]
autostart = False
{poll}
{sections}
"""

PRELUDE = """
import json, os, sys, time, threading
import ganga.ganga
import gangamon.ganga
from GangaCore.GPIDev.Base.Proxy import stripProxy

def report(**figures):
    print("RESULT " + json.dumps(figures, default=str), flush=True)

def wait_until(condition, timeout):
    # Ganga offers no event for a job's status: poll it, under a deadline.
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not reached within {timeout} s")
        time.sleep(0.05)

def final(job):
    return job.status in ("completed", "failed", "killed")
"""


def environment(
    tmp: Path, poll: str = "", *, configuration: str = "", sections: str = ""
) -> dict[str, str]:
    """Ganga's files in `tmp`: `poll` goes under [PollThread], `configuration` under
    [Configuration], `sections` (whole sections) at the end."""
    home = tmp / "home"
    home.mkdir(exist_ok=True)
    gangarc = tmp / "gangarc"
    text = GANGARC.format(
        gangadir=tmp / "gangadir", poll=poll, configuration=configuration, sections=sections
    )
    gangarc.write_text(text)
    return {**os.environ, "HOME": str(home), "GANGA_CONFIG_FILE": str(gangarc)}


def script(body: str) -> list[str]:
    return [sys.executable, "-c", PRELUDE + textwrap.dedent(body)]


def run_session(
    tmp: Path,
    body: str,
    *,
    poll: str = "",
    configuration: str = "",
    sections: str = "",
    timeout: float = 180,
) -> dict[str, Any]:
    """Run `body` in a fresh Ganga session (its gangarc as `environment` writes it); return
    what it reported."""
    result = subprocess.run(
        script(body),
        env=environment(tmp, poll, configuration=configuration, sections=sections),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=tmp,
        check=False,
    )
    for line in result.stdout.splitlines():
        if line.startswith("RESULT "):
            figures: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
            return figures
    raise AssertionError(
        f"the Ganga session reported nothing (exit {result.returncode}):\n"
        f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
