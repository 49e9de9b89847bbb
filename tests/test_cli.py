"""The command line: a catalogue of bad inputs, each one line on stderr, a nonzero exit, and the
store exactly as it was; then the good paths of track and status."""

from __future__ import annotations

import hashlib
import json
import socket
import sqlite3
from collections.abc import Iterator
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
    with sqlite3.connect(path) as db:
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


def _dirac_only(home: Path, *, expired: bool) -> list[str]:
    """A DIRAC backend alone, its proxy missing or expired: `doctor` fails on it alone."""
    credentials = make_credentials(home / "creds")
    proxy = credentials.expired_proxy if expired else home / "no-proxy.pem"
    text = (
        '[backends.dirac]\nurl = "https://127.0.0.1:9"\n'
        f'proxy = "{proxy}"\nca = "{credentials.ca_file}"\n'
    )
    return _config(home, text)


# (arguments, a fragment the one-line error must contain). `{home}` is the fixture's folder.
BAD_INPUTS: list[tuple[str, str]] = [
    ("track nosuch 1", "unknown backend 'nosuch' (configured: dirac, slurm, local)"),
    ("track dirac abc", "malformed DIRAC job id 'abc'"),
    ("track dirac 12 4.5", "malformed DIRAC job id '4.5'"),
    ("track dirac 0", "malformed DIRAC job id '0'"),
    ("track dirac 300-200", "bad DIRAC id range '300-200'"),
    ("track dirac 1-5000000", "at most 1,000,000 ids"),
    ("track slurm 12x", "malformed Slurm job id '12x'"),
    ("track local {home}/nowhere", "is not a local job directory"),
    ("track dirac", "no job ids given"),
    ("track dirac --file {home}/missing.txt", "cannot read job ids from"),
    ("track dirac --file {home}/ids.txt", "line 2"),
    ("track dirac 5 --status done", "'done' is not one of"),
    ("status --status runing", "'runing' is not one of"),
    ("status --job 999", "unknown job id 999"),
    ("--store {home}/absent.sqlite status", "no such file"),
    ("--store {home} status", "is a directory"),
    ("--store {home}/foreign.sqlite status", "not a gangamon store"),
    ("--store {home}/garbage.sqlite status", "not a gangamon store"),
    ("--config {home}/missing.toml status", "no configuration file at"),
    ("CONFIG:grace = 'soon'\nx status", "grace = 'soon': expected float, got str"),
    ("CONFIG:[backends.dirac]\nurl = 'ftp://x'\nx status", "backends.dirac.url = 'ftp://x'"),
    ("CONFIG:[backends.slurm]\nconcurrency = 0\nx status", "concurrency = 0: expected int >= 1"),
    ("CONFIG:[backends.foo]\nx status", "unknown backend type"),
    ("CONFIG:metrics_port = 70000\nx status", "metrics_port = 70000"),
    ("CONFIG:[backends.x\nx status", "not valid TOML"),
    ("run --metrics-port {port}", "already in use"),
    ("DOCTOR:doctor", "no DIRAC proxy at"),
    ("EXPIRED:doctor", "expired at"),
    ("watch --interval 0", "Invalid value for '--interval'"),
]


@pytest.mark.parametrize(("line", "says"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_is_one_line_and_changes_nothing(
    home: Path, busy_port: int, capsys: pytest.CaptureFixture[str], line: str, says: str
) -> None:
    (home / "ids.txt").write_text("17\n18 x19 # a typo\n")
    (home / "foreign.sqlite").touch()
    with sqlite3.connect(home / "foreign.sqlite") as db:
        db.execute("CREATE TABLE photos (id INTEGER)")
    (home / "garbage.sqlite").write_bytes(b"not a database at all" * 100)
    before = _fingerprint(home / "jobs.sqlite")
    args = ["--config", str(home / "config.toml")]
    if line.startswith("CONFIG:"):
        text, _, line = line.removeprefix("CONFIG:").rpartition("\nx ")
        args = _config(home, text)
    elif line.startswith(("DOCTOR:", "EXPIRED:")):
        kind, _, line = line.partition(":")
        args = _dirac_only(home, expired=kind == "EXPIRED")
    args += line.format(home=home, port=busy_port).split()
    code, out, err = _run(args, capsys)
    assert code != 0
    lines = [x for x in err.splitlines() if x.strip()]
    if args[-1] == "doctor":
        # doctor reports each check on stdout: its failed checks are the error lines.
        assert not lines
        lines = [x for x in out.splitlines() if x.startswith("FAIL")]
    assert len(lines) == 1, err
    assert says in lines[0]
    assert _fingerprint(home / "jobs.sqlite") == before


def test_the_catalogue_is_long_enough() -> None:
    assert len(BAD_INPUTS) >= 20


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
    code, out, _ = _run([*config, "status", "--status", "submitted", "--limit", "2"], capsys)
    assert "... and 5 more" in out
    code, out, _ = _run([*config, "status", "--job", "5", "--json"], capsys)
    job = json.loads(out)
    assert job["job"]["backend_id"] == "20"
    assert [e["new"] for e in job["journal"]] == ["submitted"]
