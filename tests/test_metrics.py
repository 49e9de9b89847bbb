"""Metrics: the histogram, the text exposition (parsed back), the HTTP server on real sockets."""

from __future__ import annotations

import math
import re
import socket
import struct
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from functools import partial

import httpx
import pytest
import trio
import trio.testing
from hypothesis import given, strategies as st

from gangamon._engine import MonitorStatistics
from gangamon._errors import GangamonError
from gangamon._histogram import DETECTION_BUCKETS, Histogram, HistogramStatistics
from gangamon._status import Status
from gangamon._supervise import BackendStatistics
from gangamon.cli._metrics import (
    CONTENT_TYPE,
    MetricsPortInUse,
    exposition,
    serve_metrics,
)

S = Status

# -- the histogram -----------------------------------------------------------------------------


def test_histogram_counts_into_cumulative_buckets() -> None:
    h = Histogram([1, 5])
    for v in [0.5, 1, 1.5, 5, 7]:
        h.observe(v)
    assert h.statistics() == HistogramStatistics(((1.0, 2), (5.0, 4), (math.inf, 5)), 15.0, 5)


def test_histogram_clamps_negative_values_and_ignores_nan() -> None:
    h = Histogram([1])
    h.observe(-3.0)  # a worker node's clock ahead of ours
    h.observe(math.nan)
    assert h.statistics() == HistogramStatistics(((1.0, 1), (math.inf, 1)), 0.0, 1)


def test_histogram_default_bounds_for_detection_latency() -> None:
    stats = Histogram().statistics()
    assert [b for b, _ in stats.buckets] == list(DETECTION_BUCKETS)
    assert stats.buckets[-1] == (math.inf, 0)
    assert (stats.sum, stats.count) == (0.0, 0)


@pytest.mark.parametrize("bounds", [[1, 1], [2, 1], [math.nan], [1, math.inf, 2]])
def test_histogram_refuses_bounds_out_of_order(bounds: list[float]) -> None:
    with pytest.raises(ValueError, match="increasing"):
        Histogram(bounds)


@given(
    st.lists(st.floats(min_value=0, max_value=1000), unique=True, min_size=1),
    st.lists(st.floats()),
)
def test_histogram_buckets_are_cumulative(bounds: list[float], values: list[float]) -> None:
    h = Histogram(sorted(bounds))
    for v in values:
        h.observe(v)
    stats = h.statistics()
    counts = [c for _, c in stats.buckets]
    observed = [max(v, 0.0) for v in values if not math.isnan(v)]
    assert counts == sorted(counts)
    assert stats.buckets[-1] == (math.inf, stats.count)
    assert stats.count == len(observed)
    assert counts == [sum(v <= b for v in observed) for b, _ in stats.buckets]


# -- the exposition ----------------------------------------------------------------------------

DIRAC = BackendStatistics(
    name="dirac",
    jobs=7,
    calls=120,
    errors=2,
    timeouts=1,
    garbage=0,
    restarts=3,
    in_flight=4,
    limiter_borrowed=4,
    limiter_total=8,
    finalising=1,
    finalised=9,
    jobs_by_status={S.RUNNING: 5, S.SUBMITTED: 2},
    last_poll_latency=0.25,
    interval=30.0,
    problem=None,
    last_success=1_796_000_000.5,
    credentials_expiry=1_796_086_400.0,
)
SLURM = replace(
    DIRAC, name="slurm", last_poll_latency=None, interval=1e-05, problem="squeue: not found"
)


def monitor_stats(*backends: BackendStatistics) -> MonitorStatistics:
    return MonitorStatistics(
        backends={b.name: b for b in backends},
        queue_depth=3,
        batches=10,
        applied=40,
        illegal=1,
        out_of_order=2,
        subscribers=1,
    )


def detection(*values: float) -> Histogram:
    h = Histogram()
    for v in values:
        h.observe(v)
    return h


def test_exposition_key_samples() -> None:
    lines = exposition(monitor_stats(DIRAC, SLURM), detection(0.2, 3.0)).splitlines()
    for line in [
        "# HELP gangamon_detection_seconds Delay until a backend's change is stored.",
        "# TYPE gangamon_detection_seconds histogram",
        'gangamon_detection_seconds_bucket{le="0.1"} 0',
        'gangamon_detection_seconds_bucket{le="0.25"} 1',
        'gangamon_detection_seconds_bucket{le="5.0"} 2',
        'gangamon_detection_seconds_bucket{le="+Inf"} 2',
        "gangamon_detection_seconds_sum 3.2",
        "gangamon_detection_seconds_count 2",
        "# TYPE gangamon_backend_calls_total counter",
        'gangamon_backend_calls_total{backend="dirac"} 120',
        'gangamon_backend_restarts_total{backend="slurm"} 3',
        "# TYPE gangamon_backend_in_flight gauge",
        'gangamon_backend_limiter_total{backend="dirac"} 8',
        "# TYPE gangamon_backend_finalised_total counter",
        'gangamon_backend_finalised_total{backend="dirac"} 9',
        'gangamon_backend_poll_interval_seconds{backend="dirac"} 30.0',
        'gangamon_backend_poll_interval_seconds{backend="slurm"} 1e-05',
        'gangamon_backend_last_poll_latency_seconds{backend="dirac"} 0.25',
        'gangamon_backend_up{backend="dirac"} 1',
        'gangamon_backend_up{backend="slurm"} 0',
        "# TYPE gangamon_backend_last_success_timestamp_seconds gauge",
        'gangamon_backend_last_success_timestamp_seconds{backend="dirac"} 1796000000.5',
        'gangamon_backend_credentials_expiry_timestamp_seconds{backend="dirac"} 1796086400.0',
        'gangamon_jobs{backend="dirac",status="running"} 5',
        'gangamon_jobs{backend="dirac",status="submitted"} 2',
        'gangamon_jobs{backend="dirac",status="completing"} 0',
        "# TYPE gangamon_transitions_applied_total counter",
        "gangamon_transitions_applied_total 40",
        "gangamon_reports_out_of_order_total 2",
        "gangamon_queue_depth 3",
        "gangamon_subscribers 1",
    ]:
        assert line in lines


def test_exposition_omits_unknown_poll_latency() -> None:
    text = exposition(monitor_stats(DIRAC, SLURM), detection())
    assert "# TYPE gangamon_backend_last_poll_latency_seconds gauge\n" in text
    assert 'gangamon_backend_last_poll_latency_seconds{backend="dirac"} 0.25\n' in text
    assert 'gangamon_backend_last_poll_latency_seconds{backend="slurm"}' not in text


def test_exposition_lists_statuses_outside_the_active_ones_too() -> None:
    odd = replace(DIRAC, jobs_by_status={S.UNKNOWN: 1})
    text = exposition(monitor_stats(odd), detection())
    assert 'gangamon_jobs{backend="dirac",status="unknown"} 1\n' in text
    assert 'gangamon_jobs{backend="dirac",status="running"} 0\n' in text
    assert 'status="failed"' not in text


def test_exposition_escapes_label_values() -> None:
    weird = replace(DIRAC, name='we"ird\\x\nme')
    lines = exposition(monitor_stats(weird), detection()).splitlines()
    assert r'gangamon_backend_calls_total{backend="we\"ird\\x\nme"} 120' in lines
    assert r'gangamon_jobs{backend="we\"ird\\x\nme",status="running"} 5' in lines


def test_exposition_writes_infinite_sum_as_prometheus_does() -> None:
    text = exposition(monitor_stats(), detection(math.inf))
    assert "gangamon_detection_seconds_sum +Inf\n" in text


_LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
_SAMPLE = re.compile(
    rf"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{{{_LABEL}(,{_LABEL})*\}})?"
    r" (?P<value>[+-]?(\d+(\.\d*)?([eE][+-]?\d+)?|Inf)|NaN)$"
)
_COMMENT = re.compile(r"^# (?P<kind>HELP|TYPE) (?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*) \S.*$")


@pytest.mark.parametrize(
    "stats",
    [monitor_stats(), monitor_stats(DIRAC, SLURM), monitor_stats(replace(DIRAC, name='a"\\\n'))],
)
def test_exposition_parses(stats: MonitorStatistics) -> None:
    text = exposition(stats, detection(0.01, 7, -1, 1e9))
    assert text.endswith("\n")
    seen: Counter[tuple[str, str]] = Counter()
    types: dict[str, str] = {}
    family = ""
    for line in text.splitlines():
        if comment := _COMMENT.match(line):
            family = comment["name"]
            seen[comment["kind"], family] += 1
            if comment["kind"] == "TYPE":
                types[family] = line.split()[-1]
            continue
        sample = _SAMPLE.match(line)
        assert sample, line
        float(sample["value"])
        name = sample["name"]
        if types.get(family) == "histogram":
            name = re.sub("_(bucket|sum|count)$", "", name)
        # A family's samples follow its HELP and TYPE, all together.
        assert name == family, line
        assert family in types, line
    assert seen == Counter({(kind, f): 1 for f in types for kind in ["HELP", "TYPE"]})
    assert all(n.endswith("_total") for n, t in types.items() if t == "counter")


# -- the server --------------------------------------------------------------------------------


@asynccontextmanager
async def serving(render: Callable[[], str]) -> AsyncIterator[str]:
    """The base URL of a metrics server on a free loopback port, cancelled on exit."""
    async with trio.open_nursery() as nursery:
        port = await nursery.start(partial(serve_metrics, render, port=0))
        yield f"http://127.0.0.1:{port}"
        nursery.cancel_scope.cancel()


async def test_serves_metrics_rendered_at_request_time() -> None:
    stats = [monitor_stats(DIRAC), monitor_stats(DIRAC, SLURM)]
    h = detection(0.3)
    async with serving(lambda: exposition(stats.pop(0), h)) as url, httpx.AsyncClient() as client:
        first = await client.get(f"{url}/metrics")
        second = await client.get(f"{url}/metrics")
    assert first.status_code == second.status_code == 200
    assert first.headers["content-type"] == CONTENT_TYPE
    assert first.headers["connection"] == "close"
    assert first.text == exposition(monitor_stats(DIRAC), h)
    assert second.text == exposition(monitor_stats(DIRAC, SLURM), h)


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/"), ("GET", "/metricsx"), ("POST", "/metrics")]
)
async def test_anything_else_is_not_found(method: str, path: str) -> None:
    async with serving(lambda: "unused\n") as url, httpx.AsyncClient() as client:
        response = await client.request(method, f"{url}{path}")
    assert response.status_code == 404


async def test_head_and_query_string() -> None:
    async with serving(lambda: "gangamon_subscribers 1\n") as url, httpx.AsyncClient() as client:
        head = await client.head(f"{url}/metrics")
        query = await client.get(f"{url}/metrics?name[]=gangamon_subscribers")
    assert (head.status_code, head.headers["content-length"], head.content) == (200, "23", b"")
    assert query.text == "gangamon_subscribers 1\n"


async def test_a_failing_render_is_a_500_not_a_crash(caplog: pytest.LogCaptureFixture) -> None:
    pages = iter([None, "gangamon_subscribers 1\n"])

    def render() -> str:
        page = next(pages)
        if page is None:
            raise RuntimeError("bug")
        return page

    async with serving(render) as url, httpx.AsyncClient() as client:
        failed = await client.get(f"{url}/metrics")
        later = await client.get(f"{url}/metrics")
    assert failed.status_code == 500
    assert later.text == "gangamon_subscribers 1\n"
    assert "rendering metrics failed" in caplog.text


@pytest.mark.parametrize(
    "sent", [b"", b"\x00\xff not http at all\r\n\r\n", b"GET /metr", b"x" * 100_000]
)
async def test_garbage_then_hangup_leaves_the_server_serving(sent: bytes) -> None:
    async with serving(lambda: "gangamon_subscribers 1\n") as url:
        port = int(url.rsplit(":", 1)[1])
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            try:
                await stream.send_all(sent)
                await stream.send_eof()
                # The server closes its end once it has given up on us: its handler is done.
                while await stream.receive_some():
                    pass
            except trio.BrokenResourceError:
                pass  # it closed with our bytes unread, which resets the connection
        async with httpx.AsyncClient() as client:
            response = await client.get(f"{url}/metrics")
    assert response.text == "gangamon_subscribers 1\n"


async def test_a_reset_connection_leaves_the_server_serving() -> None:
    async with serving(lambda: "gangamon_subscribers 1\n") as url:
        port = int(url.rsplit(":", 1)[1])
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(b"GET /metrics HTTP/1.1\r\n")
        # Linger 0: close sends a reset, not a FIN.
        stream.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        await stream.aclose()
        await trio.testing.wait_all_tasks_blocked()
        async with httpx.AsyncClient() as client:
            response = await client.get(f"{url}/metrics")
    assert response.text == "gangamon_subscribers 1\n"


async def test_a_silent_client_is_dropped_after_ten_seconds(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with serving(lambda: "unused\n") as url:
        port = int(url.rsplit(":", 1)[1])
        start = trio.current_time()
        async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
            assert await stream.receive_some() == b""
        assert trio.current_time() - start == pytest.approx(10, abs=0.5)


async def test_cancellation_stops_the_server() -> None:
    async with serving(lambda: "unused\n") as url:
        port = int(url.rsplit(":", 1)[1])
    with pytest.raises(OSError, match="attempts to connect"):
        await trio.open_tcp_stream("127.0.0.1", port)


async def test_port_in_use() -> None:
    with trio.socket.socket() as taken:
        await taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        async with trio.open_nursery() as nursery:
            with pytest.raises(MetricsPortInUse) as caught:
                await nursery.start(partial(serve_metrics, lambda: "", port=port))
    assert isinstance(caught.value, GangamonError)
    assert (caught.value.port, caught.value.host) == (port, "127.0.0.1")
    assert str(caught.value) == f"metrics port {port} on 127.0.0.1 is already in use"
