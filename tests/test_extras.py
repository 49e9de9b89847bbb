"""The library without its extras: every module but the command's imports with the extras'
packages blocked, and what needs a missing extra says in one line what to install."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
import trio

import gangamon
from gangamon.backends import AsyncioBackend, BackendUnavailable, JobRef, Update

SRC = Path(gangamon.__file__).parent.parent
# The packages only the extras bring: cli (click, rich, prometheus_client), asyncio and
# postgresql (psycopg).
EXTRAS_ONLY = ("click", "rich", "prometheus_client", "trio_asyncio", "psycopg")
#: The PostgreSQL store's own modules: imported only for a postgresql:// store, which needs
#: its extra (open_store says so in one line).
POSTGRESQL_ONLY = ("gangamon._pglock", "gangamon._store._postgres")

# Run first in the child: imports of the blocked packages fail as if they were not installed.
BLOCKER = """
import importlib.abc, sys

class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, Blocker())
"""


def library_modules() -> list[str]:
    """Every module of the package except the command's own (gangamon.cli's and __main__) and
    the PostgreSQL store's."""
    names = []
    for path in sorted((SRC / "gangamon").rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if (
            not name.startswith("gangamon.cli.")
            and name != "gangamon.__main__"
            and name not in POSTGRESQL_ONLY
        ):
            names.append(name)
    return names


def run_blocked(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    script = BLOCKER.format(blocked=set(EXTRAS_ONLY)) + code
    return subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=120
    )


def test_the_library_imports_without_the_extras() -> None:
    modules = library_modules()
    assert {"gangamon.embed", "gangamon.ganga", "gangamon.backends.dirac._proxy"} <= set(modules)
    assert "gangamon.cli._commands" not in modules
    imported = run_blocked(
        "import importlib, json\n"
        "for name in sys.argv[1:]:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted({m.partition('.')[0] for m in sys.modules})))\n",
        *modules,
    )
    assert imported.returncode == 0, imported.stderr
    loaded = set(json.loads(imported.stdout))
    assert "gangamon" in loaded
    assert loaded.isdisjoint(EXTRAS_ONLY)


def test_the_blocker_blocks() -> None:
    found = run_blocked("import gangamon.cli._commands\n")
    assert found.returncode == 1
    assert "ModuleNotFoundError: No module named 'click'" in found.stderr


def test_the_command_without_the_cli_extra_says_what_to_install() -> None:
    ran = run_blocked("import runpy\nrunpy.run_module('gangamon', run_name='__main__')\n")
    assert ran.returncode == 1
    assert ran.stdout == ""
    assert ran.stderr == (
        "gangamon: the command needs the cli extra: pip install 'gangamon[cli]'\n"
    )


async def test_an_asyncio_backend_without_trio_asyncio_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def poll(jobs: Sequence[JobRef]) -> Sequence[Update]:
        raise AssertionError("never polled")

    # None in sys.modules: `import trio_asyncio` fails as if it were not installed.
    monkeypatch.setitem(sys.modules, "trio_asyncio", None)
    backend = AsyncioBackend("aio", poll)
    with pytest.raises(BackendUnavailable) as raised:
        async with backend.lifespan():
            await trio.lowlevel.checkpoint()
    assert str(raised.value) == (
        "backend 'aio' (asyncio code) needs the asyncio extra: pip install 'gangamon[asyncio]'"
    )
