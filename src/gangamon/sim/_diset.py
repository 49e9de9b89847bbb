"""The simulator's dips:// face: DISET's framing over TLS, one call per connection.

The exchange, as DIRAC 9's RPCClient does it: the client proposes
[[service, setup, vo], ["RPC", method], extra credentials, version]; the server accepts with
an S_OK (an S_ERROR here is a refusal); the client sends S_OK([args...]); the server answers
with the result; both close.

A file download, as DIRAC's TransferClient.receiveFile does it (DIPStorage's getFile): the
proposal is ["FileTransfer", "ToClient"]; the client sends S_OK([file id, token]), the
server accepts with S_OK("Accepted"), then sends S_OK([True, <bytes>]) per chunk of at most
1 MiB, each acknowledged by the client with an S_OK, then S_OK([False, <MD5 of the data>])
and the service's result (S_OK()). A service's S_ERROR takes the place of the first chunk.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import trio

from ..backends.dirac._wire import FrameReader, WireError, frame, jdecode, s_error, s_ok
from ._dirac_service import Hangup
from ._served import Served

#: DISET reads the proposal with a 1024-byte limit.
MAX_PROPOSAL = 1024
#: DIRAC's FileHelper sends files in packets of 1 MiB.
PACKET = 1 << 20


@dataclass(frozen=True, slots=True)
class TransferFrames:
    """A download as frames: `chunks`, each to be acknowledged, then `end` (the MD5 and the
    result, or an S_ERROR alone)."""

    chunks: list[bytes]
    end: bytes


def transfer_frames(result: dict[str, object]) -> TransferFrames:
    """The frames of a transfer_toClient result: S_OK(<bytes>) or an S_ERROR."""
    data = result.get("Value")
    if not result.get("OK") or not isinstance(data, bytes):
        return TransferFrames([], frame(result))
    chunks = [frame(s_ok([True, data[i : i + PACKET]])) for i in range(0, len(data), PACKET)]
    digest = hashlib.md5(data, usedforsecurity=False).hexdigest()
    return TransferFrames(chunks, frame(s_ok([False, digest])) + frame(s_ok()))


async def diset_connection(sim: Served, stream: trio.abc.Stream) -> None:
    """One DISET call: proposal, arguments, result; then the connection closes."""
    try:
        reader = FrameReader()
        proposal = await _receive(stream, reader, MAX_PROPOSAL)
        try:
            (service, *_), (kind, method), *_ = proposal["Value"]
        except (KeyError, TypeError, ValueError):
            await stream.send_all(frame(s_error(f"Invalid action proposal {proposal!r:.200}")))
            return
        if isinstance(stream, trio.SSLStream) and not stream.getpeercert():
            sim.stats.unauthenticated += 1
            await stream.send_all(frame(s_error("No client certificate: authentication failed")))
            return
        if not isinstance(service, str) or not isinstance(method, str):
            await stream.send_all(frame(s_error(f"Invalid action proposal {proposal!r:.200}")))
            return
        if kind == "FileTransfer" and method == "ToClient":
            await _transfer_to_client(sim, stream, reader, service)
            return
        if kind != "RPC":
            await stream.send_all(frame(s_error(f"Unsupported action {kind!r} {method!r}")))
            return
        await stream.send_all(frame(s_ok()))
        arrived = trio.current_time()
        args = (await _receive(stream, reader)).get("Value")
        if not isinstance(args, list):
            await stream.send_all(frame(s_error(f"Arguments must be a list, not {args!r:.100}")))
            return
        result = await sim.call(stream, service, method, args, frame, arrived=arrived)
        if result is Hangup.HTTP500:
            result = frame(s_error("Internal server error: simulated fault"))
        if result is not Hangup.RESET:
            began = trio.current_time()
            await stream.send_all(result)
            sim.reply_sent(trio.current_time() - began)
    except (trio.BrokenResourceError, trio.ClosedResourceError, WireError):
        return
    finally:
        await trio.aclose_forcefully(stream)


async def _transfer_to_client(
    sim: Served, stream: trio.abc.Stream, reader: FrameReader, service: str
) -> None:
    await stream.send_all(frame(s_ok()))
    arrived = trio.current_time()
    info = (await _receive(stream, reader)).get("Value")
    if not isinstance(info, list) or not info:
        await stream.send_all(frame(s_error(f"Bad file transfer description {info!r:.100}")))
        return
    await stream.send_all(frame(s_ok("Accepted")))
    result = await sim.call(
        stream, service, "transfer_toClient", info[:2], transfer_frames, arrived=arrived
    )
    if result is Hangup.HTTP500:
        result = TransferFrames([], frame(s_error("Internal server error: simulated fault")))
    if isinstance(result, Hangup):
        return
    for chunk in result.chunks:
        await stream.send_all(chunk)
        if not (await _receive(stream, reader)).get("OK"):
            return  # the client aborted the transfer
    began = trio.current_time()
    await stream.send_all(result.end)
    sim.reply_sent(trio.current_time() - began)


async def _receive(stream: trio.abc.Stream, reader: FrameReader, limit: int = 0) -> Any:
    """The next frame's JSON value (a dict); `WireError` if malformed or over `limit`."""
    received = 0
    while True:
        for payload in reader.frames():
            value = jdecode(payload)
            if not isinstance(value, dict):
                raise WireError(f"DISET frame is not an S_OK/S_ERROR: {value!r:.100}")
            return value
        data = await stream.receive_some(65536)
        if not data:
            raise trio.BrokenResourceError("peer closed")
        received += len(data)
        if limit and received > limit:
            raise WireError(f"proposal over {limit} bytes")
        reader.feed(bytes(data))
