"""`gangamon status`: jobs per backend and status, jobs listed with chosen columns, one job's
history; as aligned text, delimited text or JSON, the same filters and limit for each.

Listings are plain text, never cut to the terminal's width: a pipe gets every column.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import click
from rich.table import Table

from .._status import Status, parse_status
from .._store import JobRecord, JobStore, JournalEntry
from .._storelock import holder
from ._app import Settings, pass_settings
from ._ids import BadJobId, resolve_jobs
from ._output import console, ellipsis

#: A reason longer than this is cut in aligned listings (never in delimited ones or JSON).
REASON_WIDTH = 60

_EXIT = re.compile(r"\bexit(?: code| status)? (-?\d+)")


@dataclass(frozen=True)
class Row:
    """One job as listed: its record, its last journal entry, its subjobs by status."""

    record: JobRecord
    last: JournalEntry | None
    subjobs: dict[Status, int]

    @property
    def exit_code(self) -> str:
        """The exit code the backend reported ("exit code 3", "exit status 3", "exit 3")."""
        for text in (self.record.native_status, self.last.reason if self.last else None):
            found = _EXIT.search(text or "")
            if found:
                return found[1]
        return ""


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t))


def _subjob_summary(counts: dict[Status, int]) -> str:
    if not counts:
        return ""
    shown = ", ".join(f"{n} {s.value}" for s, n in sorted(counts.items()))
    return f"{sum(counts.values())}: {shown}"


#: Column name -> (header, value). The order of the default columns is the listing's.
COLUMNS: dict[str, tuple[str, Callable[[Row], str]]] = {
    "id": ("ID", lambda r: str(r.record.id)),
    "backend": ("BACKEND", lambda r: r.record.backend),
    "backend_id": ("BACKEND_ID", lambda r: r.record.backend_id or ""),
    "status": ("STATUS", lambda r: r.record.status.value),
    "native": ("NATIVE", lambda r: r.record.native_status or ""),
    "exit": ("EXIT", lambda r: r.exit_code),
    "created": ("CREATED", lambda r: _when(r.record.created)),
    "updated": ("UPDATED", lambda r: _when(r.record.updated)),
    "parent": ("PARENT", lambda r: str(r.record.parent or "")),
    "transitions": ("TRANSITIONS", lambda r: str(r.record.transitions)),
    "subjobs": ("SUBJOBS", lambda r: _subjob_summary(r.subjobs)),
    "reason": ("REASON", lambda r: r.last.reason if r.last else ""),
}
DEFAULT_COLUMNS = "id,backend,backend_id,status,native,exit,updated,subjobs,reason"


def _columns(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    wrong = [n for n in names if n not in COLUMNS]
    if wrong or not names:
        raise click.BadParameter(
            f"unknown column {wrong[0]!r} (columns: {', '.join(COLUMNS)})"
            if wrong
            else f"no columns given (columns: {', '.join(COLUMNS)})",
            param_hint="'--format'",
        )
    return names


def rows(store: JobStore, records: Sequence[JobRecord]) -> list[Row]:
    listed = []
    for record in records:
        journal = store.journal(job=record.id)
        subjobs: dict[Status, int] = {}
        for child in store.jobs(parent=record.id):
            subjobs[child.status] = subjobs.get(child.status, 0) + 1
        listed.append(Row(record, journal[-1] if journal else None, subjobs))
    return listed


def aligned(rows: list[Row], columns: list[str], *, header: bool) -> list[str]:
    """Columns padded to their widest value, the last one unpadded; reasons cut with "…"."""
    table = [[COLUMNS[c][0] for c in columns]] if header else []
    for row in rows:
        values = [COLUMNS[c][1](row) for c in columns]
        table.append(
            [
                ellipsis(v, REASON_WIDTH) if c == "reason" else v
                for c, v in zip(columns, values, strict=True)
            ]
        )
    if not table:
        return []
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    return [
        "  ".join(
            [*(v.ljust(w) for v, w in zip(line[:-1], widths, strict=False)), line[-1]]
        ).rstrip()
        for line in table
    ]


def delimited(rows: list[Row], columns: list[str], delimiter: str, *, header: bool) -> list[str]:
    """Every value whole, `delimiter` between them (and in none of them: it is replaced by a
    space, as are newlines)."""

    def clean(v: str) -> str:
        return v.replace(delimiter, " ").replace("\n", " ")

    lines = [delimiter.join(COLUMNS[c][0] for c in columns)] if header else []
    lines += [delimiter.join(clean(COLUMNS[c][1](r)) for c in columns) for r in rows]
    return lines


def as_json(row: Row) -> dict[str, object]:
    plain = _plain(row.record)
    plain["reason"] = row.last.reason if row.last else ""
    plain["exit_code"] = int(row.exit_code) if row.exit_code else None
    plain["subjobs"] = {s.value: n for s, n in row.subjobs.items()}
    return plain


def _plain(record: JobRecord | JournalEntry) -> dict[str, object]:
    return {k: (v.value if isinstance(v, Status) else v) for k, v in asdict(record).items()}


@click.command()
@click.argument("jobs", nargs=-1)
@click.option("--backend", help="Only this backend's jobs.")
@click.option(
    "--status",
    "status_name",
    type=click.Choice([s.value for s in Status]),
    help="Only jobs in this status, listed.",
)
@click.option("--list", "listing", is_flag=True, help="List the jobs, not only count them.")
@click.option("--job", help="One job (17 or dirac:1536): its record and its history.")
@click.option(
    "--limit",
    default=50,
    show_default=True,
    type=click.IntRange(min=0),
    help="List at most this many jobs (0: all).",
)
@click.option(
    "--format",
    "columns",
    default=DEFAULT_COLUMNS,
    show_default=True,
    help=f"Columns to list, comma-separated, of: {', '.join(COLUMNS)}.",
)
@click.option("--no-header", is_flag=True, help="List without the header line.")
@click.option(
    "--delimiter",
    help="Separate columns with this string (values whole, never padded or cut), e.g. '|'.",
)
@click.option("--json", "as_json_output", is_flag=True, help="JSON instead of text.")
@pass_settings
def status(
    settings: Settings,
    jobs: tuple[str, ...],
    backend: str | None,
    status_name: str | None,
    listing: bool,
    job: str | None,
    limit: int,
    columns: str,
    no_header: bool,
    delimiter: str | None,
    as_json_output: bool,
) -> None:
    """Jobs per backend and status; with --list, --status or JOBS (17, dirac:1536) the jobs
    themselves, one a line; with --job one job's history. Reads the store, never writes it."""
    wanted = parse_status(status_name) if status_name is not None else None
    chosen = _columns(columns)
    if delimiter is not None and not delimiter:
        raise click.BadParameter("must not be empty", param_hint="'--delimiter'")
    with settings.existing_store() as store:
        kinds = {name: kind for name, (kind, _) in settings.config.backends.items()}
        if job is not None:
            named = resolve_jobs(store, [job], kinds)
            if len(named) != 1:
                raise BadJobId(f"--job names one job; {job!r} names {len(named)}")
            _history(store, named[0], as_json_output)
            return
        names = {name for name, _, _ in store.counts()} | set(kinds)
        if backend is not None and backend not in names:
            raise click.UsageError(
                f"unknown backend {backend!r} (known: {', '.join(sorted(names))})"
            )
        if jobs or listing or wanted is not None:
            _list(store, kinds, jobs, backend, wanted, limit, chosen, no_header, delimiter,
                  as_json_output)  # fmt: skip
            return
        counts: dict[str, dict[str, int]] = {}
        for name, s, n in store.counts():
            if backend is None or name == backend:
                counts.setdefault(name, {})[s.value] = n
        where = store.where
    running = holder(settings.store)
    monitor = str(running) if running is not None else None
    if as_json_output:
        click.echo(json.dumps({"counts": counts, "monitor": monitor}))
        return
    _counts_table(where, counts)
    click.echo(f"monitor: {monitor or 'none runs on this store'}")


def _history(store: JobStore, job: int, as_json_output: bool) -> None:
    record, journal = store.get(job), store.journal(job=job)
    if as_json_output:
        click.echo(json.dumps({"job": _plain(record), "journal": [_plain(e) for e in journal]}))
        return
    click.echo(
        f"job {record.id}: {record.backend}:{record.backend_id or '-'} "
        f"{record.status.value} ({record.native_status or '-'})"
    )
    for e in journal:
        old = e.old.value if e.old else "new"
        native = f" ({e.native_status})" if e.native_status else ""
        click.echo(f"  {_when(e.time)}  {old} -> {e.new.value}{native}  {e.reason}")


def _list(
    store: JobStore,
    kinds: dict[str, str],
    jobs: tuple[str, ...],
    backend: str | None,
    wanted: Status | None,
    limit: int,
    columns: list[str],
    no_header: bool,
    delimiter: str | None,
    as_json_output: bool,
) -> None:
    if jobs:
        records = [store.get(j) for j in resolve_jobs(store, jobs, kinds)]
        records = [
            r
            for r in records
            if (backend is None or r.backend == backend) and (wanted is None or r.status == wanted)
        ]
    else:
        records = store.jobs(backend=backend, statuses=None if wanted is None else [wanted])
    shown = records if limit == 0 else records[:limit]
    more = len(records) - len(shown)
    listed = rows(store, shown)
    if as_json_output:
        click.echo(json.dumps({"jobs": [as_json(r) for r in listed], "more": more}))
        return
    if delimiter is not None:
        lines = delimited(listed, columns, delimiter, header=not no_header)
    else:
        lines = aligned(listed, columns, header=not no_header)
    for line in lines:
        click.echo(line)
    if more:
        click.echo(f"... and {more} more (--limit N, or --limit 0 for all)", err=True)


def _counts_table(where: str, counts: dict[str, dict[str, int]]) -> None:
    table = Table(title=f"jobs in {where}", title_justify="left")
    table.add_column("backend")
    shown = [s.value for s in Status if any(s.value in c for c in counts.values())]
    for name in [*shown, "total"]:
        table.add_column(name, justify="right")
    for name, c in counts.items():
        table.add_row(name, *(str(c.get(s, 0)) for s in shown), str(sum(c.values())))
    console().print(table)
