"""`gangamon config init`: a commented configuration, every value its default, written where
gangamon will read it."""

from __future__ import annotations

from importlib import resources

import click

from .._errors import GangamonError
from ._app import Settings, pass_settings
from ._config import default_path


def template() -> str:
    return resources.files(__package__).joinpath("config_template.toml").read_text()


@click.group()
def config() -> None:
    """The configuration file."""


@config.command()
@click.option("--force", is_flag=True, help="Replace a file that is already there.")
@click.pass_context
def init(ctx: click.Context, force: bool) -> None:
    """Write a commented configuration to the file gangamon reads (--config, else
    $GANGAMON_CONFIG, else ~/.config/gangamon/config.toml)."""
    settings = ctx.find_object(Settings)
    path = ((settings.config_path if settings else None) or default_path()).expanduser()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w" if force else "x") as file:
            file.write(template())
    except FileExistsError:
        raise GangamonError(f"{path} exists already (--force replaces it)") from None
    except OSError as e:
        raise GangamonError(f"cannot write {path}: {e.strerror}") from None
    click.echo(f"wrote {path}")


@config.command()
@pass_settings
def path(settings: Settings) -> None:
    """Print the file gangamon reads its configuration from."""
    click.echo(settings.config_path or default_path())
