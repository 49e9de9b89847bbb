"""The metrics endpoint: `GET /metrics` over HTTP/1.1 (h11) on trio, loopback by default.

Not prometheus_client's server: its thread would read the engine's state while trio mutates
it. Here the page is rendered at request time on the trio thread.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable
from functools import partial

import h11
import trio
from prometheus_client import CONTENT_TYPE_LATEST

from .._errors import GangamonError

log = logging.getLogger("gangamon.metrics")

_CONNECTION_DEADLINE = 10.0


class MetricsPortInUse(GangamonError):
    """Another socket already listens on the metrics port."""

    def __init__(self, port: int, host: str) -> None:
        self.port, self.host = port, host
        super().__init__(f"metrics port {port} on {host} is already in use")


class MetricsAddressUnusable(GangamonError):
    """The metrics address is not one of this machine's, or does not resolve."""

    def __init__(self, host: str, reason: str) -> None:
        self.host = host
        super().__init__(f"cannot serve metrics on {host}: {reason}")


async def serve_metrics(
    render: Callable[[], bytes],
    *,
    port: int,
    host: str = "127.0.0.1",
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `GET /metrics` with the page `render()` returns, called at request time.

    Listens on `host` (loopback by default) and reports the bound port through `task_status`
    (of the first listener, should `host` resolve to several addresses with `port=0`). Raises
    `MetricsPortInUse` or `MetricsAddressUnusable` before reporting it. Runs until cancelled;
    then the server stops and responses in flight are abandoned.
    """
    try:
        listeners = await trio.open_tcp_listeners(port, host=host)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise MetricsPortInUse(port, host) from e
        raise MetricsAddressUnusable(host, e.strerror or str(e)) from e
    try:
        task_status.started(listeners[0].socket.getsockname()[1])
        await trio.serve_listeners(partial(_answer, render), listeners)
    finally:
        for listener in listeners:
            listener.socket.close()


async def _answer(render: Callable[[], bytes], stream: trio.SocketStream) -> None:
    # One request per connection; a client that hangs or speaks garbage loses only its own.
    conn = h11.Connection(h11.SERVER)
    try:
        with trio.move_on_after(_CONNECTION_DEADLINE):
            while (request := conn.next_event()) is h11.NEED_DATA:
                conn.receive_data(bytes(await stream.receive_some(65536)))
            if not isinstance(request, h11.Request):
                return
            status, body = _respond(render, request)
            headers = [
                (
                    "Content-Type",
                    CONTENT_TYPE_LATEST if status == 200 else "text/plain; charset=utf-8",
                ),
                ("Content-Length", str(len(body))),
                ("Connection", "close"),
            ]
            if request.method == b"HEAD":
                body = b""
            # One write: separate small writes meet the peer's delayed ACK.
            await stream.send_all(
                (conn.send(h11.Response(status_code=status, headers=headers)) or b"")
                + (conn.send(h11.Data(data=body)) or b"")
                + (conn.send(h11.EndOfMessage()) or b"")
            )
    except (trio.BrokenResourceError, h11.ProtocolError):
        pass  # serve_listeners closes the stream


def _respond(render: Callable[[], bytes], request: h11.Request) -> tuple[int, bytes]:
    if request.method not in (b"GET", b"HEAD") or request.target.partition(b"?")[0] != b"/metrics":
        return 404, b"not found; metrics are at /metrics\n"
    try:
        return 200, render()
    except Exception:
        # A bug in rendering must not take down the monitor this server runs beside.
        log.exception("rendering metrics failed")
        return 500, b"rendering metrics failed; see the log\n"
