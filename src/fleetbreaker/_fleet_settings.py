"""What the fleet's writers were configured with, as far as a record tells.

A record's periods are differences of two times from one writer's clock, so they show that
writer's configuration whatever its clock says. A process compares them with its own to warn
that the fleet is configured unevenly (each process then waits the shorter period).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from fleetbreaker._protocol import CircuitState, Record

if TYPE_CHECKING:
    from fleetbreaker.config import Config

__all__ = ["differences"]

TOLERANCE: Final = 1e-3
"""Seconds two periods may differ by (float rounding through stores) and still be one setting."""


def differences(record: Record, config: Config) -> list[tuple[str, float, float]]:
    """``(setting, the writer's value, ours)`` for each period ``record`` was written with that
    differs from ``config``; empty when they agree or the record shows none."""
    found: list[tuple[str, float, float]] = []
    if record.state is CircuitState.OPEN and record.retry_at is not None:
        theirs = record.retry_at - record.updated_at
        if abs(theirs - config.recovery_timeout) > TOLERANCE:
            found.append(("recovery_timeout", theirs, config.recovery_timeout))
    elif record.probe_owner is not None and record.probe_expires_at is not None:
        theirs = record.probe_expires_at - record.updated_at
        if abs(theirs - config.effective_probe_timeout) > TOLERANCE:
            found.append(("probe_timeout", theirs, config.effective_probe_timeout))
    return found
