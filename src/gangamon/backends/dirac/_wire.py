"""DIRAC's wire formats, sans-IO: JEncode, S_OK/S_ERROR, DISET frames, Tornado form bodies.

- JEncode is JSON with tagged objects: datetimes as {"__dCls": "dt", "obj": "%Y-%m-%d %H:%M:%S"},
  dates as {"__dCls": "date", ...}, bytes as {"__dCls": "b64", ...}. JSON turns integer dict
  keys into strings; DIRAC's clients turn job ids back into ints, and so do we.
- A DISET frame is b"<decimal length>:" + payload; a payload starting with b"dka" is a
  keep-alive.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import msgspec

from ..._errors import GangamonError

_DT_FORMAT = "%Y-%m-%d %H:%M:%S"
_DATE_FORMAT = "%Y-%m-%d"
#: Longest DISET frame we accept: a 100,000-id reply is about 3.5 MB.
MAX_FRAME = 64 * 1024 * 1024
KEEP_ALIVE = b"dka"


class WireError(GangamonError):
    """Bytes that do not follow DIRAC's wire format. The message shows the offending part."""


class DiracError(GangamonError):
    """An S_ERROR from DIRAC (or from the transport, in the same form)."""

    def __init__(self, message: str, errno: int = 0) -> None:
        self.message, self.errno = message, errno
        super().__init__(f"DIRAC error: {message}" + (f" (errno {errno})" if errno else ""))


def _default(value: object) -> object:
    if isinstance(value, dt.datetime):
        return {"__dCls": "dt", "obj": value.strftime(_DT_FORMAT)}
    if isinstance(value, dt.date):
        return {"__dCls": "date", "obj": value.strftime(_DATE_FORMAT)}
    if isinstance(value, bytes):
        return {"__dCls": "b64", "obj": base64.b64encode(value).decode()}
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    raise TypeError(f"cannot JEncode {type(value).__name__}")


def _hook(obj: dict[str, Any]) -> object:
    kind = obj.get("__dCls")
    if kind is None:
        return obj
    try:
        if kind == "dt":
            return dt.datetime.strptime(obj["obj"], _DT_FORMAT)
        if kind == "date":
            return dt.datetime.strptime(obj["obj"], _DATE_FORMAT).date()
        if kind == "b64":
            return base64.b64decode(obj["obj"], validate=True)
    except (KeyError, TypeError, ValueError) as e:
        raise WireError(f"bad JEncoded {kind!r} object {obj!r:.200}: {e}") from None
    raise WireError(f"unsupported JEncoded class {kind!r}")


def jencode(value: object) -> bytes:
    return json.dumps(value, default=_default, separators=(",", ":")).encode()


def jdecode(data: bytes | str) -> Any:
    """Decode JEncoded data, or raise `WireError` quoting the start of it."""
    # Most replies (job states) hold no tagged object: skip the hook's call per dict.
    tagged = b"__dCls" in data if isinstance(data, bytes) else "__dCls" in data
    try:
        return json.loads(data, object_hook=_hook if tagged else None)
    except (ValueError, RecursionError) as e:
        raise WireError(f"not JEncoded data ({e}): {data[:200]!r}") from None


class JobState(msgspec.Struct, frozen=True, gc=False):
    """One job of a getJobsStates reply (DIRAC sends ApplicationStatus too: not needed here).

    Untracked by the garbage collector: a reply holds a thousand of them, none refers to
    anything that could form a cycle.
    """

    Status: str
    MinorStatus: str | None = None


class _JobStatesResult(msgspec.Struct):
    OK: bool
    Value: dict[int, JobState] = {}
    Message: str = ""
    Errno: int = 0


_job_states_decoder = msgspec.json.Decoder(_JobStatesResult)


def decode_job_states(data: bytes) -> dict[int, JobState]:
    """The job states of a JSON getJobsStates result, typed and checked in one pass (a third
    of the time of JSON decoding, then checking); `DiracError` for an S_ERROR, `WireError`
    naming the bad part for anything else."""
    try:
        result = _job_states_decoder.decode(data)
    except msgspec.DecodeError as e:  # ValidationError included
        raise WireError(f"not a getJobsStates result ({e}): {data[:200]!r}") from None
    if not result.OK:
        raise DiracError(result.Message, result.Errno)
    return result.Value


def job_states(value: object) -> dict[int, JobState]:
    """The job states of an already decoded getJobsStates value (as DIRAC's client returns it),
    or `WireError` naming the bad part."""
    try:
        return msgspec.convert(value, dict[int, JobState], strict=False)
    except msgspec.ValidationError as e:
        raise WireError(f"not getJobsStates job states ({e}): {value!r:.200}") from None


def s_ok(value: object = None) -> dict[str, object]:
    return {"OK": True, "Value": value}


def s_error(message: str, errno: int = 0) -> dict[str, object]:
    return {"OK": False, "Message": message, "Errno": errno}


def unwrap(result: object) -> Any:
    """The Value of an S_OK; `DiracError` for an S_ERROR; `WireError` for anything else."""
    if not isinstance(result, dict) or not isinstance(result.get("OK"), bool):
        raise WireError(f"not an S_OK/S_ERROR structure: {result!r:.200}")
    if result["OK"]:
        return result.get("Value")
    errno = result.get("Errno", 0)
    raise DiracError(str(result.get("Message")), errno if isinstance(errno, int) else 0)


# -- Tornado (HTTPS) -------------------------------------------------------------------------


#: `urllib.parse.quote_plus` as one `str.translate` over the UTF-8 bytes (as latin-1 text): a
#: 1000-id body costs a tenth of a millisecond less per call than quote_plus's per-byte loop.
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")
_FORM_QUOTE = {
    b: "+" if b == 0x20 else chr(b) if b in _UNRESERVED else f"%{b:02X}" for b in range(256)
}


def _form_quote(text: str) -> str:
    return text.encode().decode("latin-1").translate(_FORM_QUOTE)


def tornado_body(method: str, args: list[object]) -> bytes:
    """The form body of a call, as DIRAC 9's TornadoClient sends it."""
    fields = {
        "method": method,
        "args": jencode(args).decode(),
        "clientVO": "unknown",
        "clientSetup": "None",
    }
    return "&".join(f"{_form_quote(k)}={_form_quote(v)}" for k, v in fields.items()).encode()


def parse_tornado_body(body: bytes) -> tuple[str, list[Any]]:
    """(method, args) of a Tornado call body, or `WireError` naming what is wrong."""
    try:
        fields = parse_qs(body.decode(), strict_parsing=True)
    except (UnicodeDecodeError, ValueError) as e:
        raise WireError(f"not a form body ({e}): {body[:200]!r}") from None
    method, args = fields.get("method", [""])[0], fields.get("args", ["[]"])[0]
    if not method:
        raise WireError("no method in the call")
    decoded = jdecode(args)
    if not isinstance(decoded, list):
        raise WireError(f"args must be a JSON list, got {args[:200]!r}")
    return method, decoded


# -- DISET (dips://) -------------------------------------------------------------------------


def frame(value: object) -> bytes:
    payload = jencode(value)
    return b"%d:%s" % (len(payload), payload)


class FrameReader:
    """Splits a byte stream into DISET frames. Feed bytes; iterate complete payloads.

    Keep-alive frames are skipped. A bad length prefix or an oversized frame raises
    `WireError`; the stream is then unusable.
    """

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self._buffer = bytearray()
        self._max = max_frame

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def frames(self) -> Iterator[bytes]:
        while True:
            colon = self._buffer.find(b":", 0, 21)
            if colon < 0:
                if len(self._buffer) > 20:
                    raise WireError(f"no DISET length prefix in {bytes(self._buffer[:40])!r}")
                return
            digits = bytes(self._buffer[:colon])
            if not digits.isdigit():
                raise WireError(f"bad DISET length prefix {digits[:40]!r}")
            size = int(digits)
            if size > self._max:
                raise WireError(f"DISET frame of {size} bytes is over the {self._max} limit")
            end = colon + 1 + size
            if len(self._buffer) < end:
                return
            payload = bytes(self._buffer[colon + 1 : end])
            del self._buffer[:end]
            if not payload.startswith(KEEP_ALIVE):
                yield payload
