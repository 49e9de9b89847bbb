"""Who holds a store: the monitor running on it, as its lock says (a file's, or PostgreSQL's)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from ._errors import StoreError


@dataclass(frozen=True, slots=True)
class Holder:
    """The monitor that holds a store."""

    pid: int | None
    host: str
    since: float | None

    def __str__(self) -> str:
        if self.pid is None or self.since is None:
            return "a monitor that is starting"
        since = dt.datetime.fromtimestamp(self.since).astimezone()
        return f"pid {self.pid} on {self.host} since {since:%Y-%m-%d %H:%M:%S %Z}"


class StoreBusy(StoreError):
    """Another monitor holds the store."""

    def __init__(self, where: Path | str, holder: Holder) -> None:
        self.holder = holder
        super().__init__(where, f"another monitor runs on it ({holder})")
