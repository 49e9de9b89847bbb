"""The command's output where users read it: a real terminal (a pty, read through a terminal
emulator), a pipe, `-h` and every option's help, `config init` and `sim dirac --print-config`."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import click
import msgspec
import pyte
import pytest

from gangamon import MonitorStatistics, Status
from gangamon.backends._kinds import KINDS
from gangamon.cli import main
from gangamon.cli._app import cli
from gangamon.cli._commands import main as _registers_the_commands  # noqa: F401
from gangamon.cli._config import load_config, parse_config
from gangamon.cli._init import template
from gangamon.cli._standalone import Snapshot, statistics_path
from gangamon.cli._view import recent_rows

from .test_view import _health, _store

COMMAND = [sys.executable, "-m", "gangamon"]


def _running_monitor(path: Path) -> None:
    """What `gangamon run` leaves beside a store for `watch` (fresh for 5 s)."""
    health = {"dirac": _health("dirac"), "local": _health("local", polls=False)}
    stats = MonitorStatistics(health, 0, 0, 0, 0, 0, 0)
    statistics_path(path).write_bytes(msgspec.json.encode(Snapshot(time.time(), 1, stats)))


@pytest.fixture
def store(tmp_path: Path) -> list[str]:
    """The command line for a store of six jobs over two backends, and no configuration."""
    path = tmp_path / "jobs.sqlite"
    _store(path).close()
    (tmp_path / "empty.toml").write_text("")
    return [*COMMAND, "--config", str(tmp_path / "empty.toml"), "--store", str(path)]


def _screen_of(command: list[str], *, columns: int, lines: int, until: str) -> pyte.Screen:
    """Run `command` on a pty of that size until its screen shows `until`; then Ctrl-C."""
    screen = pyte.Screen(columns, lines)
    stream = pyte.ByteStream(screen)
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    process = subprocess.Popen(
        command, stdin=follower, stdout=follower, stderr=follower, env={**env, "TERM": "xterm"}
    )
    os.close(follower)
    try:
        deadline = time.monotonic() + 30
        while until not in "\n".join(screen.display):
            assert time.monotonic() < deadline, "\n".join(screen.display)
            ready, _, _ = select.select([leader], [], [], deadline - time.monotonic())
            if ready:
                stream.feed(os.read(leader, 65536))
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()
        os.close(leader)
    return screen


def test_watch_fills_a_real_terminal_and_no_more(store: list[str], tmp_path: Path) -> None:
    _running_monitor(tmp_path / "jobs.sqlite")
    # Until the bottom of the recent changes' table: the last line of a whole frame.
    screen = _screen_of([*store, "watch", "--interval", "0.2"], columns=150, lines=30,
                        until="└──────────┴")  # fmt: skip
    text = "\n".join(screen.display)
    for column in ("backend", "finished", "per min", "ETA", "submitted", "killed", "in flight",
                   "last poll", "interval", "problem"):  # fmt: skip
        assert column in text
    assert "calls/s: over the last 10 s" in text  # what the columns mean
    local = next(line for line in screen.display if line.startswith("│ local") and "ms" in line)
    assert [c.strip() for c in local.split("│")][8] == "-"  # watched, not swept
    # Of the nine changes, as many as fit under the tables; nothing scrolled off the top.
    assert screen.display[0].startswith("gangamon watch")
    assert text.count(" -> ") == recent_rows(30, 2) == 6
    assert screen.display[-1].strip() == ""


def _piped(command: list[str]) -> str:
    env = {**os.environ, "COLUMNS": "80"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    return done.stdout


def test_a_pipe_gets_every_column(store: list[str], tmp_path: Path) -> None:
    # `watch --once | cat` lost the failed and killed columns at 80 columns.
    _running_monitor(tmp_path / "jobs.sqlite")
    once = _piped([*store, "watch", "--once"])
    columns = ["submitted", "running", "completing", "completed", "failed", "killed",
               "in flight", "last poll", "interval", "problem", "backend id", "why"]  # fmt: skip
    for column in columns:
        assert column in once
    assert max(len(line) for line in once.splitlines()) > 80
    counts = _piped([*store, "status"])
    assert all(f" {s} " in counts for s in ("submitted", "running", "completed", "failed"))
    listing = _piped([*store, "status", "--list"]).splitlines()
    assert listing[0].split() == [
        "ID", "BACKEND", "BACKEND_ID", "STATUS", "NATIVE", "EXIT", "UPDATED", "SUBJOBS", "REASON"
    ]  # fmt: skip
    assert len(listing) == 7
    assert "exit 3" in listing[2]


def test_a_long_reason_ends_with_an_ellipsis(store: list[str], tmp_path: Path) -> None:
    from gangamon import Store, Transition

    with Store(tmp_path / "jobs.sqlite") as s:
        s.apply([Transition(3, Status.SUBMITTED, Status.RUNNING, "Running", "x" * 100)])
    [line] = _piped([*store, "status", "3", "--no-header", "--format", "id,reason"]).splitlines()
    assert line.endswith("x" * 58 + "…")
    [whole] = _piped([*store, "status", "3", "--format", "reason", "--delimiter", "|",
                      "--no-header"]).splitlines()  # fmt: skip
    assert whole == "x" * 100


def _commands(group: click.Group, path: str = "gangamon") -> list[tuple[str, click.Command]]:
    found: list[tuple[str, click.Command]] = [(path, group)]
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found += _commands(command, f"{path} {name}")
        else:
            found.append((f"{path} {name}", command))
    return found


@pytest.mark.parametrize(("path", "command"), _commands(cli), ids=lambda v: str(v))
def test_every_command_and_option_has_help(path: str, command: click.Command) -> None:
    assert command.help or command.short_help, path
    for parameter in command.params:
        if isinstance(parameter, click.Option) and parameter.name not in ("help", "version"):
            assert parameter.help, f"{path} {parameter.opts[0]}"


@pytest.mark.parametrize("args", [["-h"], ["status", "-h"], ["sim", "dirac", "-h"]])
def test_h_is_help(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(args)
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith("Usage: gangamon")


def _uncommented(text: str) -> str:
    """The template with every setting and table switched on."""
    lines = []
    for line in text.splitlines():
        body = line.removeprefix("# ")
        lines.append(body if re.match(r"\[backends\.|[a-z_]+ = ", body) else line)
    return "\n".join(lines)


def test_config_init_writes_a_commented_configuration_of_every_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "conf" / "gangamon.toml"
    with pytest.raises(SystemExit) as done:
        main(["--config", str(path), "config", "init"])
    assert done.value.code == 0
    assert capsys.readouterr().out == f"wrote {path}\n"
    assert path.read_text() == template()
    assert list(load_config(path).backends) == ["local"]  # as it is: the defaults
    everything = parse_config(_uncommented(template()))
    assert list(everything.backends) == ["local", "dirac", "slurm"]
    written = set(re.findall(r"^([a-z_]+) = ", _uncommented(template()), flags=re.MULTILINE))
    keys = {"store", "grace", "metrics_port", "type"}
    for kind in KINDS.values():
        keys |= {f.encode_name for f in msgspec.structs.fields(kind.config)}
    assert keys <= written
    with pytest.raises(SystemExit) as done:
        main(["--config", str(path), "config", "init", "--force"])
    assert done.value.code == 0


def test_sim_prints_the_configuration_that_points_at_it(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [*COMMAND, "sim", "dirac", "--jobs", "3", "--port", str(port), "--print-config",
               "--dir", str(tmp_path)]  # fmt: skip
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as sim:
        try:
            assert sim.stdout is not None
            lines = []
            while not (line := sim.stdout.readline()).startswith("output_dir"):
                assert line, "the simulator ended"
                lines.append(line)
            lines.append(line)
        finally:
            sim.send_signal(signal.SIGINT)
    config = parse_config(f'store = "{tmp_path / "s.sqlite"}"\n' + "".join(lines))
    kind, table = config.backends["dirac"]
    assert kind == "dirac"
    assert json.dumps(table.url).strip('"').endswith(f":{port}")  # type: ignore[attr-defined]
    assert Path(table.proxy).is_file()  # type: ignore[attr-defined]


def _completions(words: str) -> list[str]:
    cword = str(len(words.split()) - 1)
    env = {**os.environ, "_GANGAMON_COMPLETE": "bash_complete", "COMP_WORDS": words,
           "COMP_CWORD": cword}  # fmt: skip
    done = subprocess.run(COMMAND, env=env, capture_output=True, text=True, check=True)
    return done.stdout.split()


def test_shell_completion_completes_commands_and_options() -> None:
    assert _completions("gangamon unt") == ["plain,untrack"]
    assert "plain,--timeout" in _completions("gangamon wait --ti")
