"""Job ids as users type them: each backend's grammar, ranges, files."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from gangamon.cli._ids import MAX_RANGE, BadJobId, parse_ids, read_id_file

GOOD = {
    "dirac": ["1", "123456789"],
    "slurm": ["42", "42_7", "42+1"],
    "condor": ["17", "17.3"],
    "lsf": ["5", "5[12]"],
    "pbs": ["1234", "1234.server.example.org", "1234[].server", "1234[3]"],
    "sge": ["9", "9.2"],
}
BAD = {
    "dirac": ["0", "01", "abc", "1.5", "1_2", ""],
    "slurm": ["1_", "x42", "42__7", "42;rm"],
    "condor": ["17.", ".3", "a.b"],
    "lsf": ["5[", "5[x]"],
    "pbs": ["1234.", "server.1234", "1234 5"],
    "sge": ["9.", "9.x"],
}


@pytest.mark.parametrize("kind", GOOD)
def test_each_backend_takes_its_own_ids_and_refuses_others(kind: str) -> None:
    assert parse_ids(kind, GOOD[kind]) == GOOD[kind]
    for bad in BAD[kind]:
        with pytest.raises(BadJobId, match="malformed") as error:
            parse_ids(kind, [bad])
        assert repr(bad.strip()) in str(error.value)


@given(st.integers(1, 10**12), st.integers(0, 500))
def test_ranges_expand_in_order(first: int, length: int) -> None:
    ids = parse_ids("dirac", [f"{first}-{first + length}"])
    assert ids == [str(i) for i in range(first, first + length + 1)]


def test_ranges_are_bounded_and_ordered() -> None:
    with pytest.raises(BadJobId, match="at most"):
        parse_ids("dirac", [f"1-{MAX_RANGE + 1}"])
    with pytest.raises(BadJobId, match="last >= first"):
        parse_ids("slurm", ["9-3"])


@given(st.lists(st.text(max_size=12), max_size=8))
def test_any_input_gives_ids_of_the_grammar_or_a_named_error(tokens: list[str]) -> None:
    try:
        ids = parse_ids("slurm", tokens)
    except BadJobId as e:
        ids, refusal = [], str(e)
    else:
        refusal = ""
    assert not refusal or "in the command line" in refusal
    assert len(ids) == len(set(ids))
    assert all(parse_ids("slurm", [i]) == [i] for i in ids)


def test_files_of_ids(tmp_path: Path) -> None:
    path = tmp_path / "ids.txt"
    path.write_text("# my jobs\n10, 11\n\n12-14 10  # again\n")
    assert read_id_file("dirac", path) == ["10", "11", "12", "13", "14"]
    path.write_text("10\n11 1x\n")
    with pytest.raises(BadJobId, match=r"malformed DIRAC job id '1x' in .*ids.txt line 2"):
        read_id_file("dirac", path)
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(BadJobId, match="cannot read job ids from"):
        read_id_file("dirac", path)


def test_local_ids_are_job_directories(tmp_path: Path) -> None:
    (tmp_path / "job1").mkdir()
    (tmp_path / "job1" / "launch.json").write_text("{}")
    assert parse_ids("local", [str(tmp_path / "job1")]) == [str(tmp_path / "job1")]
    with pytest.raises(BadJobId, match="not a local job directory"):
        parse_ids("local", [str(tmp_path)])
