"""Where a store is: a file, or a PostgreSQL URL (told apart by its scheme)."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

SCHEMES = ("postgresql://", "postgres://")


def is_postgresql_url(where: object) -> bool:
    """Whether `where` names a PostgreSQL store rather than a file."""
    return isinstance(where, str) and where.startswith(SCHEMES)


def redacted(url: str) -> str:
    """`url` without its password (in its user part or its query), to show."""
    parts = urlsplit(url)
    user, at, host = parts.netloc.rpartition("@")
    netloc = f"{user.partition(':')[0]}{at}{host}"
    query = "&".join(p for p in parts.query.split("&") if not p.startswith("password="))
    return urlunsplit(parts._replace(netloc=netloc, query=query))
