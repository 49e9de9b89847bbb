"""Simulators of the systems gangamon monitors, for tests, benchmarks and the demo."""
