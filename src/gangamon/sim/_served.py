"""What the simulator's faces (HTTPS in `_http`, dips in `_diset`) need of the simulator they
serve, so that they need not import it (it imports them)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import trio

from ._dirac_service import Hangup
from ._diracx import Tokens
from ._sandbox_store import SandboxStore

Encoded = TypeVar("Encoded")


@dataclass(slots=True)
class SimStatistics:
    calls: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0
    peak_in_flight: int = 0
    refused_connections: int = 0
    faults_served: Counter[str] = field(default_factory=Counter)
    unauthenticated: int = 0
    #: HTTPS requests by the serial number (hex) of the client certificate they came with.
    client_serials: Counter[str] = field(default_factory=Counter)
    #: The modelled service time of every call (the latency model's draws), in all and by
    #: method: what the calls cost DIRAC's servers.
    server_seconds: float = 0.0
    server_seconds_by_method: defaultdict[str, float] = field(
        default_factory=lambda: defaultdict(float)
    )


class Served(Protocol):
    """A simulator, as its faces see it (`DiracSim`)."""

    url: str
    diracx_tokens: Tokens

    @property
    def stats(self) -> SimStatistics: ...

    @property
    def sandbox(self) -> SandboxStore: ...

    async def call(
        self,
        stream: trio.abc.Stream,
        service: str,
        method: str,
        args: list[object],
        encode: Callable[[dict[str, object]], Encoded],
        *,
        arrived: float,
    ) -> Encoded | Hangup: ...

    def reply_sent(self, seconds: float) -> None: ...

    def http_date(self) -> str: ...

    def sandbox_file(self, name: str) -> bytes | None: ...
