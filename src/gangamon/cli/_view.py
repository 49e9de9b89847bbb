"""The live view: jobs per backend and status with progress, recent changes, backend health.

Rendering is a pure function of a `View`, so it is tested on a captured console; `collect`
builds a `View` from the store (and, when a monitor is running, its statistics).
"""

from __future__ import annotations

import collections
import datetime as dt
import time
from dataclasses import dataclass, field

from rich.console import Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from .._astore import AsyncStore
from .._status import ACTIVE, FINAL, Status
from .._store import JournalEntry
from .._supervise import BackendStatistics
from ._output import ellipsis

#: Status columns in the order a job meets them; any other status is counted under "other".
COLUMNS = (
    Status.SUBMITTED,
    Status.RUNNING,
    Status.COMPLETING,
    Status.COMPLETED,
    Status.FAILED,
    Status.KILLED,
)
_STYLE = {
    Status.COMPLETED: "green",
    Status.FAILED: "red",
    Status.KILLED: "magenta",
    Status.RUNNING: "cyan",
    Status.UNKNOWN: "yellow",
}


@dataclass(frozen=True)
class Change:
    entry: JournalEntry
    backend: str
    backend_id: str | None


@dataclass(frozen=True)
class View:
    title: str
    #: Jobs in the store by backend and status.
    counts: dict[str, dict[Status, int]]
    recent: list[Change] = field(default_factory=list)
    #: From the running monitor; None when there is none.
    health: dict[str, BackendStatistics] | None = None
    calls_per_second: dict[str, float] = field(default_factory=dict)
    #: Jobs of each backend reaching a final status per second, lately.
    finished_per_second: dict[str, float] = field(default_factory=dict)
    note: str = ""
    #: Shown after the title, and alone on each line of `render_text`: "12.5 s".
    clock: str = ""


def render(view: View) -> RenderableType:
    title = f"{view.title} - {view.clock}" if view.clock else view.title
    parts: list[RenderableType] = [Text(title, style="bold")]
    parts.append(_jobs_table(view))
    if view.health is not None:
        parts.append(_health_table(view))
        parts.append(Text(LEGEND, style="dim"))
    if view.note:
        parts.append(Text(view.note, style="yellow"))
    if view.recent:
        parts.append(_recent_table(view.recent))
    return Group(*parts)


def render_text(view: View) -> str:
    """One line per backend, for logs and terminals that are not terminals."""
    lines = []
    for backend, counts in view.counts.items():
        total = sum(counts.values())
        done = sum(n for s, n in counts.items() if s in FINAL)
        shown = ", ".join(f"{s.value} {counts[s]}" for s in Status if counts.get(s))
        lines.append(f"[{view.clock or view.title}] {backend}: {done}/{total} finished ({shown})")
    return "\n".join(lines)


def _jobs_table(view: View) -> Table:
    table = Table(title="jobs", title_justify="left", expand=False)
    table.add_column("backend")
    table.add_column("finished", min_width=20)
    table.add_column("per min", justify="right")
    table.add_column("ETA", justify="right")
    for status in COLUMNS:
        table.add_column(status.value, justify="right", style=_STYLE.get(status, ""))
    others = {b: sum(n for s, n in c.items() if s not in COLUMNS) for b, c in view.counts.items()}
    if any(others.values()):
        table.add_column("other", justify="right", style="yellow")
    for backend, counts in view.counts.items():
        total = sum(counts.values())
        done = sum(n for s, n in counts.items() if s in FINAL)
        bar = Table.grid(padding=(0, 1))
        bar.add_row(ProgressBar(total=max(total, 1), completed=done, width=10), f"{done}/{total}")
        rate = view.finished_per_second.get(backend)
        other = [str(others[backend])] if any(others.values()) else []
        table.add_row(
            backend,
            bar,
            "-" if rate is None else f"{rate * 60:.0f}",
            eta(total - done, rate),
            *[str(counts.get(s, 0)) for s in COLUMNS],
            *other,
        )
    return table


def eta(remaining: int, per_second: float | None) -> str:
    """How long `remaining` jobs take at `per_second`: "4m10s", "2h05m"; "-" if unknown."""
    if remaining == 0:
        return "done"
    if not per_second:
        return "-"
    seconds = round(remaining / per_second)
    if seconds >= 360_000:
        return ">100h"
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"


#: What the backends table's columns mean.
LEGEND = (
    "calls/s: over the last 10 s; in flight: calls under way / the most allowed at once; "
    "last poll: how long the last sweep's call took; interval: between sweeps (longer after "
    "errors); '-' for a backend whose jobs are watched, not polled"
)


def _health_table(view: View) -> Table:
    table = Table(title="backends", title_justify="left")
    for column in ("backend", "calls/s", "calls", "errors", "timeouts", "in flight", "last poll"):
        table.add_column(column, justify="left" if column == "backend" else "right")
    table.add_column("interval", justify="right")
    table.add_column("problem", style="red")
    for name, s in (view.health or {}).items():
        rate = view.calls_per_second.get(name) if s.polls else None
        table.add_row(
            name,
            "-" if rate is None else f"{rate:.1f}",
            str(s.calls),
            str(s.errors),
            str(s.timeouts),
            f"{s.limiter_borrowed}/{s.limiter_total}",
            "-" if s.last_poll_latency is None else f"{s.last_poll_latency * 1000:.0f} ms",
            f"{s.interval:g} s" if s.polls else "-",
            s.problem or "",
        )
    return table


def _recent_table(recent: list[Change]) -> Table:
    table = Table(title="recent changes", title_justify="left")
    for column in ("time", "job", "backend", "backend id", "change", "why"):
        table.add_column(column)
    for change in recent:
        e = change.entry
        old = e.old.value if e.old else "new"
        native = f" ({e.native_status})" if e.native_status else ""
        table.add_row(
            dt.datetime.fromtimestamp(e.time).strftime("%H:%M:%S"),
            str(e.job),
            change.backend,
            change.backend_id or "",
            Text(f"{old} -> {e.new.value}{native}", style=_STYLE.get(e.new, "")),
            ellipsis(e.reason, 60),
        )
    return table


def calls(health: dict[str, BackendStatistics]) -> dict[str, int]:
    """Each backend's calls so far, for `Rates`."""
    return {name: stats.calls for name, stats in health.items()}


def recent_rows(height: int, backends: int) -> int:
    """How many recent changes fit under the tables on a terminal `height` lines high."""
    return max(3, height - 20 - 2 * backends)


class Rates:
    """How fast each of some counters grows, per second, over the last `window` seconds.

    A window, not the last interval: views refresh several times a second, calls come every
    poll interval, and a rate over a quarter of a second would read 0 most of the time.
    """

    def __init__(self, window: float = 10.0) -> None:
        self.window = window
        self._seen: dict[str, collections.deque[tuple[float, int]]] = {}

    def update(self, now: float, counts: dict[str, int]) -> dict[str, float]:
        rates = {}
        for name, count in counts.items():
            seen = self._seen.setdefault(name, collections.deque())
            seen.append((now, count))
            while len(seen) > 2 and now - seen[1][0] >= self.window:
                seen.popleft()
            then, earlier = seen[0]
            if now > then:
                rates[name] = (count - earlier) / (now - then)
        return rates


async def collect(
    store: AsyncStore,
    title: str,
    *,
    backends: list[str] | None = None,
    recent: int = 8,
    health: dict[str, BackendStatistics] | None = None,
    calls_per_second: dict[str, float] | None = None,
    finished: Rates | None = None,
    note: str = "",
    clock: str = "",
) -> View:
    """A `View` of the store now; the backends named first, then any others it holds; with
    `finished`, how fast each backend's jobs have been ending."""
    counts: dict[str, dict[Status, int]] = {name: {} for name in backends or []}
    for name, status, n in await store.counts():
        counts.setdefault(name, {})[status] = n
    last = await store.last_seq()
    changes = []
    for entry in await store.journal(after=max(0, last - recent)):
        record = await store.get(entry.job)
        changes.append(Change(entry, record.backend, record.backend_id))
    done = {name: sum(n for s, n in c.items() if s in FINAL) for name, c in counts.items()}
    return View(
        title=title,
        counts=counts,
        recent=changes[::-1],
        health=health,
        calls_per_second=calls_per_second or {},
        finished_per_second={} if finished is None else finished.update(time.time(), done),
        note=note,
        clock=clock,
    )


def active_jobs(view: View) -> int:
    return sum(n for counts in view.counts.values() for s, n in counts.items() if s in ACTIVE)
