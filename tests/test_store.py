from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from gangamon import (
    DuplicateJob,
    IllegalTransition,
    NewJob,
    Outcome,
    StaleTransition,
    Status,
    Store,
    StoreError,
    Transition,
    UnknownJob,
)
from gangamon._store import APPLICATION_ID, SCHEMA_VERSION, JobStore, open_store

S = Status


@pytest.fixture
def store(location: str | Path) -> Iterator[JobStore]:
    with open_store(location, clock=lambda: 1000.0) as store:
        yield store


def test_add_and_read_back(store: JobStore) -> None:
    ids = store.add_jobs(
        [NewJob("dirac", "17", S.SUBMITTED, native_status="Waiting"), NewJob("local")]
    )
    job = store.get(ids[0])
    assert (job.backend, job.backend_id, job.status, job.native_status) == (
        "dirac",
        "17",
        S.SUBMITTED,
        "Waiting",
    )
    assert store.get(ids[1]).status == S.NEW
    assert [e.reason for e in store.journal()] == ["added", "added"]


def test_cas_transition_applies_with_journal_row(store: JobStore) -> None:
    [job] = store.add_jobs([NewJob("dirac", "1", S.SUBMITTED)])
    assert store.transition(Transition(job, S.SUBMITTED, S.RUNNING, "Running", "poll")) is (
        Outcome.APPLIED
    )
    record = store.get(job)
    assert (record.status, record.native_status, record.transitions) == (S.RUNNING, "Running", 1)
    last = store.journal()[-1]
    assert (last.job, last.old, last.new, last.native_status, last.reason, last.time) == (
        job,
        S.SUBMITTED,
        S.RUNNING,
        "Running",
        "poll",
        1000.0,
    )


def test_refused_transitions_write_nothing(store: JobStore) -> None:
    [job] = store.add_jobs([NewJob("dirac", "1", S.SUBMITTED)])
    before = store.last_seq()
    with pytest.raises(
        StaleTransition, match="expected status 'running' but the store has 'submitted'"
    ):
        store.transition(Transition(job, S.RUNNING, S.COMPLETED))
    with pytest.raises(IllegalTransition, match="'submitted' -> 'new'"):
        store.transition(Transition(job, S.SUBMITTED, S.NEW))
    with pytest.raises(UnknownJob, match="unknown job id 999"):
        store.transition(Transition(999, S.SUBMITTED, S.RUNNING))
    assert store.last_seq() == before
    assert store.get(job).status == S.SUBMITTED


def test_same_status_same_native_writes_nothing(store: JobStore) -> None:
    [job] = store.add_jobs([NewJob("dirac", "1", S.RUNNING, native_status="Running")])
    before = store.last_seq()
    assert store.transition(Transition(job, S.RUNNING, S.RUNNING, "Running")) is Outcome.UNCHANGED
    assert store.last_seq() == before
    # A new native status under the same Ganga status is news worth a journal row.
    assert store.transition(Transition(job, S.RUNNING, S.RUNNING, "Completed")) is Outcome.APPLIED
    assert store.last_seq() == before + 1


def test_batch_applies_in_order_and_reports_each(store: JobStore) -> None:
    a, b = store.add_jobs([NewJob("slurm", "1", S.SUBMITTED), NewJob("slurm", "2", S.SUBMITTED)])
    outcomes = store.apply(
        [
            Transition(a, S.SUBMITTED, S.RUNNING),
            Transition(a, S.RUNNING, S.COMPLETED),  # sees the move before it
            Transition(b, S.RUNNING, S.COMPLETED),  # stale
            Transition(b, S.SUBMITTED, S.NEW),  # illegal
            Transition(7, S.SUBMITTED, S.RUNNING),  # unknown
        ]
    )
    assert outcomes == [
        Outcome.APPLIED,
        Outcome.APPLIED,
        Outcome.STALE,
        Outcome.ILLEGAL,
        Outcome.UNKNOWN_JOB,
    ]
    assert store.get(a).status == S.COMPLETED
    assert store.get(a).transitions == 2
    assert store.get(b).status == S.SUBMITTED
    stats = store.statistics()
    assert (stats.batches, stats.applied, stats.refused) == (1, 2, 3)


def test_subjobs_drive_the_master(store: JobStore) -> None:
    [master] = store.add_jobs([NewJob("dirac", None, S.SUBMITTED)])
    subs = store.add_jobs([NewJob("dirac", str(i), S.SUBMITTED, parent=master) for i in range(3)])
    store.apply([Transition(subs[0], S.SUBMITTED, S.RUNNING)])
    assert store.get(master).status == S.SUBMITTED  # Ganga: submitted outranks running
    store.apply([Transition(s, S.SUBMITTED, S.RUNNING) for s in subs[1:]])
    assert store.get(master).status == S.RUNNING
    store.apply([Transition(s, S.RUNNING, S.COMPLETED) for s in subs[:2]])
    assert store.get(master).status == S.RUNNING
    store.apply([Transition(subs[2], S.RUNNING, S.FAILED)])
    assert store.get(master).status == S.FAILED
    reasons = [e.reason for e in store.journal(job=master)]
    assert reasons == ["added", "subjobs", "subjobs"]
    assert [j.id for j in store.jobs(parent=master)] == subs


def test_subjob_of_unknown_parent_is_refused(store: JobStore) -> None:
    with pytest.raises(UnknownJob, match="unknown job id 55"):
        store.add_jobs([NewJob("dirac", "1", parent=55)])
    assert store.jobs() == []
    assert store.last_seq() == 0


def test_filters(store: JobStore) -> None:
    store.add_jobs(
        [
            NewJob("dirac", "1", S.RUNNING),
            NewJob("slurm", "2", S.RUNNING),
            NewJob("dirac", "3", S.COMPLETED),
        ]
    )
    assert [j.backend_id for j in store.active_jobs("dirac")] == ["1"]
    assert [j.backend_id for j in store.active_jobs()] == ["1", "2"]
    assert store.count_by_status() == {S.RUNNING: 2, S.COMPLETED: 1}
    assert store.count_by_status("dirac") == {S.RUNNING: 1, S.COMPLETED: 1}
    assert [j.backend_id for j in store.jobs(statuses=[S.COMPLETED])] == ["3"]


def test_reopen_keeps_everything(location: str | Path) -> None:
    with open_store(location) as store:
        [job] = store.add_jobs([NewJob("dirac", "1", S.SUBMITTED)])
        store.transition(Transition(job, S.SUBMITTED, S.RUNNING))
    with open_store(location) as store:
        assert store.get(job).status == S.RUNNING
        assert len(store.journal()) == 2


def test_details_are_kept_with_the_change(location: str | Path) -> None:
    details = {"site": "LCG.CERN.cern", "cpu": 42.5, "lfns": ["/lhcb/user/a.root"]}
    with open_store(location) as store:
        [job] = store.add_jobs([NewJob("dirac", "1", S.SUBMITTED)])
        store.transition(Transition(job, S.SUBMITTED, S.RUNNING, details=details))
    with open_store(location) as store:
        first, second = store.journal(job=job)
        assert first.details is None
        assert second.details == details


def test_schema_1_store_is_migrated_keeping_its_journal(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite"
    with Store(path) as store:
        [job] = store.add_jobs([NewJob("dirac", "1", S.SUBMITTED)])
        store.transition(Transition(job, S.SUBMITTED, S.RUNNING, reason="before"))
    # What a store of schema 1 was: the journal without its details column.
    db = sqlite3.connect(path)
    db.execute("ALTER TABLE journal DROP COLUMN details")
    db.execute("DROP INDEX jobs_by_backend_id")  # schema 3's
    db.execute("DROP INDEX jobs_active_backend_id")  # schema 4's
    db.execute("PRAGMA user_version=1")
    db.commit()
    db.close()
    with Store(path) as store:
        assert [e.reason for e in store.journal(job=job)][-1] == "before"
        store.transition(Transition(job, S.RUNNING, S.COMPLETED, details={"site": "X"}))
        assert store.journal(job=job)[-1].details == {"site": "X"}
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    indexes = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {"jobs_by_backend_id", "jobs_active_backend_id"} <= indexes
    db.close()


# -- bad input: each a typed error naming the value, nothing written ---------------------


def _snapshot(path: Path) -> bytes:
    return path.read_bytes()


def test_corrupt_file_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite"
    path.write_bytes(b"this is not sqlite at all" * 100)
    before = _snapshot(path)
    with pytest.raises(StoreError, match=r"jobs\.sqlite'.*not a gangamon store"):
        Store(path)
    assert _snapshot(path) == before


def test_foreign_sqlite_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite"
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("CREATE TABLE photos (id INTEGER)")
    db.close()
    before = _snapshot(path)
    with pytest.raises(StoreError, match=r"other\.sqlite'.*not a gangamon store.*1 objects"):
        Store(path)
    assert _snapshot(path) == before


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite"
    Store(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StoreError, match=f"newer gangamon \\(schema {SCHEMA_VERSION + 1}"):
        Store(path)


def test_other_application_id_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.sqlite"
    db = sqlite3.connect(path)
    db.execute("PRAGMA application_id=12345")
    db.close()
    with pytest.raises(StoreError, match="application_id 0x3039"):
        Store(path)
    assert APPLICATION_ID != 12345


@pytest.mark.parametrize(
    "where",
    [
        "/proc/gangamon-test.sqlite",  # a filesystem nobody can create files in, root included
        "{tmp}/no/such/dir/jobs.sqlite",
        "{tmp}/a-file/jobs.sqlite",
    ],
)
def test_unwritable_location_names_the_path(tmp_path: Path, where: str) -> None:
    (tmp_path / "a-file").write_text("")
    path = where.format(tmp=tmp_path)
    with pytest.raises(StoreError, match=f"job store '{path}': cannot"):
        Store(path)
    assert not Path(path).exists()


# -- read only: what reading commands (status, watch, doctor) open ----------------------------


def listing(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_read_only_refuses_an_empty_file_and_leaves_it_empty(tmp_path: Path) -> None:
    # It was given a schema: `gangamon status` on an empty file wrote 24 KiB into it.
    (tmp_path / "jobs.sqlite").touch()
    with pytest.raises(StoreError, match="empty: not a gangamon store yet"):
        Store(tmp_path / "jobs.sqlite", read_only=True)
    assert listing(tmp_path) == {"jobs.sqlite": b""}


def test_read_only_refuses_a_device_and_writes_nothing_beside_it(tmp_path: Path) -> None:
    # Through a symlink to /dev/null, SQLite wrote /dev/null-journal.
    journal = Path("/dev/null-journal")
    journal.unlink(missing_ok=True)
    (tmp_path / "jobs.sqlite").symlink_to("/dev/null")
    with pytest.raises(StoreError, match="not a regular file"):
        Store(tmp_path / "jobs.sqlite", read_only=True)
    assert not journal.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["jobs.sqlite"]


def test_read_only_reads_a_closed_store_without_leaving_a_file(tmp_path: Path) -> None:
    with Store(tmp_path / "jobs.sqlite") as writer:
        writer.add_jobs([NewJob("dirac", "1", S.SUBMITTED)])
    before = listing(tmp_path)
    with Store(tmp_path / "jobs.sqlite", read_only=True) as reader:
        assert [j.backend_id for j in reader.jobs()] == ["1"]
        with pytest.raises(StoreError):
            reader.add_jobs([NewJob("dirac", "2", S.SUBMITTED)])
    assert listing(tmp_path) == before


def test_read_only_sees_what_a_running_writer_has_not_checkpointed(tmp_path: Path) -> None:
    with Store(tmp_path / "jobs.sqlite") as writer:
        writer.add_jobs([NewJob("dirac", "1", S.SUBMITTED)])
        with Store(tmp_path / "jobs.sqlite", read_only=True) as reader:
            writer.add_jobs([NewJob("dirac", "2", S.SUBMITTED)])
            assert [j.backend_id for j in reader.jobs()] == ["1", "2"]


# -- a backend id is held once ------------------------------------------------------------------


def test_add_new_jobs_leaves_out_any_backend_id_the_store_has_held(store: JobStore) -> None:
    [ended] = store.add_jobs([NewJob("dirac", "1", S.SUBMITTED)])
    store.apply([Transition(ended, S.SUBMITTED, S.FAILED)])
    store.add_jobs([NewJob("slurm", "2", S.SUBMITTED)])  # another backend's 2: another job
    added, known = store.add_new_jobs([NewJob("dirac", i, S.SUBMITTED) for i in "12332"])
    assert known == 3
    assert [store.get(i).backend_id for i in added] == ["2", "3"]


def test_an_active_backend_id_is_held_by_one_job_whoever_adds_it(tmp_path: Path) -> None:
    # The check was only in add_new_jobs: add_jobs, or a writer of its own, stored it twice.
    path = tmp_path / "jobs.sqlite"
    with Store(path) as store:
        [held] = store.add_jobs([NewJob("dirac", "7", S.SUBMITTED)])
        before = path.read_bytes()
        with pytest.raises(DuplicateJob, match=f"dirac:7 is already watched, as job {held}"):
            store.add_jobs([NewJob("dirac", "8", S.SUBMITTED), NewJob("dirac", "7", S.RUNNING)])
        assert [j.backend_id for j in store.jobs()] == ["7"]
        # A writer of its own, closed after the comparison: its close would checkpoint.
        with closing(sqlite3.connect(path)) as db:
            with db, pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
                db.execute(
                    "INSERT INTO jobs (backend, backend_id, status, created, updated)"
                    " VALUES ('dirac', '7', 'running', 0, 0)"
                )
            store.close()
            assert path.read_bytes() == before


def test_a_finished_run_shares_its_id_but_cannot_come_back_beside_an_active_one(
    store: JobStore,
) -> None:
    [first] = store.add_jobs([NewJob("local", "4242", S.SUBMITTED)])
    store.transition(Transition(first, S.SUBMITTED, S.FAILED))
    [second] = store.add_jobs([NewJob("local", "4242", S.SUBMITTED)])  # a resubmit's new run
    revive = Transition(first, S.FAILED, S.SUBMITTED)
    assert store.apply([revive]) == [Outcome.HELD]
    with pytest.raises(DuplicateJob, match=f"local:4242 is already watched, as job {second}"):
        store.transition(revive)
    # Once the holder is over, within the same batch, the first run may come back.
    done = Transition(second, S.SUBMITTED, S.COMPLETED)
    assert store.apply([done, revive]) == [Outcome.APPLIED, Outcome.APPLIED]
    assert store.get(first).status == S.SUBMITTED


def test_a_new_run_supersedes_the_active_holder_of_its_id(store: JobStore) -> None:
    [first] = store.add_jobs([NewJob("local", "4242", S.SUBMITTED)])
    store.transition(Transition(first, S.SUBMITTED, S.RUNNING, "running"))
    [second] = store.add_jobs([NewJob("local", "4242", S.SUBMITTED)], superseding=True)
    assert (store.get(first).status, store.get(second).status) == (S.UNKNOWN, S.SUBMITTED)
    last = store.journal(job=first)[-1]
    assert (last.reason, last.native_status) == ("superseded: a new run under its backend id",
                                                 "running")  # fmt: skip


def test_a_store_of_schema_3_holding_an_id_twice_keeps_the_first_holder(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite"
    with Store(path) as store:
        jobs = store.add_jobs([NewJob("dirac", str(i), S.SUBMITTED) for i in (1, 2)])
    db = sqlite3.connect(path)
    db.execute("DROP INDEX jobs_active_backend_id")
    db.execute(
        "INSERT INTO jobs (backend, backend_id, status, created, updated)"
        " VALUES ('dirac', '1', 'running', 0, 0), ('dirac', '1', 'submitted', 0, 0)"
    )
    db.execute("PRAGMA user_version=3")
    db.commit()
    db.close()
    with Store(path) as store:
        records = store.jobs(backend="dirac")
        assert [(r.backend_id, r.status) for r in records] == [
            ("1", S.SUBMITTED), ("2", S.SUBMITTED), ("1", S.UNKNOWN), ("1", S.UNKNOWN)
        ]  # fmt: skip
        reasons = {store.journal(job=r.id)[-1].reason for r in records[2:]}
        assert reasons == {f"stored twice: job {jobs[0]} holds its backend id"}


def test_a_new_store_whose_wal_file_is_lost_is_still_a_store(tmp_path: Path) -> None:
    # Its schema lived in the WAL: without it, `status` called the file "not a gangamon store".
    path = tmp_path / "jobs.sqlite"
    writer = Store(path)
    (tmp_path / "jobs.sqlite-wal").unlink()
    with Store(path, read_only=True) as reader:
        assert reader.jobs() == []
    writer.close()


def test_a_mistake_in_the_sql_is_not_taken_for_a_refused_write(tmp_path: Path) -> None:
    # Every OperationalError was a StoreUnwritable, which the writer retries for ever: a
    # missing table would have been waited out as a full disk.
    store = Store(tmp_path / "jobs.sqlite")
    [job] = store.add_jobs([NewJob("dirac", "1", S.SUBMITTED)])
    with closing(sqlite3.connect(tmp_path / "jobs.sqlite")) as db, db:
        db.execute("DROP TABLE journal")
    with pytest.raises(sqlite3.OperationalError, match="no such table: journal") as raised:
        store.apply([Transition(job, S.SUBMITTED, S.RUNNING)])
    assert not isinstance(raised.value, StoreError)
    assert store.get(job).status == S.SUBMITTED
    store.close()
