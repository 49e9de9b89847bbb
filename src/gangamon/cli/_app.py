"""The `gangamon` group: its global options, and what they tell the commands (`Settings`)."""

from __future__ import annotations

from pathlib import Path

import click

from .._store import JobStore, open_store
from ._config import Config, load_config, store_location
from ._logs import configure as configure_logs

#: Exit code for bad input and failed checks (click's own usage errors exit with 2).
FAILED = 1
#: `-h` as well as `--help`, on every command.
CONTEXT = {"help_option_names": ["-h", "--help"]}


class Settings:
    """What the group's options say, for the commands."""

    def __init__(self, config_path: Path | None, store: str | None) -> None:
        #: The file named by --config, if any.
        self.config_path = config_path
        self._store = store
        self._config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_path)
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


@click.group(context_settings=CONTEXT)
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
@click.option(
    "--log-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Append log records to this file instead of stderr.",
)
@click.pass_context
def cli(
    ctx: click.Context,
    config_path: Path | None,
    store: str | None,
    verbose: int,
    log_json: bool,
    log_file: Path | None,
) -> None:
    """gangamon: job monitoring for Ganga-style job management.

    A job is named by its store id (17) or by its backend's own id (dirac:1536,
    slurm:1234_7).
    """
    configure_logs(verbose, as_json=log_json, file=log_file)
    ctx.obj = Settings(config_path, store)
