"""The configuration file: defaults, every kind of backend, where it is looked for."""

from __future__ import annotations

from pathlib import Path

import pytest

from gangamon.backends.dirac import DiracBackend, DiracClientTransport, DiracHttps
from gangamon.backends.local import LocalBackend
from gangamon.backends.slurm import SlurmBackend
from gangamon.cli._config import ConfigError, build_backends, load_config, parse_config


def test_no_file_means_the_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GANGAMON_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    config = load_config()
    assert config.store == Path("~/gangamon/jobs.sqlite").expanduser()
    assert config.grace == 5.0
    assert config.metrics_port is None
    assert config.metrics_address == "127.0.0.1"
    [local] = build_backends(config)
    assert isinstance(local, LocalBackend)
    assert local.root == Path("~/gangamon/local").expanduser()


def test_gangamon_config_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GANGAMON_CONFIG", str(tmp_path / "gm.toml"))
    with pytest.raises(ConfigError, match=r"no configuration file at .*gm\.toml"):
        load_config()
    (tmp_path / "gm.toml").write_text("grace = 2.5\n")
    assert load_config().grace == 2.5


def test_every_backend_kind_and_its_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("X509_USER_PROXY", str(tmp_path / "proxy.pem"))
    config = parse_config(
        """
        [backends.lhcb]
        type = "dirac"
        url = "https://dirac.example.org:9910"
        concurrency = 4
        poll_interval = 45
        [backends.cluster]
        type = "slurm"
        vanish_grace = 120
        [backends.condor]
        [backends.lsf]
        [backends.pbs]
        [backends.sge]
        """
    )
    backends = {b.name: b for b in build_backends(config)}
    assert list(backends) == ["lhcb", "cluster", "condor", "lsf", "pbs", "sge"]
    dirac = backends["lhcb"]
    assert isinstance(dirac, DiracBackend)
    assert isinstance(dirac.transport, DiracHttps)
    assert dirac.transport.proxy == tmp_path / "proxy.pem"  # from X509_USER_PROXY
    assert (dirac.settings.concurrency, dirac.settings.poll_interval) == (4, 45.0)
    assert dirac.settings.chunk_size == 1000  # DIRAC's default kept
    slurm = backends["cluster"]
    assert isinstance(slurm, SlurmBackend)
    assert slurm.vanish_grace == 120


def test_a_proxy_in_the_file_wins_over_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("X509_USER_PROXY", "/from/env")
    config = parse_config(f'[backends.dirac]\nurl = "https://h:1"\nproxy = "{tmp_path}/mine.pem"\n')
    [dirac] = build_backends(config)
    assert isinstance(dirac, DiracBackend)
    assert dirac.transport.proxy == tmp_path / "mine.pem"


def test_the_dirac_client_transport_gets_a_thread_for_every_call_configured() -> None:
    # The settings used to be written onto the backend after it was built: the client
    # transport's limiter had already been sized at its default of 8 threads.
    config = parse_config(
        '[backends.dirac]\nurl = "dips://h:9135"\ntransport = "client"\n'
        "concurrency = 20\nfinalise_concurrency = 6\n"
    )
    [dirac] = build_backends(config)
    assert isinstance(dirac, DiracBackend)
    assert (dirac.settings.concurrency, dirac.settings.finalise_concurrency) == (20, 6)
    assert isinstance(dirac.transport, DiracClientTransport)
    assert dirac.transport.threads.total_tokens == 26


def test_the_interval_of_jobs_near_their_end_is_configured_per_backend() -> None:
    config = parse_config('[backends.dirac]\nurl = "https://h:1"\nending_interval = 2.5\n')
    [dirac] = build_backends(config)
    assert dirac.settings.ending_poll_interval == 2.5


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('[backends."bad name"]', "backend names are a letter"),
        ("[backends]\nlocal = 3", "backends.local = 3: expected a table"),
        ('[backends.dirac]\nurl = "dips://h:9135"', "for transport 'https'"),
        ('[backends.dirac]\nurl = "https://h:1/path"', "expected https or http://host:port"),
        ("[backends.local]\ndirectory = 7", "backends.local.directory = 7: expected str"),
        (
            '[backends.dirac]\nurl = "https://h:1"\nending_interval = 0',
            "backends.dirac.ending_interval = 0",
        ),
    ],
)
def test_more_bad_values(text: str, says: str) -> None:
    with pytest.raises(ConfigError, match=r"^c\.toml: ") as error:
        parse_config(text, source="c.toml")
    assert says in str(error.value)
    assert "\n" not in str(error.value)


def test_dips_goes_with_the_dirac_client() -> None:
    config = parse_config('[backends.dirac]\nurl = "dips://h:9135"\ntransport = "client"')
    assert config.backends["dirac"][0] == "dirac"


@pytest.mark.parametrize("address", ["::1", "0.0.0.0", "localhost", "monitor-1.example.org"])
def test_the_metrics_address_is_an_ip_address_or_a_host_name(address: str) -> None:
    config = parse_config(f'metrics_port = 9100\nmetrics_address = "{address}"\n')
    assert (config.metrics_port, config.metrics_address) == (9100, address)


@pytest.mark.parametrize(
    ("address", "says"),
    [
        ("a b", "expected an IP address or a host name"),
        ("-x.org", "expected an IP address or a host name"),
        ("9100", "expected an IP address or a host name"),
        ("x" * 64, "expected an IP address or a host name"),
        ("[::1]", "expected an IP address or a host name"),
        ("localhost:9100", "the port goes in metrics_port (--metrics-port), not in the address"),
    ],
)
def test_a_bad_metrics_address_is_named(address: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(f'metrics_address = "{address}"\n', source="c.toml")
    assert str(caught.value) == f"c.toml: metrics_address = {address!r}: {says}"
