"""The simulator's HTTPS face: DIRAC's Tornado form protocol, with h11 on trio streams.

DIRAC's Tornado server runs with `compress_response`: a JSON reply of 1 KiB or more goes
gzipped (level 6) to a client that accepts gzip, as Tornado's GZipContentEncoding does.

Output sandboxes come as DIRAC's TornadoSandboxStore sends them, the raw tarball of a
`streamToClient(file id, token)` call (application/octet-stream), and also by GET of
`/WorkloadManagement/SandboxStore<PFN>` or `/sandbox/<job id>.tar.bz2`, for a plain
download.
"""

from __future__ import annotations

import gzip
import json
from urllib.parse import parse_qsl, urlsplit

import h11
import trio

from ..backends.dirac._wire import WireError, jencode, parse_tornado_body
from ._dirac_service import Hangup
from ._diracx import Answer, openid_configuration
from ._served import Served

#: Status, content type, body, headers besides.
Reply = tuple[int, str, bytes, tuple[tuple[str, str], ...]]
_SANDBOX_PATH = "/WorkloadManagement/SandboxStore/SandBox/"

_GZIP_MIN_LENGTH = 1024
_GZIP_MAGIC = b"\x1f\x8b"


async def http_connection(sim: Served, stream: trio.abc.Stream) -> None:
    """One keep-alive connection: requests in turn until the client closes or a fault."""
    try:
        conn = h11.Connection(h11.SERVER)
        while True:
            # The server's latency runs from the request's first bytes: reading and parsing
            # it are inside the model.
            request, arrived = await _next_event(conn, stream)
            if not isinstance(request, h11.Request):
                return
            body = b""
            while isinstance(event := (await _next_event(conn, stream))[0], h11.Data):
                body += event.data
            if not isinstance(event, h11.EndOfMessage):
                return
            reply = await _respond(sim, stream, request, body, arrived)
            if reply is None:
                return  # reset, or the client hung up
            status, content_type, payload, extra = reply
            headers = [
                ("Content-Type", content_type),
                ("Content-Length", str(len(payload))),
                ("Date", sim.http_date()),  # Tornado's: where clients read the server's clock
                *extra,
            ]
            # JSON text never starts with gzip's magic: a reply that does was compressed.
            if content_type == "application/json" and payload.startswith(_GZIP_MAGIC):
                headers += [("Content-Encoding", "gzip"), ("Vary", "Accept-Encoding")]
            # One write: separate small writes meet the peer's delayed ACK (tens of ms).
            response = conn.send(h11.Response(status_code=status, headers=headers)) or b""
            response += (conn.send(h11.Data(data=payload)) or b"") + (
                conn.send(h11.EndOfMessage()) or b""
            )
            began = trio.current_time()
            await stream.send_all(response)
            # A service's reply (JSON, or a download's bytes), due at a modelled time.
            if content_type in ("application/json", "application/octet-stream"):
                sim.reply_sent(trio.current_time() - began)
            if conn.our_state is h11.MUST_CLOSE:
                return
            conn.start_next_cycle()
    except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError):
        return
    finally:
        await trio.aclose_forcefully(stream)


async def _respond(
    sim: Served, stream: trio.abc.Stream, request: h11.Request, body: bytes, arrived: float
) -> Reply | None:
    target = request.target.decode(errors="replace")
    if target.startswith(("/api/", "/.well-known/")):
        return await _diracx(sim, stream, request, body, arrived)  # tokens, not certificates
    if isinstance(stream, trio.SSLStream):
        peer = stream.getpeercert()
        if not peer:
            sim.stats.unauthenticated += 1
            return 401, "text/plain", b"Unauthorized: no client certificate", ()
        sim.stats.client_serials[str(peer.get("serialNumber"))] += 1
    if request.method == b"GET" and target.startswith(("/sandbox/", _SANDBOX_PATH)):
        if target.startswith(_SANDBOX_PATH):
            tarball = sim.sandbox.tarball(target)
        else:
            tarball = sim.sandbox_file(target.removeprefix("/sandbox/"))
        if tarball is None:
            return 404, "text/plain", f"no sandbox at {target}".encode(), ()
        return 200, "application/x-bzip2", tarball, ()
    system, _, section = target.strip("/").partition("/")
    if request.method != b"POST" or not section.startswith("Tornado"):
        return 404, "text/plain", f"no service at {target}".encode(), ()
    try:
        method, args = parse_tornado_body(body)
    except WireError as e:
        return 400, "text/plain", str(e).encode(), ()
    service = f"{system}/{section.removeprefix('Tornado')}"
    if method == "streamToClient":
        encode = _raw_or_json
    else:
        encode = _gzipped_json if _accepts_gzip(request) else _json
    result = await sim.call(stream, service, method, args, encode, arrived=arrived)
    if result is Hangup.RESET:
        return None
    if result is Hangup.HTTP500:
        return 500, "text/plain", b"Internal Server Error: simulated fault", ()
    return 200, *result, ()


async def _diracx(
    sim: Served, stream: trio.abc.Stream, request: h11.Request, body: bytes, arrived: float
) -> Reply | None:
    """DiracX's endpoints (`_diracx`): discovery, token refresh, the job search, kills."""
    url = urlsplit(request.target.decode(errors="replace"))
    if request.method == b"GET" and url.path == "/.well-known/openid-configuration":
        return _answer(openid_configuration(sim.url))
    if request.method == b"POST" and url.path == "/api/auth/token":
        form = dict(parse_qsl(body.decode(errors="replace")))
        return _answer(sim.diracx_tokens.refresh(form))
    endpoint = (request.method, url.path)
    if endpoint not in ((b"POST", "/api/jobs/search"), (b"PATCH", "/api/jobs/status")):
        return _answer(Answer(404, {"detail": f"no DiracX endpoint {url.path}"}))
    if not sim.diracx_tokens.valid(_header(request, b"authorization")):
        return _answer(Answer(401, {"detail": "Invalid or expired access token"}))
    query = dict(parse_qsl(url.query))
    try:
        page, per_page = int(query.get("page", "1")), int(query.get("per_page", "100"))
        document = json.loads(body or b"{}")
    except ValueError as e:
        return _answer(Answer(422, {"detail": f"bad request: {e}"}))
    method, args = (
        ("search", [document, page, per_page])
        if url.path == "/api/jobs/search"
        else ("set_statuses", [document])
    )
    result = await sim.call(stream, "DiracX/Jobs", method, args, _answer_of, arrived=arrived)
    if result is Hangup.RESET:
        return None
    if result is Hangup.HTTP500:
        return 500, "text/plain", b"Internal Server Error: simulated fault", ()
    return result


def _answer_of(result: dict[str, object]) -> Reply:
    answer = result.get("Value")
    if not isinstance(answer, Answer):  # an injected S_ERROR: DiracX would answer 500
        return _answer(Answer(500, {"detail": str(result.get("Message"))}))
    return _answer(answer)


def _answer(answer: Answer) -> Reply:
    return answer.status, "application/json", json.dumps(answer.body).encode(), answer.headers


def _header(request: h11.Request, name: bytes) -> str | None:
    return next((v.decode() for k, v in request.headers if k == name), None)


async def _next_event(conn: h11.Connection, stream: trio.abc.Stream) -> tuple[object, float]:
    """The next event, and when the first bytes it needed came in (now, if h11 had them)."""
    arrived = None
    while (event := conn.next_event()) is h11.NEED_DATA:
        conn.receive_data(bytes(await stream.receive_some(65536)))
        if arrived is None:
            arrived = trio.current_time()
    return event, trio.current_time() if arrived is None else arrived


def _accepts_gzip(request: h11.Request) -> bool:
    return any(
        name == b"accept-encoding" and b"gzip" in value.lower() for name, value in request.headers
    )


def _json(result: dict[str, object]) -> tuple[str, bytes]:
    return "application/json", jencode(result)


def _gzipped_json(result: dict[str, object]) -> tuple[str, bytes]:
    data = jencode(result)
    if len(data) >= _GZIP_MIN_LENGTH:
        data = gzip.compress(data, compresslevel=6)
    return "application/json", data


def _raw_or_json(result: dict[str, object]) -> tuple[str, bytes]:
    """A download's bytes as they are (DIRAC's `rawContent`), an S_ERROR as JSON."""
    data = result.get("Value")
    if result.get("OK") and isinstance(data, bytes):
        return "application/octet-stream", data
    return _json(result)
