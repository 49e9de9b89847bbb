"""The least an HTTPS client can do for a getJobsStates call: the yardstick of the DIRAC sweep.

A fixed set of open TLS connections, one h11 exchange per call, the request body built
before a slot is taken (by the caller) and the request sent in one write, the gzipped reply
decoded into the same records as `DiracHttps.job_states`. No pool logic, no deadlines, no
error handling: it measures what this machine (its cores, its loopback, Python's TLS) lets a
sweep reach, so that the sweep's distance from the bound can be told apart into the
machine's share and ours.
"""

from __future__ import annotations

import contextlib
import gzip
import ssl
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import h11
import trio

from gangamon.backends.dirac._wire import JobState, decode_job_states

_TARGET = "/WorkloadManagement/TornadoJobMonitoring"


class BareClient:
    """`connections` keep-alive connections to the simulator in `facts`; one call per one."""

    def __init__(self, facts: dict[str, Any], connections: int) -> None:
        self._facts = facts
        self._count = connections
        self._idle: list[tuple[trio.SSLStream[trio.SocketStream], h11.Connection]] = []
        self._host = urlsplit(facts["https"]).hostname or ""

    @contextlib.asynccontextmanager
    async def open(self) -> AsyncIterator[BareClient]:
        url = urlsplit(self._facts["https"])
        context = ssl.create_default_context(cafile=self._facts["ca_file"])
        context.load_cert_chain(self._facts["proxy"])
        for _ in range(self._count):
            tcp = await trio.open_tcp_stream(self._host, url.port or 443)
            stream = trio.SSLStream(tcp, context, server_hostname=self._host)
            await stream.do_handshake()
            self._idle.append((stream, h11.Connection(h11.CLIENT)))
        try:
            yield self
        finally:
            for stream, _ in self._idle:
                await trio.aclose_forcefully(stream)

    async def call(self, body: bytes) -> dict[int, JobState]:
        """POST a getJobsStates body (built beforehand by `tornado_body`) on an idle
        connection, in one write; the decoded reply."""
        stream, conn = self._idle.pop()
        headers = [
            ("Host", self._host),
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Accept-Encoding", "gzip"),
            ("Content-Length", str(len(body))),
        ]
        request = conn.send(h11.Request(method="POST", target=_TARGET, headers=headers)) or b""
        request += (conn.send(h11.Data(data=body)) or b"") + (conn.send(h11.EndOfMessage()) or b"")
        await stream.send_all(request)
        reply = b""
        while not isinstance(event := conn.next_event(), h11.EndOfMessage):
            if event is h11.NEED_DATA:
                conn.receive_data(bytes(await stream.receive_some(65536)))
            elif isinstance(event, h11.Data):
                reply += event.data
        conn.start_next_cycle()
        self._idle.append((stream, conn))
        return decode_job_states(gzip.decompress(reply) if reply[:2] == b"\x1f\x8b" else reply)
