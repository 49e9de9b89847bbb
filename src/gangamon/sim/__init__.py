"""Simulators of the systems gangamon monitors, for tests, benchmarks and the demo."""

from ._dirac_cfg import dirac_cfg as dirac_cfg, dirac_cfg_dict as dirac_cfg_dict
