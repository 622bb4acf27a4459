"""What the fleet's writers were configured with, as far as a record tells.

A record's periods are differences of two times from one writer's clock, so they show that
writer's configuration whatever its clock says. A process compares them with its own to warn
that the fleet is configured unevenly (each process then waits the shorter period).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final

from fleetbreaker._protocol import CircuitState, Record

if TYPE_CHECKING:
    from fleetbreaker.config import Config

__all__ = ["Mismatches", "differences"]

logger = logging.getLogger("fleetbreaker")

TOLERANCE: Final = 1e-3
"""Seconds two periods may differ by (float rounding through stores) and still be one setting."""


def differences(record: Record, config: Config) -> list[tuple[str, float, float]]:
    """``(setting, the writer's value, ours)`` for each period ``record`` was written with that
    differs from ``config``; empty when they agree or the record shows none."""
    found: list[tuple[str, float, float]] = []
    if record.state is CircuitState.OPEN and record.retry_at is not None:
        theirs = record.retry_at - record.updated_at
        # Jitter, backoff and retry_after make any period in this range one of ours.
        shortest = config.recovery_timeout * (1 - config.recovery_jitter)
        if not shortest - TOLERANCE <= theirs <= config.max_open_period + TOLERANCE:
            found.append(("recovery_timeout", theirs, config.recovery_timeout))
    elif record.probe_owner is not None and record.probe_expires_at is not None:
        theirs = record.probe_expires_at - record.updated_at
        if abs(theirs - config.effective_probe_timeout) > TOLERANCE:
            found.append(("probe_timeout", theirs, config.effective_probe_timeout))
    return found


class Mismatches:
    """Logs, once per setting, that the fleet writes a circuit with settings other than ours."""

    __slots__ = ("_circuit", "_logged")

    def __init__(self, circuit: str) -> None:
        self._circuit = circuit
        self._logged: set[str] = set()

    def check(self, record: Record, config: Config) -> None:
        for setting, theirs, ours in differences(record, config):
            if setting in self._logged:
                continue
            self._logged.add(setting)
            logger.warning(
                "circuit %r: another process runs this circuit with %s=%g, this one with %g; "
                "each process waits the shorter of the two (configure every process alike)",
                self._circuit,
                setting,
                theirs,
                ours,
            )
