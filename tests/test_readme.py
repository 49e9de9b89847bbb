"""The README's quick start and CI must not drift apart."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _quick_start_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def test_ci_runs_the_readme_test_line() -> None:
    test_lines = [c for c in _quick_start_commands() if "nox -s tests" in c]
    assert len(test_lines) == 1, test_lines
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_lines[0] in ci_lines


def test_quick_start_has_at_most_two_commands() -> None:
    assert 1 <= len(_quick_start_commands()) <= 2
