"""Metrics: the histogram, the collector's families (parsed back), the HTTP server on real
sockets, and a live page checked by promtool."""

from __future__ import annotations

import math
import platform
import shutil
import socket
import struct
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import replace
from functools import partial
from pathlib import Path

import httpx
import pytest
import trio
import trio.testing
from hypothesis import given, strategies as st
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import gangamon
from gangamon import AsyncStore, NewJob, Store
from gangamon._engine import BackendHistograms, MonitorStatistics
from gangamon._errors import GangamonError
from gangamon._histogram import DETECTION_BUCKETS, POLL_BUCKETS, Histogram, HistogramStatistics
from gangamon._status import ACTIVE, Status
from gangamon._supervise import BackendStatistics
from gangamon.cli._metrics import metrics_registry
from gangamon.cli._metrics_http import MetricsAddressUnusable, MetricsPortInUse, serve_metrics

from .fakes import FakeGrid, FakeWatcher

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


# -- the collector -----------------------------------------------------------------------------

DIRAC = BackendStatistics(
    name="dirac",
    jobs=7,
    calls=120,
    errors=2,
    timeouts=1,
    garbage=5,
    restarts=3,
    in_flight=4,
    limiter_borrowed=6,
    limiter_total=8,
    finalising=1,
    finalised=9,
    jobs_by_status={S.RUNNING: 5, S.SUBMITTED: 2},
    last_poll_latency=0.25,
    interval=30.0,
    problem=None,
    last_success=1_796_000_000.5,
    credentials_expiry=1_796_086_400.0,
    delta_calls=11,
    finalise_failed=12,
    finalise_retrying=13,
)
SLURM = replace(
    DIRAC,
    name="slurm",
    last_poll_latency=None,
    interval=1e-05,
    problem="squeue: not found",
    last_success=None,
    credentials_expiry=None,
)


def monitor_stats(*backends: BackendStatistics) -> MonitorStatistics:
    return MonitorStatistics(
        backends={b.name: b for b in backends},
        queue_depth=3,
        batches=10,
        applied=40,
        illegal=1,
        out_of_order=2,
        subscribers=14,
    )


def histogram(*values: float, bounds: tuple[float, ...] = DETECTION_BUCKETS) -> HistogramStatistics:
    h = Histogram(bounds)
    for v in values:
        h.observe(v)
    return h.statistics()


#: DETECTION_BUCKETS as `le` spells them.
DETECTION_LE = ["0.01", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "5.0", "10.0", "30.0", "60.0"]
DETECTION_LE += ["120.0", "300.0", "600.0", "+Inf"]
NO_HISTOGRAMS = BackendHistograms(histogram(), None)
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def page(
    stats: MonitorStatistics, histograms: Mapping[str, BackendHistograms] | None = None
) -> str:
    """The registry's page, as `gangamon run` serves it."""
    if histograms is None:
        histograms = dict.fromkeys(stats.backends, NO_HISTOGRAMS)
    registry = metrics_registry(lambda: stats, lambda: histograms)
    return generate_latest(registry).decode()


def parsed(text: str) -> tuple[dict[str, str], Samples]:
    """gangamon's families (name: type) and samples ((name, labels): value) in `text`."""
    types: dict[str, str] = {}
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        if not family.name.startswith("gangamon_"):
            continue
        types[family.name] = family.type
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            assert key not in samples, key
            samples[key] = sample.value
    return types, samples


def at(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return name, frozenset(labels.items())


def test_the_families_and_their_types() -> None:
    types, _ = parsed(page(monitor_stats(DIRAC)))
    counters = ["batches", "transitions_applied", "reports_refused"] + [
        f"backend_{n}"
        for n in ["calls", "delta_calls", "errors", "timeouts", "garbage", "restarts"]
    ]
    gauges = ["build_info", "queue_depth", "subscribers", "jobs"] + [
        f"backend_{n}"
        for n in [
            "calls_in_flight",
            "limiter_borrowed",
            "limiter_capacity",
            "finalisations_running",
            "finalisations_retrying",
            "poll_interval_seconds",
            "last_poll_duration_seconds",
            "up",
            "last_success_timestamp_seconds",
            "credentials_expiry_timestamp_seconds",
        ]
    ]
    assert types == {
        **{f"gangamon_{n}": "counter" for n in [*counters, "backend_finalisations"]},
        **{f"gangamon_{n}": "gauge" for n in gauges},
        "gangamon_detection_delay_seconds": "histogram",
        "gangamon_backend_poll_duration_seconds": "histogram",
    }


def test_every_sample_of_a_backend_and_the_writer() -> None:
    _, samples = parsed(page(monitor_stats(DIRAC)))
    d = {"backend": "dirac"}
    jobs = {at("gangamon_jobs", backend="dirac", status=s.value): 0.0 for s in ACTIVE}
    jobs |= {
        at("gangamon_jobs", backend="dirac", status="running"): 5,
        at("gangamon_jobs", backend="dirac", status="submitted"): 2,
    }
    build = {"version": gangamon.__version__, "python_version": platform.python_version()}
    assert samples == {
        at("gangamon_build_info", **build): 1,
        at("gangamon_queue_depth"): 3,
        at("gangamon_batches_total"): 10,
        at("gangamon_transitions_applied_total"): 40,
        at("gangamon_reports_refused_total", reason="illegal"): 1,
        at("gangamon_reports_refused_total", reason="out_of_order"): 2,
        at("gangamon_subscribers"): 14,
        at("gangamon_backend_calls_total", **d): 120,
        at("gangamon_backend_delta_calls_total", **d): 11,
        at("gangamon_backend_errors_total", **d): 2,
        at("gangamon_backend_timeouts_total", **d): 1,
        at("gangamon_backend_garbage_total", **d): 5,
        at("gangamon_backend_restarts_total", **d): 3,
        at("gangamon_backend_finalisations_total", **d, outcome="done"): 9,
        at("gangamon_backend_finalisations_total", **d, outcome="failed"): 12,
        at("gangamon_backend_calls_in_flight", **d): 4,
        at("gangamon_backend_limiter_borrowed", **d): 6,
        at("gangamon_backend_limiter_capacity", **d): 8,
        at("gangamon_backend_finalisations_running", **d): 1,
        at("gangamon_backend_finalisations_retrying", **d): 13,
        at("gangamon_backend_poll_interval_seconds", **d): 30,
        at("gangamon_backend_last_poll_duration_seconds", **d): 0.25,
        at("gangamon_backend_up", **d): 1,
        at("gangamon_backend_last_success_timestamp_seconds", **d): 1_796_000_000.5,
        at("gangamon_backend_credentials_expiry_timestamp_seconds", **d): 1_796_086_400.0,
        **jobs,
        **{at("gangamon_detection_delay_seconds_bucket", **d, le=le): 0 for le in DETECTION_LE},
        at("gangamon_detection_delay_seconds_count", **d): 0,
        at("gangamon_detection_delay_seconds_sum", **d): 0,
    }


def test_what_a_backend_does_not_know_has_no_sample() -> None:
    _, samples = parsed(page(monitor_stats(DIRAC, SLURM)))
    s = {"backend": "slurm"}
    assert samples[at("gangamon_backend_up", **s)] == 0
    assert samples[at("gangamon_backend_poll_interval_seconds", **s)] == 1e-05
    for name in [
        "last_poll_duration_seconds",
        "last_success_timestamp_seconds",
        "credentials_expiry_timestamp_seconds",
    ]:
        assert at(f"gangamon_backend_{name}", **s) not in samples
        assert at(f"gangamon_backend_{name}", backend="dirac") in samples


def test_histograms_per_backend() -> None:
    histograms = {
        "dirac": BackendHistograms(histogram(0.2, 3.0), histogram(0.3, bounds=POLL_BUCKETS)),
        "slurm": BackendHistograms(histogram(700.0), None),
    }
    _, samples = parsed(page(monitor_stats(DIRAC, SLURM), histograms))
    d, s = {"backend": "dirac"}, {"backend": "slurm"}
    detection = "gangamon_detection_delay_seconds"
    assert [samples[at(f"{detection}_bucket", **d, le=le)] for le in ["0.1", "0.25", "5.0"]] == [
        0,
        1,
        2,
    ]
    assert samples[at(f"{detection}_sum", **d)] == pytest.approx(3.2)
    assert samples[at(f"{detection}_count", **d)] == 2
    assert samples[at(f"{detection}_bucket", **s, le="600.0")] == 0
    assert samples[at(f"{detection}_bucket", **s, le="+Inf")] == 1
    polls = "gangamon_backend_poll_duration_seconds"
    assert samples[at(f"{polls}_bucket", **d, le="0.25")] == 0
    assert samples[at(f"{polls}_bucket", **d, le="0.5")] == 1
    assert samples[at(f"{polls}_bucket", **d, le="0.005")] == 0
    assert samples[at(f"{polls}_count", **d)] == 1
    # A backend that does not poll has no poll durations.
    assert not [
        key for key in samples if key[0].startswith(polls) and ("backend", "slurm") in key[1]
    ]


def test_statuses_outside_the_active_ones_appear_when_held() -> None:
    odd = replace(DIRAC, jobs_by_status={S.UNKNOWN: 1})
    _, samples = parsed(page(monitor_stats(odd)))
    assert samples[at("gangamon_jobs", backend="dirac", status="unknown")] == 1
    assert samples[at("gangamon_jobs", backend="dirac", status="running")] == 0
    assert at("gangamon_jobs", backend="dirac", status="failed") not in samples


def test_label_values_survive_the_page() -> None:
    name = 'we"ird\\x\nme'
    weird = replace(DIRAC, name=name)
    _, samples = parsed(page(monitor_stats(weird)))
    assert samples[at("gangamon_backend_calls_total", backend=name)] == 120
    assert samples[at("gangamon_jobs", backend=name, status="running")] == 5


def test_an_infinite_sum_is_written() -> None:
    histograms = {"dirac": BackendHistograms(histogram(math.inf), None)}
    _, samples = parsed(page(monitor_stats(DIRAC), histograms))
    assert samples[at("gangamon_detection_delay_seconds_sum", backend="dirac")] == math.inf


def test_statistics_are_read_at_each_collection() -> None:
    stats = [monitor_stats(DIRAC), monitor_stats(replace(DIRAC, calls=121))]
    registry = metrics_registry(lambda: stats.pop(0), lambda: {"dirac": NO_HISTOGRAMS})
    first, second = (parsed(generate_latest(registry).decode())[1] for _ in range(2))
    assert first[at("gangamon_backend_calls_total", backend="dirac")] == 120
    assert second[at("gangamon_backend_calls_total", backend="dirac")] == 121


def test_the_process_and_platform_metrics_are_on_the_page() -> None:
    names = {f.name for f in text_string_to_metric_families(page(monitor_stats()))}
    assert {"process_cpu_seconds", "process_resident_memory_bytes", "python_info"} <= names


# -- the server --------------------------------------------------------------------------------


@asynccontextmanager
async def serving(render: Callable[[], bytes]) -> AsyncIterator[str]:
    """The base URL of a metrics server on a free loopback port, cancelled on exit."""
    async with trio.open_nursery() as nursery:
        port = await nursery.start(partial(serve_metrics, render, port=0))
        yield f"http://127.0.0.1:{port}"
        nursery.cancel_scope.cancel()


async def test_serves_the_page_rendered_at_request_time() -> None:
    pages = [b"gangamon_subscribers 1\n", b"gangamon_subscribers 2\n"]
    async with serving(lambda: pages.pop(0)) as url, httpx.AsyncClient() as client:
        first = await client.get(f"{url}/metrics")
        second = await client.get(f"{url}/metrics")
    assert first.status_code == second.status_code == 200
    assert first.headers["content-type"] == CONTENT_TYPE_LATEST
    assert first.headers["connection"] == "close"
    assert (first.text, second.text) == ("gangamon_subscribers 1\n", "gangamon_subscribers 2\n")


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/"), ("GET", "/metricsx"), ("POST", "/metrics")]
)
async def test_anything_else_is_not_found(method: str, path: str) -> None:
    async with serving(lambda: b"unused\n") as url, httpx.AsyncClient() as client:
        response = await client.request(method, f"{url}{path}")
    assert response.status_code == 404


async def test_head_and_query_string() -> None:
    async with serving(lambda: b"gangamon_subscribers 1\n") as url, httpx.AsyncClient() as client:
        head = await client.head(f"{url}/metrics")
        query = await client.get(f"{url}/metrics?name[]=gangamon_subscribers")
    assert (head.status_code, head.headers["content-length"], head.content) == (200, "23", b"")
    assert query.text == "gangamon_subscribers 1\n"


async def test_a_failing_render_is_a_500_not_a_crash(caplog: pytest.LogCaptureFixture) -> None:
    pages = iter([None, b"gangamon_subscribers 1\n"])

    def render() -> bytes:
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
    async with serving(lambda: b"gangamon_subscribers 1\n") as url:
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
    async with serving(lambda: b"gangamon_subscribers 1\n") as url:
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
    async with serving(lambda: b"unused\n") as url:
        port = int(url.rsplit(":", 1)[1])
        start = trio.current_time()
        async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
            assert await stream.receive_some() == b""
        assert trio.current_time() - start == pytest.approx(10, abs=0.5)


async def test_cancellation_stops_the_server() -> None:
    async with serving(lambda: b"unused\n") as url:
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
                await nursery.start(partial(serve_metrics, lambda: b"", port=port))
    assert isinstance(caught.value, GangamonError)
    assert (caught.value.port, caught.value.host) == (port, "127.0.0.1")
    assert str(caught.value) == f"metrics port {port} on 127.0.0.1 is already in use"


async def test_an_address_not_of_this_machine_is_one_error_naming_it() -> None:
    # 192.0.2.0/24 is for documentation: no machine has it.
    with pytest.raises(MetricsAddressUnusable) as caught:
        await serve_metrics(lambda: b"", port=0, host="192.0.2.1")
    assert str(caught.value).startswith("cannot serve metrics on 192.0.2.1: ")


# -- a live page, as Prometheus' own linter sees it --------------------------------------------

PROMTOOL = shutil.which("promtool")


@pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool is not on PATH (Debian's prometheus package has it; .ci/run installs it)",
)
async def test_promtool_finds_a_live_page_clean(tmp_path: Path) -> None:
    assert PROMTOOL is not None
    grid = FakeGrid("dirac", latency=0.01, poll_interval=0.05, finalises=True)
    store = Store(tmp_path / "jobs.sqlite")
    monitoring = gangamon.open_monitor(AsyncStore(store, in_thread=False), [grid, FakeWatcher()])
    async with monitoring as monitor:
        [job] = await monitor.track([NewJob("dirac", "dirac-0", S.SUBMITTED)])
        grid.truth["dirac-0"] = S.COMPLETED
        assert await monitor.wait_for(job, [S.COMPLETED], timeout=30) == S.COMPLETED
        registry = metrics_registry(monitor.statistics, monitor.histograms)
        async with (
            serving(partial(generate_latest, registry)) as url,
            httpx.AsyncClient() as client,
        ):
            reply = await client.get(f"{url}/metrics")
    lint = await trio.run_process(
        [PROMTOOL, "check", "metrics"],
        stdin=reply.content,
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    assert (lint.returncode, lint.stdout + lint.stderr) == (0, b"")
    # The page checked is a monitor's: the job's download was counted.
    done = b'gangamon_backend_finalisations_total{backend="dirac",outcome="done"} 1.0\n'
    assert done in reply.content
