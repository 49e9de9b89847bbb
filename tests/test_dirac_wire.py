from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import given, strategies as st

from gangamon.backends.dirac._wire import (
    DiracError,
    FrameReader,
    JobState,
    WireError,
    decode_job_states,
    frame,
    jdecode,
    jencode,
    job_states,
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


states = st.dictionaries(
    st.integers(1, 2**40),
    st.fixed_dictionaries(
        {"Status": st.text(max_size=20), "MinorStatus": st.none() | st.text(max_size=20)},
        optional={"ApplicationStatus": st.text(max_size=10)},
    ),
    max_size=20,
)


@given(states)
def test_job_states_decode_as_sent(sent: dict[int, dict[str, Any]]) -> None:
    expected = {i: JobState(s["Status"], s["MinorStatus"]) for i, s in sent.items()}
    # Over HTTPS the ids arrive as JSON strings; from DIRAC's client as ints.
    assert decode_job_states(jencode(s_ok(sent))) == expected
    assert job_states(sent) == expected
    assert job_states({str(i): s for i, s in sent.items()}) == expected


def test_job_states_errors_name_the_bad_part() -> None:
    with pytest.raises(DiracError, match="no such job") as error:
        decode_job_states(jencode(s_error("no such job", 1101)))
    assert error.value.errno == 1101
    bad = {
        b'{"OK": true, "Value": {"x": {"Status": "Done"}}}': r"\$\.Value",
        b'{"OK": true, "Value": {"17": {"Status": 3}}}': r"\$\.Value\[\.\.\.\]\.Status",
        b'{"OK": true, "Value": {"17": {}}}': "Status",
        b"<html>busy</html>": "not a getJobsStates result",
    }
    for body, where in bad.items():
        with pytest.raises(WireError, match=where):
            decode_job_states(body)
    with pytest.raises(WireError, match="Status"):
        job_states({17: {"Status": None}})


@given(st.text(min_size=1, max_size=30), st.lists(json_values, max_size=3))
def test_tornado_body_round_trips(method: str, args: list[object]) -> None:
    assert parse_tornado_body(tornado_body(method, args)) == (method, args)


@given(st.text(max_size=30), st.lists(json_values, max_size=3))
def test_tornado_body_is_what_urlencode_makes(method: str, args: list[object]) -> None:
    fields = {"method": method, "args": jencode(args).decode()}
    fields |= {"clientVO": "unknown", "clientSetup": "None"}
    assert tornado_body(method, args) == urlencode(fields).encode()


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
