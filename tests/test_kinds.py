"""The backend kinds' records: what each declares, and that the faces go by it alone."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from gangamon.backends import Backend
from gangamon.backends._kind import BackendKind, Finding, Polling
from gangamon.backends._kinds import KINDS
from gangamon.backends.dirac._kind import DiracConfig
from gangamon.cli._config import ConfigError, build_backends, parse_config
from gangamon.cli._ids import BadJobId, parse_ids


def test_each_kind_is_recorded_under_its_name_with_a_table_and_an_id_grammar() -> None:
    assert set(KINDS) == {"dirac", "local", "slurm", "condor", "lsf", "pbs", "sge"}
    for name, kind in KINDS.items():
        assert kind.name == name
        assert issubclass(kind.config, Polling)
        assert (kind.id_grammar is None) != (kind.job_id is None), name


@pytest.mark.parametrize("name", sorted(KINDS))
def test_a_kind_builds_its_backend_with_the_final_settings(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Constructors take their final settings: nothing is written onto a backend after."""
    monkeypatch.setenv("X509_USER_PROXY", str(tmp_path / "proxy.pem"))
    kind = KINDS[name]
    table = {"url": "https://dirac.example.org:9910"} if kind.config is DiracConfig else {}
    config = parse_config(
        f'[backends.b1]\ntype = "{name}"\npoll_interval = 7.5\nconcurrency = 3\n'
        + "".join(f'{k} = "{v}"\n' for k, v in table.items())
    )
    [backend] = build_backends(config)
    assert isinstance(backend, Backend)
    assert backend.name == "b1"
    assert (backend.settings.poll_interval, backend.settings.concurrency) == (7.5, 3)


def test_a_kind_added_to_the_records_is_configurable_and_parses_its_ids(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The configuration and the id parser list no kinds of their own."""
    slurm = KINDS["slurm"]
    made = dataclasses.replace(slurm, name="made-up", display_name="Made Up")
    monkeypatch.setitem(KINDS, "made-up", made)
    config = parse_config('[backends.mine]\ntype = "made-up"\nvanish_grace = 5\n')
    assert config.backends["mine"][0] == "made-up"
    assert parse_ids("made-up", ["4-6"]) == ["4", "5", "6"]
    with pytest.raises(BadJobId, match=r"malformed Made Up job id 'x4'"):
        parse_ids("made-up", ["x4"])
    monkeypatch.delitem(KINDS, "made-up")
    with pytest.raises(ConfigError, match=r"unknown backend type .*\(known: dirac, local,"):
        parse_config('[backends.mine]\ntype = "made-up"\n')


def test_a_kinds_own_check_names_the_key_and_the_value() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config('[backends.d]\ntype = "dirac"\nurl = "ftp://x:1"\n', source="gm.toml")
    message = str(raised.value)
    assert message.startswith("gm.toml: backends.d.url = 'ftp://x:1': expected https or http")
    assert "\n" not in message


async def test_doctor_probes_a_backend_as_its_kinds_record_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gangamon.cli import _doctor

    async def probe(backend: Backend, config: Polling):  # type: ignore[no-untyped-def]
        yield Finding(True, backend.name, f"probed at {config.poll_interval}")

    record: BackendKind[Polling, Backend] = dataclasses.replace(KINDS["pbs"], probe=probe)
    monkeypatch.setitem(KINDS, "pbs", record)
    config = parse_config(
        f'store = "{tmp_path / "s.sqlite"}"\n[backends.queue]\ntype = "pbs"\npoll_interval = 9\n'
    )
    found = [f async for f in _doctor.examine(config)]
    assert found[1:] == [Finding(True, "queue", "probed at 9.0")]
