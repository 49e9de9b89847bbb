"""SQLite is refused on a network file system, at open, in one line naming the path, the file
system and what to do instead; a local path passes. Network mounts are faked (the lookup is
the fault injected); the local check is real."""

from __future__ import annotations

from pathlib import Path

import pytest

from gangamon import Store, StoreError
from gangamon._store import _filesystem
from gangamon._store._filesystem import is_network, mount_of, parse_mountinfo

MOUNTINFO = (
    "22 27 0:21 / /proc rw,relatime - proc proc rw\n"
    "27 1 252:1 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
    "40 27 0:35 / /home rw,relatime shared:9 master:2 - nfs4 fs:/export/home rw,vers=4.2\n"
    "41 40 0:36 / /home/my\\040jobs rw - fuse.eosxd eosxd rw\n"
)


def test_mountinfo_lines_give_mount_points_and_types() -> None:
    assert parse_mountinfo(MOUNTINFO) == [
        ("/proc", "proc"), ("/", "ext4"), ("/home", "nfs4"), ("/home/my jobs", "fuse.eosxd"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("fstype", "network"),
    [("nfs", True), ("nfs4", True), ("afs", True), ("cifs", True), ("smb3", True),
     ("fuse.eosxd", True), ("fuse.sshfs", True), ("ext4", False), ("xfs", False),
     ("tmpfs", False), ("overlay", False), ("fuse.fuse-overlayfs", False), ("fuseblk", False)],
)  # fmt: skip
def test_network_file_systems_are_told_from_local_ones(fstype: str, network: bool) -> None:
    assert is_network(fstype) is network


@pytest.mark.parametrize(
    ("inside", "mount"),
    [("home/alice/jobs.sqlite", "home (nfs4)"),
     ("home/my jobs/new/dir/jobs.sqlite", "home/my jobs (fuse.eosxd)")],
)  # fmt: skip
def test_a_store_on_a_network_mount_is_refused_naming_path_and_file_system(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, inside: str, mount: str
) -> None:
    # The mount points exist (as they do on a real system); only the table saying what is
    # mounted on them is faked.
    root = tmp_path / "root"
    (root / "home" / "my jobs").mkdir(parents=True)
    fake = tmp_path / "mountinfo"
    fake.write_text(MOUNTINFO.replace(" /home", f" {root}/home"))
    monkeypatch.setattr(_filesystem, "MOUNTINFO", fake)
    path = root / inside
    at, fstype = mount.removesuffix(")").split(" (")
    for read_only in (False, True):
        with pytest.raises(StoreError) as raised:
            Store(path, read_only=read_only)
        message = str(raised.value)
        assert message.startswith(
            f"job store '{path}': on a network file system ({fstype} at {root / at})"
        )
        assert "local disk" in message
        assert "postgresql://" in message
        assert "\n" not in message
    assert not path.exists()


def test_a_local_tmp_path_is_local_and_opens(tmp_path: Path) -> None:
    found = mount_of(tmp_path / "jobs.sqlite")
    assert found is not None
    assert not is_network(found[1])
    Store(tmp_path / "jobs.sqlite").close()
    assert (tmp_path / "jobs.sqlite").exists()


def test_without_proc_nothing_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_filesystem, "MOUNTINFO", tmp_path / "no-proc" / "mountinfo")
    assert mount_of(tmp_path) is None
    Store(tmp_path / "jobs.sqlite").close()
