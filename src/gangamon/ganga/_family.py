"""A family of Ganga backends (Local, Dirac, the batch systems, the adapter for the rest).

Each family module says which Ganga jobs it monitors, with which gangamon backends, and
how their changes are applied to the Ganga job. The service asks the families in order
(local, dirac, batch, adapter) and the first that claims a job's backend takes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from .._status import Status
from .._store import NewJob
from ..backends._protocol import Backend
from ._writer import Applier


class Family(Protocol):
    def claims(self, backend_name: str, backend: Any) -> bool:
        """Whether Ganga jobs of this backend (its Ganga name, its object) are this family's."""
        ...

    def backends(self) -> Sequence[Backend]:
        """The gangamon backends of this family, built when monitoring starts (called in
        the engine's thread)."""
        ...

    def new_job(self, job: Any, backend_name: str, start: Status) -> tuple[NewJob, Applier] | None:
        """What to track for the claimed Ganga job `job` and how to apply its changes; None
        if it cannot be tracked yet (no backend id)."""
        ...


def poll_interval(config: Any, name: str) -> float:
    """Ganga's `[PollThread]` rate for backend `name`, or its default (30 s)."""
    try:
        value = config[name] if name in config else config["default_backend_poll_rate"]
        return float(value) if float(value) > 0 else 30.0
    except Exception:
        return 30.0
