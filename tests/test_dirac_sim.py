"""The simulator's HTTPS face keeps its latency model: in virtual time, over memory streams."""

from __future__ import annotations

import h11
import pytest
import trio
import trio.testing

from gangamon.backends.dirac._wire import decode_job_states, tornado_body
from gangamon.sim._http import http_connection
from gangamon.sim.dirac import DiracSim, LatencyModel

LATENCY = 0.5
TARGET = "/WorkloadManagement/TornadoJobMonitoring"


class SlowSend(trio.abc.Stream):
    """A stream whose sends take `seconds`, as TLS and a busy kernel make them take."""

    def __init__(self, stream: trio.abc.Stream, seconds: float) -> None:
        self.stream = stream
        self.seconds = seconds

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await trio.sleep(self.seconds)
        await self.stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.stream.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self.stream.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self.stream.aclose()


async def timed_call(
    client: trio.abc.Stream, conn: h11.Connection, ids: list[int], pause: float
) -> float:
    """getJobsStates(ids), the request sent in two parts `pause` apart; the seconds from its
    first byte to the end of the reply (checked to hold every id)."""
    body = tornado_body("getJobsStates", [ids])
    headers = [("Host", "sim"), ("Content-Length", str(len(body)))]
    request = conn.send(h11.Request(method="POST", target=TARGET, headers=headers)) or b""
    request += conn.send(h11.Data(data=body)) or b""
    conn.send(h11.EndOfMessage())  # nothing to send: the length is in the headers
    began = trio.current_time()
    await client.send_all(request[:10])
    await trio.sleep(pause)
    await client.send_all(request[10:])
    reply = b""
    while not isinstance(event := conn.next_event(), h11.EndOfMessage):
        if event is h11.NEED_DATA:
            conn.receive_data(bytes(await client.receive_some()))
        elif isinstance(event, h11.Data):
            reply += event.data
    took = trio.current_time() - began
    conn.start_next_cycle()
    assert set(decode_job_states(reply)) == set(ids)
    return took


def fixed_latency_sim() -> DiracSim:
    return DiracSim(
        mean_runtime=1e9, latency=LatencyModel(base=LATENCY, per_id=0, tail_probability=0)
    )


async def test_latency_runs_from_the_first_bytes_of_a_request(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A request that trickles in is answered `LATENCY` after its first bytes: reading it is
    the server's time, not added to it."""
    sim = fixed_latency_sim()
    ids = sim.submit(3)
    client, server = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(http_connection, sim, server)
        took = await timed_call(client, h11.Connection(h11.CLIENT), ids, pause=0.2)
        await client.aclose()
    assert took == pytest.approx(LATENCY, abs=1e-9)


async def test_replies_learn_to_have_left_by_the_modelled_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """When sending a reply takes 10 ms, the first reply ends 10 ms late; the simulator learns
    that and later replies start early, ending on the modelled time."""
    sim = fixed_latency_sim()
    ids = sim.submit(3)
    client, server = trio.testing.memory_stream_pair()
    conn = h11.Connection(h11.CLIENT)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(http_connection, sim, SlowSend(server, 0.01))
        took = [await timed_call(client, conn, ids, pause=0) for _ in range(60)]
        await client.aclose()
    assert took[0] == pytest.approx(LATENCY + 0.01, abs=1e-9)
    assert took[-1] == pytest.approx(LATENCY, abs=1e-4)
