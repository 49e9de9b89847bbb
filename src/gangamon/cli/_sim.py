"""`gangamon sim dirac`: the DIRAC simulator on its own, to try gangamon (or DIRAC's own client)
against it."""

from __future__ import annotations

import json
import sys
import tempfile
from functools import partial
from pathlib import Path
from typing import Literal

import click
import trio

from .._errors import single_exception
from ..sim import dirac_cfg
from ..sim._certs import make_credentials
from ..sim.dirac import DiracSim, LatencyModel


def backend_config(name: str, facts: dict[str, str]) -> str:
    """The configuration table that points a DIRAC backend named `name` at the simulator."""
    return (
        f"# gangamon sim dirac, on {facts['https']}\n"
        f"[backends.{name}]\n"
        'type = "dirac"\n'
        f"url = {json.dumps(facts['https'])}\n"
        f"proxy = {json.dumps(facts['proxy'])}\n"
        f"ca = {json.dumps(facts['ca_dir'])}\n"
        f"output_dir = {json.dumps(facts['output_dir'])}\n"
    )


@click.group()
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
@click.option(
    "--port",
    default=0,
    type=click.IntRange(0, 65535),
    help="HTTPS port, stable across runs [default: any free one].",
)
@click.option(
    "--dips-port", default=0, type=click.IntRange(0, 65535), help="dips port [default: any]."
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to write the CA, host certificate and proxy (default: a temp dir).",
)
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the jobs' paths.")
@click.option(
    "--sandbox-pfns",
    type=click.Choice(["url", "dirac"]),
    default="dirac",
    show_default=True,
    help="Name output sandboxes as DIRAC does, or by https URLs of the simulator.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON line instead of text.")
@click.option(
    "--print-config",
    is_flag=True,
    help="Print the gangamon configuration that points a backend at the simulator.",
)
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
    print_config: bool,
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
                "output_dir": str(directory / "output"),
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
            if print_config:
                print(backend_config("dirac", facts), flush=True)
            elif as_json:
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
