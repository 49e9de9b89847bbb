"""A measurement run in a process of its own, its result handed back as JSON.

For libraries that change their process for good: Ganga (HOME, and a configuration it reads
once) and DIRAC (os.environ and its global configuration). Both print to stdout as they go,
so the result comes back through a file, not the child's output.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any


def run(module: str, *args: object) -> Any:
    """`python -m module *args --json FILE` in a child; what it wrote to FILE, decoded."""
    with tempfile.TemporaryDirectory(prefix="gangamon-bench-") as tmp:
        out = Path(tmp) / "result.json"
        command = [sys.executable, "-m", module, *(str(a) for a in args), "--json", str(out)]
        subprocess.run(command, check=True)
        return json.loads(out.read_text())
