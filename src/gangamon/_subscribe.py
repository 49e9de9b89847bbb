"""Subscriptions to the journal: what the writer committed, in order, never blocking it."""

from __future__ import annotations

import trio

from ._errors import GangamonError
from ._store import JournalEntry


class SubscriberLagged(GangamonError):
    """The subscriber fell more than its buffer behind and was dropped."""

    def __init__(self, last_seq: int) -> None:
        self.last_seq = last_seq
        super().__init__(
            f"subscriber fell behind and was dropped after journal seq {last_seq}; "
            "read the rest from the store's journal"
        )


class Subscription:
    """An async iterator of journal entries. The writer offers; it never waits for us."""

    def __init__(self, buffer: int) -> None:
        self._send, self._receive = trio.open_memory_channel[JournalEntry](buffer)
        self._lagged = False
        self._last_seq = 0

    def offer(self, entry: JournalEntry) -> bool:
        """Queue `entry`; False (and the subscription ends) if the buffer is full."""
        try:
            self._send.send_nowait(entry)
        except trio.WouldBlock:
            self._lagged = True
            self._send.close()
            return False
        except trio.ClosedResourceError:
            return False
        return True

    def close(self) -> None:
        self._send.close()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> JournalEntry:
        """Cancelled: nothing is lost; the next call returns the same entry."""
        try:
            entry = await self._receive.receive()
        except trio.EndOfChannel:
            if self._lagged:
                raise SubscriberLagged(self._last_seq) from None
            raise StopAsyncIteration from None
        self._last_seq = entry.seq
        return entry
