"""How long to wait before trying again: a pure policy, shared by restarts and retries."""

from __future__ import annotations


def backoff(attempt: int, first: float, most: float, share: float = 1.0) -> float:
    """The wait before try `attempt` + 1 after `attempt` failures in a row (1 or more):
    `first`, doubling each time, at most `most`; times `share` (jitter, drawn by the caller
    from (0.5, 1], so that many waiters do not wake together)."""
    return min(first * 2.0 ** (attempt - 1), most) * share
