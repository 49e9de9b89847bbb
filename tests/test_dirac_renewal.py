"""A proxy and a CA renewed under a running monitor: the next calls use them, no restart.
Real TLS on loopback against the simulator, whose `renew` changes the grid's CA."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
import trio
from cryptography import x509

from gangamon import Monitor, NewJob, Status, Store
from gangamon.backends import BackendError, BackendSettings
from gangamon.backends.dirac import DiracBackend, DiracHttps
from gangamon.sim._certs import Credentials, make_credentials
from gangamon.sim.dirac import DiracSim, LatencyModel

from .test_dirac_backend import expected

FAST = LatencyModel(base=0.002, per_id=1e-7, tail_probability=0.0)
PING: tuple[str, str, str, list[int]] = ("WorkloadManagement", "JobMonitoring", "getJobsStatus", [])


def serial(proxy: Path) -> int:
    return x509.load_pem_x509_certificates(proxy.read_bytes())[0].serial_number


def seen(sim: DiracSim) -> dict[int, int]:
    """Requests by the serial of the client certificate they came with."""
    return {int(s, 16): n for s, n in sim.stats.client_serials.items()}


@pytest.fixture
def grids(tmp_path: Path) -> tuple[Credentials, Credentials]:
    """Today's grid credentials, and tomorrow's (a new CA, a new proxy)."""
    return make_credentials(tmp_path / "old"), make_credentials(tmp_path / "new")


def install(credentials: Credentials, proxy: Path, ca: Path) -> None:
    """Put `credentials`' proxy and CA where the user keeps them, as a renewal does."""
    shutil.copy(credentials.proxy, proxy)
    shutil.copy(credentials.ca_file, ca)


async def test_a_running_monitor_takes_a_renewed_proxy_and_ca_at_its_next_call(
    grids: tuple[Credentials, Credentials], nursery: trio.Nursery, tmp_path: Path
) -> None:
    old, new = grids
    sim = DiracSim(seed=5, mean_runtime=1.5, latency=FAST, credentials=old)
    await nursery.start(sim.serve)
    proxy, ca = tmp_path / "x509up_u1000", tmp_path / "ca.pem"
    install(old, proxy, ca)
    store = Store(tmp_path / "jobs.sqlite")
    dirac_ids = sim.submit(20)
    ids = store.add_jobs([NewJob("dirac", str(i), Status.SUBMITTED) for i in dirac_ids])
    transport = DiracHttps(sim.url, proxy=proxy, ca=ca, recheck=0.0)
    backend = DiracBackend(
        transport,
        output_dir=tmp_path / "out",
        download_output=False,
        settings=BackendSettings(poll_interval=0.2, call_deadline=2.0),
    )
    monitor = Monitor(store, [backend])
    with trio.fail_after(30):
        async with trio.open_nursery() as inner:
            await inner.start(monitor.run)
            await monitor.wait_for(ids[0], [Status.RUNNING, Status.COMPLETED, Status.FAILED,
                                            Status.KILLED])  # fmt: skip
            sim.renew(new)  # from now on the old CA's certificates are refused
            install(new, proxy, ca)
            for job in ids:
                await monitor.wait_for(job, [Status.COMPLETED, Status.FAILED, Status.KILLED])
            stats = monitor.statistics().backends["dirac"]
            monitor.stop()
    assert seen(sim).get(serial(old.proxy), 0) >= 1
    assert seen(sim).get(serial(new.proxy), 0) >= 1  # the old code kept its connections
    assert transport.renewals == 1
    assert (stats.errors, stats.restarts, stats.problem) == (0, 0, None)
    assert [j.status for j in store.jobs()] == [expected(sim, str(i)) for i in dirac_ids]


async def test_after_a_tls_failure_the_files_are_read_again_at_once(
    grids: tuple[Credentials, Credentials], nursery: trio.Nursery, tmp_path: Path
) -> None:
    """Between two looks at the files (an hour apart here), a refused certificate makes the
    next call look; the failure itself says what TLS said (it read "ConnectError: ")."""
    old, new = grids
    sim = DiracSim(seed=5, latency=FAST, credentials=old)
    await nursery.start(sim.serve)
    proxy, ca = tmp_path / "x509up_u1000", tmp_path / "ca.pem"
    install(old, proxy, ca)
    transport = DiracHttps(sim.url, proxy=proxy, ca=ca, recheck=3600.0)
    async with transport.session():
        await transport.call(*PING)
        sim.inject("reset")  # the kept connection goes: the next one is a new handshake
        sim.renew(new)
        install(new, proxy, ca)
        with pytest.raises(BackendError):
            await transport.call(*PING)
        with pytest.raises(BackendError, match=r"ConnectError: .*CERTIFICATE_VERIFY_FAILED"):
            await transport.call(*PING)
        await transport.call(*PING)
    assert transport.renewals == 1
    assert seen(sim) == {serial(old.proxy): 2, serial(new.proxy): 1}


async def test_a_proxy_near_its_end_is_warned_of_once_and_its_renewal_read_at_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    short = make_credentials(tmp_path / "short", proxy_hours=0.5)
    proxy = tmp_path / "x509up_u1000"
    shutil.copy(short.proxy, proxy)
    backend = DiracBackend(
        DiracHttps("https://127.0.0.1:9", proxy=proxy), output_dir=tmp_path / "out"
    )

    def expiry(path: Path) -> float:
        return x509.load_pem_x509_certificates(path.read_bytes())[0].not_valid_after_utc.timestamp()

    with caplog.at_level(logging.WARNING, logger="gangamon.dirac"):
        for _ in range(3):
            assert await backend.poll([]) == []  # the proxy is checked before any call
        assert backend.credentials_expiry == expiry(short.proxy)
        renewed = make_credentials(tmp_path / "renewed")
        shutil.copy(renewed.proxy, proxy)
        await backend.poll([])
    assert backend.credentials_expiry == expiry(renewed.proxy)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1
    assert warnings[0].startswith(f"the DIRAC proxy {proxy} expires at ")
    assert warnings[0].endswith("in 30 min: renew it")
