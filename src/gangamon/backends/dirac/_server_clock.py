"""DIRAC's wall clock as seen from ours, read off the Date headers of its replies.

A reply's Date (whole seconds) was stamped between the sending of the request and the arrival
of the reply, so each reply bounds the offset K = (server's Unix time) - (our trio time):
`date - received <= K < date + 1 - sent`. Replies narrow the bounds; a reply whose bounds
miss them says a clock has jumped (or drifted past them): the bounds start again from it.
"""

from __future__ import annotations

import email.utils
import math


class ServerClock:
    def __init__(self) -> None:
        self.low = -math.inf
        self.high = math.inf
        #: Replies that disagreed with the bounds so far: each time, a clock moved.
        self.jumps = 0

    @property
    def known(self) -> bool:
        return self.low > -math.inf

    def observe(self, date: str, sent: float, received: float) -> None:
        """A reply stamped `date` (an HTTP date) to a request sent at trio time `sent`,
        received at `received`. A Date that is not an HTTP date is ignored."""
        try:
            stamp = email.utils.parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            return
        low, high = stamp - received, stamp + 1 - sent
        if low >= self.high or high <= self.low:
            self.low, self.high = low, high
            self.jumps += 1
        else:
            self.low, self.high = max(self.low, low), min(self.high, high)

    def earliest(self, t: float) -> float:
        """The earliest Unix time the server's clock can have read at trio time `t`."""
        if not self.known:
            raise ValueError("no reply has told the server's time yet")
        return t + self.low
