"""GangaDirac configured against the simulator, configuration only (reference/ganga-dirac.md,
"What it needs"): a gangarc, the DIRAC environment as JSON, a dirac.cfg, and the Ganga
process's own environment. Nothing of Ganga or DIRAC is patched. The dirac.cfg (services'
URLs, the sandbox storage element, a Registry for the proxy's DN) is gangamon.sim's."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from gangamon.sim import dirac_cfg
from gangamon.sim._dirac_cfg import GROUP

GANGARC = """\
# Ganga configuration file ($Name: 8.7.12 $)
[Configuration]
RUNTIME_PATH = GangaDirac
gangadir = {gangadir}
[PollThread]
autostart = False
Dirac = {interval}
[DIRAC]
DiracEnvJSON = {env_json}
default_downloadOutputSandbox = {download}
failed_sandbox_download = {download}
[defaults_DiracProxy]
group = {group}
encodeDefaultProxyFileName = False
"""


def write_config(directory: Path, facts: dict[str, Any], *, interval: int, download: bool) -> Path:
    """Write Ganga's and DIRAC's files for a session in `directory`; return the gangarc."""
    # JobMonitoring over HTTPS (Tornado), as DIRAC 9 serves it: Ganga's getJobAttributes,
    # through DISET's RPCClient, then fails as it would against a real DIRAC 9 (item 9).
    cfg = dirac_cfg(
        directory / "dirac.cfg",
        https=facts["https"],
        dips=facts["dips"],
        ca_dir=Path(facts["ca_dir"]),
    )
    env_json = directory / "dirac-env.json"
    bin_dir = str(Path(sys.executable).parent)
    dirac_env = {
        "DIRACSYSCONFIG": str(cfg),
        "X509_USER_PROXY": facts["proxy"],
        "X509_CERT_DIR": facts["ca_dir"],
        # Ganga starts its old-style DIRAC process as `python` from this PATH.
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        # DiracExecutorProcess.set_process_env reads env['DIRACOS']: empty is enough.
        "DIRACOS": "",
    }
    env_json.write_text(json.dumps(dirac_env))
    gangarc = directory / "gangarc"
    gangarc.write_text(
        GANGARC.format(
            gangadir=directory / "gangadir",
            interval=interval,  # an integer option: "5.0" is a ConfigError
            env_json=env_json,
            download=download,
            group=GROUP,
        )
    )
    return gangarc


def prepare_process(directory: Path, gangarc: Path, facts: dict[str, Any]) -> None:
    """This process's environment and argv as Ganga and its DIRAC processes need them; to be
    called before Ganga is imported."""
    home = directory / "home"
    home.mkdir(exist_ok=True)
    os.environ["HOME"] = str(home)
    os.environ["GANGA_CONFIG_FILE"] = str(gangarc)
    os.environ["X509_USER_PROXY"] = facts["proxy"]
    os.environ["X509_CERT_DIR"] = facts["ca_dir"]
    os.environ.setdefault("DIRACOS", "")
    # They override DIRAC's CALocation, and Ganga's DIRAC processes are forked from this one.
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        os.environ.pop(name, None)
    # The forked DIRAC process parses the argv it inherits (parseCommandLine(ignoreErrors=False)).
    del sys.argv[1:]
