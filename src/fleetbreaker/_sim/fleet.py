"""The protocol under test: one real ``CircuitBreaker`` per environment, one shared store.

Also the ``Subject`` interface the engine drives (the Powertools model implements it too) and
the trip-policy presets (``--policy``) that ``--config`` refines.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, Protocol

from fleetbreaker import CircuitBreaker, CircuitOpenError, CircuitState
from fleetbreaker._sim.model import DownstreamError, EnvClock, Params, SimTime
from fleetbreaker._sim.store import SimStore, Tally

__all__ = [
    "ADMIT",
    "CIRCUIT",
    "HELD",
    "POLICIES",
    "PROBE",
    "REJECT",
    "FleetbreakerSubject",
    "Subject",
    "policy_settings",
]

CIRCUIT: Final = "payments"

REJECT: Final = 0
ADMIT: Final = 1
PROBE: Final = 2
HELD: Final = 3

CONSECUTIVE: Final = "consecutive"
RATE: Final = "rate"
QUORUM: Final = "quorum"
POLICIES: Final = (CONSECUTIVE, RATE, QUORUM)
"""Trip-policy presets: ``Config``'s defaults (5 consecutive failures in one environment);
rate rules over each environment's 10 s time window (25 % failed or 50 % slower than 2 s, of
at least 20 calls); or those rate rules with a fleet quorum of 3 reporting environments."""
_RATE: Final[dict[str, Any]] = {
    "failure_threshold": None,
    "failure_rate_threshold": 0.25,
    "slow_call_duration_threshold": 2.0,
    "slow_call_rate_threshold": 0.5,
    "minimum_number_of_calls": 20,
    "sliding_window_type": "time",
    "sliding_window_size": 10.0,
}


def policy_settings(policy: str) -> dict[str, Any]:
    """The ``Config`` fields the preset ``policy`` sets (``--config`` may override each)."""
    if policy == CONSECUTIVE:
        return {}
    if policy == RATE:
        return dict(_RATE)
    if policy == QUORUM:
        return {**_RATE, "fleet_minimum_reporters": 3}
    raise ValueError(f"unknown policy {policy!r}")


class Subject(Protocol):
    """One protocol, as the engine drives it: admit a call in an environment, then settle it."""

    def enter(self, env: int) -> int:
        """``REJECT``, ``HELD`` (refused by the environment's own hold while the record is
        closed), ``ADMIT`` (a closed-path call) or ``PROBE``."""

    def exit(self, env: int, failed: bool) -> None:
        """Settle the call ``enter`` admitted in ``env``."""


class FleetbreakerSubject:
    """One real ``CircuitBreaker`` per environment, all sharing one ``SimStore``."""

    def __init__(self, sim: SimTime, clocks: Sequence[EnvClock], tally: Tally, p: Params) -> None:
        store = SimStore(sim, tally, rtt=p.rtt, staleness=p.rtt)
        self._breakers = [
            CircuitBreaker(CIRCUIT, store=store, config=p.config, clock=clock) for clock in clocks
        ]
        # An environment runs one call at a time, so one guard each serves all its calls (a
        # guard forgets its call on exit): no allocation per call.
        self._guards = [breaker.guard() for breaker in self._breakers]
        self._error = DownstreamError("downstream is down")

    def enter(self, env: int) -> int:
        try:
            self._guards[env].__enter__()
        except CircuitOpenError as refused:
            # Refused on its hold: this environment's rules fired and it holds itself open
            # while the fleet's quorum is not reached.
            return HELD if refused.circuit.held_open_until is not None else REJECT
        # A call admitted while this environment's view is not closed holds the probe slot.
        return ADMIT if self._breakers[env].state is CircuitState.CLOSED else PROBE

    def exit(self, env: int, failed: bool) -> None:
        if failed:
            self._guards[env].__exit__(DownstreamError, self._error, None)
        else:
            self._guards[env].__exit__(None, None, None)
