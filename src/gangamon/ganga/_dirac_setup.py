"""Where a Ganga session's DIRAC is: its JobMonitoring URL, the proxy, the CA directory.

Found where Ganga and DIRAC keep them, so that a Ganga user configures nothing: the
environment Ganga runs its DIRAC processes in (`[DIRAC] DiracEnvJSON` or `DiracEnvSource`,
read by GangaDirac's `getDiracEnv`), and in it `DIRACSYSCONFIG` or the DIRAC installation's
`etc/dirac.cfg`, which names the JobMonitoring service under
`Systems/WorkloadManagement/URLs/JobMonitoring`; the proxy from `X509_USER_PROXY` (Ganga's
DIRAC environment, then this process's) or the Globus default; the CA directory from
`X509_CERT_DIR`, else the configuration's `DIRAC/Security/CALocation`, else
`/etc/grid-security/certificates`. Pure: the environment and the files are its input.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from diraccfg import CFG

from .._errors import GangamonError
from ..backends.dirac import proxy_location

#: Where DIRAC 9 (and 8 without setups) keeps a service's URLs.
_JOB_MONITORING = "Systems/WorkloadManagement/URLs/JobMonitoring"
_DEFAULT_CA = Path("/etc/grid-security/certificates")


class DiracNotFound(GangamonError):
    """The session's DIRAC configuration does not say where JobMonitoring is."""


@dataclass(frozen=True, slots=True)
class DiracSetup:
    #: JobMonitoring's URL: `https://host:port` (Tornado: the path is ours to add), or the
    #: whole `dips://host:port/WorkloadManagement/JobMonitoring`.
    url: str
    proxy: Path
    ca: Path
    #: Where the URL came from, for messages.
    source: str

    @property
    def https(self) -> bool:
        return self.url.startswith("https:")


def config_files(env: Mapping[str, str]) -> list[Path]:
    """The DIRAC configuration files of environment `env`, in DIRAC's order of reading."""
    files = []
    if env.get("DIRAC"):
        files.append(Path(env["DIRAC"], "etc", "dirac.cfg"))
    files += [Path(f) for f in env.get("DIRACSYSCONFIG", "").split(",") if f.strip()]
    return [f for f in files if f.is_file()]


def find_dirac(env: Mapping[str, str], *, url: str | None = None) -> DiracSetup:
    """The DIRAC of environment `env` (Ganga's DIRAC environment); `url` overrides the
    configuration's. `DiracNotFound` names what is missing and where it was looked for."""
    files = config_files(env)
    cfg = CFG()
    for path in files:
        try:
            cfg = cfg.mergeWith(CFG().loadFromFile(str(path)))
        except (OSError, ValueError) as e:
            raise DiracNotFound(f"cannot read DIRAC configuration {path}: {e}") from None
    source = "[gangamon] url"
    if url is None:
        listed = cfg.getOption(_JOB_MONITORING, [])
        if not listed:
            looked = ", ".join(map(str, files)) or "no file (DIRACSYSCONFIG and DIRAC unset)"
            raise DiracNotFound(
                f"no {_JOB_MONITORING} in the DIRAC configuration ({looked}); it may come from "
                "DIRAC's Configuration Server: set [gangamon] url in .gangarc"
            )
        # Tornado (https) where the server offers it: one TLS connection pool for every call.
        url = next((u for u in listed if u.startswith("https:")), listed[0])
        source = f"{_JOB_MONITORING} in {', '.join(map(str, files))}"
    ca_option = cfg.getOption("DIRAC/Security/CALocation")
    ca = Path(env.get("X509_CERT_DIR") or ca_option or _DEFAULT_CA)
    proxy = proxy_location(env.get("X509_USER_PROXY"))
    return DiracSetup(_service_url(url, source), proxy, ca, source)


def _service_url(url: str, source: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("https", "dips") or not parts.hostname:
        raise DiracNotFound(f"{source}: {url!r} is not an https:// or dips:// URL")
    try:
        port = parts.port
    except ValueError:
        raise DiracNotFound(f"{source}: {url!r} has no valid port") from None
    if parts.scheme == "https":
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        return f"https://{host}:{port or 443}"
    return url
