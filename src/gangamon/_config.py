"""gangamon's configuration: one TOML file, every value checked on load.

Where it is: `--config`, else `$GANGAMON_CONFIG`, else `$XDG_CONFIG_HOME/gangamon/config.toml`
(`~/.config/gangamon/config.toml`). No file at the default place means the defaults; a file
named on purpose must exist. An error names the file, the key path and the bad value, on one
line. Building backends from a valid configuration touches nothing on disk or the network:
proxies, URLs and commands are checked when the monitor starts, or by `gangamon doctor`.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

import msgspec

from ._errors import GangamonError
from .backends import Backend, BackendSettings

PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]
Count = Annotated[int, msgspec.Meta(ge=1)]
Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]

HOME = Path("~/gangamon")
T = TypeVar("T")


class ConfigError(GangamonError):
    """A configuration that cannot be used; the message is one line naming where and what."""


class _Polling(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """How the engine drives a backend; unset values keep the backend's own defaults."""

    poll_interval: PositiveFloat | None = None
    chunk_size: Count | None = None
    concurrency: Count | None = None
    call_deadline: PositiveFloat | None = None
    finalise_concurrency: Count | None = None
    ending_interval: PositiveFloat | None = None

    def settings(self, defaults: BackendSettings) -> BackendSettings:
        fields = [f.name for f in dataclasses.fields(BackendSettings)]
        given = {k: getattr(self, k) for k in fields if getattr(self, k, None) is not None}
        return dataclasses.replace(defaults, **given)


class DiracConfig(_Polling, frozen=True, kw_only=True):
    #: DIRAC's Tornado HTTPS address (scheme, host, port), or dips:// with transport "client".
    url: str
    #: "https": gangamon's own client; "client": DIRAC's Python client, if installed.
    transport: Literal["https", "client"] = "https"
    #: Default: $X509_USER_PROXY, else /tmp/x509up_u<uid>.
    proxy: str | None = None
    #: CA file or directory. Default: $X509_CERT_DIR, else /etc/grid-security/certificates.
    ca: str | None = None
    output_dir: str = str(HOME / "dirac-output")
    download_output: bool = True


class LocalConfig(_Polling, frozen=True, kw_only=True):
    directory: str = str(HOME / "local")


class BatchConfig(_Polling, frozen=True, kw_only=True):
    #: Seconds a job may be missing from every listing before it is declared unknown.
    vanish_grace: PositiveFloat = 600.0


BackendConfig = DiracConfig | LocalConfig | BatchConfig
_KINDS: dict[str, type[BackendConfig]] = {
    "dirac": DiracConfig,
    "local": LocalConfig,
    "slurm": BatchConfig,
    "condor": BatchConfig,
    "lsf": BatchConfig,
    "pbs": BatchConfig,
    "sge": BatchConfig,
}


class _File(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    store: str = str(HOME / "jobs.sqlite")
    #: Seconds that calls in flight get to finish when stopping.
    grace: PositiveFloat = 5.0
    metrics_port: Port | None = None
    #: Each table is one backend, named by its key; `type` defaults to the key.
    backends: dict[str, Any] = {}


@dataclasses.dataclass(frozen=True)
class Config:
    store: Path
    grace: float
    metrics_port: int | None
    #: Backend name -> (kind, its settings).
    backends: dict[str, tuple[str, BackendConfig]]
    source: str


def default_path() -> Path:
    if os.environ.get("GANGAMON_CONFIG"):
        return Path(os.environ["GANGAMON_CONFIG"])
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "gangamon" / "config.toml"


def load_config(path: Path | None = None) -> Config:
    """The configuration in `path` (default: `default_path()`); `ConfigError` if unusable."""
    explicit = path is not None or bool(os.environ.get("GANGAMON_CONFIG"))
    path = path or default_path()
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        if explicit:
            raise ConfigError(f"no configuration file at {path}") from None
        text = b""
    except OSError as e:
        raise ConfigError(f"cannot read the configuration {path}: {e.strerror}") from None
    return parse_config(text, source=str(path))


def parse_config(text: bytes | str, *, source: str = "<config>") -> Config:
    try:
        raw = msgspec.toml.decode(text)
    except msgspec.DecodeError as e:
        raise ConfigError(f"{source}: not valid TOML: {e}") from None
    top = _convert(raw, _File, source, "")
    backends: dict[str, tuple[str, BackendConfig]] = {}
    for name, table in (top.backends or {"local": {}}).items():
        where = f"backends.{name}"
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]{0,31}", name):
            raise ConfigError(
                f"{source}: {where}: backend names are a letter then letters, digits, _ or -"
            )
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: {where} = {table!r}: expected a table")
        table = dict(table)
        kind = table.pop("type", name)
        if kind not in _KINDS:
            raise ConfigError(
                f"{source}: {where}.type = {kind!r}: unknown backend type "
                f"(known: {', '.join(_KINDS)})"
            )
        settings = _convert(table, _KINDS[kind], source, where)
        if isinstance(settings, DiracConfig):
            _check_url(settings, source, where)
        backends[name] = (kind, settings)
    return Config(
        store=Path(top.store).expanduser(),
        grace=top.grace,
        metrics_port=top.metrics_port,
        backends=backends,
        source=source,
    )


def _convert(raw: object, kind: type[T], source: str, where: str) -> T:
    try:
        return msgspec.convert(raw, kind)
    except msgspec.ValidationError as e:
        message, _, at = str(e).partition(" - at `")
        keys = [k for k in re.split(r"[.\[\]]", at.rstrip("`").removeprefix("$")) if k]
        named = re.search(r"(unknown|missing required) field `([^`]+)`", message)
        if named:
            keys.append(named.group(2))
            known = ", ".join(getattr(kind, "__struct_fields__", ()))
            message = f"unknown key (known: {known})" if named.group(1) == "unknown" else "missing"
        else:
            # msgspec's "Expected `float | null`, got `str`": unset is not for the user to write.
            message = message.replace("`", "").replace(" | null", "")
            message = message[:1].lower() + message[1:]
        path = ".".join([where, *keys] if where else keys) or "(top level)"
        value = _lookup(raw, keys)
        shown = "" if value is _MISSING else f" = {value!r}"
        raise ConfigError(f"{source}: {path}{shown}: {message}") from None


_MISSING = object()


def _lookup(raw: object, keys: list[str]) -> object:
    for key in keys:
        if not isinstance(raw, dict) or key not in raw:
            return _MISSING
        raw = raw[key]
    return raw


def _check_url(dirac: DiracConfig, source: str, where: str) -> None:
    parts = urlsplit(dirac.url)
    allowed = ("https", "http") if dirac.transport == "https" else ("https", "dips")
    if parts.scheme not in allowed or not parts.hostname or parts.path not in ("", "/"):
        raise ConfigError(
            f"{source}: {where}.url = {dirac.url!r}: expected {' or '.join(allowed)}://host:port"
            f" for transport {dirac.transport!r}"
        )


def build_backends(config: Config) -> list[Backend]:
    """The backends the configuration names, not yet started."""
    from .backends.condor import CondorBackend
    from .backends.dirac import (
        DIRAC_SETTINGS,
        DiracBackend,
        DiracClientTransport,
        DiracHttps,
        proxy_location,
    )
    from .backends.local import LocalBackend
    from .backends.lsf import LsfBackend
    from .backends.pbs import PbsBackend
    from .backends.sge import SgeBackend
    from .backends.slurm import SlurmBackend

    batch = {
        "slurm": SlurmBackend,
        "condor": CondorBackend,
        "lsf": LsfBackend,
        "pbs": PbsBackend,
        "sge": SgeBackend,
    }
    built: list[Backend] = []
    for name, (kind, c) in config.backends.items():
        backend: Backend
        if isinstance(c, DiracConfig):
            proxy = proxy_location(Path(c.proxy).expanduser() if c.proxy else None)
            settings = c.settings(DIRAC_SETTINGS)
            # A connection (or a thread) for every call the backend's limiters let through.
            calls = settings.concurrency + settings.finalise_concurrency
            if c.transport == "https":
                transport: DiracHttps | DiracClientTransport = DiracHttps(
                    c.url, proxy=proxy, ca=_ca(c.ca), pool=calls
                )
            else:
                transport = DiracClientTransport(proxy=proxy, url=c.url, threads=calls)
            backend = DiracBackend(
                transport,
                output_dir=Path(c.output_dir).expanduser(),
                settings=settings,
                download_output=c.download_output,
                name=name,
            )
        elif isinstance(c, LocalConfig):
            backend = LocalBackend(Path(c.directory).expanduser(), name=name)
        else:
            backend = batch[kind](vanish_grace=c.vanish_grace)
            backend.name = name
        if not isinstance(c, DiracConfig):  # DIRAC's were given to its constructor
            backend.settings = c.settings(backend.settings)
        built.append(backend)
    return built


def _ca(configured: str | None) -> Path | None:
    if configured:
        return Path(configured).expanduser()
    if os.environ.get("X509_CERT_DIR"):
        return Path(os.environ["X509_CERT_DIR"])
    grid = Path("/etc/grid-security/certificates")
    return grid if grid.is_dir() else None
