"""A histogram of fixed buckets, as Prometheus exposes one: detection delays, poll durations."""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate, pairwise

#: Upper bounds (seconds) for detection latency: a local exit in ms to a slow DIRAC sweep.
DETECTION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, math.inf)
#: Upper bounds (seconds) for a poll: a local squeue in ms to DIRAC at its 120 s deadline.
POLL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, math.inf)


@dataclass(frozen=True, slots=True)
class HistogramStatistics:
    """A snapshot of a `Histogram`."""

    #: (upper bound, observations <= it), ending with (+Inf, count).
    buckets: tuple[tuple[float, int], ...]
    sum: float
    count: int


class Histogram:
    """Counts observations into fixed buckets (+Inf added if missing); `observe` is O(log n)."""

    def __init__(self, bounds: Sequence[float] = DETECTION_BUCKETS) -> None:
        bounds = [float(b) for b in bounds]
        if bounds[-1:] != [math.inf]:
            bounds.append(math.inf)
        if any(math.isnan(b) for b in bounds) or any(a >= b for a, b in pairwise(bounds)):
            raise ValueError(f"histogram bounds must be increasing numbers, got {bounds}")
        self._bounds = tuple(bounds)
        # Per bucket, not cumulative, so that an observation touches one counter.
        self._counts = [0] * len(bounds)
        self._sum = 0.0
        self._count = 0

    def observe(self, value: float) -> None:
        """Count `value`; a negative one (clock skew against a worker node) as 0, NaN not at all."""
        if math.isnan(value):
            return
        value = max(value, 0.0)
        self._counts[bisect_left(self._bounds, value)] += 1
        self._sum += value
        self._count += 1

    def statistics(self) -> HistogramStatistics:
        return HistogramStatistics(
            tuple(zip(self._bounds, accumulate(self._counts), strict=True)), self._sum, self._count
        )
