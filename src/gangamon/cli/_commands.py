"""The `gangamon` command: its entry point, and run, track, watch, doctor, demo.

The other commands live beside: jobs one by one (`_jobs`), status (`_listing`), config init
(`_init`), the DIRAC simulator (`_sim`).

Every command reads one configuration (see `_config.py`). Bad input of any kind (a config
value, an id, a store, a port, a proxy) ends the command with one line on stderr naming the
value, and a nonzero exit; nothing already stored is changed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from functools import partial
from pathlib import Path

import click
import trio
from rich.console import Console
from rich.live import Live

from .._astore import AsyncStore
from .._errors import GangamonError, single_exception
from .._status import Status
from .._store import NewJob, open_store
from ._app import FAILED, Settings, cli, pass_settings
from ._check import unknown_ids
from ._config import address_problem, build_backends
from ._demo import main as demo_main
from ._doctor import examine
from ._ids import BadJobId, parse_ids, read_id_file
from ._init import config
from ._jobs import fetch_output_command, kill, submit, untrack, wait
from ._listing import status
from ._output import console as output_console
from ._sim import sim
from ._standalone import read_snapshot, serve as run_service
from ._view import Rates, calls, collect, recent_rows, render, render_text

for command in (status, kill, untrack, wait, fetch_output_command, submit, config, sim):
    cli.add_command(command)


def main(argv: list[str] | None = None) -> None:
    """Entry point: runs the command; any error is one line on stderr and a nonzero exit."""
    try:
        code = cli.main(args=argv, prog_name="gangamon", standalone_mode=False)
    except click.ClickException as e:
        click.echo(f"gangamon: error: {one_line(e.format_message())}", err=True)
        code = e.exit_code
    except BaseException as e:
        # Errors from inside trio come in groups; a lone one is shown bare.
        inner = single_exception(e)
        if isinstance(inner, KeyboardInterrupt | click.exceptions.Abort):
            code = 130
        elif isinstance(inner, GangamonError):
            click.echo(f"gangamon: error: {one_line(str(inner))}", err=True)
            code = FAILED
        else:
            raise
    sys.exit(code if isinstance(code, int) else 0)


def one_line(message: str) -> str:
    """`message` with its control characters escaped (a name or a path may hold them): an
    error stays one line on the terminal."""
    if message.isprintable():
        return message
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in message)


def _address(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and (problem := address_problem(value)) is not None:
        raise click.BadParameter(f"{value!r}: {problem}", ctx, param)
    return value


@cli.command()
@click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    help="Serve Prometheus metrics on this port [default: the config's metrics_port].",
)
@click.option(
    "--metrics-address",
    metavar="ADDR",
    callback=_address,
    help="The IP address or host name the metrics are served on "
    "[default: the config's metrics_address, else 127.0.0.1].",
)
@pass_settings
def run(settings: Settings, metrics_port: int | None, metrics_address: str | None) -> None:
    """Monitor the store's jobs until SIGINT or SIGTERM; then stop gracefully."""
    config = dataclasses.replace(
        settings.config,
        store=settings.store,
        metrics_address=metrics_address or settings.config.metrics_address,
    )
    metrics_port = metrics_port or config.metrics_port
    if metrics_address is not None and metrics_port is None:
        raise click.UsageError("--metrics-address needs a port: --metrics-port or metrics_port")
    trio.run(partial(run_service, config, metrics_port=metrics_port))


@cli.command()
@click.argument("backend")
@click.argument("ids", nargs=-1)
@click.option(
    "--file",
    "id_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Read more ids from this file (whitespace or commas between them, # comments).",
)
@click.option(
    "--status",
    "initial",
    type=click.Choice(["submitted", "running"]),
    default="submitted",
    show_default=True,
    help="Status to record the jobs in until their first poll.",
)
@click.option(
    "--check",
    is_flag=True,
    help="Ask the backend first; if it does not know an id, store none.",
)
@pass_settings
def track(
    settings: Settings,
    backend: str,
    ids: tuple[str, ...],
    id_file: Path | None,
    initial: str,
    check: bool,
) -> None:
    """Register existing jobs of BACKEND by their ids: 1234, ranges 1200-1299, --file."""
    configured = settings.config.backends
    if backend not in configured:
        raise click.UsageError(f"unknown backend {backend!r} (configured: {', '.join(configured)})")
    kind = configured[backend][0]
    wanted = parse_ids(kind, ids)
    if id_file is not None:
        wanted += [i for i in read_id_file(kind, id_file) if i not in set(wanted)]
    if not wanted:
        raise BadJobId("no job ids given (as arguments or with --file)")
    if check:
        [built] = [b for b in build_backends(settings.config) if b.name == backend]
        unknown = trio.run(unknown_ids, built, wanted)
        if unknown:
            shown = ", ".join(unknown[:5]) + (", ..." if len(unknown) > 5 else "")
            raise BadJobId(
                f"{backend} does not know {len(unknown)} of the ids ({shown}): none stored"
            )
    with open_store(settings.store) as store:
        added, known = store.add_new_jobs([NewJob(backend, i, Status(initial)) for i in wanted])
    where = f" (store ids {added[0]}-{added[-1]})" if added else ""
    skipped = f"; {known} were already tracked" if known else ""
    click.echo(f"tracked {len(added)} {backend} jobs{where}{skipped}")


@cli.command()
@click.option("--once", is_flag=True, help="Show the view once and exit.")
@click.option(
    "--interval",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0.1, 60),
    help="Seconds between refreshes.",
)
@pass_settings
def watch(settings: Settings, once: bool, interval: float) -> None:
    """A live view of the store: jobs per status, recent changes, backend health."""
    path = settings.store
    store = AsyncStore(settings.existing_store())
    console = Console()
    if not console.is_terminal:
        console = output_console()
    idle = "no monitor is running on this store (gangamon run)"
    if not isinstance(path, Path):
        idle = "a monitor's statistics are shown for SQLite stores only (gangamon status: who runs)"

    async def views() -> None:
        rates, finished = Rates(), Rates(window=60.0)
        live = None if once or not console.is_terminal else Live(console=console)
        backends = 0
        with live if live is not None else contextlib.nullcontext():
            while True:
                snapshot = read_snapshot(path)
                health = None if snapshot is None else snapshot.statistics.backends
                per_second = (
                    {} if snapshot is None else rates.update(snapshot.time, calls(health or {}))
                )
                note = "" if snapshot else idle
                view = await collect(
                    store, f"gangamon watch - {store.store.where}", health=health,
                    calls_per_second=per_second, finished=finished, note=note,
                    recent=recent_rows(console.height, backends) if live else 8,
                )  # fmt: skip
                backends = len(view.counts)
                if live is not None:
                    live.update(render(view))
                elif console.is_terminal or once:
                    console.print(render(view))
                else:
                    click.echo(render_text(view))
                if once:
                    return
                await trio.sleep(interval)

    try:
        trio.run(views)
    except KeyboardInterrupt:
        pass
    finally:
        store.store.close()


@cli.command()
@pass_settings
def doctor(settings: Settings) -> None:
    """Probe each configured part (store, backends, proxy, URLs) and say what works."""
    config = dataclasses.replace(settings.config, store=settings.store)  # --store too
    click.echo(f"configuration: {config.source}")

    async def check() -> bool:
        healthy = True
        async for finding in examine(config):
            mark = click.style("ok  ", fg="green") if finding.ok else click.style("FAIL", fg="red")
            click.echo(f"{mark} {finding.part}: {finding.says}")
            healthy &= finding.ok
        return healthy

    if not trio.run(check):
        sys.exit(FAILED)


@cli.command()
@click.option("--headless", is_flag=True, help="Plain progress lines instead of the live view.")
@click.option(
    "--jobs",
    default=10_000,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="Simulated DIRAC jobs.",
)
@click.option(
    "--local-jobs",
    default=50,
    show_default=True,
    type=click.IntRange(0, 500),
    help="Local processes (short shell commands).",
)
def demo(headless: bool, jobs: int, local_jobs: int) -> None:
    """Monitor 10,000 simulated DIRAC jobs and 50 local processes to the end (temporary
    store, simulator on loopback), then print how fast each change was stored."""
    console = Console()
    if not console.is_terminal:
        headless, console = True, Console(width=120)
    sys.exit(demo_main(headless=headless, dirac_jobs=jobs, local_jobs=local_jobs, console=console))


if __name__ == "__main__":
    main()
