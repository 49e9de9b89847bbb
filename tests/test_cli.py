"""The command line: a catalogue of bad inputs, each one line on stderr, a nonzero exit, and the
store exactly as it was; then the good paths of track and status."""

from __future__ import annotations

import hashlib
import json
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from gangamon import NewJob, Status, Store
from gangamon.cli import main
from gangamon.sim._certs import make_credentials


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A configuration with every kind of backend, and a store holding three jobs."""
    monkeypatch.delenv("GANGAMON_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    (tmp_path / "config.toml").write_text(
        f'store = "{tmp_path / "jobs.sqlite"}"\n'
        "[backends.dirac]\n"
        'url = "https://127.0.0.1:9"\n'
        f'proxy = "{tmp_path / "no-proxy.pem"}"\n'
        "[backends.slurm]\n"
        "[backends.local]\n"
        f'directory = "{tmp_path / "local"}"\n'
    )
    with Store(tmp_path / "jobs.sqlite") as store:
        store.add_jobs([NewJob("dirac", str(i), Status.SUBMITTED) for i in (11, 12, 13)])
    return tmp_path


def _fingerprint(path: Path) -> str:
    """The store's content (not its bytes: WAL checkpoints may move pages)."""
    with closing(sqlite3.connect(path)) as db, db:
        rows = [db.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in ("jobs", "journal")]
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    code = exit_info.value.code
    return (code if isinstance(code, int) else 0), captured.out, captured.err


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def _config(home: Path, text: str) -> list[str]:
    path = home / "bad.toml"
    path.write_text(f'store = "{home / "jobs.sqlite"}"\n{text}')
    return ["--config", str(path)]


def _dirac_only(home: Path, proxy: str) -> list[str]:
    """A DIRAC backend alone, its proxy file as `proxy` says (missing, expired, empty, a
    directory, garbage): `doctor` fails on it alone."""
    credentials = make_credentials(home / "creds")
    path = {
        "missing": home / "no-proxy.pem",
        "expired": credentials.expired_proxy,
        "empty": home / "empty-proxy.pem",
        "dir": home / "creds",
        "garbage": home / "garbage-proxy.pem",
    }[proxy]
    (home / "empty-proxy.pem").touch()
    (home / "garbage-proxy.pem").write_bytes(b"\x00\xff not a certificate")
    text = (
        '[backends.dirac]\nurl = "https://127.0.0.1:9"\n'
        f'proxy = "{path}"\nca = "{credentials.ca_file}"\n'
    )
    return _config(home, text)


_DIRAC = "[backends.dirac]\nurl = 'https://h:1'\n"
_SLURM = "[backends.slurm]\n"


def _numbers() -> list[tuple[str, str]]:
    """Every number of a configuration: zero, negative, huge, infinite, NaN, of a wrong kind."""
    cases = []
    for table, key, kind, top in [
        (_DIRAC, "poll_interval", "float", "604800.0"),
        (_DIRAC, "call_deadline", "float", "604800.0"),
        (_DIRAC, "ending_interval", "float", "604800.0"),
        (_SLURM, "vanish_grace", "float", "604800.0"),
        ("", "grace", "float", "604800.0"),
        (_SLURM, "concurrency", "int", "1024"),
        (_DIRAC, "finalise_concurrency", "int", "1024"),
        (_SLURM, "chunk_size", "int", "100000"),
    ]:
        low, high = f"expected {kind} > 0.0", f"expected {kind} <= {top}"
        if kind == "float":
            values = [("0", "0", low), ("-5", "-5", low), ("1e300", "1e+300", high),
                      ("inf", "inf", high), ("nan", "nan", low)]  # fmt: skip
        else:
            low = "expected int >= 1"
            values = [("0", "0", low), ("-5", "-5", low), ("10000000000", "10000000000", high),
                      ("2.5", "2.5", "expected int, got float")]  # fmt: skip
        for written, shown, says in values:
            cases.append((f"CONFIG:{table}{key} = {written}\nx status", f"{key} = {shown}: {says}"))
    return cases


def _urls() -> list[tuple[str, str]]:
    bad = [
        "ftp://x",
        "https://[::1",
        "https://h:99999",
        "https://h:0",
        "https://h:x",
        "https://user@h:1",
        "https://h:1/WorkloadManagement",
        "https://h:1?x=1",
        "https://h:1#top",
        "https://h :1",
        "https://h:1\t",
        "dips://h:9170",  # DIRAC's client only
        "//h:1",
        "",
    ]
    cases = [
        (f"CONFIG:[backends.dirac]\nurl = '{u}'\nx status", "backends.dirac.url = ") for u in bad
    ]
    cases.append(('CONFIG:[backends.dirac]\nurl = "https://h\\u0001:1"\nx status', "\\x01"))
    cases.append(
        (
            "CONFIG:[backends.dirac]\nurl = 'http://h:1'\ntransport = 'client'\nx status",
            "expected https or dips://host:port for transport 'client'",
        )
    )
    return cases


# (arguments, a fragment the one-line error must contain). `{home}` is the fixture's folder.
BAD_INPUTS: list[tuple[str, str]] = [
    ("track nosuch 1", "unknown backend 'nosuch' (configured: dirac, slurm, local)"),
    ("track \x01dirac 1", "unknown backend '\\x01dirac'"),
    ("track dirac abc", "malformed DIRAC job id 'abc'"),
    ("track dirac 12 4.5", "malformed DIRAC job id '4.5'"),
    ("track dirac 0", "malformed DIRAC job id '0'"),
    ("track dirac 300-200", "bad DIRAC id range '300-200'"),
    ("track dirac 1-5000000", "at most 1,000,000 ids"),
    ("track dirac \u0661\u0662\u0663", "malformed DIRAC job id '\u0661\u0662\u0663'"),
    ("track dirac 5-\u0667", "malformed DIRAC job id '5-\u0667'"),
    ("track dirac \uff11\uff12", "malformed DIRAC job id"),  # fullwidth digits
    ("track dirac 12\x00", "malformed DIRAC job id '12\\x00'"),
    ("track slurm 12x", "malformed Slurm job id '12x'"),
    ("track slurm \u0661\u0662_3", "malformed Slurm job id"),
    ("track local {home}/nowhere", "is not a local job directory"),
    ("track dirac", "no job ids given"),
    ("track dirac 5 --check", "no DIRAC proxy at"),
    ("track dirac --file {home}/missing.txt", "cannot read job ids from"),
    ("track dirac --file {home}/ids.txt", "line 2"),
    ("track dirac --file {home}", "is a directory"),
    ("track dirac 5 --status done", "'done' is not one of"),
    ("status --status runing", "'runing' is not one of"),
    ("status --job 999", "unknown job id 999"),
    ("status --job -3", "malformed job '-3': a store id (17) or backend:id (dirac:1536)"),
    ("status --job dirac:99", "no job dirac:99 in the store"),
    ("status --job dirac:x", "malformed DIRAC job id 'x'"),
    ("status --job nosuch:1", "unknown backend 'nosuch' in 'nosuch:1'"),
    ("status --job \u0661", "malformed job '\u0661'"),
    ("status --job 1-2", "--job names one job; '1-2' names 2"),
    ("status --backend nosuch", "unknown backend 'nosuch'"),
    ("status --list --format id,colour", "unknown column 'colour'"),
    ("status --list --format ,", "no columns given"),
    ("status --list --delimiter=", "'--delimiter': must not be empty"),
    ("status --list --limit -1", "Invalid value for '--limit'"),
    ("status 999", "unknown job id 999"),
    ("status 3-1", "bad store id range '3-1'"),
    ("kill 999", "unknown job id 999"),
    ("kill", "Missing argument 'JOBS...'"),
    ("kill dirac:11", "no DIRAC proxy at"),
    ("kill 1 2-5", "unknown job id 4"),
    ("untrack 0", "malformed job '0'"),
    ("untrack dirac:1-2", "no job dirac:1 in the store"),
    ("wait 999", "unknown job id 999"),
    ("wait 1 --timeout -1", "Invalid value for '--timeout'"),
    ("wait 1 --timeout inf", "Invalid value for '--timeout'"),
    ("wait 1 --interval 0", "Invalid value for '--interval'"),
    ("submit nosuch -- true", "unknown backend 'nosuch'"),
    ("submit local", "Missing argument 'COMMAND...'"),
    ("submit slurm -- true", "backend 'slurm' cannot launch jobs"),
    ("--log-file {home} status", "Invalid value for '--log-file'"),
    ("--log-file {home}/nowhere/log status", "cannot write the log file"),
    ("config init", "exists already (--force replaces it)"),
    ("--store {home}/absent.sqlite status", "no such file"),
    ("--store {home} status", "is a directory"),
    ("--store {home}/foreign.sqlite status", "not a gangamon store"),
    ("--store {home}/garbage.sqlite status", "not a gangamon store"),
    ("--store {home}/empty.sqlite status", "empty: not a gangamon store yet"),
    ("--store {home}/device.sqlite status", "not a regular file"),
    ("CONFIG:[backends.local]\nx --store {home}/empty.sqlite doctor", "empty: not a gangamon"),
    ("--store {home}/foreign.sqlite track dirac 5", "not a gangamon store"),
    ("--config {home}/missing.toml status", "no configuration file at"),
    ("--config {home} status", "is a directory"),
    ("CONFIG:grace = 'soon'\nx status", "grace = 'soon': expected float, got str"),
    ("CONFIG:[backends.foo]\nx status", "unknown backend type"),
    ('CONFIG:[backends.d]\ntype = "dirac\\n"\nx status', "backends.d.type = 'dirac\\n': unknown"),
    ('CONFIG:[backends."di\\nrac"]\nx status', "backends.'di\\nrac': backend names are"),
    ('CONFIG:[backends."x y"]\nx status', "backends.'x y': backend names are"),
    ("CONFIG:[backends.slurm]\nnoise = 1\nx status", "backends.slurm.noise = 1: unknown key"),
    ("CONFIG:[backends.dirac]\nx status", "backends.dirac.url: missing"),
    (
        "CONFIG:[backends.dirac]\nurl = 'https://h:1'\ntransport = 'diracx'\nx status",
        "transport 'diracx' cannot download output sandboxes yet",
    ),
    ("CONFIG:[backends.dirac]\nurl = 'https://h:1'\nowners = ['a b']\nx status", "owners"),
    ("CONFIG:[backends.dirac]\nurl = 'https://h:1'\nfull_sweep = 0\nx status", "full_sweep"),
    ("CONFIG:backends = 3\nx status", "backends = 3"),
    ("CONFIG:metrics_port = 70000\nx status", "metrics_port = 70000"),
    ("CONFIG:metrics_port = 0\nx status", "metrics_port = 0"),
    ("CONFIG:[backends.x\nx status", "not valid TOML"),
    ("run --metrics-port {port}", "already in use"),
    ("CONFIG:metrics_address = 'a_b'\nx status", "metrics_address = 'a_b': expected an IP"),
    ("CONFIG:metrics_address = '127.1'\nx status", "metrics_address = '127.1': expected an IP"),
    ("CONFIG:metrics_address = 9100\nx status", "metrics_address = 9100: expected str, got int"),
    ("CONFIG:metrics_address = 'localhost:9100'\nx status", "the port goes in metrics_port"),
    ("CONFIG:metrics_address = ''\nx status", "metrics_address = '': expected an IP"),
    ("run --metrics-address a_b --metrics-port 9100", "'--metrics-address': 'a_b': expected"),
    ("run --metrics-address 127.0.0.1:9100", "the port goes in metrics_port"),
    ("run --metrics-address ::1", "--metrics-address needs a port"),
    ("run --metrics-address 192.0.2.1 --metrics-port 9100", "cannot serve metrics on 192.0.2.1"),
    ("PROXY:missing:doctor", "no DIRAC proxy at"),
    ("PROXY:expired:doctor", "expired at"),
    ("PROXY:empty:doctor", "holds no PEM certificate"),
    ("PROXY:garbage:doctor", "holds no PEM certificate"),
    ("PROXY:dir:doctor", "cannot read the DIRAC proxy"),
    ("watch --interval 0", "Invalid value for '--interval'"),
    ("fetch-output 999", "unknown job id 999"),
    ("fetch-output 0", "malformed job '0'"),
    ("fetch-output 1", "no DIRAC proxy at"),
    ("--store {home}/absent.sqlite fetch-output 1", "no such file"),
    *_numbers(),
    *_urls(),
]


def _files(home: Path) -> dict[str, bytes]:
    """Every file under `home` (the store's WAL and shared memory aside: SQLite's own; and its
    lock file, made by the first `run` and kept: removing it would race with the next)."""
    return {
        str(p): p.read_bytes()
        for p in sorted(home.rglob("*"))
        if p.is_file() and not p.name.endswith(("-wal", "-shm", ".sqlite.lock"))
    }


@pytest.mark.parametrize(("line", "says"), BAD_INPUTS, ids=[repr(b[0]) for b in BAD_INPUTS])
def test_bad_input_is_one_line_and_changes_nothing(
    home: Path, busy_port: int, capsys: pytest.CaptureFixture[str], line: str, says: str
) -> None:
    (home / "ids.txt").write_text("17\n18 x19 # a typo\n")
    (home / "foreign.sqlite").touch()
    with closing(sqlite3.connect(home / "foreign.sqlite")) as db, db:
        db.execute("CREATE TABLE photos (id INTEGER)")
    (home / "garbage.sqlite").write_bytes(b"not a database at all" * 100)
    (home / "empty.sqlite").touch()
    (home / "device.sqlite").symlink_to("/dev/null")
    store = _fingerprint(home / "jobs.sqlite")
    args = ["--config", str(home / "config.toml")]
    if line.startswith("CONFIG:"):
        text, _, line = line.removeprefix("CONFIG:").rpartition("\nx ")
        args = _config(home, text)
    elif line.startswith("PROXY:"):
        _, proxy, line = line.split(":", 2)
        args = _dirac_only(home, proxy)
    args += line.format(home=home, port=busy_port).split(" ")
    files = _files(home)
    code, out, err = _run(args, capsys)
    assert code in (1, 2)  # 2: a malformed command line, as click says it
    lines = [x for x in err.splitlines() if x.strip()]
    if args[-1] == "doctor" and not lines:
        # doctor reports each check on stdout: its failed checks are the error lines.
        lines = [x for x in out.splitlines() if x.startswith("FAIL")]
    assert len(lines) == 1, err
    assert says in lines[0]
    assert "Traceback" not in err
    assert _fingerprint(home / "jobs.sqlite") == store
    assert _files(home) == files  # nothing written, created or left beside


def test_the_catalogue_is_long_enough() -> None:
    assert len(BAD_INPUTS) >= 60


def test_track_then_status(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = ["--config", str(home / "config.toml")]
    (home / "more.txt").write_text("# from the grid\n20-22, 13\n")
    code, out, _ = _run(
        [*config, "track", "dirac", "12", "14", "--file", str(home / "more.txt")], capsys
    )
    assert code == 0
    assert out.strip() == "tracked 4 dirac jobs (store ids 4-7); 2 were already tracked"
    code, out, _ = _run([*config, "status", "--json"], capsys)
    assert json.loads(out)["counts"] == {"dirac": {"submitted": 7}}
    code, out, err = _run([*config, "status", "--status", "submitted", "--limit", "2"], capsys)
    header, *listed = out.splitlines()
    assert header.split() == ["ID", "BACKEND", "BACKEND_ID", "STATUS", "NATIVE", "EXIT",
                              "UPDATED", "SUBJOBS", "REASON"]  # fmt: skip
    assert [line.split()[:4] for line in listed] == [
        ["1", "dirac", "11", "submitted"],
        ["2", "dirac", "12", "submitted"],
    ]
    assert err.strip() == "... and 5 more (--limit N, or --limit 0 for all)"
    code, out, _ = _run([*config, "status"], capsys)
    assert out.splitlines()[-1] == "monitor: none runs on this store"
    code, out, _ = _run([*config, "status", "--job", "5", "--json"], capsys)
    job = json.loads(out)
    assert job["job"]["backend_id"] == "20"
    assert [e["new"] for e in job["journal"]] == ["submitted"]


def test_parallel_tracks_of_overlapping_ranges_store_each_id_once(home: Path) -> None:
    # Ten `gangamon track` at once, ranges overlapping: 600 of 3000 ids were stored twice
    # (each read what was tracked, then added the rest, outside the write transaction).
    config = ["--config", str(home / "config.toml")]
    runs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gangamon",
                *config,
                "track",
                "dirac",
                f"{start}-{start + 19999}",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for start in range(100, 100 + 10 * 8000, 8000)
    ]
    for run in runs:
        _, err = run.communicate(timeout=120)
        assert run.returncode == 0, err
    with Store(home / "jobs.sqlite") as store:
        ids = [j.backend_id for j in store.jobs(backend="dirac")]
    assert len(ids) == len(set(ids)) == 3 + 72_100 + 19_999 - 100 + 1


@pytest.fixture
def read_only_view(home: Path) -> Iterator[Path]:
    """`home` seen through a read-only bind mount (root only: a mode bit does not stop root)."""
    view = home.with_name(home.name + "-read-only")
    view.mkdir()
    mounts = [
        ["mount", "--bind", str(home), str(view)],
        ["mount", "-o", "remount,bind,ro", str(view)],
    ]
    for command in mounts:
        if subprocess.run(command, capture_output=True).returncode != 0:
            subprocess.run(["umount", str(view)], capture_output=True)
            pytest.skip(f"cannot make a read-only mount here: {' '.join(command)} failed")
    try:
        yield view
    finally:
        subprocess.run(["umount", str(view)], check=True)


@pytest.mark.parametrize(
    "line",
    [
        "--store {view}/jobs.sqlite track dirac 5",
        "--store {view}/new.sqlite track dirac 5",
        "--store {view}/jobs.sqlite run",
        "--store {view}/jobs.sqlite fetch-output 1",
    ],
)
def test_a_read_only_file_system_is_one_line_naming_it(
    home: Path, read_only_view: Path, capsys: pytest.CaptureFixture[str], line: str
) -> None:
    # SQLite says "unable to open database file", which `run` called "not a gangamon store".
    args = ["--config", str(home / "config.toml"), *line.format(view=read_only_view).split()]
    files = _files(home)
    code, _, err = _run(args, capsys)
    assert code == 1
    assert err.splitlines() == [
        f"gangamon: error: job store '{read_only_view / args[3].rpartition('/')[2]}': cannot "
        f"open: unable to open database file (read-only file system at '{read_only_view}')"
    ]
    assert _files(home) == files


def test_reading_commands_work_on_a_read_only_file_system(
    home: Path, read_only_view: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = ["--config", str(home / "config.toml"), "--store", str(read_only_view / "jobs.sqlite")]
    code, out, _ = _run([*store, "status", "--json"], capsys)
    assert code == 0
    assert json.loads(out)["counts"] == {"dirac": {"submitted": 3}}
