"""The `[gangamon]` section of a Ganga user's `.gangarc`, checked.

    [Configuration]
    RUNTIME_PATH = GangaDirac:gangamon.ganga    # the one line that turns gangamon on

    [gangamon]
    enable = True             # take over Ganga's monitoring when the session starts
    transport = https         # DIRAC over HTTPS, or "client": DIRAC's own client (dips)
    url =                     # JobMonitoring's URL; default: from DIRAC's configuration
    poll_interval =           # seconds; default: [PollThread] Dirac
    ending_interval =         # seconds, for jobs Completing; default: a fifth of the above
    concurrency = 8           # DIRAC status and detail calls in flight
    downloads = 16            # output sandboxes downloaded at once
    deadline = 120            # seconds one DIRAC call may take

Every value is kept as text in Ganga's configuration and checked here, so that an error
names the option and the value in one line.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from .._errors import GangamonError

SECTION = "gangamon"


class OptionError(GangamonError):
    """A `[gangamon]` value that is not what its option takes."""


@dataclass(frozen=True, slots=True)
class GangamonOptions:
    enable: bool = True
    transport: str = "https"
    url: str | None = None
    poll_interval: float | None = None
    ending_interval: float | None = None
    concurrency: int = 8
    downloads: int = 16
    deadline: float = 120.0


#: Each option's documentation, as Ganga shows it (`config.gangamon`).
DOCS = {
    "enable": "Monitor with gangamon instead of Ganga's own service from the session's start",
    "transport": "How gangamon reaches DIRAC: https (Tornado) or client (DIRAC's own, dips)",
    "url": "DIRAC JobMonitoring's URL; empty: from the DIRAC configuration Ganga uses",
    "poll_interval": "Seconds between polls of DIRAC; empty: [PollThread] Dirac",
    "ending_interval": (
        "Seconds between polls of jobs near their end (DIRAC Completing, Completed); "
        "empty: a fifth of poll_interval, at least 1"
    ),
    "concurrency": "DIRAC status and detail calls in flight at once",
    "downloads": "Output sandboxes downloaded from DIRAC at once (two calls each)",
    "deadline": "Seconds one DIRAC call may take before it is abandoned",
}


def parse_options(raw: Mapping[str, object]) -> GangamonOptions:
    """The options of `raw` (option -> value, text as in a .gangarc, or typed); the rest
    their defaults. `OptionError` names the first bad one."""
    unknown = sorted(set(raw) - set(DOCS))
    if unknown:
        raise OptionError(
            f"[{SECTION}] {unknown[0]}: no such option (known: {', '.join(sorted(DOCS))})"
        )
    values = {k: v for k, v in raw.items() if not (isinstance(v, str) and not v.strip())}
    defaults = GangamonOptions()
    transport = _text(values, "transport", defaults.transport)
    if transport not in ("https", "client"):
        raise _bad("transport", values["transport"], "https or client")
    url = _text(values, "url", None)
    if url is not None and not url.startswith(("https://", "dips://")):
        raise _bad("url", url, "an https:// or dips:// URL")
    return GangamonOptions(
        enable=_flag(values, "enable", defaults.enable),
        transport=transport,
        url=url,
        poll_interval=_seconds(values, "poll_interval", defaults.poll_interval),
        ending_interval=_seconds(values, "ending_interval", defaults.ending_interval),
        concurrency=_count(values, "concurrency", defaults.concurrency),
        downloads=_count(values, "downloads", defaults.downloads),
        deadline=_seconds(values, "deadline", defaults.deadline) or defaults.deadline,
    )


def _bad(option: str, value: object, expected: str) -> OptionError:
    return OptionError(f"[{SECTION}] {option} = {value!r}: expected {expected}")


def _text(values: Mapping[str, object], option: str, default: str | None) -> str | None:
    if option not in values:
        return default
    value = values[option]
    if not isinstance(value, str) or not value.isprintable():
        raise _bad(option, value, "printable text")
    return value.strip()


def _flag(values: Mapping[str, object], option: str, default: bool) -> bool:
    value = values.get(option, default)
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "on", "1"):
        return True
    if text in ("false", "no", "off", "0"):
        return False
    raise _bad(option, value, "True or False")


def _seconds(values: Mapping[str, object], option: str, default: float | None) -> float | None:
    if option not in values:
        return default
    value = values[option]
    try:
        seconds = float(str(value)) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        seconds = math.nan
    if not 0 < seconds < math.inf:
        raise _bad(option, value, "a positive number of seconds")
    return seconds


def _count(values: Mapping[str, object], option: str, default: int) -> int:
    value = values.get(option, default)
    try:
        count = int(str(value).strip()) if not isinstance(value, bool) else 0
    except ValueError:
        count = 0
    if count < 1:
        raise _bad(option, value, "a whole number >= 1")
    return count
