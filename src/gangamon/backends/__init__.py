"""Backends: the protocol, adapters for existing code, and one module per system."""

from ._adapters import AsyncioBackend as AsyncioBackend, ThreadedBackend as ThreadedBackend
from ._protocol import (
    Backend as Backend,
    BackendError as BackendError,
    BackendSettings as BackendSettings,
    BackendUnavailable as BackendUnavailable,
    JobRef as JobRef,
    Update as Update,
)
