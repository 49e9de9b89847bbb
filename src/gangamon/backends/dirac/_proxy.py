"""Finding and checking the user's X509 proxy, as DIRAC's clients do."""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from pathlib import Path

from cryptography import x509

from .._protocol import BackendUnavailable


def proxy_location(explicit: Path | str | None = None) -> Path:
    """`explicit`, else X509_USER_PROXY, else GRID_PROXY_FILE, else /tmp/x509up_u<uid>."""
    if explicit:
        return Path(explicit)
    for variable in ("X509_USER_PROXY", "GRID_PROXY_FILE"):
        if os.environ.get(variable):
            return Path(os.environ[variable])
    return Path(tempfile.gettempdir()) / f"x509up_u{os.getuid()}"


def check_proxy(path: Path, *, now: dt.datetime | None = None) -> dt.datetime:
    """The proxy's expiry time; `BackendUnavailable` naming the file if it is unusable."""
    try:
        pem = path.read_bytes()
    except FileNotFoundError:
        raise BackendUnavailable(
            f"no DIRAC proxy at {path} (set X509_USER_PROXY or run dirac-proxy-init)"
        ) from None
    except OSError as e:
        raise BackendUnavailable(f"cannot read the DIRAC proxy {path}: {e.strerror}") from None
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise BackendUnavailable(f"{path} holds no PEM certificate: not a proxy") from None
    expiry = cert.not_valid_after_utc
    if expiry <= (now or dt.datetime.now(dt.UTC)):
        raise BackendUnavailable(
            f"the DIRAC proxy {path} expired at {expiry:%Y-%m-%d %H:%M:%S} UTC; renew it"
        )
    return expiry
