"""Output that survives a pipe: on a terminal, its width; anywhere else, as wide as the text
needs (rich would otherwise assume 80 columns and drop or squeeze table columns)."""

from __future__ import annotations

from rich.console import Console

#: Width of the page when stdout is not a terminal: wider than any table we print.
PIPE_WIDTH = 1000


def console() -> Console:
    """A console for stdout: the terminal's, or a wide one without colours or cursor moves."""
    terminal = Console()
    if terminal.is_terminal:
        return terminal
    return Console(width=PIPE_WIDTH, no_color=True, highlight=False, soft_wrap=False)


def ellipsis(text: str, width: int) -> str:
    """`text`, or its first `width` - 1 characters and "…" when it is longer."""
    return text if len(text) <= width else text[: width - 1] + "…"
