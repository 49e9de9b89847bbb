"""The README's quick start and CI must not drift apart."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _quick_start_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def test_ci_runs_both_quick_start_lines() -> None:
    demo, tests = _quick_start_commands()
    assert "gangamon demo" in demo
    assert "nox -s tests" in tests
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert demo in ci_lines
    assert tests in ci_lines


def test_the_demo_line_installs_the_extra_the_demo_needs() -> None:
    demo, _ = _quick_start_commands()
    assert demo.startswith("python -m pip install '.[demo]' && ")
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert extras["demo"] == ["gangamon[cli,sim]"]
