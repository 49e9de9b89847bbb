from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, strategies as st

from gangamon.backends.dirac._wire import (
    DiracError,
    FrameReader,
    WireError,
    frame,
    int_keys,
    jdecode,
    jencode,
    parse_tornado_body,
    s_error,
    s_ok,
    tornado_body,
    unwrap,
)

# "__dCls" marks a tagged object in JEncode (as in DIRAC): no plain dict may use that key.
keys = st.text(max_size=8).filter(lambda key: key != "__dCls")
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.text(max_size=20)
    | st.datetimes(min_value=dt.datetime(1970, 1, 1)).map(lambda d: d.replace(microsecond=0))
    | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_jencode_round_trips(value: object) -> None:
    assert jdecode(jencode(value)) == value


def test_jencode_matches_dirac_forms() -> None:
    assert jencode(dt.datetime(2026, 11, 25, 4, 5, 6)) == (
        b'{"__dCls":"dt","obj":"2026-11-25 04:05:06"}'
    )
    assert jencode(b"hi") == b'{"__dCls":"b64","obj":"aGk="}'


@pytest.mark.parametrize(
    "garbage",
    [
        b"",
        b"{",
        b"\xff\xfe",
        b'{"__dCls":"dt","obj":"yesterday"}',
        b'{"__dCls":"pickle"}',
        b'{"__dCls":"b64","obj":"***"}',
    ],
)
def test_garbage_is_a_wire_error(garbage: bytes) -> None:
    with pytest.raises(WireError):
        jdecode(garbage)


def test_s_ok_and_s_error() -> None:
    assert unwrap(s_ok({"1": 2})) == {"1": 2}
    with pytest.raises(DiracError, match="no access") as info:
        unwrap(s_error("no access", 13))
    assert info.value.errno == 13
    for not_a_result in ([1], {"Value": 1}, {"OK": "yes"}, None):
        with pytest.raises(WireError, match="not an S_OK/S_ERROR"):
            unwrap(not_a_result)


def test_int_keys() -> None:
    assert int_keys({"17": {"Status": "Done"}}) == {17: {"Status": "Done"}}
    with pytest.raises(WireError, match="job id 'x' is not an integer"):
        int_keys({"x": 1})


@given(st.text(min_size=1, max_size=30), st.lists(json_values, max_size=3))
def test_tornado_body_round_trips(method: str, args: list[object]) -> None:
    assert parse_tornado_body(tornado_body(method, args)) == (method, args)


@pytest.mark.parametrize(
    "body", [b"args=%5B%5D", b"method=x&args=%7B%7D", b"method=x&args=nope", b"\xff=1"]
)
def test_bad_tornado_bodies(body: bytes) -> None:
    with pytest.raises(WireError):
        parse_tornado_body(body)


@given(st.lists(json_values, max_size=5), st.data())
def test_frames_survive_any_split(values: list[object], data: st.DataObject) -> None:
    stream = b"".join(frame(v) for v in values)
    stream = b"3:dka" + stream  # a keep-alive first, to be skipped
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    reader = FrameReader()
    got = []
    for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        reader.feed(stream[a:b])
        got += [jdecode(payload) for payload in reader.frames()]
    assert got == values


@pytest.mark.parametrize(
    "stream", [b"abc:xyz", b"12345678901234567890123", b"-1:x", b"99999999999:"]
)
def test_bad_frames(stream: bytes) -> None:
    reader = FrameReader(max_frame=1000)
    reader.feed(stream)
    with pytest.raises(WireError):
        list(reader.frames())
