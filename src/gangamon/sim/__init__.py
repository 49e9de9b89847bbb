"""Simulators of the systems gangamon monitors, for tests, benchmarks and the demo."""

from .._public import report_public as _report_public
from ._dirac_cfg import dirac_cfg as dirac_cfg, dirac_cfg_dict as dirac_cfg_dict

_report_public(__name__, globals())
