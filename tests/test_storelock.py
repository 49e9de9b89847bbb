"""One monitor per store: the lock beside it, its holder named, a dead holder's lock gone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
import trio

from gangamon import Store
from gangamon._storelock import StoreBusy, holder, holding, lock_path
from gangamon.cli._standalone import serve, statistics_path

from .test_standalone import local_run

HOLD = """
import sys
from pathlib import Path
from gangamon._storelock import holding
with holding(Path(sys.argv[1])):
    print("held", flush=True)
    sys.stdin.read()
"""


def test_a_second_holder_is_refused_naming_the_first(tmp_path: Path) -> None:
    store = tmp_path / "jobs.sqlite"
    Store(store).close()
    assert holder(store) is None
    with holding(store):
        found = holder(store)
        assert found is not None
        assert found.pid == os.getpid()
        busy = rf"another monitor runs on it \(pid {os.getpid()} on "
        with pytest.raises(StoreBusy, match=busy), holding(store):
            pass
        # Through a symlink, the same store: the same lock.
        (tmp_path / "alias.sqlite").symlink_to(store)
        with pytest.raises(StoreBusy), holding(tmp_path / "alias.sqlite"):
            pass
    assert holder(store) is None


def test_a_killed_holder_never_blocks_the_next_monitor(tmp_path: Path) -> None:
    store = tmp_path / "jobs.sqlite"
    Store(store).close()
    with subprocess.Popen(
        [sys.executable, "-c", HOLD, str(store)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    ) as child:
        assert child.stdout is not None
        assert child.stdout.readline() == b"held\n"
        found = holder(store)
        assert found is not None
        assert found.pid == child.pid
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert holder(store) is None
    with holding(store):
        pass


def test_reading_who_holds_a_store_creates_nothing(tmp_path: Path) -> None:
    store = tmp_path / "jobs.sqlite"
    Store(store).close()
    before = sorted(p.name for p in tmp_path.iterdir())
    assert holder(store) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert not lock_path(store).exists()


async def test_a_second_run_on_the_store_stops_at_once_and_leaves_the_first_alone(
    tmp_path: Path,
) -> None:
    store_path = tmp_path / "jobs.sqlite"
    config = local_run(store_path, tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(serve, config))
        with pytest.raises(StoreBusy, match=rf"pid {os.getpid()} on .* since "):
            await serve(config)
        assert statistics_path(store_path).exists()  # the first one's, not removed
        nursery.cancel_scope.cancel()
