"""ResourceStatus/ResourceStatus: every storage element of the simulator is Active. Sans-IO.

DIRAC 9's StorageElement asks the Resource Status System whether it may read an SE before
it reads one (`StorageFactory._getStorageOptions`); there is no configuration switch that
skips it. Its client fetches the whole status table in one `select` and caches it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ..backends.dirac._wire import s_ok
from ._dirac_service import Result, dispatch

#: The access types DIRAC keeps a status of, per storage element.
STATUS_TYPES = ("ReadAccess", "WriteAccess", "CheckAccess", "RemoveAccess")
#: The columns of DIRAC's ResourceStatus table, in order.
COLUMNS = (
    "Name",
    "StatusType",
    "Status",
    "ElementType",
    "Reason",
    "DateEffective",
    "LastCheckTime",
    "TokenOwner",
    "TokenExpiration",
    "VO",
)


class ResourceStatus:
    """The status table of the storage elements `names`: each Active for every VO."""

    def __init__(self, names: Iterable[str]) -> None:
        self.rows = [
            {
                "Name": name,
                "StatusType": kind,
                "Status": "Active",
                "ElementType": "StorageElement",
                "Reason": "simulated",
                "VO": "all",
                "TokenOwner": "rs_svc",
            }
            for name in names
            for kind in STATUS_TYPES
        ]
        self.methods: dict[str, Callable[..., Result]] = {"select": self._select}

    def call(self, method: str, args: list[Any], now: float) -> Result:
        return dispatch(self.methods, method, args, now)

    def _select(self, now: float, table: object, params: object) -> Result:
        """Rows of `table` as lists of the `Meta`/`columns` asked for (all, by default),
        filtered by the other parameters that are given."""
        query = params if isinstance(params, dict) else {}
        meta = query.get("Meta")
        columns = meta.get("columns") if isinstance(meta, dict) else None
        wanted = [str(c) for c in columns] if isinstance(columns, list) else list(COLUMNS)
        filters = {k: v for k, v in query.items() if k in COLUMNS and v is not None}
        if table != "ResourceStatus":
            return s_ok([])
        return s_ok([[row.get(c) for c in wanted] for row in self.rows if _matches(row, filters)])


def _matches(row: dict[str, str], filters: dict[str, object]) -> bool:
    for key, value in filters.items():
        allowed = value if isinstance(value, list) else [value]
        if row.get(key) not in allowed:
            return False
    return True
