"""The one line that names a missing extra (pyproject's optional dependencies) and its install."""

from __future__ import annotations


def needs_extra(what: str, extra: str) -> str:
    """`<what> needs the <extra> extra: pip install 'gangamon[<extra>]'`."""
    return f"{what} needs the {extra} extra: pip install 'gangamon[{extra}]'"
