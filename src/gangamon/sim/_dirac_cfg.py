"""The dirac.cfg a real DIRAC client needs to use the simulator, with no Configuration Server.

It declares the CA directory, the services' URLs (JobMonitoring, SandboxStore, FileCatalog),
the sandbox storage element (DIRAC's DIP plugin over the simulator's dips port, as a real
SandboxStore's SE is), the file catalog, and a Registry that maps the simulator's proxy DN to
a user in a group (without it the client knows no DIRAC group for the proxy, and Ganga's
credential store finds no credential).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from ._certs import USER_DN
from ._job_facts import SITE_SES

SANDBOX_SE = "SimSandboxSE"
USER = "gangamon"
GROUP = "gangamon_user"
VO = "gangamon"


def dirac_cfg_dict(
    *,
    https: str,
    dips: str,
    ca_dir: Path,
    job_monitoring: Literal["https", "dips"] = "https",
) -> dict[str, object]:
    """The configuration as nested sections (also what `DIRAC.initialize(extra_config=...)`
    takes). `https` and `dips` are the simulator's base URLs (scheme, host, port).

    `job_monitoring` picks the wire of JobMonitoring: DISET's RPCClient (which Ganga uses for
    getJobAttributes) refuses an https URL, so a client that needs it takes dips.
    """
    wms = "/WorkloadManagement"
    monitoring = (
        f"{https}{wms}/TornadoJobMonitoring"
        if job_monitoring == "https"
        else f"{dips}{wms}/JobMonitoring"
    )
    return {
        "DIRAC": {"Security": {"CALocation": str(ca_dir)}},
        "Systems": {
            "WorkloadManagement": {
                "URLs": {
                    "JobMonitoring": monitoring,
                    "SandboxStore": f"{dips}{wms}/SandboxStore",
                }
            },
            "DataManagement": {"URLs": {"FileCatalog": f"{dips}/DataManagement/FileCatalog"}},
            # DIRAC's StorageElement asks the status system before every read.
            "ResourceStatus": {"URLs": {"ResourceStatus": f"{dips}/ResourceStatus/ResourceStatus"}},
        },
        "Resources": {
            # The sandbox SE is read through SandboxStore's file transfer, as DIRAC's is; the
            # sites' SEs hold the jobs' output data, which only the catalogue is asked about.
            "StorageElements": {
                SANDBOX_SE: _dip_se(dips, f"{wms}/SandboxStore"),
                **{se: _dip_se(dips, "/DataManagement/StorageElement") for se in SITE_SES.values()},
            },
            # The sites jobs run at, each with its SE (DIRAC maps SEs to sites by these).
            "Sites": {
                "LCG": {
                    site: {"Name": site.split(".")[1], "SE": se} for site, se in SITE_SES.items()
                }
            },
            "FileCatalogs": {
                "FileCatalog": {
                    "CatalogType": "FileCatalog",
                    "AccessType": "Read-Write",
                    "Status": "Active",
                    "Master": "True",
                    "CatalogURL": "DataManagement/FileCatalog",
                }
            },
        },
        # No accounting of data operations: the simulator has no Accounting service (the
        # client would report each download to it, and wait for it to fail).
        "Operations": {"Defaults": {"MonitoringBackends": {"Default": ""}}},
        "Registry": {
            "DefaultGroup": GROUP,
            "Users": {USER: {"DN": USER_DN}},
            "Groups": {GROUP: {"Users": USER, "Properties": "NormalUser", "VO": VO}},
            "VO": {VO: {"VOAdmin": USER}},
        },
    }


def _dip_se(dips: str, path: str) -> dict[str, object]:
    """A storage element of DIRAC's DIP kind: a DISET service at `dips` + `path`."""
    where = urlsplit(dips)
    return {
        "BackendType": "DISET",
        "AccessProtocol.1": {
            "Host": where.hostname or "127.0.0.1",
            "Port": str(where.port),
            "PluginName": "DIP",
            "Protocol": "dips",
            "Path": path,
            "Access": "remote",
        },
    }


def render_cfg(sections: Mapping[str, object], indent: str = "") -> str:
    """`sections` in DIRAC's CFG syntax: `Name` + a braced block per section,
    `Option = value` per option."""
    lines = []
    for name, value in sections.items():
        if isinstance(value, Mapping):
            lines += [f"{indent}{name}", f"{indent}{{"]
            lines.append(render_cfg(value, indent + "  ").rstrip("\n"))
            lines.append(f"{indent}}}")
        else:
            lines.append(f"{indent}{name} = {value}")
    return "\n".join(line for line in lines if line) + "\n"


def dirac_cfg(
    path: Path,
    *,
    https: str,
    dips: str,
    ca_dir: Path,
    job_monitoring: Literal["https", "dips"] = "https",
) -> Path:
    """Write the dirac.cfg for the simulator at `https` and `dips` to `path` (for
    `DIRACSYSCONFIG`); return `path`. See `dirac_cfg_dict`."""
    sections = dirac_cfg_dict(https=https, dips=dips, ca_dir=ca_dir, job_monitoring=job_monitoring)
    path.write_text(render_cfg(sections))
    return path
