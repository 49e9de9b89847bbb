"""Prometheus metrics of a running Monitor: a collector that reads its statistics at each
collection, on a registry that also holds the process and platform metrics.

Collected in whatever thread asks: `gangamon run` asks on the trio thread (`_metrics_http`),
where nothing else mutates the engine's state meanwhile.
"""

from __future__ import annotations

import math
import platform
from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from .. import __version__
from .._engine import BackendHistograms, MonitorStatistics
from .._histogram import HistogramStatistics
from .._status import ACTIVE, Status
from .._supervise import BackendStatistics

#: (name after gangamon_backend_, help, value; None: no sample).
_Reading = tuple[str, str, Callable[[BackendStatistics], float | None]]

_BACKEND_COUNTERS: list[tuple[str, str, Callable[[BackendStatistics], int]]] = [
    ("calls", "Backend calls made.", lambda b: b.calls),
    ("delta_calls", "Calls asking which jobs changed.", lambda b: b.delta_calls),
    ("errors", "Backend calls that failed.", lambda b: b.errors),
    ("timeouts", "Backend calls past their deadline.", lambda b: b.timeouts),
    ("garbage", "Backend answers that could not be read.", lambda b: b.garbage),
    ("restarts", "Restarts of the backend after a crash.", lambda b: b.restarts),
]
_BACKEND_GAUGES: list[_Reading] = [
    ("calls_in_flight", "Backend calls in flight.", lambda b: b.in_flight),
    ("limiter_borrowed", "Call limiter tokens in use.", lambda b: b.limiter_borrowed),
    (
        "limiter_capacity",
        "Call limiter tokens: calls in flight at most.",
        lambda b: b.limiter_total,
    ),
    (
        "finalisations_running",
        "Finalisations (output downloads) trying now.",
        lambda b: b.finalising,
    ),
    (
        "finalisations_retrying",
        "Finalisations waiting out their backoff before another try.",
        lambda b: b.finalise_retrying,
    ),
    ("poll_interval_seconds", "Sweep interval now (backs off after errors).", lambda b: b.interval),
    (
        "last_poll_duration_seconds",
        "How long the last successful poll took.",
        lambda b: b.last_poll_latency,
    ),
    ("up", "1 unless the backend reports a problem.", lambda b: int(b.problem is None)),
    (
        "last_success_timestamp_seconds",
        "When a poll last succeeded (Unix time).",
        lambda b: b.last_success,
    ),
    (
        "credentials_expiry_timestamp_seconds",
        "When the backend's credentials (a DIRAC proxy) expire (Unix time).",
        lambda b: b.credentials_expiry,
    ),
]


def metrics_registry(
    statistics: Callable[[], MonitorStatistics],
    histograms: Callable[[], Mapping[str, BackendHistograms]],
) -> CollectorRegistry:
    """A registry of gangamon's metrics, read from `statistics()` and `histograms()` (a
    `Monitor`'s) at each collection, and of the process's and Python's."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatisticsCollector(statistics, histograms))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry


class StatisticsCollector(Collector):
    """A Monitor's statistics and histograms as metric families."""

    def __init__(
        self,
        statistics: Callable[[], MonitorStatistics],
        histograms: Callable[[], Mapping[str, BackendHistograms]],
    ) -> None:
        self._statistics = statistics
        self._histograms = histograms

    def collect(self) -> Iterator[Metric]:
        stats, histograms = self._statistics(), self._histograms()
        build = InfoMetricFamily("gangamon_build", "The running gangamon and Python.")
        build.add_metric([], {"version": __version__, "python_version": platform.python_version()})
        yield build
        yield from _writer(stats)
        yield from _backends(list(stats.backends.values()))
        yield _histogram(
            "gangamon_detection_delay_seconds",
            "Delay from a change at the backend (where it says when) to its being stored.",
            {name: h.detection for name, h in histograms.items()},
        )
        yield _histogram(
            "gangamon_backend_poll_duration_seconds",
            "Successful polls' durations, from holding a limiter token to the answer.",
            {
                name: h.poll_duration
                for name, h in histograms.items()
                if h.poll_duration is not None
            },
        )


def _writer(stats: MonitorStatistics) -> Iterator[Metric]:
    yield GaugeMetricFamily(
        "gangamon_queue_depth", "Reports waiting for the writer.", value=stats.queue_depth
    )
    yield CounterMetricFamily(
        "gangamon_batches", "Batches written to the store.", value=stats.batches
    )
    yield CounterMetricFamily(
        "gangamon_transitions_applied", "Status changes stored.", value=stats.applied
    )
    refused = CounterMetricFamily(
        "gangamon_reports_refused",
        "Reports not stored: illegal (the status graph refused them) or out_of_order (older "
        "than one applied to the same job).",
        labels=["reason"],
    )
    refused.add_metric(["illegal"], stats.illegal)
    refused.add_metric(["out_of_order"], stats.out_of_order)
    yield refused
    yield GaugeMetricFamily(
        "gangamon_subscribers", "Open changes() subscriptions.", value=stats.subscribers
    )


def _backends(backends: list[BackendStatistics]) -> Iterator[Metric]:
    for name, text, value in _BACKEND_COUNTERS:
        counter = CounterMetricFamily(f"gangamon_backend_{name}", text, labels=["backend"])
        for b in backends:
            counter.add_metric([b.name], value(b))
        yield counter
    finalisations = CounterMetricFamily(
        "gangamon_backend_finalisations",
        "Finalisations (output downloads) ended: done, or failed after their retries.",
        labels=["backend", "outcome"],
    )
    for b in backends:
        finalisations.add_metric([b.name, "done"], b.finalised)
        finalisations.add_metric([b.name, "failed"], b.finalise_failed)
    yield finalisations
    for name, text, reading in _BACKEND_GAUGES:
        gauge = GaugeMetricFamily(f"gangamon_backend_{name}", text, labels=["backend"])
        for b in backends:
            if (v := reading(b)) is not None:
                gauge.add_metric([b.name], v)
        yield gauge
    jobs = GaugeMetricFamily(
        "gangamon_jobs", "Tracked jobs by backend and stored status.", labels=["backend", "status"]
    )
    for b in backends:
        # Active statuses always appear, so that an emptied status reads 0 rather than vanishing.
        for status in [s for s in Status if s in ACTIVE or s in b.jobs_by_status]:
            jobs.add_metric([b.name, status.value], b.jobs_by_status.get(status, 0))
    yield jobs


def _histogram(name: str, text: str, by_backend: Mapping[str, HistogramStatistics]) -> Metric:
    family = HistogramMetricFamily(name, text, labels=["backend"])
    for backend, h in by_backend.items():
        buckets = [(_bound(bound), cumulative) for bound, cumulative in h.buckets]
        family.add_metric([backend], buckets, sum_value=h.sum)
    return family


def _bound(bound: float) -> str:
    # `le` is written as given: spelt as Prometheus' own clients do ("0.5", "1.0", "+Inf").
    return "+Inf" if math.isinf(bound) else repr(bound)
