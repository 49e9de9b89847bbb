"""The `gangamon` command: run, track, status, watch, doctor, demo, and the DIRAC simulator.

Every command reads one configuration (see `_config.py`). Bad input of any kind (a config
value, an id, a store, a port, a proxy) ends the command with one line on stderr naming the
value, and a nonzero exit; nothing already stored is changed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
import tempfile
import time
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Literal

import click
import trio
from rich.console import Console
from rich.live import Live
from rich.table import Table

from .._astore import AsyncStore
from .._errors import GangamonError, single_exception
from .._fetch import fetch_output
from .._status import Status, parse_status
from .._store import JobRecord, JobStore, JournalEntry, NewJob, open_store
from .._storelock import holder
from ..sim import dirac_cfg
from ..sim._certs import make_credentials
from ..sim.dirac import DiracSim, LatencyModel
from ._check import unknown_ids
from ._config import Config, build_backends, load_config, store_location
from ._demo import main as demo_main
from ._doctor import examine
from ._ids import BadJobId, parse_ids, read_id_file
from ._logs import configure as configure_logs
from ._standalone import read_snapshot, serve as run_service
from ._view import CallRates, collect, render, render_text

#: Exit code for bad input and failed checks (click's own usage errors exit with 2).
FAILED = 1


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


class Settings:
    """What the group's options say, for the commands."""

    def __init__(self, config_path: Path | None, store: str | None) -> None:
        self._config_path = config_path
        self._store = store
        self._config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self._config_path)
        return self._config

    @property
    def store(self) -> Path | str:
        return store_location(self._store) if self._store else self.config.store

    def existing_store(self) -> JobStore:
        """The store, which must exist, read only: reading commands never write."""
        return open_store(self.store, read_only=True)


pass_settings = click.make_pass_decorator(Settings)


def _store_option(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """`--store` as given: a URL, or a path that is not a directory."""
    if value is not None and isinstance(where := store_location(value), Path) and where.is_dir():
        raise click.BadParameter(f"{value!r} is a directory, not a store file.", ctx, param)
    return value


@click.group()
@click.version_option(package_name="gangamon")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Configuration file [default: $GANGAMON_CONFIG, else ~/.config/gangamon/config.toml].",
)
@click.option(
    "--store",
    metavar="PATH|URL",
    callback=_store_option,
    help="Job store: an SQLite file, or postgresql://... (overrides config).",
)
@click.option("-v", "--verbose", count=True, help="More log output (-vv: everything).")
@click.option("--log-json", is_flag=True, help="Log records as JSON lines.")
@click.pass_context
def cli(
    ctx: click.Context, config_path: Path | None, store: str | None, verbose: int, log_json: bool
) -> None:
    """gangamon: job monitoring for Ganga-style job management."""
    configure_logs(verbose, as_json=log_json)
    ctx.obj = Settings(config_path, store)


@cli.command()
@click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    help="Serve Prometheus metrics on 127.0.0.1:PORT [default: the config's metrics_port].",
)
@pass_settings
def run(settings: Settings, metrics_port: int | None) -> None:
    """Monitor the store's jobs until SIGINT or SIGTERM; then stop gracefully."""
    config = dataclasses.replace(settings.config, store=settings.store)
    trio.run(partial(run_service, config, metrics_port=metrics_port or config.metrics_port))


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
@click.option("--backend", help="Only this backend's jobs.")
@click.option(
    "--status",
    "status_name",
    type=click.Choice([s.value for s in Status]),
    help="Only jobs in this status, listed.",
)
@click.option("--job", type=int, help="One job: its record and its history.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=0))
@click.option("--json", "as_json", is_flag=True, help="JSON instead of tables.")
@pass_settings
def status(
    settings: Settings,
    backend: str | None,
    status_name: str | None,
    job: int | None,
    limit: int,
    as_json: bool,
) -> None:
    """Jobs per backend and status; with --status the jobs themselves, with --job one job."""
    wanted = parse_status(status_name) if status_name is not None else None
    console = Console()
    with settings.existing_store() as store:
        if job is not None:
            record, journal = store.get(job), store.journal(job=job)
            if as_json:
                click.echo(
                    json.dumps({"job": _plain(record), "journal": [_plain(e) for e in journal]})
                )
                return
            click.echo(
                f"job {record.id}: {record.backend} {record.backend_id or ''} "
                f"{record.status.value} ({record.native_status or '-'})"
            )
            for e in journal:
                old = e.old.value if e.old else "new"
                click.echo(f"  {_when(e.time)}  {old} -> {e.new.value}  {e.reason}")
            return
        counts: dict[str, dict[str, int]] = {}
        for name, s, n in store.counts():
            if (backend is None or name == backend) and (wanted is None or s == wanted):
                counts.setdefault(name, {})[s.value] = n
        listed = store.jobs(backend=backend, statuses=[wanted]) if wanted is not None else []
        where = store.where
    running = holder(settings.store)
    monitor = str(running) if running is not None else None
    if as_json:
        click.echo(
            json.dumps({"counts": counts, "jobs": [_plain(r) for r in listed], "monitor": monitor})
        )
        return
    table = Table(title=f"jobs in {where}", title_justify="left")
    table.add_column("backend")
    shown = [s.value for s in Status if any(s.value in c for c in counts.values())]
    for name in [*shown, "total"]:
        table.add_column(name, justify="right")
    for name, c in counts.items():
        table.add_row(name, *(str(c.get(s, 0)) for s in shown), str(sum(c.values())))
    console.print(table)
    for record in listed[:limit]:
        click.echo(
            f"{record.id:>8} {record.backend} {record.backend_id or '-'} "
            f"{record.native_status or '-'} {_when(record.updated)}"
        )
    if len(listed) > limit:
        console.print(f"... and {len(listed) - limit} more (--limit, or --json for all)")
    click.echo(f"monitor: {monitor or 'none runs on this store'}")


def _plain(record: JobRecord | JournalEntry) -> dict[str, object]:
    return {k: (v.value if isinstance(v, Status) else v) for k, v in asdict(record).items()}


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


@cli.command()
@click.option("--once", is_flag=True, help="Show the view once and exit.")
@click.option("--interval", default=1.0, show_default=True, type=click.FloatRange(0.1, 60))
@pass_settings
def watch(settings: Settings, once: bool, interval: float) -> None:
    """A live view of the store: jobs per status, recent changes, backend health."""
    path = settings.store
    store = AsyncStore(settings.existing_store())
    console = Console()
    idle = "no monitor is running on this store (gangamon run)"
    if not isinstance(path, Path):
        idle = "a monitor's statistics are shown for SQLite stores only (gangamon status: who runs)"

    async def views() -> None:
        rates = CallRates()
        live = None if once or not console.is_terminal else Live(console=console)
        with live if live is not None else contextlib.nullcontext():
            while True:
                snapshot = read_snapshot(path)
                health = None if snapshot is None else snapshot.statistics.backends
                per_second = {} if snapshot is None else rates.update(snapshot.time, health or {})
                note = "" if snapshot else idle
                view = await collect(
                    store, f"gangamon watch - {store.store.where}", health=health,
                    calls_per_second=per_second, note=note,
                )  # fmt: skip
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


@cli.command("fetch-output")
@click.argument("jobs", nargs=-1, type=click.IntRange(min=1), required=True)
@pass_settings
def fetch_output_command(settings: Settings, jobs: tuple[int, ...]) -> None:
    """Download the output of JOBS (store ids) again; a job whose download had failed for good
    completes. Works beside a running `gangamon run`."""
    with open_store(settings.store, read_only=True) as reader:
        by_backend: dict[str, list[int]] = {}
        for job in jobs:
            by_backend.setdefault(reader.get(job).backend, []).append(job)
    built = {b.name: b for b in build_backends(settings.config) if b.name in by_backend}
    for name in by_backend:
        if name not in built:
            raise GangamonError(f"backend {name!r} is not configured")

    async def fetch() -> None:
        store = AsyncStore(open_store(settings.store))
        try:
            for name, mine in by_backend.items():
                for done in await fetch_output(store, built[name], mine):
                    then = "; completed" if done.completed else ""
                    click.echo(f"job {done.job}: {done.reason}{then}")
        finally:
            await store.aclose()

    trio.run(fetch)


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
@click.option("--jobs", default=10_000, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--local-jobs", default=50, show_default=True, type=click.IntRange(0, 500))
def demo(headless: bool, jobs: int, local_jobs: int) -> None:
    """Monitor 10,000 simulated DIRAC jobs and 50 local processes to the end (temporary
    store, simulator on loopback), then print how fast each change was stored."""
    console = Console()
    if not console.is_terminal:
        headless, console = True, Console(width=120)
    sys.exit(demo_main(headless=headless, dirac_jobs=jobs, local_jobs=local_jobs, console=console))


@cli.group()
def sim() -> None:
    """Simulators of the systems gangamon monitors."""


@sim.command("dirac")
@click.option(
    "--jobs",
    default=1000,
    show_default=True,
    type=click.IntRange(min=0),
    help="Simulated jobs to create at start.",
)
@click.option(
    "--mean-runtime",
    default=60.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Mean seconds a job takes.",
)
@click.option(
    "--latency",
    default=0.05,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Base seconds per call.",
)
@click.option(
    "--latency-per-id",
    default=2e-6,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Extra seconds per job id in a call.",
)
@click.option(
    "--tail-probability",
    default=0.01,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Chance of a heavy-tailed extra delay.",
)
@click.option("--port", default=0, type=click.IntRange(0, 65535), help="HTTPS port (0: any).")
@click.option("--dips-port", default=0, type=click.IntRange(0, 65535), help="dips port.")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to write the CA, host certificate and proxy (default: a temp dir).",
)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option(
    "--sandbox-pfns",
    type=click.Choice(["url", "dirac"]),
    default="dirac",
    show_default=True,
    help="Name output sandboxes as DIRAC does, or by https URLs of the simulator.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON line instead of text.")
def sim_dirac(
    jobs: int,
    mean_runtime: float,
    latency: float,
    latency_per_id: float,
    tail_probability: float,
    port: int,
    dips_port: int,
    directory: Path | None,
    seed: int,
    sandbox_pfns: Literal["url", "dirac"],
    as_json: bool,
) -> None:
    """Serve DIRAC's JobMonitoring, SandboxStore and FileCatalog on loopback until
    interrupted; write the dirac.cfg a DIRAC client needs into the directory."""
    directory = directory or Path(tempfile.mkdtemp(prefix="gangamon-dirac-sim-"))
    credentials = make_credentials(directory)
    simulator = DiracSim(
        seed=seed,
        mean_runtime=mean_runtime,
        credentials=credentials,
        latency=LatencyModel(
            base=latency, per_id=latency_per_id, tail_probability=tail_probability
        ),
        sandbox_pfns=sandbox_pfns,
    )

    async def serve() -> None:
        ids = simulator.submit(jobs)
        async with trio.open_nursery() as nursery:
            urls = await nursery.start(partial(simulator.serve, port=port, dips_port=dips_port))
            cfg = dirac_cfg(
                directory / "dirac.cfg", https=urls.https, dips=urls.dips, ca_dir=credentials.ca_dir
            )
            facts = {
                "https": urls.https,
                "dips": urls.dips,
                "ca_dir": str(credentials.ca_dir),
                "ca_file": str(credentials.ca_file),
                "proxy": str(credentials.proxy),
                "expired_proxy": str(credentials.expired_proxy),
                "jobs": [ids[0], ids[-1]] if ids else [],
                "dirac_cfg": str(cfg),
                # DiracX's credentials as `dirac login` leaves them, and an hour later.
                "diracx_credentials": str(
                    simulator.diracx_tokens.credentials(directory / "diracx-credentials.json")
                ),
                "diracx_credentials_expired": str(
                    simulator.diracx_tokens.credentials(
                        directory / "diracx-credentials-expired.json", expires_in=0
                    )
                ),
            }
            if as_json:
                print(json.dumps(facts), flush=True)
            else:
                for key, value in facts.items():
                    print(f"{key:>14}: {value}")
                print("Ctrl-C to stop.", flush=True)

    try:
        trio.run(serve)
    except BaseException as exc:
        if isinstance(single_exception(exc), KeyboardInterrupt):
            sys.exit(130)
        raise


if __name__ == "__main__":
    main()
