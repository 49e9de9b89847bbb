"""Credentials that renew: when a proxy or CA file has changed, and whether a failure was
the TLS layer's.

A proxy is renewed every day or so (voms-proxy-init writes a new file), a CA directory
whenever its package is updated; a monitor that runs for days has to notice both.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path

Fingerprint = tuple[object, ...]


def fingerprint(*paths: Path | None) -> Fingerprint:
    """What changes when any of `paths` (files, or directories and the files in them) is
    written, replaced, added to or removed from: inode, size and modification time."""
    return tuple(_stamp(path) for path in paths)


def _stamp(path: Path | None) -> object:
    if path is None:
        return None
    try:
        own = _stat(path)
        if not path.is_dir():
            return own
        with os.scandir(path) as entries:
            inside = sorted((e.name, _stat(Path(e.path))) for e in entries)
    except OSError:
        return "unreadable"
    return (own, tuple(inside))


def _stat(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def tls_failure(exc: BaseException) -> bool:
    """Whether `exc`, or what caused it, is an SSL error (a certificate refused either way)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def root_message(exc: BaseException) -> str:
    """`exc`'s message, or, where it has none (httpx's ConnectError often), the first
    message among its causes, with that cause's type."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if str(current):
            return str(current) if current is exc else f"{type(current).__name__}: {current}"
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return "no message"
