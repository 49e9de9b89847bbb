"""DiracX's job search over the simulated jobs, and the tokens that guard it. Sans-IO.

What DiracX's client needs of a server: `GET /.well-known/openid-configuration` (its
`token_endpoint`), `POST /api/auth/token` (grant_type=refresh_token: a new access token), and
`POST /api/jobs/search?page=P&per_page=N` with a bearer token and a JSON body of
`parameters` (the columns wanted), `search` (conditions `{parameter, operator, value}` with
eq, neq, gt, lt, like, not like, regex; `{parameter, operator, values}` with in, not in) and
`sort` (`{parameter, direction}`): a JSON list of rows, 206 with `Content-Range: jobs
F-L/TOTAL` for a partial page, 416 with `jobs */TOTAL` past the end (diracx-routers' jobs
router). Rows are the Jobs table's, as `getJobsSummary` has them, times in ISO 8601 UTC.
`PATCH /api/jobs/status` with `{job id: {time: {Status, MinorStatus, Source}}}` kills jobs
(the one move modelled): `{"success": ..., "failed": ...}`, 404 when none could be moved.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._dirac_model import SimJob, killed
from ._dirac_service import JobMonitoring

#: The scalar and the vector operators of diracx-core's search models.
_SCALAR = frozenset({"eq", "neq", "gt", "lt", "like", "not like", "regex"})
_VECTOR = frozenset({"in", "not in"})
MAX_PER_PAGE = 10_000


@dataclass(frozen=True, slots=True)
class Answer:
    """An HTTP answer: status, JSON body, extra headers."""

    status: int
    body: object
    headers: tuple[tuple[str, str], ...] = ()


def _error(status: int, detail: str) -> Answer:
    return Answer(status, {"detail": detail})


class Tokens:
    """The access and refresh tokens this DiracX has issued. Access tokens are opaque; a
    refresh token is a JWT (unsigned: the client reads its `exp`, never checks a signature)."""

    def __init__(self, clock: Callable[[], float], lifetime: float = 3600.0) -> None:
        #: The server's clock, for the tokens' validity; the files say Unix times.
        self.clock = clock
        self.lifetime = lifetime
        self._access: dict[str, float] = {}
        self._refresh: set[str] = set()
        #: Refreshes served, for tests.
        self.refreshes = 0

    def credentials(self, path: Path, *, expires_in: float | None = None) -> Path:
        """Write a DiracX credentials file at `path`, as `dirac login` does: an access token
        valid `expires_in` seconds (default: the lifetime), a refresh token for a week."""
        refresh = _unsigned_jwt({"exp": int(time.time()) + 7 * 86400, "sub": "gangamon"})
        self._refresh.add(refresh)
        lifetime = self.lifetime if expires_in is None else expires_in
        access, _ = self._issue(lifetime)
        path.parent.mkdir(parents=True, exist_ok=True)
        expires_on = int(time.time() + lifetime)
        text = {"access_token": access, "refresh_token": refresh, "expires_on": expires_on}
        path.write_text(json.dumps(text))
        return path

    def _issue(self, lifetime: float) -> tuple[str, float]:
        token = secrets.token_urlsafe(24)
        self._access[token] = expiry = self.clock() + lifetime
        return token, expiry

    def valid(self, authorization: str | None) -> bool:
        scheme, _, token = (authorization or "").partition(" ")
        expiry = self._access.get(token)
        return scheme.lower() == "bearer" and expiry is not None and expiry > self.clock()

    def refresh(self, form: Mapping[str, str]) -> Answer:
        if form.get("grant_type") != "refresh_token":
            return _error(400, f"unsupported grant_type {form.get('grant_type')!r}")
        if form.get("refresh_token") not in self._refresh:
            return _error(401, "invalid refresh token")
        self.refreshes += 1
        access, _ = self._issue(self.lifetime)
        answer = {"access_token": access, "expires_in": int(self.lifetime), "token_type": "Bearer",
                  "refresh_token": form["refresh_token"]}  # fmt: skip
        return Answer(200, answer)


def _unsigned_jwt(claims: dict[str, object]) -> str:
    def part(value: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def search(monitoring: JobMonitoring, body: object, page: int, per_page: int, now: float) -> Answer:
    """`/api/jobs/search` at server time `now`."""
    if not isinstance(body, dict):
        return _error(422, "the body must be a JSON object")
    if not (page >= 1 and 1 <= per_page <= MAX_PER_PAGE):
        return _error(422, f"page {page} and per_page {per_page} out of range")
    try:
        wanted = _columns(body.get("parameters"))
        tests = [_condition(spec) for spec in body.get("search") or []]
        order = [_sort_key(spec) for spec in body.get("sort") or []]
    except ValueError as e:
        return _error(422, str(e))
    rows = []
    for job in _candidates(monitoring, body.get("search") or [], now):
        row = _row(monitoring.attributes(job, now))
        if all(test(row) for test in tests):
            rows.append(row)
    for column, descending in reversed(order or [("JobID", False)]):
        rows.sort(key=_by(column), reverse=descending)
    total, first = len(rows), per_page * (page - 1)
    shown = [_shown(r, wanted) for r in rows[first : first + per_page]]
    if not shown and total:
        return Answer(416, [], (("Content-Range", f"jobs */{total}"),))
    if len(shown) < total:
        last = first + len(shown) - 1
        return Answer(206, shown, (("Content-Range", f"jobs {first}-{last}/{total}"),))
    return Answer(200, shown)


#: The Jobs table's columns, as DiracX's JobAttributes and getJobsSummary name them.
_COLUMNS = frozenset({
    "JobID", "JobType", "JobGroup", "JobName", "Site", "Owner", "OwnerGroup", "VO",
    "SubmissionTime", "RescheduleTime", "LastUpdateTime", "StartExecTime", "HeartBeatTime",
    "EndExecTime", "Status", "MinorStatus", "ApplicationStatus", "UserPriority",
    "RescheduleCounter", "VerifiedFlag", "AccountedFlag",
})  # fmt: skip


def _by(column: str) -> Callable[[Mapping[str, object]], tuple[bool, str]]:
    """A sort key: rows without the column last, the rest by their value (numbers padded,
    so that they sort as numbers; times and text as text)."""

    def key(row: Mapping[str, object]) -> tuple[bool, str]:
        value = row.get(column)
        return value is None, f"{value:020d}" if isinstance(value, int) else str(value)

    return key


def _columns(parameters: object) -> list[str] | None:
    if parameters is None:
        return None
    if not isinstance(parameters, list) or not all(isinstance(p, str) for p in parameters):
        raise ValueError("parameters must be a list of column names")
    unknown = [p for p in parameters if p not in _COLUMNS]
    if unknown:
        raise ValueError(f"unknown parameter {unknown[0]!r}")
    return parameters


def _row(attributes: Mapping[str, object]) -> dict[str, object]:
    return {k: v for k, v in attributes.items() if k in _COLUMNS}


def _shown(row: Mapping[str, object], wanted: list[str] | None) -> dict[str, object]:
    columns = wanted if wanted is not None else sorted(row)
    return {c: _json(row.get(c)) for c in columns}


def _json(value: object) -> object:
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=dt.UTC).isoformat().replace("+00:00", "Z")
    return value


def _condition(spec: object) -> Callable[[Mapping[str, object]], bool]:
    if not isinstance(spec, dict):
        raise ValueError(f"a search condition must be an object, not {spec!r}")
    column, operator = spec.get("parameter"), spec.get("operator")
    if column not in _COLUMNS:
        raise ValueError(f"unknown parameter {column!r}")
    if operator in _VECTOR:
        values = spec.get("values")
        if not isinstance(values, list):
            raise ValueError(f"operator {operator!r} takes 'values', a list")
        allowed = {_comparable(column, v) for v in values}
        inside = operator == "in"
        return lambda row: (_comparable(column, row.get(column)) in allowed) is inside
    if operator not in _SCALAR:
        raise ValueError(f"unknown operator {operator!r}")
    if "value" not in spec:
        raise ValueError(f"operator {operator!r} takes 'value'")
    value = _comparable(column, spec["value"])
    if operator in ("like", "not like", "regex"):
        pattern = _like(str(spec["value"])) if "like" in operator else re.compile(str(value))
        matches = operator != "not like"
        return lambda row: bool(pattern.search(str(row.get(column)))) is matches
    compare: dict[str, Callable[[Any, Any], bool]] = {
        "eq": lambda a, b: a == b,
        "neq": lambda a, b: a != b,
        "gt": lambda a, b: a is not None and a > b,
        "lt": lambda a, b: a is not None and a < b,
    }
    op = compare[str(operator)]
    return lambda row: op(_comparable(column, row.get(column)), value)


def _comparable(column: object, value: object) -> object:
    """A value as the database compares it in `column`: times as datetimes, ids as ints."""
    if value is None:
        return None
    if str(column).endswith("Time"):
        when = value if isinstance(value, dt.datetime) else _time(str(value))
        return when if when.tzinfo is None else when.astimezone(dt.UTC).replace(tzinfo=None)
    if column in ("JobID", "UserPriority", "RescheduleCounter"):
        try:
            return int(str(value))
        except ValueError:
            raise ValueError(f"{column} takes integers, not {value!r}") from None
    return str(value)


def _time(text: str) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"not a date and time: {text!r}") from None


def _like(pattern: str) -> re.Pattern[str]:
    parts = (".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.compile("^" + "".join(parts) + "$", re.DOTALL)


def _sort_key(spec: object) -> tuple[str, bool]:
    if not isinstance(spec, dict) or spec.get("parameter") not in _COLUMNS:
        raise ValueError(f"cannot sort by {spec!r}")
    direction = spec.get("direction", "asc")
    if direction not in ("asc", "desc"):
        raise ValueError(f"unknown sort direction {direction!r}")
    return str(spec["parameter"]), direction == "desc"


def _candidates(monitoring: JobMonitoring, specs: list[Any], now: float) -> list[SimJob]:
    """The jobs a condition narrows to through an index (ids, or a LastUpdateTime after a
    time), else every job; the conditions are applied to each afterwards all the same."""
    jobs = monitoring.jobs
    for spec in specs:
        if not isinstance(spec, dict):
            continue
        column, operator = spec.get("parameter"), spec.get("operator")
        try:
            if column == "JobID" and operator == "in":
                ids = {int(str(i)) for i in spec.get("values") or []}
                return [jobs[i] for i in sorted(ids) if i in jobs]
            if column == "LastUpdateTime" and operator == "gt":
                when = _comparable(column, spec.get("value"))
                assert isinstance(when, dt.datetime)
                # A whole-second LastUpdateTime after `when` is at or after its next second.
                second = math.floor((when - dt.datetime(1970, 1, 1)).total_seconds()) + 1
                since = monitoring.wall.server_time(float(second))
                return [jobs[i] for i in sorted(monitoring.changes.changed(since, now))]
        except (ValueError, TypeError):
            continue
    return list(jobs.values())


def set_statuses(
    jobs: dict[int, SimJob], monitoring: JobMonitoring, body: object, now: float
) -> Answer:
    """`PATCH /api/jobs/status` at server time `now`: each job asked to be Killed and not
    ended yet is killed ("Marked for termination"); any other update is failed, saying why."""
    if not isinstance(body, dict) or not body:
        return _error(422, "body: a mapping of job ids to their updates expected")
    success: dict[str, object] = {}
    failed: dict[str, object] = {}
    replaced: list[SimJob] = []
    for key, updates in body.items():
        job = jobs.get(int(key)) if str(key).isdigit() else None
        asked = [u.get("Status") for u in updates.values()] if isinstance(updates, dict) else []
        if job is None:
            failed[key] = {"detail": f"job {key} not found"}
        elif asked != ["Killed"]:
            failed[key] = {"detail": "the simulator moves jobs to Killed only"}
        elif (now_killed := killed(job, now)) is None:
            failed[key] = {"detail": f"job {key} is {job.state_at(now)[0].value}: not killed"}
        else:
            jobs[job.id] = now_killed
            replaced.append(now_killed)
            success[key] = {"Status": "Killed", "MinorStatus": "Marked for termination"}
    monitoring.changes.reindex(*replaced)
    if not success:
        return Answer(404, {"detail": {"success": success, "failed": failed}})
    return Answer(200, {"success": success, "failed": failed})


class DiracXJobs:
    """DiracX's job endpoints as one of the simulator's services (its latency, faults and
    statistics): `call("search", [body, page, per_page], now)` and `call("set_statuses",
    [body], now)` give the `Answer` as their Value."""

    def __init__(self, jobs: dict[int, SimJob], monitoring: JobMonitoring) -> None:
        self.jobs = jobs
        self.monitoring = monitoring

    def call(self, method: str, args: list[Any], now: float) -> dict[str, object]:
        if method == "search" and len(args) == 3:
            body, page, per_page = args
            return {"OK": True, "Value": search(self.monitoring, body, page, per_page, now)}
        if method == "set_statuses" and len(args) == 1:
            return {"OK": True, "Value": set_statuses(self.jobs, self.monitoring, args[0], now)}
        return {"OK": True, "Value": _error(404, f"no DiracX method {method!r}")}


def openid_configuration(base_url: str) -> Answer:
    return Answer(200, {"issuer": base_url, "token_endpoint": f"{base_url}/api/auth/token",
                        "grant_types_supported": ["refresh_token"]})  # fmt: skip
