"""Commands on jobs one by one: kill, untrack, wait, fetch-output, submit.

They work beside a running `gangamon run` (which follows what they store within its next look
at the store) or without one. A job is named by its store id or as `backend:id`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

import click
import trio

from .._astore import AsyncStore
from .._control import Controlled, Done, kill_jobs, untrack_jobs
from .._errors import GangamonError
from .._fetch import fetch_output
from .._status import ACTIVE, Status
from .._store import JobStore, NewJob, open_store
from .._storelock import holder
from ..backends import Backend
from ._app import Settings, pass_settings
from ._config import build_backends
from ._ids import resolve_jobs

#: `wait`'s exit statuses beside 0 (every job completed) and 1 (bad input).
SOME_NOT_COMPLETED = 3
#: As GNU timeout(1) says it.
TIMED_OUT = 124

_JOBS_HELP = "Store ids (17, 17-20) or backend ids (dirac:1536, slurm:1234_7)."


def _resolved(settings: Settings, store: JobStore, tokens: Sequence[str]) -> list[int]:
    kinds = {name: kind for name, (kind, _) in settings.config.backends.items()}
    return resolve_jobs(store, tokens, kinds)


def _by_backend(settings: Settings, tokens: Sequence[str]) -> dict[Backend, list[int]]:
    """The named jobs grouped by their configured backend, built; one line naming a job of a
    backend that is not configured."""
    with settings.existing_store() as store:
        jobs = _resolved(settings, store, tokens)
        names = {job: store.get(job).backend for job in jobs}
    wanted = set(names.values())
    built = {b.name: b for b in build_backends(settings.config) if b.name in wanted}
    grouped: dict[Backend, list[int]] = {}
    for job, name in names.items():
        if name not in built:
            raise GangamonError(f"job {job}: its backend {name!r} is not configured")
        grouped.setdefault(built[name], []).append(job)
    return grouped


def _say(c: Controlled) -> None:
    if c.done is Done.ENDED:
        click.echo(f"job {c.job}: {c.status.value} already, left alone")
    else:
        click.echo(f"job {c.job}: {c.done.value}")


@click.command(help=f"Kill JOBS through their backends. {_JOBS_HELP}")
@click.argument("jobs", nargs=-1, required=True)
@pass_settings
def kill(settings: Settings, jobs: tuple[str, ...]) -> None:
    grouped = _by_backend(settings, jobs)

    async def killing() -> None:
        store = AsyncStore(open_store(settings.store))
        try:
            for backend, mine in grouped.items():
                await kill_jobs(store, backend, mine, _say)
        finally:
            await store.aclose()

    trio.run(killing)


@click.command(
    help=f"Stop monitoring JOBS: they become unknown, their history kept. {_JOBS_HELP}",
)
@click.argument("jobs", nargs=-1, required=True)
@pass_settings
def untrack(settings: Settings, jobs: tuple[str, ...]) -> None:
    with settings.existing_store() as store:
        wanted = _resolved(settings, store, jobs)

    async def untracking() -> None:
        store = AsyncStore(open_store(settings.store))
        try:
            for done in await untrack_jobs(store, wanted):
                _say(done)
        finally:
            await store.aclose()

    trio.run(untracking)


@click.command(
    help=(
        "Wait until JOBS (default: every active job) have ended. Exit status 0 if all "
        f"completed, {SOME_NOT_COMPLETED} if any failed, was killed or became unknown, "
        f"{TIMED_OUT} on --timeout. {_JOBS_HELP}"
    ),
)
@click.argument("jobs", nargs=-1)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, max=1e9),
    help="Give up after this many seconds [default: never].",
)
@click.option(
    "--interval",
    default=2.0,
    show_default=True,
    type=click.FloatRange(0.1, 3600),
    help="Seconds between looks at the store.",
)
@pass_settings
def wait(settings: Settings, jobs: tuple[str, ...], timeout: float | None, interval: float) -> None:
    deadline = None if timeout is None else time.monotonic() + timeout
    with settings.existing_store() as store:
        waited = (
            set(_resolved(settings, store, jobs))
            if jobs
            else {r.id for r in store.jobs(statuses=ACTIVE)}
        )
        if holder(settings.store) is None and waited:
            click.echo(
                "gangamon: warning: no monitor runs on this store: statuses change only "
                "under `gangamon run`",
                err=True,
            )
        while True:
            running = waited & {r.id for r in store.jobs(statuses=ACTIVE)}
            if not running:
                break
            if deadline is not None and time.monotonic() >= deadline:
                click.echo(f"timed out: {len(running)} of {len(waited)} jobs still active")
                sys.exit(TIMED_OUT)
            pause = interval if deadline is None else min(interval, deadline - time.monotonic())
            time.sleep(max(pause, 0.0))
        ended: dict[Status, int] = {}
        for job in waited:
            status = store.get(job).status
            ended[status] = ended.get(status, 0) + 1
    shown = ", ".join(f"{n} {s.value}" for s, n in sorted(ended.items()))
    click.echo(f"{len(waited)} jobs ended: {shown or 'none to wait for'}")
    if set(ended) - {Status.COMPLETED}:
        sys.exit(SOME_NOT_COMPLETED)


@click.command(
    "fetch-output",
    help=(
        "Download the output of JOBS again; a job whose download had failed for good "
        f"completes. Works beside a running `gangamon run`. {_JOBS_HELP}"
    ),
)
@click.argument("jobs", nargs=-1, required=True)
@pass_settings
def fetch_output_command(settings: Settings, jobs: tuple[str, ...]) -> None:
    grouped = _by_backend(settings, jobs)

    async def fetch() -> None:
        store = AsyncStore(open_store(settings.store))
        try:
            for backend, mine in grouped.items():
                for done in await fetch_output(store, backend, mine):
                    then = "; completed" if done.completed else ""
                    click.echo(f"job {done.job}: {done.reason}{then}")
        finally:
            await store.aclose()

    trio.run(fetch)


@click.command()
@click.argument("backend")
@click.argument("command", nargs=-1, required=True)
@pass_settings
def submit(settings: Settings, backend: str, command: tuple[str, ...]) -> None:
    """Launch COMMAND (an argument list, after --) as a job of BACKEND and track it:
    `gangamon submit local -- ./analyse.sh run42`."""
    configured = settings.config.backends
    if backend not in configured:
        raise click.UsageError(f"unknown backend {backend!r} (configured: {', '.join(configured)})")
    [built] = [b for b in build_backends(settings.config) if b.name == backend]
    if not built.launches:
        raise GangamonError(
            f"backend {backend!r} cannot launch jobs: submit them with its own tools, then "
            "`gangamon track` them"
        )
    open_store(settings.store).close()  # a store that cannot be used is refused before the launch

    async def launch() -> str:
        async with built.lifespan():
            return await built.launch(command)

    backend_id = trio.run(launch)
    with open_store(settings.store) as store:
        [job] = store.add_jobs([NewJob(backend, backend_id, Status.SUBMITTED)])
    click.echo(f"submitted job {job} ({backend}:{backend_id})")
    if holder(settings.store) is None:
        click.echo(
            "gangamon: warning: no monitor runs on this store: `gangamon run` follows the job",
            err=True,
        )
