"""DIRAC over HTTPS with httpx: the proxy as client certificate, connections kept alive.

DIRAC's own TornadoClient builds a new session, SSL context and TLS handshake for every call
(about 24 ms of CPU each); here one client and one SSL context serve every call, and the
connection pool keeps connections open between calls.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from .._protocol import BackendError, BackendUnavailable
from ._wire import JobState, WireError, decode_job_states, jdecode, tornado_body, unwrap


class DiracHttps:
    """Calls to DIRAC's Tornado services at `url` (scheme, host and port only).

    `proxy` is the X509 proxy presented as client certificate; `ca` a CA file or directory
    to trust (default: the system's). Use inside `async with transport.session():`.
    """

    def __init__(
        self, url: str, *, proxy: Path | None = None, ca: Path | None = None, pool: int = 16
    ) -> None:
        self.url = url.rstrip("/")
        self.proxy = proxy
        self.ca = ca
        self._pool = pool
        self._client: httpx.AsyncClient | None = None

    def _ssl_context(self) -> ssl.SSLContext:
        if self.ca is not None and self.ca.is_dir():
            context = ssl.create_default_context(capath=str(self.ca))
        else:
            context = ssl.create_default_context(cafile=self.ca)
        if self.proxy is not None:
            try:
                context.load_cert_chain(self.proxy)
            except (OSError, ssl.SSLError) as e:
                raise BackendUnavailable(f"cannot use {self.proxy} as a proxy: {e}") from None
        return context

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[DiracHttps]:
        verify: ssl.SSLContext | bool = (
            self._ssl_context() if self.url.startswith("https:") else False
        )
        limits = httpx.Limits(max_connections=self._pool, max_keepalive_connections=self._pool)
        # No httpx timeout: the engine puts its own deadline on every call.
        async with httpx.AsyncClient(verify=verify, limits=limits, timeout=None) as client:
            self._client = client
            try:
                yield self
            finally:
                self._client = None

    def _session_client(self) -> httpx.AsyncClient:
        if self._client is None:
            raise RuntimeError("DiracHttps used outside `async with transport.session()`")
        return self._client

    async def call(self, system: str, service: str, method: str, *args: object) -> Any:
        """One RPC; returns the S_OK value. Raises `DiracError` for an S_ERROR, `BackendError`
        for a transport failure, `BackendUnavailable` when DIRAC refuses our credentials.

        Cancelled: the request is abandoned and its connection closed (a read-only call).
        """
        endpoint, body = await self._post(system, service, method, args)
        try:
            return unwrap(jdecode(body))
        except WireError as e:
            raise BackendError(f"{method} at {endpoint}: {e}") from None

    async def job_states(self, ids: list[int]) -> dict[int, JobState]:
        """getJobsStates for `ids`, decoded straight into typed records; errors as `call`'s."""
        endpoint, body = await self._post(
            "WorkloadManagement", "JobMonitoring", "getJobsStates", (ids,)
        )
        try:
            return decode_job_states(body)
        except WireError as e:
            raise BackendError(f"getJobsStates at {endpoint}: {e}") from None

    async def _post(
        self, system: str, service: str, method: str, args: tuple[object, ...]
    ) -> tuple[str, bytes]:
        """(endpoint, body of the 200 reply) of one call; HTTP and transport failures raised."""
        client = self._session_client()
        endpoint = f"{self.url}/{system}/Tornado{service}"
        try:
            response = await client.post(
                endpoint,
                content=tornado_body(method, list(args)),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
        except httpx.HTTPError as e:
            raise BackendError(f"{method} at {endpoint}: {type(e).__name__}: {e}") from None
        if response.status_code in (401, 403):
            raise BackendUnavailable(
                f"DIRAC at {endpoint} refused our credentials "
                f"({response.status_code}): check the proxy"
            )
        if response.status_code != 200:
            raise BackendError(
                f"{method} at {endpoint}: HTTP {response.status_code}: {response.text[:200]!r}"
            )
        return endpoint, response.content

    async def download(self, url: str) -> bytes:
        """GET a file (an output sandbox) with the same client and credentials."""
        try:
            response = await self._session_client().get(url)
        except httpx.HTTPError as e:
            raise BackendError(f"download of {url}: {type(e).__name__}: {e}") from None
        if response.status_code != 200:
            raise BackendError(f"download of {url}: HTTP {response.status_code}")
        return response.content
