"""Public names report the module they are imported from, not the private one that defines
them (as trio and anyio do): reprs, tracebacks, documentation and pickles then name
`gangamon.Monitor`, not `gangamon._engine.Monitor`."""

from __future__ import annotations

import inspect


def report_public(module: str, names: dict[str, object]) -> None:
    """Give each public class and function among `names` (a package's globals) that a private
    module under `module` defines `module` as its `__module__`."""
    for name, value in names.items():
        if name.startswith("_") or not (inspect.isclass(value) or inspect.isfunction(value)):
            continue
        defined_in = value.__module__
        if defined_in.startswith(f"{module}.") and "._" in defined_in[len(module) :]:
            value.__module__ = module
