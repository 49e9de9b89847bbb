"""The writer's commands: carried out in order, and never left waited for."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import trio
import trio.testing

from gangamon import AsyncStore, GangamonError, Store
from gangamon._writer import Item, Writer


@pytest.fixture
def writer(tmp_path: Path) -> Writer:
    return Writer(AsyncStore(Store(tmp_path / "jobs.sqlite"), in_thread=False), {}, batch_size=10)


async def test_commands_are_carried_out_in_the_order_sent(writer: Writer) -> None:
    done: list[int] = []
    send, receive = trio.open_memory_channel[Item](100)

    async def note(n: int) -> int:
        await trio.sleep(0.01 * (5 - n))  # earlier ones take longer
        done.append(n)
        return n

    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer.run, receive)
        async with send:
            writer.take_commands(send)
            replies: list[int] = []

            async def submit(n: int) -> None:
                replies.append(await writer.submit(lambda: note(n)))

            async with trio.open_nursery() as callers:
                for n in range(5):
                    callers.start_soon(submit, n)
                    await trio.testing.wait_all_tasks_blocked()
    assert done == [0, 1, 2, 3, 4]
    assert sorted(replies) == [0, 1, 2, 3, 4]


async def test_a_stopped_writer_leaves_no_caller_waiting(
    writer: Writer, autojump_clock: trio.testing.MockClock
) -> None:
    # Cancelled, the writer carries out what is queued for at most a second: a command still
    # running then, and the ones behind it, are answered with an error, not left hanging.
    send, receive = trio.open_memory_channel[Item](100)
    outcomes: list[str] = []

    async def submit(seconds: float) -> None:
        try:
            await writer.submit(functools.partial(trio.sleep, seconds))
            outcomes.append("done")
        except GangamonError as e:
            outcomes.append(str(e))

    with trio.fail_after(60):  # not for ever
        await carry_out_then_cancel(writer, send, receive, submit)
    assert outcomes == ["done"] + ["the monitor stopped before it carried this out"] * 2


async def carry_out_then_cancel(
    writer: Writer,
    send: trio.MemorySendChannel[Item],
    receive: trio.MemoryReceiveChannel[Item],
    submit: Callable[[float], Awaitable[None]],
) -> None:
    async with trio.open_nursery() as callers, trio.open_nursery() as nursery:
        nursery.start_soon(writer.run, receive)
        writer.take_commands(send)
        for seconds in (0.5, 5.0, 0.1):
            callers.start_soon(submit, seconds)
            # The first is being carried out, the others wait in the channel.
            await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
