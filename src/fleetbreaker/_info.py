"""Frozen public snapshots handed to callers and hooks; they leak no store detail."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fleetbreaker._history import HistoryEntry
from fleetbreaker._protocol import CircuitState, Override, Record

if TYPE_CHECKING:
    from fleetbreaker._windows import Rates

__all__ = ["CircuitInfo", "CircuitTransition"]


@dataclass(frozen=True, slots=True)
class CircuitInfo:
    """What one process knows about a circuit. Times are wall-clock seconds (Unix time).

    ``failure_count`` is the count that tripped the circuit when it is not closed, and this
    process's current run of consecutive failures when it is closed. ``probe_in_flight`` says
    a caller somewhere in the fleet holds the probe slot. ``half_open_successes`` counts the
    successful probes of the current half-open episode.

    Why it opened: ``rule`` is the rule that fired (``"consecutive"``, ``"failure_rate"``,
    ``"slow_call_rate"``, or ``"quorum"`` when the fleet's quorum opened it); ``failure_rate``
    and ``slow_call_rate`` are the rates of the tripping process's window at the time (while
    closed: this process's window now; ``None`` without a rate rule); ``open_count`` is the
    number of consecutive failed recoveries (the open period grows with it); ``retry_at`` is
    when the writer of the trip expects the open period to end.

    ``held_open_until`` is set while this process refuses calls on its own: its rules fired
    but the fleet's quorum (``fleet_minimum_reporters``) has not opened the circuit. Its own
    view is then OPEN (``state``, ``rule``, the rates and ``retry_at`` are its hold's) while the
    fleet's record stays closed; ``reporters`` is how many processes' reports currently count
    toward that quorum.

    Operations: ``override`` is the operator's override in force (kind, until, reason, actor),
    else ``None``; ``state`` stays the state underneath it. ``history`` is the circuit's last
    persisted changes, oldest first (at most 20). ``probe_owner`` and ``probe_expires_at`` are
    the probe claim, if any (the process holding it, and when it lapses, on its writer's clock);
    ``updated_at`` is when the record was last written (``None``: no record).
    """

    name: str
    state: CircuitState
    failure_count: int
    opened_at: float | None
    retry_at: float | None = None
    epoch: int = 0
    probe_in_flight: bool = False
    half_open_successes: int = 0
    rule: str | None = None
    failure_rate: float | None = None
    slow_call_rate: float | None = None
    open_count: int = 0
    held_open_until: float | None = None
    reporters: int = 0
    override: Override | None = None
    history: tuple[HistoryEntry, ...] = ()
    probe_owner: str | None = None
    probe_expires_at: float | None = None
    updated_at: float | None = None

    @classmethod
    def from_record(
        cls,
        name: str,
        record: Record,
        local: tuple[int, Rates | None] | None = None,
        *,
        held_until: float | None = None,
        reporters: int = 0,
    ) -> CircuitInfo:
        """The snapshot of ``record``; ``local`` is this process's (consecutive failures,
        window rates) in the closed episode the record shows. The record's override is shown
        as it is: a caller that knows it has ended passes the record without it."""
        closed = record.state is CircuitState.CLOSED
        failure_rate, slow_call_rate = record.failure_rate, record.slow_call_rate
        failures = record.failure_count
        if closed:
            failures, rates = local if local is not None else (0, None)
            failure_rate = None if rates is None else rates.failure_rate
            slow_call_rate = None if rates is None else rates.slow_call_rate
        return cls(
            name=name,
            state=record.state,
            failure_count=failures,
            opened_at=record.opened_at,
            retry_at=record.retry_at,
            epoch=record.epoch,
            probe_in_flight=record.probe_owner is not None,
            half_open_successes=record.successes,
            rule=None if closed else record.rule,
            failure_rate=failure_rate,
            slow_call_rate=slow_call_rate,
            open_count=record.open_count,
            held_open_until=held_until,
            reporters=reporters,
            override=record.override,
            history=record.history,
            probe_owner=record.probe_owner,
            probe_expires_at=record.probe_expires_at,
            updated_at=record.updated_at if record.epoch else None,
        )


@dataclass(frozen=True, slots=True)
class CircuitTransition:
    """A state change this process persisted (so each one is reported once, fleet-wide).

    For a change to OPEN, ``rule``, ``failure_rate``, ``slow_call_rate``, ``open_count`` and
    ``retry_at`` say why it opened and for how long (see ``CircuitInfo``).
    """

    name: str
    from_state: CircuitState
    to_state: CircuitState
    epoch: int
    at: float
    """Wall-clock time of the transition (Unix seconds)."""
    failure_count: int = 0
    """For a trip: the failures that tripped it (consecutive, or in the window)."""
    rule: str | None = None
    failure_rate: float | None = None
    slow_call_rate: float | None = None
    open_count: int = 0
    retry_at: float | None = None
    shadow: bool = False
    """Made by a breaker in shadow mode (``Config(mode="shadow")``): what it would have done;
    no call was refused and the store was not written."""

    @classmethod
    def between(
        cls, name: str, old: Record, new: Record, *, shadow: bool = False
    ) -> CircuitTransition:
        """The transition from ``old`` to ``new``."""
        opened = new.state is CircuitState.OPEN
        return cls(
            name=name,
            from_state=old.state,
            to_state=new.state,
            epoch=new.epoch,
            at=new.updated_at,
            failure_count=new.failure_count if opened else 0,
            rule=new.rule if opened else None,
            failure_rate=new.failure_rate if opened else None,
            slow_call_rate=new.slow_call_rate if opened else None,
            open_count=new.open_count,
            retry_at=new.retry_at if opened else None,
            shadow=shadow,
        )
