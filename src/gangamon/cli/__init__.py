"""gangamon's faces: the `gangamon` command and what only it uses (the configuration file,
job ids as users type them, the `run` service and its metrics, the live view, `doctor`, the
demo, logging). The core (engine, store, backends) never imports them.
"""

from __future__ import annotations

import sys

from .._extras import needs_extra

# The packages of the cli extra that only the command brings (h11 comes with httpx anyway).
_CLI_PACKAGES = frozenset({"click", "rich", "prometheus_client"})


def main(argv: list[str] | None = None) -> None:
    """The `gangamon` command; without the cli extra, one line saying how to install it."""
    try:
        from ._commands import main as command
    except ModuleNotFoundError as e:
        if e.name not in _CLI_PACKAGES:
            raise
        sys.exit(f"gangamon: {needs_extra('the command', 'cli')}")
    command(argv)
