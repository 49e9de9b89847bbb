"""A backend kind as the faces see it: its names, its job ids, its configuration table, how
a backend is built from that table and how `gangamon doctor` probes it.

Each kind declares its record in its own module; `backends/_kinds.py` lists them. The
configuration, the id parser, `doctor` and the CLI read the records and name no kind.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Annotated, Generic, TypeVar

import msgspec

from ._protocol import Backend, BackendSettings

#: Seconds, more than none and at most a week (infinite or NaN is refused too): an interval, a
#: deadline, a grace period.
Seconds = Annotated[float, msgspec.Meta(gt=0, le=7 * 86400)]
#: Calls in flight at once.
Concurrency = Annotated[int, msgspec.Meta(ge=1, le=1024)]
#: Jobs asked about in one call.
ChunkSize = Annotated[int, msgspec.Meta(ge=1, le=100_000)]

#: Where gangamon keeps its files unless told otherwise (store, job directories, output).
HOME = Path("~/gangamon")


class Polling(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """How the engine drives a backend; unset values keep the backend's own defaults."""

    poll_interval: Seconds | None = None
    chunk_size: ChunkSize | None = None
    concurrency: Concurrency | None = None
    call_deadline: Seconds | None = None
    finalise_concurrency: Concurrency | None = None
    ending_interval: Seconds | None = None
    finalise_retry_limit: Seconds | None = None

    def settings(self, defaults: BackendSettings) -> BackendSettings:
        fields = [f.name for f in dataclasses.fields(BackendSettings)]
        given = {k: getattr(self, k) for k in fields if getattr(self, k, None) is not None}
        return dataclasses.replace(defaults, **given)


class BadSetting(ValueError):
    """A value of a kind's table that its types allow but the kind cannot use."""

    def __init__(self, key: str, value: object, message: str) -> None:
        super().__init__(f"{key} = {value!r}: {message}")
        self.key, self.value, self.message = key, value, message


@dataclasses.dataclass(frozen=True)
class Finding:
    """One line of `gangamon doctor`: what was checked (`part`), whether it works, what it
    found."""

    ok: bool
    part: str
    says: str


C = TypeVar("C", bound=Polling)
B = TypeVar("B", bound=Backend)


def _no_check(config: object) -> None:
    return None


@dataclasses.dataclass(frozen=True)
class BackendKind(Generic[C, B]):
    #: The `type` of a configuration table, and the kind's backends' default name.
    name: str
    #: As a user knows the system ("HTCondor").
    display_name: str
    #: The table's keys and their types (a `Polling` with the kind's own keys).
    config: type[C]
    #: A backend named `name` from its checked table, with its final settings; touches
    #: neither disk nor network.
    build: Callable[[str, C], B]
    #: What `doctor` finds of a backend `build` made.
    probe: Callable[[B, C], AsyncIterator[Finding]]
    #: A job id as users type it (compiled with re.ASCII: a digit is 0-9); ranges
    #: `first-last` of such ids are expanded. None: ids are not numbers, `job_id` reads one.
    id_grammar: re.Pattern[str] | None = None
    #: The stored id for a token a user typed; else ValueError saying what the token is
    #: ("is not a ..."), to follow the token in the message.
    job_id: Callable[[str], str] | None = None
    #: Checks across a table's values that its types cannot say; raises `BadSetting`.
    check: Callable[[C], None] = _no_check
