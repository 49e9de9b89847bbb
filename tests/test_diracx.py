"""DiracX: the simulator's job search (sans-IO), and our DiracX transport against it over
real HTTPS on loopback, tokens refreshed as DiracX's client refreshes them."""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path
from typing import Any

import pytest
import trio

from gangamon import BackendSettings, GangamonError, Monitor, NewJob, Status, Store
from gangamon.backends import BackendUnavailable, JobRef
from gangamon.backends.dirac import DiracBackend, DiracStatus as D, ganga_status
from gangamon.backends.dirac._diracx import DiracX
from gangamon.sim._certs import Credentials, make_credentials
from gangamon.sim._dirac_model import Outcomes, SimJob, WallClock, draw_path
from gangamon.sim._dirac_service import JobMonitoring
from gangamon.sim._diracx import Answer, search, set_statuses
from gangamon.sim.dirac import DiracSim, LatencyModel

OFFSET = 1_796_083_200.0  # 2026-12-01 00:00:00 UTC at server time 0
FAST = LatencyModel(base=0.002, per_id=1e-7, tail_probability=0.0)


def monitoring(n: int) -> JobMonitoring:
    rng = random.Random(1)
    jobs = {}
    for i in range(n):
        path = draw_path(rng, 100.0, 600.0, Outcomes())
        jobs[1001 + i] = SimJob(1001 + i, path[0][0], tuple(path))
    return JobMonitoring(jobs, WallClock(OFFSET))


def rows_of(answer: Answer) -> list[dict[str, Any]]:
    assert isinstance(answer.body, list)
    return answer.body


def test_search_pages_as_diracx_does() -> None:
    service = monitoring(25)
    first = search(service, {"parameters": ["JobID"]}, 1, 10, 500.0)
    assert (first.status, first.headers) == (206, (("Content-Range", "jobs 0-9/25"),))
    assert [r["JobID"] for r in rows_of(first)] == list(range(1001, 1011))
    last = search(service, {"parameters": ["JobID"]}, 3, 10, 500.0)
    assert (last.status, last.headers) == (206, (("Content-Range", "jobs 20-24/25"),))
    past = search(service, {"parameters": ["JobID"]}, 4, 10, 500.0)
    assert (past.status, past.headers, past.body) == (416, (("Content-Range", "jobs */25"),), [])
    whole = search(service, {}, 1, 100, 500.0)
    assert whole.status == 200
    assert whole.headers == ()


def test_search_conditions_agree_with_the_summary_rows() -> None:
    service = monitoring(40)
    now = 700.0
    rows = service.call("getJobsSummary", [list(service.jobs)], now)["Value"]
    assert isinstance(rows, dict)
    cut = service.wall.at(500.0)
    body = {
        "parameters": ["JobID", "Status", "LastUpdateTime"],
        "search": [
            {"parameter": "LastUpdateTime", "operator": "gt", "value": f"{cut.isoformat()}Z"},
            {"parameter": "Status", "operator": "not in", "values": ["Killed"]},
            {"parameter": "Owner", "operator": "like", "value": "ganga%"},
        ],
        "sort": [{"parameter": "JobID", "direction": "desc"}],
    }
    got = search(service, body, 1, 100, now)
    expected = sorted(
        (i for i, r in rows.items() if r["LastUpdateTime"] > cut and r["Status"] != "Killed"),
        reverse=True,
    )
    assert got.status == 200
    assert [r["JobID"] for r in rows_of(got)] == expected
    row = rows_of(got)[0]
    assert dt.datetime.fromisoformat(row["LastUpdateTime"]) == rows[row["JobID"]][
        "LastUpdateTime"
    ].replace(tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"search": [{"parameter": "Colour", "operator": "eq", "value": 1}]}, "'Colour'"),
        ({"search": [{"parameter": "Status", "operator": "like?", "value": 1}]}, "'like?'"),
        ({"search": [{"parameter": "Status", "operator": "in", "value": "x"}]}, "'values'"),
        ({"parameters": ["Nope"]}, "'Nope'"),
        ({"sort": [{"parameter": "JobID", "direction": "up"}]}, "'up'"),
        ([], "JSON object"),
    ],
)
def test_a_bad_search_is_a_422_naming_the_part(body: object, says: str) -> None:
    answer = search(monitoring(3), body, 1, 10, 500.0)
    assert answer.status == 422
    assert says in str(answer.body)


# -- our transport, over HTTPS ---------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Credentials:
    return make_credentials(tmp_path_factory.mktemp("pki"))


@pytest.fixture
async def sim(pki: Credentials, nursery: trio.Nursery) -> DiracSim:
    sim = DiracSim(seed=9, mean_runtime=2.0, latency=FAST, credentials=pki)
    await nursery.start(sim.serve)
    return sim


def diracx_backend(transport: DiracX, tmp_path: Path, **settings: Any) -> DiracBackend:
    base: dict[str, Any] = {"poll_interval": 0.5, "chunk_size": 100, "call_deadline": 5.0,
                            "restart_delay": 0.1, "max_restart_delay": 0.5}  # fmt: skip
    base.update(settings)
    return DiracBackend(
        transport,
        output_dir=tmp_path / "out",
        download_output=False,
        settings=BackendSettings(**base),
    )


@pytest.mark.realtime
async def test_jobs_are_followed_through_diracx_with_a_refreshed_token(
    sim: DiracSim, pki: Credentials, tmp_path: Path
) -> None:
    # An access token with a minute left: refreshed before the first search (5 min ahead).
    credentials = sim.diracx_tokens.credentials(tmp_path / "credentials.json", expires_in=60)
    before = json.loads(credentials.read_text())
    store = Store(tmp_path / "jobs.sqlite")
    dirac_ids = sim.submit(1000)
    store.add_jobs([NewJob("dirac", str(i), Status.SUBMITTED) for i in dirac_ids])
    transport = DiracX(sim.url, credentials=credentials, ca=pki.ca_file)
    monitor = Monitor(store, [diracx_backend(transport, tmp_path)])
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await nursery.start(monitor.run)
            for job in store.jobs():
                await monitor.wait_for(job.id, [Status.COMPLETED, Status.FAILED, Status.KILLED])
            monitor.stop()
    wrong = [
        j
        for j in store.jobs()
        if j.status != ganga_status(*sim.jobs[int(j.backend_id or 0)].path[-1][1:])
    ]
    assert wrong == []
    assert set(sim.stats.calls) == {"search"}  # what changed, and its states, in one call
    assert sim.diracx_tokens.refreshes == transport.refreshes == 1
    after = json.loads(credentials.read_text())
    assert after["refresh_token"] == before["refresh_token"]
    assert after["access_token"] != before["access_token"]
    assert after["expires_on"] > before["expires_on"]


async def test_missing_diracx_credentials_are_one_error_naming_the_file(
    sim: DiracSim, pki: Credentials, tmp_path: Path
) -> None:
    transport = DiracX(sim.url, credentials=tmp_path / "nowhere.json", ca=pki.ca_file)
    async with transport.session():
        with pytest.raises(BackendUnavailable, match=r"no DiracX credentials at .*nowhere\.json"):
            await transport.job_states([1001])


async def test_a_refused_refresh_says_to_log_in_again(
    sim: DiracSim, pki: Credentials, tmp_path: Path
) -> None:
    path = tmp_path / "credentials.json"
    path.write_text(json.dumps({"access_token": "old", "refresh_token": "x.y.", "expires_on": 0}))
    transport = DiracX(sim.url, credentials=path, ca=pki.ca_file)
    async with transport.session():
        with pytest.raises(BackendUnavailable, match=r"refused to refresh .*dirac login"):
            await transport.job_states([1001])


async def test_a_job_is_killed_through_diracx_and_an_ended_one_is_named(
    sim: DiracSim, pki: Credentials, tmp_path: Path
) -> None:
    now = trio.current_time()
    running = sim.add_job([(now - 5, D.RECEIVED, "Job accepted"), (now - 1, D.RUNNING, "App"),
                           (now + 600, D.DONE, "Execution Complete")])  # fmt: skip
    done = sim.add_job([(now - 5, D.RECEIVED, "Job accepted"), (now - 1, D.DONE, "Done")])
    credentials = sim.diracx_tokens.credentials(tmp_path / "credentials.json")
    backend = diracx_backend(DiracX(sim.url, credentials=credentials, ca=pki.ca_file), tmp_path)
    async with backend.lifespan():
        await backend.kill(JobRef(1, str(running), Status.RUNNING, "Running"))
        with pytest.raises(GangamonError, match=rf"job {done} not killed: .* is Done: not killed"):
            await backend.kill(JobRef(2, str(done), Status.RUNNING, "Running"))
        [update] = await backend.poll([JobRef(1, str(running), Status.RUNNING, "Running")])
    assert (update.status, update.native_status) == (Status.KILLED, "Killed")
    assert sim.jobs[running].path[-1][1:] == (D.KILLED, "Marked for termination")
    assert sim.stats.calls["set_statuses"] == 2


def test_the_simulators_status_update_refuses_what_it_does_not_model() -> None:
    jobs = dict(monitoring(2).jobs)
    service = JobMonitoring(jobs, WallClock(OFFSET))
    when = "2026-12-01T00:10:00+00:00"
    asked = {"1001": {when: {"Status": "Running"}}, "77": {when: {"Status": "Killed"}}}
    refused = set_statuses(jobs, service, asked, 150.0)
    assert refused.status == 404
    assert refused.body == {"detail": {"success": {}, "failed": {
        "1001": {"detail": "the simulator moves jobs to Killed only"},
        "77": {"detail": "job 77 not found"},
    }}}  # fmt: skip
    assert set_statuses(jobs, service, [], 150.0).status == 422
