"""Every backend kind gangamon can be configured with, by the name a table's `type` gives."""

from __future__ import annotations

from typing import Any

from ._kind import BackendKind
from .condor import CONDOR
from .dirac._kind import DIRAC
from .local import LOCAL
from .lsf import LSF
from .pbs import PBS
from .sge import SGE
from .slurm import SLURM

KINDS: dict[str, BackendKind[Any, Any]] = {
    kind.name: kind for kind in (DIRAC, LOCAL, SLURM, CONDOR, LSF, PBS, SGE)
}
