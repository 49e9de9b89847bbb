"""What only the PostgreSQL store does: its URL, its server's refusals, its schema, its write
lock, a lost connection. The semantics it shares with SQLite are tested in test_store.py."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from gangamon import DuplicateJob, NewJob, Outcome, Status, StoreError, Transition
from gangamon._errors import StoreMissing, StoreUnwritable
from gangamon._store import open_store, redacted
from gangamon._store._postgres import SCHEMA_VERSION, PostgresStore

from .stores import fresh_schema, server_url

S = Status


@pytest.fixture
def url() -> Iterator[str]:
    with fresh_schema() as where:
        yield where


def _with(url: str, **changes: object) -> str:
    """`url` with parts of its netloc changed: password, port."""
    parts = urlsplit(url)
    user = parts.username or ""
    password = changes.get("password", parts.password)
    port = changes.get("port", parts.port)
    netloc = f"{user}:{password}@{parts.hostname}:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:secret@db.example:5432/jobs", "postgresql://u@db.example:5432/jobs"),
        ("postgresql://u@h/jobs?password=secret&sslmode=require",
         "postgresql://u@h/jobs?sslmode=require"),
        ("postgres://h/jobs", "postgres://h/jobs"),
    ],
)  # fmt: skip
def test_a_url_is_shown_without_its_password(url: str, shown: str) -> None:
    assert redacted(url) == shown


def _refusal(url: str) -> str:
    with pytest.raises(StoreError) as raised:
        open_store(url)
    message = str(raised.value)
    assert "\n" not in message
    return message


def test_a_refused_connection_is_one_line_naming_the_url_without_its_password() -> None:
    # A port nobody listens on: bind one, close it, and connect there.
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql://gangamon:hunter2@127.0.0.1:{port}/gangamon"
    message = _refusal(url)
    assert message.startswith(f"job store 'postgresql://gangamon@127.0.0.1:{port}/gangamon'")
    assert "cannot connect" in message
    assert "refused" in message.lower()
    assert "hunter2" not in message


def test_a_wrong_password_is_one_line_without_the_password(url: str) -> None:
    message = _refusal(_with(url, password="not-the-password"))
    assert "password authentication failed" in message
    assert "not-the-password" not in message


def test_a_wrong_url_names_it() -> None:
    message = _refusal("postgresql://u:pw@127.0.0.1:notaport/db")
    assert message.startswith("job store 'postgresql://u@127.0.0.1:notaport/db': cannot connect")
    assert "pw@" not in message


def test_without_psycopg_the_url_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Fault injection: psycopg not installed (None in sys.modules makes its import fail).
    monkeypatch.setitem(sys.modules, "psycopg", None)
    monkeypatch.delitem(sys.modules, "gangamon._store._postgres")
    message = _refusal("postgresql://u:pw@127.0.0.1/db")
    assert message == (
        "job store 'postgresql://u@127.0.0.1/db': PostgreSQL needs psycopg 3:"
        " pip install 'gangamon[postgresql]'"
    )


def test_a_schema_holding_other_tables_is_refused_untouched(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as db:
        db.execute("CREATE TABLE photos (id integer)")
    with pytest.raises(StoreError, match=r"not a gangamon store \(1 tables of something else"):
        open_store(url)
    with psycopg.connect(url, autocommit=True) as db:
        tables = db.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
        assert tables.fetchall() == [("photos",)]


def test_a_newer_schema_is_refused(url: str) -> None:
    open_store(url).close()
    with psycopg.connect(url, autocommit=True) as db:
        db.execute("UPDATE gangamon_store SET schema_version = schema_version + 1")
    with pytest.raises(StoreError, match=f"newer gangamon \\(schema {SCHEMA_VERSION + 1}"):
        open_store(url)


def test_read_only_creates_nothing_and_writes_nothing(url: str) -> None:
    with pytest.raises(StoreMissing, match=r"no gangamon tables yet \(gangamon track or"):
        open_store(url, read_only=True)
    with psycopg.connect(url, autocommit=True) as db:
        count = db.execute("SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()")
        assert count.fetchone() == (0,)
    with open_store(url) as writer:
        writer.add_jobs([NewJob("dirac", "1", S.SUBMITTED)])
    with open_store(url, read_only=True) as reader:
        assert [j.backend_id for j in reader.jobs()] == ["1"]
        with pytest.raises(StoreError, match="opened read only"):
            reader.add_jobs([NewJob("dirac", "2", S.SUBMITTED)])
        assert len(reader.jobs()) == 1


def test_the_database_itself_holds_an_active_backend_id_once(url: str) -> None:
    with open_store(url) as store:
        [held] = store.add_jobs([NewJob("dirac", "7", S.SUBMITTED)])
        with pytest.raises(DuplicateJob, match=f"dirac:7 is already watched, as job {held}"):
            store.add_jobs([NewJob("dirac", "8", S.SUBMITTED), NewJob("dirac", "7", S.RUNNING)])
        assert [j.backend_id for j in store.jobs()] == ["7"]
    with psycopg.connect(url, autocommit=True) as db, pytest.raises(psycopg.errors.UniqueViolation):
        db.execute(
            "INSERT INTO jobs (id, backend, backend_id, status, created, updated)"
            " VALUES (99, 'dirac', '7', 'running', 0, 0)"
        )


def test_writers_on_two_connections_take_turns(url: str) -> None:
    # Without the write lock, both would see "never held" and store the same ids twice, and
    # their journal rows could interleave.
    stores = [open_store(url), open_store(url)]
    results: list[tuple[list[int], int]] = []
    ids = [NewJob("dirac", str(i), S.SUBMITTED) for i in range(300)]

    def add(store: object) -> None:
        assert isinstance(store, PostgresStore)
        results.append(store.add_new_jobs(ids))

    threads = [threading.Thread(target=add, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(len(added) for added, _ in results) == [0, 300]
    entries = stores[0].journal()
    assert [e.seq for e in entries] == list(range(1, 301))
    for store in stores:
        store.close()


def test_a_lost_connection_is_unwritable_for_now_then_reconnected(url: str) -> None:
    with open_store(url) as store:
        assert isinstance(store, PostgresStore)
        [job] = store.add_jobs([NewJob("dirac", "1", S.SUBMITTED)])
        pid = store._db.info.backend_pid
        with psycopg.connect(server_url(), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        move = Transition(job, S.SUBMITTED, S.RUNNING)
        with pytest.raises(StoreUnwritable, match="cannot write"):
            store.apply([move])
        assert store.apply([move]) == [Outcome.APPLIED]
        assert store.get(job).status == S.RUNNING


def test_interrupt_rolls_back_a_write_waiting_for_the_lock(url: str) -> None:
    with open_store(url) as store, open_store(url) as other:
        assert isinstance(store, PostgresStore)
        assert isinstance(other, PostgresStore)
        [job] = store.add_jobs([NewJob("dirac", "1", S.SUBMITTED)])
        failures: list[BaseException] = []

        def write() -> None:
            try:
                store.apply([Transition(job, S.SUBMITTED, S.RUNNING)])
            except BaseException as e:
                failures.append(e)

        with other._transaction():  # holds the write lock
            thread = threading.Thread(target=write)
            thread.start()
            with psycopg.connect(server_url(), autocommit=True) as admin:
                waiting = None
                while waiting is None:  # until the server says it waits for the lock
                    waiting = admin.execute(
                        "SELECT 1 FROM pg_stat_activity WHERE pid = %s AND wait_event_type"
                        " = 'Lock'",
                        (store._db.info.backend_pid,),
                    ).fetchone()
            store.interrupt()
            thread.join()
        assert [type(e) for e in failures] == [psycopg.errors.QueryCanceled]
        assert store.get(job).status == S.SUBMITTED


def test_a_silent_server_is_noticed_unless_the_url_says_otherwise(url: str) -> None:
    # Without keepalives a call blocked on a cut network waits for TCP's own timeout
    # (minutes): the writer's retries and a bounded stop would wait with it.
    for given, idle in ((url, "10"), (f"{url}&keepalives_idle=3", "3")):
        with open_store(given) as store:
            assert isinstance(store, PostgresStore)
            parameters = store._db.info.get_parameters()
            assert (parameters["keepalives_idle"], parameters["tcp_user_timeout"]) == (
                idle,
                "30000",
            )
