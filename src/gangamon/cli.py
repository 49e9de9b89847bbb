"""The `gangamon` command. So far: `gangamon sim dirac`, the DIRAC simulator."""

from __future__ import annotations

import json
import sys
import tempfile
from functools import partial
from pathlib import Path

import click
import trio

from ._errors import single_exception
from .sim._certs import make_credentials
from .sim.dirac import DiracSim, LatencyModel


@click.group()
@click.version_option(package_name="gangamon")
def main() -> None:
    """gangamon: job monitoring for Ganga-style job management."""


@main.group()
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
    as_json: bool,
) -> None:
    """Serve DIRAC's JobMonitoring and SandboxStore on loopback until interrupted."""
    directory = directory or Path(tempfile.mkdtemp(prefix="gangamon-dirac-sim-"))
    credentials = make_credentials(directory)
    simulator = DiracSim(
        seed=seed,
        mean_runtime=mean_runtime,
        credentials=credentials,
        latency=LatencyModel(
            base=latency, per_id=latency_per_id, tail_probability=tail_probability
        ),
    )

    async def serve() -> None:
        ids = simulator.submit(jobs)
        async with trio.open_nursery() as nursery:
            urls = await nursery.start(partial(simulator.serve, port=port, dips_port=dips_port))
            facts = {
                "https": urls.https,
                "dips": urls.dips,
                "ca_dir": str(credentials.ca_dir),
                "ca_file": str(credentials.ca_file),
                "proxy": str(credentials.proxy),
                "expired_proxy": str(credentials.expired_proxy),
                "jobs": [ids[0], ids[-1]] if ids else [],
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
