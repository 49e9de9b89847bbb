"""`gangamon doctor` against what works: the DIRAC simulator over HTTPS, a local directory;
`track --check` against the same simulator."""

from __future__ import annotations

from pathlib import Path

import trio

from gangamon.cli._check import unknown_ids
from gangamon.cli._config import build_backends, parse_config
from gangamon.cli._doctor import examine
from gangamon.sim._certs import make_credentials
from gangamon.sim.dirac import DiracSim


async def test_everything_that_works_says_ok(tmp_path: Path) -> None:
    credentials = make_credentials(tmp_path / "creds")
    sim = DiracSim(credentials=credentials)
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(sim.serve)
        config = parse_config(
            f'store = "{tmp_path}/new/jobs.sqlite"\n'
            f'[backends.dirac]\nurl = "{urls.https}"\n'
            f'proxy = "{credentials.proxy}"\nca = "{credentials.ca_file}"\n'
            f'[backends.local]\ndirectory = "{tmp_path}/local"\n'
        )
        findings = [f async for f in examine(config)]
        nursery.cancel_scope.cancel()
    assert all(f.ok for f in findings), findings
    says: dict[str, list[str]] = {}
    for f in findings:
        says.setdefault(f.part, []).append(f.says)
    assert says["store"] == [f"{tmp_path}/new/jobs.sqlite does not exist yet; it will be created"]
    assert says["dirac"][0].startswith(f"proxy {credentials.proxy} valid until")
    assert says["dirac"][1] == f"{urls.https} answers JobMonitoring calls"
    assert says["local"] == [f"job directories in {tmp_path}/local; exits awaited by pidfd"]
    assert sim.stats.calls["getJobsStates"] == 1


async def test_doctor_asks_diracx_with_its_token(tmp_path: Path) -> None:
    credentials = make_credentials(tmp_path / "creds")
    sim = DiracSim(credentials=credentials)
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(sim.serve)
        token = sim.diracx_tokens.credentials(tmp_path / "diracx.json")
        table = (
            f'[backends.dirac]\nurl = "{urls.https}"\ntransport = "diracx"\n'
            f'download_output = false\nca = "{credentials.ca_file}"\n'
        )
        good = parse_config(f'{table}diracx_credentials = "{token}"\n')
        missing = parse_config(f'{table}diracx_credentials = "{tmp_path}/none.json"\n')
        found = [f async for f in examine(good) if f.part == "dirac"]
        lost = [f async for f in examine(missing) if f.part == "dirac"]
        nursery.cancel_scope.cancel()
    assert [(f.ok, f.says) for f in found] == [(True, f"{urls.https} answers job searches")]
    assert [(f.ok, f.says) for f in lost] == [
        (False, f"{urls.https}: no DiracX credentials at {tmp_path}/none.json (dirac login "
                "writes them)")
    ]  # fmt: skip
    assert sim.stats.calls["search"] == 1


async def test_a_dirac_that_does_not_answer_fails(tmp_path: Path) -> None:
    credentials = make_credentials(tmp_path / "creds")
    with trio.socket.socket() as s:  # a port nobody listens on
        await s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = parse_config(
        f'[backends.dirac]\nurl = "https://127.0.0.1:{port}"\n'
        f'proxy = "{credentials.proxy}"\nca = "{credentials.ca_file}"\n'
    )
    findings = [f async for f in examine(config) if f.part == "dirac"]
    assert [f.ok for f in findings] == [True, False]
    assert findings[1].says.startswith(f"https://127.0.0.1:{port}: getJobsStates at")


async def test_track_check_finds_the_ids_dirac_does_not_know(tmp_path: Path) -> None:
    credentials = make_credentials(tmp_path / "creds")
    sim = DiracSim(credentials=credentials)
    known = sim.submit(3)
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(sim.serve)
        config = parse_config(
            f'[backends.lhcb]\ntype = "dirac"\nurl = "{urls.https}"\n'
            f'proxy = "{credentials.proxy}"\nca = "{credentials.ca_file}"\n'
        )
        [backend] = build_backends(config)
        asked = [str(known[0]), "987654", str(known[2]), "987655"]
        assert await unknown_ids(backend, asked) == ["987654", "987655"]
        nursery.cancel_scope.cancel()
