"""CPU seconds of this (the Ganga) process and of its child processes over a phase.

Ganga's DIRAC work runs in processes it starts: AsyncDiracManager's DiracProcess (forked by
multiprocessing), the old-style DIRAC server behind `execute()`, and short `dirac-proxy-info`
runs for the credential store. A child that exits during the phase takes its CPU with it, so
the children's CPU is counted twice over: the live descendants' cumulative CPU (/proc) at
both ends, and this process's RUSAGE_CHILDREN, which grows by the whole CPU of every child
reaped meanwhile. For a child alive at the start and reaped before the end that counts its
total less what it had at the start; for a child born and reaped inside, its total. A child
that exited but was not reaped is a zombie, still listed in /proc with its CPU.
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass, field
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class CpuSnapshot:
    own: float
    reaped: float
    #: pid -> (command, cumulative CPU seconds) of each live descendant.
    children: dict[int, tuple[str, float]] = field(default_factory=dict)


def snapshot() -> CpuSnapshot:
    own = resource.getrusage(resource.RUSAGE_SELF)
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    children = {pid: (_command(pid), cpu) for pid, cpu in _descendants(os.getpid()).items()}
    return CpuSnapshot(own.ru_utime + own.ru_stime, reaped.ru_utime + reaped.ru_stime, children)


def _descendants(root: int) -> dict[int, float]:
    """pid -> CPU seconds of every process below `root`, read from /proc (Linux: where the
    benchmark runs; /proc needs no package, and keeps a zombie's figures until it is reaped)."""
    parent: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile: reaped (then in RUSAGE_CHILDREN) or not ours
        # The command, in parentheses, may hold spaces: the fields follow the last ")".
        fields = stat[stat.rindex(")") + 2 :].split()
        pid = int(entry.name)
        parent[pid] = int(fields[1])
        cpu[pid] = (int(fields[11]) + int(fields[12])) / _TICK
    found: dict[int, float] = {}
    frontier = [root]
    while frontier:
        below = [pid for pid, ppid in parent.items() if ppid in frontier]
        found |= {pid: cpu[pid] for pid in below}
        frontier = below
    return found


def _command(pid: int) -> str:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    return b" ".join(argv).decode(errors="replace").strip()[:120] or "?"


def between(before: CpuSnapshot, after: CpuSnapshot) -> dict[str, object]:
    """The phase's CPU: this process's, its children's, and which children came and went."""
    live = sum(cpu for _, cpu in after.children.values())
    earlier = sum(cpu for _, cpu in before.children.values())
    children = after.reaped - before.reaped + live - earlier
    return {
        "ganga_s": after.own - before.own,
        "children_s": children,
        "total_s": after.own - before.own + children,
        "children_at_end": [
            {"pid": pid, "command": name, "cpu_s": cpu - before.children.get(pid, ("", 0.0))[1]}
            for pid, (name, cpu) in sorted(after.children.items())
        ],
        "children_exited": [
            {"pid": pid, "command": name, "cpu_s_at_start": cpu}
            for pid, (name, cpu) in sorted(before.children.items())
            if pid not in after.children
        ],
        "reaped_children_s": after.reaped - before.reaped,
    }
