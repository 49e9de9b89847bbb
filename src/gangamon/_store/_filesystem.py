"""Which file system a store's path is on, so that SQLite is never opened on a network one.

SQLite's WAL mode keeps its index in shared memory that only processes on one host can share,
and its locks rely on POSIX locking that NFS, AFS, SMB and FUSE file systems give partly or not
at all: a store there can be corrupted by two hosts, or by one. The file system is read from
/proc/self/mountinfo: the mount whose mount point is the longest prefix of the path's real
location.
"""

from __future__ import annotations

from pathlib import Path

from .._errors import StoreError

#: Kernel file-system types that are network or cluster file systems.
NETWORK = frozenset(
    {"nfs", "nfs4", "afs", "openafs", "cifs", "smb3", "smbfs", "ncpfs", "9p", "ceph",
     "glusterfs", "davfs", "coda", "beegfs", "orangefs"}
)  # fmt: skip
#: FUSE subtypes (`fuse.<subtype>`) that reach the network: EOS, sshfs, object stores...
NETWORK_FUSE = frozenset(
    {"eos", "eosxd", "sshfs", "s3fs", "gcsfuse", "rclone", "glusterfs", "ceph-fuse", "davfs2",
     "goofys", "blobfuse", "xrootdfs"}
)  # fmt: skip
MOUNTINFO = Path("/proc/self/mountinfo")


def _unescaped(field: str) -> str:
    """A mountinfo path field, whose spaces, tabs, newlines and backslashes are octal escapes."""
    for escape, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(escape, char)
    return field


def parse_mountinfo(text: str) -> list[tuple[str, str]]:
    """(mount point, file-system type) of each line of a mountinfo file."""
    mounts = []
    for line in text.splitlines():
        fields = line.split(" ")
        if "-" not in fields[6:]:
            continue
        separator = fields.index("-", 6)
        mounts.append((_unescaped(fields[4]), fields[separator + 1]))
    return mounts


def mount_of(path: Path) -> tuple[str, str] | None:
    """(mount point, file-system type) of where `path` is (or would be created), or None if
    the system does not say (no /proc)."""
    real = path.absolute()
    while not real.exists() and real != real.parent:
        real = real.parent
    real = real.resolve()
    try:
        mounts = parse_mountinfo(MOUNTINFO.read_text())
    except OSError:
        return None
    best: tuple[str, str] | None = None
    for point, fstype in mounts:  # later mounts over the same point hide earlier ones
        if real.is_relative_to(point) and (best is None or len(point) >= len(best[0])):
            best = (point, fstype)
    return best


def is_network(fstype: str) -> bool:
    kind, _, subtype = fstype.partition(".")
    return fstype in NETWORK or (kind == "fuse" and subtype in NETWORK_FUSE)


def refuse_network_filesystem(path: Path) -> None:
    """`StoreError` naming the path and its file system if that is a network file system."""
    found = mount_of(path)
    if found is not None and is_network(found[1]):
        point, fstype = found
        raise StoreError(
            path,
            f"on a network file system ({fstype} at {point}), where SQLite's locks and WAL mode"
            " do not hold: put the store on a local disk (e.g. under /tmp or /var), or use"
            ' PostgreSQL (store = "postgresql://...")',
        )
