"""fleetbreaker: one circuit breaker for a whole fleet of processes, hosts or Lambdas."""

from __future__ import annotations

from fleetbreaker._breaker import CircuitBreaker, circuit_breaker
from fleetbreaker._family import BreakerFamily
from fleetbreaker._history import HistoryEntry
from fleetbreaker._info import CircuitInfo, CircuitTransition
from fleetbreaker._protocol import CircuitState, Override
from fleetbreaker.config import Config
from fleetbreaker.errors import (
    CircuitBreakerError,
    CircuitOpenError,
    ConfigError,
    OverrideConflictError,
    StoreError,
)
from fleetbreaker.stores import MemoryStore, SQLiteStore, Store

__all__ = [
    "BreakerFamily",
    "CircuitBreaker",
    "CircuitBreakerError",
    "CircuitInfo",
    "CircuitOpenError",
    "CircuitState",
    "CircuitTransition",
    "Config",
    "ConfigError",
    "HistoryEntry",
    "MemoryStore",
    "Override",
    "OverrideConflictError",
    "SQLiteStore",
    "Store",
    "StoreError",
    "circuit_breaker",
]


def __getattr__(name: str) -> str:
    # __version__ is looked up on first use (stamina's way): importing importlib.metadata
    # would cost every import of fleetbreaker several milliseconds.
    if name != "__version__":
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg)
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415 - lazy

    try:
        found = version("fleetbreaker")
    except PackageNotFoundError:  # run from a source tree that was never installed
        found = "0+unknown"
    globals()["__version__"] = found
    return found
