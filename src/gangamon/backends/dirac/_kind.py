"""DIRAC as a configured backend kind: its table, how it is built, how `doctor` probes it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

import msgspec

from ..._errors import GangamonError
from .._kind import HOME, BackendKind, BadSetting, Finding, Polling, Seconds
from .._protocol import BackendError
from ._backend import DIRAC_SETTINGS, DiracBackend
from ._client import DiracClientTransport
from ._diracx import PER_PAGE, DiracX
from ._https import DiracHttps
from ._proxy import check_proxy, proxy_location

_GRID_CA = Path("/etc/grid-security/certificates")


#: A DIRAC user name, as its registry has them.
UserName = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")]


class DiracConfig(Polling, frozen=True, kw_only=True):
    #: DIRAC's Tornado HTTPS address (scheme, host, port), or dips:// with transport "client";
    #: DiracX's address with transport "diracx".
    url: str
    #: "https": gangamon's own client; "client": DIRAC's Python client, if installed;
    #: "diracx": DiracX's job search, with the token of `dirac login`.
    transport: Literal["https", "client", "diracx"] = "https"
    #: DiracX's credentials file. Default: $DIRACX_CREDENTIALS_PATH, else
    #: ~/.cache/diracx/credentials.json.
    diracx_credentials: str | None = None
    #: Default: $X509_USER_PROXY, else /tmp/x509up_u<uid>.
    proxy: str | None = None
    #: CA file or directory. Default: $X509_CERT_DIR, else /etc/grid-security/certificates.
    ca: str | None = None
    output_dir: str = str(HOME / "dirac-output")
    download_output: bool = True
    #: Seconds a job may be left out of DIRAC's answers before it is declared unknown.
    vanish_grace: Seconds = 600.0
    #: Between full sweeps, poll only the jobs DIRAC's getJobs says have changed.
    deltas: bool = True
    #: Whose jobs getJobs is asked about (DIRAC user names). Default: the owner of a tracked job.
    owners: (
        list[Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[\w.@-]+$")]]
        | None
    ) = None
    #: Seconds every job is polled at least once in (the backstop of the deltas).
    full_sweep: Seconds | None = None
    #: Seconds before the last sweep's start that getJobs is asked from: for late commits and
    #: a clock that is a little off.
    delta_margin: Seconds = 10.0


_HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,252})|\[[0-9A-Fa-f:.]{2,45}\]")


def _check(config: DiracConfig) -> None:
    allowed = ("https", "dips") if config.transport == "client" else ("https", "http")
    if config.transport == "diracx" and config.download_output:
        raise BadSetting(
            "download_output",
            True,
            "transport 'diracx' cannot download output sandboxes yet: set it to false",
        )
    expected = f"expected {' or '.join(allowed)}://host:port for transport {config.transport!r}"
    try:
        parts = urlsplit(config.url)
        port = parts.port  # ValueError when out of range or not a number
    except ValueError:
        raise BadSetting("url", config.url, expected) from None
    host = parts.netloc.rsplit(":", 1)[0] if port else parts.netloc
    if (
        not config.url.isprintable()  # urlsplit drops tabs and newlines without a word
        or " " in config.url
        or parts.scheme not in allowed
        or not _HOST.fullmatch(host)
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or port == 0
    ):
        raise BadSetting("url", config.url, expected)


def _build(name: str, config: DiracConfig) -> DiracBackend:
    proxy = proxy_location(Path(config.proxy).expanduser() if config.proxy else None)
    settings = config.settings(DIRAC_SETTINGS)
    # A connection (or a thread) for every call the backend's limiters let through.
    calls = settings.concurrency + settings.finalise_concurrency
    transport: DiracHttps | DiracClientTransport | DiracX
    if config.transport == "https":
        transport = DiracHttps(config.url, proxy=proxy, ca=_ca(config.ca), pool=calls)
    elif config.transport == "diracx":
        if config.chunk_size is None:  # a search takes a page of DiracX's: one call a sweep
            settings = dataclasses.replace(settings, chunk_size=PER_PAGE)
        credentials = config.diracx_credentials
        where = Path(credentials).expanduser() if credentials else None
        transport = DiracX(config.url, credentials=where, ca=_ca(config.ca), pool=calls)
    else:
        transport = DiracClientTransport(proxy=proxy, url=config.url, threads=calls)
    return DiracBackend(
        transport,
        output_dir=Path(config.output_dir).expanduser(),
        settings=settings,
        download_output=config.download_output,
        vanish_grace=config.vanish_grace,
        deltas=config.deltas,
        owners=config.owners,
        delta_margin=config.delta_margin,
        name=name,
    )


def _ca(configured: str | None) -> Path | None:
    if configured:
        return Path(configured).expanduser()
    if os.environ.get("X509_CERT_DIR"):
        return Path(os.environ["X509_CERT_DIR"])
    return _GRID_CA if _GRID_CA.is_dir() else None


async def _probe(backend: DiracBackend, config: DiracConfig) -> AsyncIterator[Finding]:
    name = backend.name
    proxy = backend.transport.proxy
    if proxy is not None:
        try:
            expiry = check_proxy(proxy)
        except BackendError as e:
            yield Finding(False, name, str(e))
            return
        left = expiry - dt.datetime.now(dt.UTC)
        yield Finding(
            True, name, f"proxy {proxy} valid until {expiry:%Y-%m-%d %H:%M} UTC ({_hours(left)})"
        )
    transport = backend.transport
    if isinstance(transport, DiracHttps) and transport.ca is not None and not transport.ca.exists():
        yield Finding(False, name, f"CA {transport.ca} does not exist")
        return
    try:
        async with transport.session():
            await transport.job_states([])
    except (BackendError, GangamonError, OSError) as e:
        yield Finding(False, name, f"{config.url}: {e}")
        return
    what = "job searches" if isinstance(transport, DiracX) else "JobMonitoring calls"
    yield Finding(True, name, f"{config.url} answers {what}")


def _hours(left: dt.timedelta) -> str:
    hours = left.total_seconds() / 3600
    return f"{hours:.1f} h left" if hours >= 1 else f"{hours * 60:.0f} min left: renew soon"


DIRAC = BackendKind(
    name="dirac",
    display_name="DIRAC",
    config=DiracConfig,
    build=_build,
    probe=_probe,
    id_grammar=re.compile(r"[1-9]\d{0,17}", re.ASCII),
    check=_check,
)
