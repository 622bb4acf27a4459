"""Exceptions raised by fleetbreaker.

The tree::

    CircuitBreakerError          base of everything fleetbreaker raises
    ├── CircuitOpenError         a call was refused because the circuit is open (has .circuit)
    ├── ConfigError              bad configuration or circuit name (also a ValueError)
    ├── OverrideConflictError    another operator changed a circuit's override meanwhile
    └── StoreError               a store could not be reached or answered badly

A protected call never sees ``StoreError``: the breaker logs it and fails open. It reaches
users only from direct store use (construction, ``Store.load``) and from ``CircuitBreaker.info``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fleetbreaker._info import CircuitInfo
    from fleetbreaker._protocol import Override

__all__ = [
    "CircuitBreakerError",
    "CircuitOpenError",
    "ConfigError",
    "OverrideConflictError",
    "StoreError",
]


class CircuitBreakerError(Exception):
    """Base class of every exception fleetbreaker raises."""


class CircuitOpenError(CircuitBreakerError):
    """The circuit is open (or a probe is already in flight): the call was not made."""

    # No __init__ of its own: during an outage refusals are raised by the thousand, and
    # BaseException's own constructor (args = (circuit,)) costs half as much as a Python one.
    args: tuple[CircuitInfo]

    @property
    def circuit(self) -> CircuitInfo:
        """The circuit as this process saw it when it refused the call."""
        return self.args[0]

    def __str__(self) -> str:
        # Formatted only when shown: refusals during an outage are raised far more than read.
        # Total: whatever the circuit holds (it may come from a store), showing it never raises.
        circuit = self.circuit
        state = getattr(circuit.state, "value", circuit.state)
        text = f"circuit {circuit.name!r} is {state}: call not attempted"
        override = getattr(circuit, "override", None)
        if override is not None and override.kind == "open":
            return (
                f"circuit {circuit.name!r} is forced open until {_utc_time(override.until)} by "
                f"{override.actor}: {override.reason}: call not attempted"
            )
        if circuit.retry_at is not None:
            text += f" (next probe after {_utc_time(circuit.retry_at)})"
        elif circuit.probe_in_flight:
            text += " (a probe is in flight)"
        return text


def _utc_time(wall: float) -> str:
    """``wall`` (Unix seconds) as an ISO 8601 UTC time, or the raw number when it is not one."""
    try:
        return datetime.fromtimestamp(wall, tz=timezone.utc).isoformat(timespec="milliseconds")
    except (ValueError, OverflowError, OSError, TypeError):  # NaN, inf, years past 9999, ...
        return f"{wall!r} (Unix time)"


class ConfigError(CircuitBreakerError, ValueError):
    """A configuration value or circuit name is not allowed; the message says what is."""


class OverrideConflictError(CircuitBreakerError):
    """Another operator set or cleared the circuit's override between this one's read and
    write: nothing was written. ``current`` is the override now in force (``None``: none)."""

    def __init__(self, message: str, current: Override | None) -> None:
        super().__init__(message)
        self.current = current


class StoreError(CircuitBreakerError):
    """A store operation failed (unreachable, timed out, refused, or answered nonsense)."""
