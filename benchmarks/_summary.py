"""One line per goal of issue 8 (what, measured, goal, met), printed last and kept in the JSON,
so the closing note can be read off one table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Goal:
    what: str
    measured: str
    goal: str
    #: None: not measured in this run (the reason is in `measured`).
    met: bool | None


def met_word(met: bool | None) -> str:
    return "-" if met is None else "yes" if met else "NO"


def table(goals: Sequence[Goal]) -> str:
    rows = [("what", "measured", "goal", "met")]
    rows += [(g.what, g.measured, g.goal, met_word(g.met)) for g in goals]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True))
        + "  "
        + row[3]
        for row in rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def as_json(goals: Sequence[Goal]) -> list[dict[str, Any]]:
    return [asdict(g) for g in goals]
