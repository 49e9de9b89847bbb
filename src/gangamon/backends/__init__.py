"""Backends: the protocol, adapters for existing code, and one module per system."""

from .._public import report_public as _report_public
from ._adapters import AsyncioBackend as AsyncioBackend, ThreadedBackend as ThreadedBackend
from ._protocol import (
    Backend as Backend,
    BackendError as BackendError,
    BackendSettings as BackendSettings,
    BackendUnavailable as BackendUnavailable,
    JobRef as JobRef,
    Update as Update,
)

_report_public(__name__, globals())
