"""HTCondor, LSF, PBS and Grid Engine: their commands' recorded outputs (written from the
documented formats), parsed; then each backend live against fake commands on PATH."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import trio

from gangamon import BackendError, BackendSettings, JobRef, Monitor, NewJob, Status, Store, Update
from gangamon.backends._batch import BatchBackend, BatchState
from gangamon.backends.condor import CondorBackend, parse_condor_json
from gangamon.backends.lsf import LsfBackend, parse_bjobs_json
from gangamon.backends.pbs import PbsBackend, parse_qstat_json, with_sequence_numbers
from gangamon.backends.sge import SgeBackend, parse_qacct, parse_qstat_xml

OUTPUTS = Path(__file__).with_name("batch_outputs")
S = Status


def recorded(name: str) -> str:
    return (OUTPUTS / name).read_text()


def statuses(states: dict[str, BatchState]) -> dict[str, Status]:
    return {job: state.status for job, state in states.items()}


def test_condor() -> None:
    assert statuses(parse_condor_json(recorded("condor_q.json"))) == {
        "101.0": S.RUNNING,
        "101.1": S.SUBMITTED,
        "102.0": S.SUBMITTED,
        "103.0": S.FAILED,
    }
    history = parse_condor_json(recorded("condor_history.json"))
    assert statuses(history) == {"99.0": S.COMPLETED, "98.0": S.KILLED, "97.0": S.FAILED}
    assert history["97.0"].detail == "killed by signal 9"
    assert history["99.0"].details == {"host": "slot2@wn02.example.org", "cpu": 301.0}
    assert history["98.0"].details is None
    assert parse_condor_json(recorded("condor_q.json"))["101.1"].detail.startswith("Error from")
    assert parse_condor_json("") == {}  # condor_q prints nothing when there are no jobs


def test_lsf() -> None:
    states = parse_bjobs_json(recorded("bjobs.json"))
    assert statuses(states) == {
        "4711": S.RUNNING,
        "4712": S.SUBMITTED,
        "4713": S.COMPLETED,
        "4714": S.FAILED,
    }  # job 4799 "is not found": left out
    assert states["4714"].detail == "exit code 3"


def test_pbs() -> None:
    states = parse_qstat_json(recorded("qstat.json"))
    assert statuses(states) == {
        "2001.pbs-head": S.RUNNING,
        "2002.pbs-head": S.SUBMITTED,
        "2003.pbs-head": S.COMPLETED,
        "2004.pbs-head": S.FAILED,
    }
    assert states["2004.pbs-head"].detail == "exit status -29"
    # A client may keep only the sequence number; not when two servers' jobs share it.
    both = with_sequence_numbers({**states, "2001.other": states["2002.pbs-head"]})
    assert both["2003"] == states["2003.pbs-head"]
    assert "2001" not in both


def test_sge() -> None:
    assert statuses(parse_qstat_xml(recorded("qstat.xml"))) == {
        "301": S.RUNNING,
        "302": S.SUBMITTED,
        "303": S.FAILED,
    }
    assert parse_qacct(recorded("qacct.txt")) == BatchState(
        "finished", S.COMPLETED, "exit status 0"
    )
    failed = recorded("qacct.txt").replace("exit_status  0", "exit_status  137")
    assert parse_qacct(failed).status == S.FAILED  # type: ignore[union-attr]
    assert parse_qacct("error: job id 12 not found\n") is None


@pytest.mark.parametrize(
    ("parse", "garbage"),
    [(parse_condor_json, "<html>"), (parse_condor_json, '{"a": 1}'),
     (parse_condor_json, '[{"ClusterId": 1}]'), (parse_condor_json, '[{"ClusterId": 1, '
                                                 '"ProcId": 0, "JobStatus": 42}]'),
     (parse_bjobs_json, "Job <1> is not found"), (parse_bjobs_json, '{"RECORDS": 3}'),
     (parse_bjobs_json, '{"RECORDS": [{"JOBID": "1", "STAT": "FLYING"}]}'),
     (parse_qstat_json, "qstat: Unknown Job Id"), (parse_qstat_json, '{"Jobs": {"1": {}}}'),
     (parse_qstat_json, '{"Jobs": {"1": {"job_state": "Z"}}}'),
     (parse_qstat_xml, "<job_info><job_list><state>r</state></job_list></job_info>"),
     (parse_qstat_xml, "error: commlib error"),
     (parse_qstat_xml, "<job_info><job_list><JB_job_number>1</JB_job_number>"
                       "<state>zz</state></job_list></job_info>")],
)  # fmt: skip
def test_garbage_is_a_backend_error(parse: object, garbage: str) -> None:
    with pytest.raises(BackendError):
        parse(garbage)  # type: ignore[operator]


SYSTEMS = [
    (CondorBackend, {"condor_q": "condor_q.json", "condor_history": "condor_history.json"},
     {"101.0": S.RUNNING, "103.0": S.FAILED, "99.0": S.COMPLETED, "98.0": S.KILLED}),
    (LsfBackend, {"bjobs": "bjobs.json"},
     {"4711": S.RUNNING, "4713": S.COMPLETED, "4714": S.FAILED}),
    (PbsBackend, {"qstat": "qstat.json"},
     {"2001.pbs-head": S.RUNNING, "2003.pbs-head": S.COMPLETED, "2004.pbs-head": S.FAILED}),
    (SgeBackend, {"qstat": "qstat.xml", "qacct": "qacct.txt"},
     {"301": S.RUNNING, "303": S.FAILED, "300": S.COMPLETED}),
]  # fmt: skip


def install_fakes(directory: Path, commands: dict[str, str]) -> Path:
    """A bin directory whose commands print `<name>.out` (or fail if it is missing)."""
    bin_dir = directory / "bin"
    bin_dir.mkdir()
    for name in commands:
        script = bin_dir / name
        script.write_text(f'#!/bin/sh\ncat "{directory}/{name}.out" || exit 1\n')
        script.chmod(0o755)
    return bin_dir


async def wait_errors(monitor: Monitor, name: str, n: int) -> None:
    """Until `n` polls have failed (nothing signals them: checked every 50 ms)."""
    while monitor.statistics().backends[name].errors < n:  # noqa: ASYNC110
        await trio.sleep(0.05)


@pytest.mark.parametrize(("backend_type", "commands", "expected"), SYSTEMS)
async def test_live_against_fake_commands(
    backend_type: type[BatchBackend], commands: dict[str, str], expected: dict[str, Status],
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    bin_dir = install_fakes(tmp_path, commands)
    monkeypatch.setenv("PATH", f"{bin_dir}:{Path('/usr/bin')}:{Path('/bin')}")
    query = next(iter(commands))
    (tmp_path / f"{query}.out").write_text("this is not what the tool prints\n")
    backend = backend_type(
        settings=BackendSettings(
            poll_interval=0.1, chunk_size=10**9, concurrency=1, call_deadline=5.0
        )
    )
    store = Store(tmp_path / "jobs.sqlite")
    monitor = Monitor(store, [backend])
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(monitor.run)
            ids = await monitor.track([NewJob(backend.name, j, S.SUBMITTED) for j in expected])
            # Garbage from the batch system: a failed poll, and no job moves.
            await wait_errors(monitor, backend.name, 2)
            assert {j.status for j in store.jobs()} == {S.SUBMITTED}
            for name, recording in commands.items():
                (tmp_path / f"{name}.out").write_text(recorded(recording))
            for job, status in zip(ids, expected.values(), strict=True):
                assert await monitor.wait_for(job, [status]) == status
            monitor.stop()
    assert backend.queries >= 3


class Counting(BatchBackend):
    """Lists what the test says."""

    name = "counting"

    def __init__(self, interval: float) -> None:
        super().__init__(settings=BackendSettings(poll_interval=interval, chunk_size=10**9))
        self.listing: dict[str, BatchState] = {}

    async def query(self) -> dict[str, BatchState]:
        return dict(self.listing)

    def kill_command(self, job_id: str) -> list[str]:
        return ["true"]


async def test_polls_within_an_interval_share_one_listing(autojump_clock: Any) -> None:
    backend = Counting(10.0)
    backend.listing = {"1": BatchState("RUNNING", S.RUNNING)}
    old, new = JobRef(1, "1", S.SUBMITTED), JobRef(2, "2", S.SUBMITTED)
    first = await backend.poll([old])
    assert [(u.job, u.status) for u in first] == [(1, S.RUNNING)]
    backend.listing["2"] = BatchState("PENDING", S.SUBMITTED)
    await trio.sleep(5.0)
    # A job the last listing did not show waits for the next: no history asked for it.
    assert await backend.poll([new]) == []
    assert (backend.queries, backend.histories) == (1, 0)
    await trio.sleep(4.0)  # 9 s after the listing: a sweep that starts early lists again
    updates: Sequence[Update] = await backend.poll([old, new])
    assert [(u.job, u.status) for u in updates] == [(1, S.RUNNING), (2, S.SUBMITTED)]
    assert backend.queries == 2
