"""Prometheus metrics for a running Monitor: the text exposition, an HTTP server.

No prometheus-client: its server thread would read the engine's state while trio mutates it.
Here the page is rendered at request time on the trio thread, from `Monitor.statistics()`.
"""

from __future__ import annotations

import errno
import logging
import math
from collections.abc import Callable, Iterator
from functools import partial
from typing import TYPE_CHECKING

import h11
import trio

from .._errors import GangamonError
from .._histogram import Histogram, HistogramStatistics
from .._status import ACTIVE, Status

if TYPE_CHECKING:
    from .._engine import MonitorStatistics
    from .._supervise import BackendStatistics

log = logging.getLogger("gangamon.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_CONNECTION_DEADLINE = 10.0


class MetricsPortInUse(GangamonError):
    """Another socket already listens on the metrics port."""

    def __init__(self, port: int, host: str) -> None:
        self.port, self.host = port, host
        super().__init__(f"metrics port {port} on {host} is already in use")


def exposition(stats: MonitorStatistics, detection: Histogram) -> str:
    """The Prometheus text exposition (format 0.0.4) of `stats` and `detection`."""
    return "".join(f"{line}\n" for line in _lines(stats, detection.statistics()))


# (name, help, value): a name ending in _total is a counter, any other a gauge.
_PER_BACKEND: list[tuple[str, str, Callable[[BackendStatistics], float | None]]] = [
    ("backend_calls_total", "Backend calls made.", lambda b: b.calls),
    ("backend_delta_calls_total", "Calls asking which jobs changed.", lambda b: b.delta_calls),
    ("backend_errors_total", "Backend calls that failed.", lambda b: b.errors),
    ("backend_timeouts_total", "Backend calls past their deadline.", lambda b: b.timeouts),
    ("backend_garbage_total", "Backend answers that could not be read.", lambda b: b.garbage),
    ("backend_restarts_total", "Restarts of the backend after a crash.", lambda b: b.restarts),
    ("backend_in_flight", "Backend calls in flight.", lambda b: b.in_flight),
    ("backend_limiter_borrowed", "Call limiter tokens in use.", lambda b: b.limiter_borrowed),
    ("backend_limiter_total", "Call limiter tokens.", lambda b: b.limiter_total),
    ("backend_finalising", "Jobs being finalised.", lambda b: b.finalising),
    ("backend_finalised_total", "Finalisations (output downloads) done.", lambda b: b.finalised),
    ("backend_poll_interval_seconds", "Sweep interval (backs off).", lambda b: b.interval),
    ("backend_last_poll_latency_seconds", "Last poll duration.", lambda b: b.last_poll_latency),
    ("backend_up", "1 unless the backend reports a problem.", lambda b: int(b.problem is None)),
    (
        "backend_last_success_timestamp_seconds",
        "When a poll last succeeded (Unix time).",
        lambda b: b.last_success,
    ),
    (
        "backend_credentials_expiry_timestamp_seconds",
        "When the backend's credentials (a DIRAC proxy) expire (Unix time).",
        lambda b: b.credentials_expiry,
    ),
]
_MONITOR_WIDE: list[tuple[str, str, Callable[[MonitorStatistics], int]]] = [
    ("queue_depth", "Reports waiting for the writer.", lambda s: s.queue_depth),
    ("batches_total", "Batches written to the store.", lambda s: s.batches),
    ("transitions_applied_total", "Status changes stored.", lambda s: s.applied),
    ("reports_illegal_total", "Reports the status graph refused.", lambda s: s.illegal),
    ("reports_out_of_order_total", "Reports older than one applied.", lambda s: s.out_of_order),
    ("subscribers", "Open changes() subscriptions.", lambda s: s.subscribers),
]


def _lines(stats: MonitorStatistics, detection: HistogramStatistics) -> Iterator[str]:
    def family(name: str, text: str, kind: str = "") -> Iterator[str]:
        yield f"# HELP gangamon_{name} {text}"
        kind = kind or ("counter" if name.endswith("_total") else "gauge")
        yield f"# TYPE gangamon_{name} {kind}"

    yield from family("detection_seconds", "Delay until a backend's change is stored.", "histogram")
    for bound, cumulative in detection.buckets:
        yield f'gangamon_detection_seconds_bucket{{le="{_number(bound)}"}} {cumulative}'
    yield f"gangamon_detection_seconds_sum {_number(detection.sum)}"
    yield f"gangamon_detection_seconds_count {detection.count}"

    backends = stats.backends.values()
    for name, text, value in _PER_BACKEND:
        yield from family(name, text)
        for b in backends:
            if (v := value(b)) is not None:
                yield f'gangamon_{name}{{backend="{_label(b.name)}"}} {_number(v)}'

    yield from family("jobs", "Tracked jobs by backend and stored status.")
    for b in backends:
        # Active statuses always appear, so that an emptied status reads 0 rather than vanishing.
        for status in [s for s in Status if s in ACTIVE or s in b.jobs_by_status]:
            count = b.jobs_by_status.get(status, 0)
            yield f'gangamon_jobs{{backend="{_label(b.name)}",status="{status.value}"}} {count}'

    for name, text, total in _MONITOR_WIDE:
        yield from family(name, text)
        yield f"gangamon_{name} {total(stats)}"


def _number(v: float) -> str:
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    # repr: the shortest form that reads back exactly, never locale-dependent.
    return "NaN" if math.isnan(v) else repr(v)


def _label(value: str) -> str:
    return value.replace("\\", r"\\").replace('"', r"\"").replace("\n", r"\n")


async def serve_metrics(
    render: Callable[[], str],
    *,
    port: int,
    host: str = "127.0.0.1",
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `GET /metrics` with the page `render()` returns, called at request time.

    Listens on `host` (loopback by default) and reports the bound port through `task_status`
    (of the first listener, should `host` resolve to several addresses with `port=0`). Raises
    `MetricsPortInUse` before reporting it. Runs until cancelled; then the server stops and
    responses in flight are abandoned.
    """
    try:
        listeners = await trio.open_tcp_listeners(port, host=host)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise MetricsPortInUse(port, host) from e
        raise
    try:
        task_status.started(listeners[0].socket.getsockname()[1])
        await trio.serve_listeners(partial(_answer, render), listeners)
    finally:
        for listener in listeners:
            listener.socket.close()


async def _answer(render: Callable[[], str], stream: trio.SocketStream) -> None:
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
                ("Content-Type", CONTENT_TYPE if status == 200 else "text/plain; charset=utf-8"),
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


def _respond(render: Callable[[], str], request: h11.Request) -> tuple[int, bytes]:
    if request.method not in (b"GET", b"HEAD") or request.target.partition(b"?")[0] != b"/metrics":
        return 404, b"not found; metrics are at /metrics\n"
    try:
        return 200, render().encode()
    except Exception:
        # A bug in rendering must not take down the monitor this server runs beside.
        log.exception("rendering metrics failed")
        return 500, b"rendering metrics failed; see the log\n"
