"""gangamon's configuration: one TOML file, every value checked on load.

Where it is: `--config`, else `$GANGAMON_CONFIG`, else `$XDG_CONFIG_HOME/gangamon/config.toml`
(`~/.config/gangamon/config.toml`). No file at the default place means the defaults; a file
named on purpose must exist. An error names the file, the key path and the bad value, on one
line. Building backends from a valid configuration touches nothing on disk or the network:
proxies, URLs and commands are checked when the monitor starts, or by `gangamon doctor`.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from pathlib import Path
from typing import Annotated, Any, TypeVar

import msgspec

from .._errors import GangamonError
from .._store import is_postgresql_url
from ..backends import Backend
from ..backends._kind import HOME, BadSetting, Polling, Seconds
from ..backends._kinds import KINDS

Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]
T = TypeVar("T")


class ConfigError(GangamonError):
    """A configuration that cannot be used; the message is one line naming where and what."""


class _File(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    #: A path (an SQLite file) or a postgresql:// URL.
    store: str = str(HOME / "jobs.sqlite")
    #: Seconds that calls in flight get to finish when stopping.
    grace: Seconds = 5.0
    metrics_port: Port | None = None
    #: Where the metrics are served: an IP address or a host name of this machine.
    metrics_address: str = "127.0.0.1"
    #: Each table is one backend, named by its key; `type` defaults to the key.
    backends: dict[str, Any] = {}


@dataclasses.dataclass(frozen=True)
class Config:
    #: An SQLite file's path, or a PostgreSQL URL (see `store_location`).
    store: Path | str
    grace: float
    metrics_port: int | None
    metrics_address: str
    #: Backend name -> (its kind's name, its table).
    backends: dict[str, tuple[str, Polling]]
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
    if (problem := address_problem(top.metrics_address)) is not None:
        raise ConfigError(f"{source}: metrics_address = {top.metrics_address!r}: {problem}")
    backends: dict[str, tuple[str, Polling]] = {}
    for name, table in (top.backends or {"local": {}}).items():
        where = f"backends.{name}"
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]{0,31}", name, re.ASCII):
            raise ConfigError(
                f"{source}: backends.{name!r}: backend names are a letter then letters, "
                "digits, _ or -"
            )
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: {where} = {table!r}: expected a table")
        table = dict(table)
        kind = table.pop("type", name)
        if kind not in KINDS:
            raise ConfigError(
                f"{source}: {where}.type = {kind!r}: unknown backend type "
                f"(known: {', '.join(KINDS)})"
            )
        settings = _convert(table, KINDS[kind].config, source, where)
        try:
            KINDS[kind].check(settings)
        except BadSetting as e:
            raise ConfigError(f"{source}: {where}.{e}") from None
        backends[name] = (kind, settings)
    return Config(
        store=store_location(top.store),
        grace=top.grace,
        metrics_port=top.metrics_port,
        metrics_address=top.metrics_address,
        backends=backends,
        source=source,
    )


def store_location(given: str) -> Path | str:
    """Where `given` (a config value, an option) puts the store: a URL as it is, a path
    with `~` expanded."""
    return given if is_postgresql_url(given) else Path(given).expanduser()


#: RFC 1123 host names: dot-separated labels of letters, digits and inner hyphens.
_HOST_NAME = re.compile(
    r"(?=.{1,253}\.?\Z)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?",
    re.ASCII,
)


def address_problem(address: str) -> str | None:
    """Why `address` cannot be listened on by name (an IP address or a host name), or None."""
    try:
        ipaddress.ip_address(address)
    except ValueError:
        pass
    else:
        return None
    if re.fullmatch(r"[^:]+:[0-9]+", address, re.ASCII):
        return "the port goes in metrics_port (--metrics-port), not in the address"
    # Digits and dots that are no IP address ("127.1", "9100") the resolver would read as one.
    if _HOST_NAME.fullmatch(address) and not re.fullmatch(r"[0-9.]+", address, re.ASCII):
        return None
    return "expected an IP address or a host name"


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


def build_backends(config: Config) -> list[Backend]:
    """The backends the configuration names, not yet started."""
    built = []
    for name, (kind, table) in config.backends.items():
        try:
            built.append(KINDS[kind].build(name, table))
        except ValueError as e:  # a combination of settings the backend refuses
            raise ConfigError(f"{config.source}: backends.{name}: {e}") from None
    return built
