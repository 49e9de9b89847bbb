"""DiracX as a transport: its job search over HTTPS with httpx, behind a bearer token.

One `POST /api/jobs/search` answers what changed (the user's jobs with a LastUpdateTime after
the cut) with their statuses, and a full sweep's chunk (JobID in the chunk's ids). The token
is DiracX's own credentials file (`dirac login` writes it; `$DIRACX_CREDENTIALS_PATH`, else
~/.cache/diracx/credentials.json): its access token until five minutes before it expires,
then a new one from the token endpoint (found at `/.well-known/openid-configuration`) for its
refresh token, written back to the file as DiracX's client does. Output sandboxes and the
other JobMonitoring calls are not served here.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import ssl
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import trio

from .._protocol import BackendError, BackendUnavailable
from ._https import trusting
from ._server_clock import ServerClock
from ._wire import DiracError, JobState

#: As DiracX's client: a token with less than this left is refreshed first.
_REFRESH_BEFORE = 300.0
_STATE_COLUMNS = ["JobID", "Status", "MinorStatus", "ApplicationStatus"]
#: DiracX's largest page.
PER_PAGE = 10_000


def default_credentials() -> Path:
    configured = os.environ.get("DIRACX_CREDENTIALS_PATH")
    return Path(configured) if configured else Path.home() / ".cache/diracx/credentials.json"


class DiracX:
    """Calls to DiracX at `url` (scheme, host, port) with the token in `credentials`; `ca` a
    CA file or directory to trust (default: the system's). Use inside `async with
    transport.session():`."""

    #: No X509 proxy: the token is the credential.
    proxy: Path | None = None

    def __init__(
        self,
        url: str,
        *,
        credentials: Path | None = None,
        ca: Path | None = None,
        pool: int = 16,
    ) -> None:
        self.url = url.rstrip("/")
        self.credentials = credentials or default_credentials()
        self.ca = ca
        self.server_clock = ServerClock()
        #: Access tokens obtained from the token endpoint, for the statistics and tests.
        self.refreshes = 0
        self._size = pool
        self._client: httpx.AsyncClient | None = None
        self._token_endpoint: str | None = None
        self._token: tuple[str, float] | None = None
        #: (mtime, size) of the credentials file when last read or written.
        self._stamp: tuple[int, int] | None = None
        self._refreshing = trio.Lock()

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[DiracX]:
        verify: ssl.SSLContext | bool = (
            trusting(self.ca) if self.url.startswith("https:") else False
        )
        limits = httpx.Limits(max_connections=self._size, max_keepalive_connections=self._size)
        async with httpx.AsyncClient(verify=verify, limits=limits, timeout=None) as client:
            self._client = client
            try:
                yield self
            finally:
                self._client = None

    # -- what the DIRAC backend asks -------------------------------------------------------

    async def changed_since(
        self, owners: Sequence[str], cut: int
    ) -> tuple[set[str], dict[int, JobState]]:
        """The owners' jobs whose LastUpdateTime is at or after `cut` (Unix time, whole
        seconds), with their states: one search (more for more than a page)."""
        after = dt.datetime.fromtimestamp(cut - 1, dt.UTC).isoformat().replace("+00:00", "Z")
        rows = await self.search(
            _STATE_COLUMNS,
            [
                {"parameter": "Owner", "operator": "in", "values": list(owners)},
                {"parameter": "LastUpdateTime", "operator": "gt", "value": after},
            ],
        )
        states = _states(rows)
        return {str(i) for i in states}, states

    async def job_states(self, ids: list[int]) -> dict[int, JobState]:
        rows = await self.search(
            _STATE_COLUMNS, [{"parameter": "JobID", "operator": "in", "values": ids}]
        )
        return _states(rows)

    async def call(self, system: str, service: str, method: str, *args: object) -> Any:
        """The DIRAC calls DiracX answers here: JobMonitoring's getJobsSummary (a job search;
        the backend learns the owner from it) and JobManager's killJob (a move to Killed);
        `DiracError` for any other."""
        ids = (args[0] if isinstance(args[0], list) else [args[0]]) if args else []
        if (system, service, method) == ("WorkloadManagement", "JobMonitoring", "getJobsSummary"):
            rows = await self.search(
                None, [{"parameter": "JobID", "operator": "in", "values": ids}]
            )
            return {int(str(r.get("JobID"))): r for r in rows}
        if (system, service, method) == ("WorkloadManagement", "JobManager", "killJob"):
            return await self._kill(ids)
        raise DiracError(f"{system}/{service} {method} is not available through DiracX here")

    async def _kill(self, ids: list[object]) -> list[int]:
        """`PATCH /api/jobs/status`, each job to Killed as DIRAC's JobManager marks it; the
        ids killed. `DiracError` naming why when DiracX moved none."""
        when = dt.datetime.now(dt.UTC).isoformat()
        update = {"Status": "Killed", "MinorStatus": "Marked for termination", "Source": "gangamon"}
        body = {str(i): {when: update} for i in ids}
        url = f"{self.url}/api/jobs/status"
        response = await self._authorised("PATCH", url, json=body)
        if response.status_code == 404:
            raise DiracError(f"DiracX killed none of them: {_why_failed(response)}")
        if response.status_code != 200:
            raise BackendError(
                f"DiracX's status update at {url}: HTTP {response.status_code}: "
                f"{response.content[:200]!r}"
            )
        try:
            return [int(i) for i in response.json().get("success", {})]
        except (ValueError, AttributeError):
            raise BackendError(
                f"DiracX's status update answered {response.content[:200]!r}"
            ) from None

    async def sandbox(self, location: str) -> bytes:
        raise DiracError(f"download of sandbox {location}: not available through DiracX here")

    # -- the search ------------------------------------------------------------------------

    async def search(
        self, parameters: list[str] | None, conditions: list[dict[str, object]]
    ) -> list[dict[str, Any]]:
        """Every row of `/api/jobs/search` for `conditions`, page after page."""
        by_id = {"parameter": "JobID", "direction": "asc"}
        body: dict[str, object] = {"search": conditions, "sort": [by_id]}
        if parameters is not None:
            body["parameters"] = parameters
        rows: list[dict[str, Any]] = []
        page = 1
        while True:
            status, headers, found = await self._search_page(body, page)
            if status == 416:
                return rows  # past the end: the total shrank meanwhile
            if not isinstance(found, list) or not all(isinstance(r, dict) for r in found):
                raise BackendError(f"DiracX's job search answered {found!r:.200}")
            rows += found
            if status == 200 or not found:
                return rows
            last, _, total = headers.get("content-range", "").rpartition("/")
            end = last.rpartition("-")[2]
            if not (end.isdigit() and total.isdigit()) or int(end) + 1 >= int(total):
                return rows
            page += 1

    async def _search_page(
        self, body: dict[str, object], page: int
    ) -> tuple[int, httpx.Headers, object]:
        url = f"{self.url}/api/jobs/search"
        params = {"page": page, "per_page": PER_PAGE}
        response = await self._authorised("POST", url, params=params, json=body)
        if response.status_code == 404:
            raise DiracError(f"DiracX at {self.url} has no job search (HTTP 404)")
        if response.status_code not in (200, 206, 416):
            raise BackendError(
                f"DiracX's job search at {url}: HTTP {response.status_code}: "
                f"{response.content[:200]!r}"
            )
        try:
            found = response.json() if response.content else []
        except ValueError:
            raise BackendError(f"DiracX's job search answered {response.content[:200]!r}") from None
        return response.status_code, response.headers, found

    async def _authorised(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One request with the access token; a refused one again with a new token, once."""
        token = await self._access_token()
        response = await self._send(method, url, headers=_bearer(token), **kwargs)
        if response.status_code == 401:  # revoked, or the clocks disagree: a new one, once
            token = await self._access_token(renew=True)
            response = await self._send(method, url, headers=_bearer(token), **kwargs)
        if response.status_code == 401:
            raise BackendUnavailable(
                f"DiracX at {self.url} refused our token even after a refresh: renew the "
                f"credentials in {self.credentials} (dirac login)"
            )
        return response

    async def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        client = self._client
        if client is None:
            raise RuntimeError("DiracX used outside `async with transport.session()`")
        sent = trio.current_time()
        try:
            response = await client.request(method, url, **kwargs)
        except httpx.HTTPError as e:
            raise BackendError(f"DiracX at {url}: {type(e).__name__}: {e}") from None
        if date := response.headers.get("date"):
            self.server_clock.observe(date, sent, trio.current_time())
        return response

    # -- the token -------------------------------------------------------------------------

    async def _access_token(self, *, renew: bool = False) -> str:
        """The access token, refreshed first when it has less than five minutes left (or
        `renew`: the server refused it)."""
        async with self._refreshing:  # one refresh for every call that needs one
            token = self._token
            if token is None or renew or self._changed_on_disk():
                token = self._token = self._read()
            if renew or token[1] - time.time() < _REFRESH_BEFORE:
                token = self._token = await self._refresh()
            return token[0]

    def _read(self) -> tuple[str, float]:
        found = _credentials(self.credentials)
        token, expires = found.get("access_token"), found.get("expires_on")
        if not isinstance(token, str) or not isinstance(expires, int | float):
            return "", 0.0  # no usable access token: the refresh token may give one
        self._stamp = _stamp(self.credentials)
        return token, float(expires)

    def _changed_on_disk(self) -> bool:
        """Whether the file was rewritten (`dirac login` again) since it was read."""
        return _stamp(self.credentials) != self._stamp

    async def _refresh(self) -> tuple[str, float]:
        refresh = _credentials(self.credentials).get("refresh_token")
        if not isinstance(refresh, str) or not refresh:
            raise BackendUnavailable(
                f"the DiracX credentials in {self.credentials} have expired and hold no "
                "refresh token: renew them (dirac login)"
            )
        endpoint = await self._endpoint()
        form = {"grant_type": "refresh_token", "refresh_token": refresh,
                "client_id": "myDIRACClientID"}  # fmt: skip
        response = await self._send("POST", endpoint, data=form)
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        if response.status_code != 200 or not isinstance(answer.get("access_token"), str):
            detail = answer.get("detail") if isinstance(answer, dict) else None
            raise BackendUnavailable(
                f"DiracX at {endpoint} refused to refresh the token of {self.credentials} "
                f"(HTTP {response.status_code}: {detail or response.content[:100]!r}): renew "
                "the credentials (dirac login)"
            )
        expires = time.time() + float(answer.get("expires_in") or 0) - 15
        written = {"access_token": answer["access_token"],
                   "refresh_token": answer.get("refresh_token") or refresh,
                   "expires_on": int(expires)}  # fmt: skip
        await trio.to_thread.run_sync(_rewrite, self.credentials, written)
        self._stamp = _stamp(self.credentials)
        self.refreshes += 1
        return str(answer["access_token"]), expires

    async def _endpoint(self) -> str:
        if self._token_endpoint is None:
            response = await self._send("GET", f"{self.url}/.well-known/openid-configuration")
            try:
                endpoint = response.json().get("token_endpoint")
            except (ValueError, AttributeError):
                endpoint = None
            if response.status_code != 200 or not isinstance(endpoint, str):
                raise BackendError(
                    f"DiracX at {self.url}: no token endpoint in its openid-configuration "
                    f"(HTTP {response.status_code})"
                )
            self._token_endpoint = endpoint
        return self._token_endpoint


def _why_failed(response: httpx.Response) -> str:
    """What a status update's reply says of the jobs it did not move."""
    try:
        failed = response.json()["detail"]["failed"]
        return "; ".join(str(f.get("detail", f)) for f in failed.values())
    except (ValueError, KeyError, TypeError, AttributeError):
        return repr(response.content[:200])


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _credentials(path: Path) -> dict[str, Any]:
    try:
        found = json.loads(path.read_text())
    except FileNotFoundError:
        raise BackendUnavailable(
            f"no DiracX credentials at {path} (dirac login writes them)"
        ) from None
    except (OSError, ValueError) as e:
        raise BackendUnavailable(f"cannot read the DiracX credentials {path}: {e}") from None
    if not isinstance(found, dict):
        raise BackendUnavailable(f"the DiracX credentials {path} are not a JSON object")
    return found


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def _rewrite(path: Path, credentials: dict[str, object]) -> None:
    """Rewrite the file in place under its lock, as DiracX's client does (so that either
    sees the other's refresh whole)."""
    with path.open("r+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        f.truncate()
        f.write(json.dumps(credentials))


def _states(rows: list[dict[str, Any]]) -> dict[int, JobState]:
    states: dict[int, JobState] = {}
    for row in rows:
        job, status = row.get("JobID"), row.get("Status")
        if not isinstance(job, int) or not isinstance(status, str):
            raise BackendError(
                f"DiracX's job search gave a row without JobID, Status: {row!r:.200}"
            )
        minor = row.get("MinorStatus")
        states[job] = JobState(status, minor if isinstance(minor, str) else None)
    return states
