"""The simulator's dips:// face: DISET's framing over TLS, one call per connection.

The exchange, as DIRAC 9's RPCClient does it: the client proposes
[[service, setup, vo], ["RPC", method], extra credentials, version]; the server accepts with
an S_OK (an S_ERROR here is a refusal); the client sends S_OK([args...]); the server answers
with the result; both close.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import trio

from ..backends.dirac._wire import FrameReader, WireError, frame, jdecode, s_error, s_ok
from ._dirac_service import Hangup

if TYPE_CHECKING:
    from .dirac import DiracSim

#: DISET reads the proposal with a 1024-byte limit.
MAX_PROPOSAL = 1024


async def diset_connection(sim: DiracSim, stream: trio.abc.Stream) -> None:
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
        if kind != "RPC" or not isinstance(method, str) or not isinstance(service, str):
            await stream.send_all(frame(s_error(f"Unsupported action {kind!r}")))
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
