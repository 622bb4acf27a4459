"""fleetbreaker: one circuit breaker for a whole fleet of processes, hosts or Lambdas."""

from fleetbreaker._breaker import CircuitBreaker, circuit_breaker
from fleetbreaker._info import CircuitInfo, CircuitTransition
from fleetbreaker._protocol import CircuitState
from fleetbreaker.config import Config
from fleetbreaker.errors import CircuitBreakerError, CircuitOpenError, ConfigError, StoreError
from fleetbreaker.stores import MemoryStore, SQLiteStore, Store

__all__ = [
    "CircuitBreaker",
    "CircuitBreakerError",
    "CircuitInfo",
    "CircuitOpenError",
    "CircuitState",
    "CircuitTransition",
    "Config",
    "ConfigError",
    "MemoryStore",
    "SQLiteStore",
    "Store",
    "StoreError",
    "circuit_breaker",
]
