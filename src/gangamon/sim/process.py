"""Run `gangamon sim dirac` in a child process: for tests and benchmarks that must not share
a CPU-bound interpreter (or DIRAC's global configuration) with the simulator."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def dirac_sim_process(directory: Path, **options: object) -> Iterator[dict[str, Any]]:
    """Start the simulator with `--option value` for each keyword; yield its facts (URLs,
    CA and proxy paths, job id range); stop it on exit."""
    args = [sys.executable, "-m", "gangamon", "sim", "dirac", "--json", "--dir", str(directory)]
    for name, value in options.items():
        args += [f"--{name.replace('_', '-')}", str(value)]
    child = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        if not line:
            raise RuntimeError(f"the DIRAC simulator exited with {child.wait()}: {args}")
        yield json.loads(line)
    finally:
        child.terminate()
        child.wait(timeout=10)
        if child.stdout is not None:
            child.stdout.close()
