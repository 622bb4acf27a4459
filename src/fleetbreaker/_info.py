"""Frozen public snapshots handed to callers and hooks; they leak no store detail."""

from __future__ import annotations

from dataclasses import dataclass

from fleetbreaker._protocol import CircuitState, Record

__all__ = ["CircuitInfo", "CircuitTransition"]


@dataclass(frozen=True, slots=True)
class CircuitInfo:
    """What one process knows about a circuit. Times are wall-clock seconds (Unix time).

    ``failure_count`` is the count that tripped the circuit when it is not closed, and this
    process's current run of consecutive failures when it is closed. ``probe_in_flight`` says
    a caller somewhere in the fleet holds the probe slot. ``half_open_successes`` counts the
    successful probes of the current half-open episode.
    """

    name: str
    state: CircuitState
    failure_count: int
    opened_at: float | None
    retry_at: float | None = None
    epoch: int = 0
    probe_in_flight: bool = False
    half_open_successes: int = 0

    @classmethod
    def from_record(cls, name: str, record: Record, local_failures: int = 0) -> CircuitInfo:
        closed = record.state is CircuitState.CLOSED
        return cls(
            name=name,
            state=record.state,
            failure_count=local_failures if closed else record.failure_count,
            opened_at=record.opened_at,
            retry_at=record.retry_at,
            epoch=record.epoch,
            probe_in_flight=record.probe_owner is not None,
            half_open_successes=record.successes,
        )


@dataclass(frozen=True, slots=True)
class CircuitTransition:
    """A state change this process persisted (so each one is reported once, fleet-wide)."""

    name: str
    from_state: CircuitState
    to_state: CircuitState
    epoch: int
    at: float
    """Wall-clock time of the transition (Unix seconds)."""
    failure_count: int = 0
    """For a trip: the consecutive failures that tripped it."""
