"""The simulator's faces: the HTTPS face keeps its latency model, and both faces serve output
sandboxes as DIRAC's clients fetch them. In virtual time over memory streams, and once over
TLS on loopback with gangamon's own HTTPS transport."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from typing import Any

import h11
import pytest
import trio
import trio.testing

from gangamon.backends.dirac import DiracHttps, DiracStatus as D
from gangamon.backends.dirac._wire import (
    FrameReader,
    decode_job_states,
    frame,
    jdecode,
    s_ok,
    tornado_body,
)
from gangamon.sim import dirac_cfg, dirac_cfg_dict
from gangamon.sim._certs import make_credentials
from gangamon.sim._diset import diset_connection
from gangamon.sim._http import http_connection
from gangamon.sim._job_facts import sandbox_tarball
from gangamon.sim.dirac import DiracSim, LatencyModel

LATENCY = 0.5
TARGET = "/WorkloadManagement/TornadoJobMonitoring"


class SlowSend(trio.abc.Stream):
    """A stream whose sends take `seconds`, as TLS and a busy kernel make them take."""

    def __init__(self, stream: trio.abc.Stream, seconds: float) -> None:
        self.stream = stream
        self.seconds = seconds

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await trio.sleep(self.seconds)
        await self.stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.stream.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self.stream.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self.stream.aclose()


async def timed_call(
    client: trio.abc.Stream, conn: h11.Connection, ids: list[int], pause: float
) -> float:
    """getJobsStates(ids), the request sent in two parts `pause` apart; the seconds from its
    first byte to the end of the reply (checked to hold every id)."""
    body = tornado_body("getJobsStates", [ids])
    headers = [("Host", "sim"), ("Content-Length", str(len(body)))]
    request = conn.send(h11.Request(method="POST", target=TARGET, headers=headers)) or b""
    request += conn.send(h11.Data(data=body)) or b""
    conn.send(h11.EndOfMessage())  # nothing to send: the length is in the headers
    began = trio.current_time()
    await client.send_all(request[:10])
    await trio.sleep(pause)
    await client.send_all(request[10:])
    reply = b""
    while not isinstance(event := conn.next_event(), h11.EndOfMessage):
        if event is h11.NEED_DATA:
            conn.receive_data(bytes(await client.receive_some()))
        elif isinstance(event, h11.Data):
            reply += event.data
    took = trio.current_time() - began
    conn.start_next_cycle()
    assert set(decode_job_states(reply)) == set(ids)
    return took


def fixed_latency_sim() -> DiracSim:
    return DiracSim(
        mean_runtime=1e9,
        latency=LatencyModel(base=LATENCY, per_id=0, tail_probability=0),
        sandbox_pfns="dirac",
    )


async def test_latency_runs_from_the_first_bytes_of_a_request(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A request that trickles in is answered `LATENCY` after its first bytes: reading it is
    the server's time, not added to it."""
    sim = fixed_latency_sim()
    ids = sim.submit(3)
    client, server = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(http_connection, sim, server)
        took = await timed_call(client, h11.Connection(h11.CLIENT), ids, pause=0.2)
        await client.aclose()
    assert took == pytest.approx(LATENCY, abs=1e-9)


async def test_replies_learn_to_have_left_by_the_modelled_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """When sending a reply takes 10 ms, the first reply ends 10 ms late; the simulator learns
    that and later replies start early, ending on the modelled time."""
    sim = fixed_latency_sim()
    ids = sim.submit(3)
    client, server = trio.testing.memory_stream_pair()
    conn = h11.Connection(h11.CLIENT)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(http_connection, sim, SlowSend(server, 0.01))
        took = [await timed_call(client, conn, ids, pause=0) for _ in range(60)]
        await client.aclose()
    assert took[0] == pytest.approx(LATENCY + 0.01, abs=1e-9)
    assert took[-1] == pytest.approx(LATENCY, abs=1e-4)


def done_job(sim: DiracSim) -> int:
    now = trio.current_time()
    return sim.add_job([(now - 2, D.RECEIVED, "Job accepted"), (now - 1, D.DONE, "Done")])


async def receive(stream: trio.abc.Stream, reader: FrameReader) -> Any:
    """The next DISET frame's value."""
    while True:
        for payload in reader.frames():
            return jdecode(payload)
        reader.feed(bytes(await stream.receive_some()))


async def diset_call(sim: DiracSim, service: str, method: str, *args: object) -> Any:
    """One DISET RPC, as DIRAC's RPCClient makes it; its result."""
    client, server = trio.testing.memory_stream_pair()
    reader = FrameReader()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(diset_connection, sim, server)
        await client.send_all(frame(s_ok([[service, "None", "unknown"], ["RPC", method], "", "9"])))
        assert (await receive(client, reader))["OK"]
        await client.send_all(frame(s_ok(list(args))))
        return await receive(client, reader)


async def test_dips_face_sends_a_sandbox_as_dirac_transfer_client_receives_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """DIRAC's DIPStorage.getFile: TransferClient.receiveFile over DISET, each chunk
    acknowledged, the MD5 at the end, then the service's S_OK; the data after the latency."""
    sim = fixed_latency_sim()
    job_id = done_job(sim)
    assigned = await diset_call(
        sim, "WorkloadManagement/SandboxStore", "getSandboxesAssignedToEntity", f"Job:{job_id}"
    )
    pfn = assigned["Value"]["Output"][0].split("|", 1)[1]
    client, server = trio.testing.memory_stream_pair()
    reader = FrameReader()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(diset_connection, sim, server)
        action = ["FileTransfer", "ToClient"]
        await client.send_all(
            frame(s_ok([["WorkloadManagement/SandboxStore", "None", "unknown"], action, "", "9"]))
        )
        assert (await receive(client, reader))["OK"]
        url = f"dips://127.0.0.1:9196/WorkloadManagement/SandboxStore{pfn}"
        began = trio.current_time()
        await client.send_all(frame(s_ok([url, "CheckSum"])))
        assert await receive(client, reader) == s_ok("Accepted")
        more, data = (await receive(client, reader))["Value"]
        assert trio.current_time() - began == pytest.approx(LATENCY)
        await client.send_all(frame(s_ok()))
        assert (await receive(client, reader))["Value"] == [False, hashlib.md5(data).hexdigest()]
        assert await receive(client, reader) == s_ok()
    assert more is True
    assert data == sandbox_tarball(job_id)
    assert sim.stats.calls["transfer_toClient"] == 1


async def test_dips_face_refuses_an_unknown_sandbox_in_place_of_its_data(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sim = fixed_latency_sim()
    client, server = trio.testing.memory_stream_pair()
    reader = FrameReader()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(diset_connection, sim, server)
        proposal = [["WorkloadManagement/SandboxStore", "None", "x"], ["FileTransfer", "ToClient"]]
        await client.send_all(frame(s_ok([*proposal, "", "9"])))
        await receive(client, reader)
        await client.send_all(frame(s_ok(["/SandBox/g/x/abc/def/abcdef.tar.bz2", ""])))
        assert await receive(client, reader) == s_ok("Accepted")
        refusal = await receive(client, reader)
    assert refusal["Message"] == "Sandbox does not exist"


async def http_request(
    sim: DiracSim, method: str, target: str, body: bytes = b""
) -> tuple[int, dict[bytes, bytes], bytes]:
    """One request to the HTTPS face: status, headers, body."""
    client, server = trio.testing.memory_stream_pair()
    conn = h11.Connection(h11.CLIENT)
    headers = [("Host", "sim"), ("Content-Length", str(len(body)))]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(http_connection, sim, server)
        request = conn.send(h11.Request(method=method, target=target, headers=headers)) or b""
        await client.send_all(request + (conn.send(h11.Data(data=body)) or b""))
        conn.send(h11.EndOfMessage())
        response, content = None, b""
        while not isinstance(event := conn.next_event(), h11.EndOfMessage):
            if event is h11.NEED_DATA:
                conn.receive_data(bytes(await client.receive_some()))
            elif isinstance(event, h11.Response):
                response = event
            elif isinstance(event, h11.Data):
                content += event.data
        await client.aclose()
    assert response is not None
    return response.status_code, dict(response.headers), content


async def test_https_face_streams_a_sandbox_raw_and_serves_it_at_its_pfn(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """DIRAC's TornadoSandboxStore `streamToClient` answers the tarball itself; a GET of the
    SandboxStore's path plus the PFN gives the same bytes (a plain download)."""
    sim = fixed_latency_sim()
    job_id = done_job(sim)
    assigned = sim.sandbox.call("getSandboxesAssignedToEntity", [f"Job:{job_id}"], sim.clock())
    pfn = assigned["Value"]["Output"][0].split("|", 1)[1]  # type: ignore[index]
    target = "/WorkloadManagement/TornadoSandboxStore"
    status, headers, body = await http_request(
        sim, "POST", target, tornado_body("streamToClient", [pfn, ""]) + b"&rawContent=True"
    )
    assert (status, headers[b"content-type"], body) == (
        200,
        b"application/octet-stream",
        sandbox_tarball(job_id),
    )
    status, _, body = await http_request(sim, "GET", f"/WorkloadManagement/SandboxStore{pfn}")
    assert (status, body) == (200, sandbox_tarball(job_id))
    status, _, _ = await http_request(sim, "GET", "/WorkloadManagement/SandboxStore/SandBox/x")
    assert status == 404


async def test_gangamon_https_transport_downloads_a_dirac_named_sandbox(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    """Over TLS on loopback: the PFN a DIRAC-style SandboxStore gives, appended to the
    SandboxStore's https path, is a URL DiracHttps.download fetches."""
    credentials = make_credentials(tmp_path)
    sim = DiracSim(
        credentials=credentials,
        latency=LatencyModel(base=0.001, per_id=0, tail_probability=0),
        sandbox_pfns="dirac",
    )
    await nursery.start(sim.serve)
    job_id = done_job(sim)
    transport = DiracHttps(sim.url, proxy=credentials.proxy, ca=credentials.ca_file)
    async with transport.session():
        assigned = await transport.call(
            "WorkloadManagement", "SandboxStore", "getSandboxesAssignedToEntity", f"Job:{job_id}"
        )
        [location] = assigned["Output"]
        pfn = location.split("|", 1)[1]
        assert pfn.startswith("/SandBox/")
        data = await transport.download(f"{sim.url}/WorkloadManagement/SandboxStore{pfn}")
    assert data == sandbox_tarball(job_id)


def test_dirac_cfg_maps_the_proxys_dn_and_points_at_both_faces(tmp_path: Path) -> None:
    """The Registry's DN is the simulator proxy's user, as DIRAC writes DNs; the sandbox SE
    is DIP on the dips port; JobMonitoring is on the wire asked for."""
    from cryptography import x509

    credentials = make_credentials(tmp_path)
    user = x509.load_pem_x509_certificates(credentials.proxy.read_bytes())[1]
    # RFC 4514 lists the name's parts last first; DIRAC's DN form, first first.
    dn = "/" + "/".join(reversed(user.subject.rfc4514_string().split(",")))
    https, dips = "https://127.0.0.1:8443", "dips://127.0.0.1:9135"
    text = dirac_cfg(tmp_path / "d.cfg", https=https, dips=dips, ca_dir=credentials.ca_dir)
    cfg = text.read_text()
    assert f"DN = {dn}\n" in cfg
    assert f"JobMonitoring = {https}/WorkloadManagement/TornadoJobMonitoring\n" in cfg
    assert f"SandboxStore = {dips}/WorkloadManagement/SandboxStore\n" in cfg
    assert "    SimSandboxSE\n    {\n      BackendType = DISET\n" in cfg
    assert "Port = 9135\n" in cfg
    assert cfg.count("{") == cfg.count("}")
    on_dips = dirac_cfg_dict(
        https=https, dips=dips, ca_dir=credentials.ca_dir, job_monitoring="dips"
    )
    urls = on_dips["Systems"]["WorkloadManagement"]["URLs"]  # type: ignore[index]
    assert urls["JobMonitoring"] == f"{dips}/WorkloadManagement/JobMonitoring"


async def test_job_details_and_the_catalogue_over_gangamons_https_transport(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    """Over TLS: getJobsSummary's times arrive as datetimes (JEncoded), getJobParameters
    takes a list, and the FileCatalog answers the LFNs those parameters name, in bulk."""
    credentials = make_credentials(tmp_path)
    sim = DiracSim(
        credentials=credentials, latency=LatencyModel(base=0.001, per_id=0, tail_probability=0)
    )
    await nursery.start(sim.serve)
    now = trio.current_time()
    path = [(now - 3, D.RECEIVED, "Job accepted"), (now - 2, D.RUNNING, ""), (now - 1, D.DONE, "")]
    ids = [sim.add_job(path) for _ in range(4)]
    transport = DiracHttps(sim.url, proxy=credentials.proxy, ca=credentials.ca_file)
    async with transport.session():
        summary = await transport.call("WorkloadManagement", "JobMonitoring", "getJobsSummary", ids)
        parameters = await transport.call(
            "WorkloadManagement", "JobMonitoring", "getJobParameters", ids
        )
        lfns = [
            lfn
            for values in parameters.values()
            for lfn in values.get("UploadedOutputData", "").split(", ")
            if lfn
        ]
        metadata = await transport.call("DataManagement", "FileCatalog", "getFileMetadata", lfns)
        replicas = await transport.call("DataManagement", "FileCatalog", "getReplicas", lfns, False)
    assert sorted(int(i) for i in summary) == ids
    for row in summary.values():
        assert isinstance(row["EndExecTime"], dt.datetime)
        assert row["EndExecTime"] == row["LastUpdateTime"]
        assert row["StartExecTime"] < row["EndExecTime"]
    assert sorted(int(i) for i in parameters) == ids
    assert lfns  # the first jobs' facts: some have output data
    assert sorted(metadata["Successful"]) == sorted(lfns) == sorted(replicas["Successful"])
    assert metadata["Failed"] == {} == replicas["Failed"]
