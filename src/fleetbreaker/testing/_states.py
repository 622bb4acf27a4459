"""Putting breakers into a state for a test: bypassed, forced open or closed, or tripped.

Everything here goes through the breaker's public API, so a circuit is only ever in a state
a real fleet could have written: a forced state is an operator's override, a tripped circuit
was tripped by failures it counted.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from fleetbreaker import _switch
from fleetbreaker._breaker import CircuitBreaker
from fleetbreaker._info import CircuitInfo
from fleetbreaker._protocol import CircuitState
from fleetbreaker.errors import CircuitOpenError

__all__ = ["breakers_disabled", "forced", "trip"]

_REASON = "fleetbreaker.testing"


@contextlib.contextmanager
def breakers_disabled(*, disabled: bool = True) -> Iterator[None]:
    """Bypass every circuit breaker of this process inside the block (or decorated test).

    Takes effect at once, for breakers that already exist too: calls go straight to the
    protected function, nothing is counted, refused or written to a store. It is process-wide
    (every thread and task), wins over ``FLEETBREAKER_DISABLED``, and nests:
    ``breakers_disabled(disabled=False)`` turns breakers back on inside an outer block (or
    despite the environment variable).
    """
    previous = _switch.force(disabled)
    try:
        yield
    finally:
        _switch.force(previous)


@contextlib.contextmanager
def forced(
    breaker: CircuitBreaker,
    state: CircuitState | str,
    *,
    reason: str = _REASON,
    duration: float | None = None,
) -> Iterator[CircuitInfo]:
    """Force ``breaker``'s circuit open (every call refused) or closed (every call admitted)
    inside the block, then end the override.

    It is the operators' fleet-wide override (``force_open`` / ``force_closed``), so every
    breaker on the same store and name obeys it, and the state underneath keeps running. It
    lasts ``duration`` seconds of the breaker's clock (default: the longest allowed, the
    config's ``record_ttl``). Yields the circuit's ``CircuitInfo`` once forced. Refuses to
    start over an override already in force, which it could not restore.
    """
    kind = CircuitState(state) if isinstance(state, str) else state
    if kind is CircuitState.HALF_OPEN:
        raise ValueError("forced() takes 'open' or 'closed': a half-open circuit cannot be forced")
    current = breaker.info().override
    if current is not None:
        raise ValueError(
            f"circuit {breaker.name!r} is already forced {current.kind} by {current.actor} "
            f"({current.reason!r}); clear that override before using forced()"
        )
    length = breaker.config.record_ttl if duration is None else duration
    force = breaker.force_open if kind is CircuitState.OPEN else breaker.force_closed
    info = force(duration=length, reason=reason, actor=_REASON)
    try:
        yield info
    finally:
        breaker.clear_override(reason=reason, actor=_REASON)


class TripError(Exception):
    """The exception ``trip`` makes the protected calls raise (unless given another)."""


def trip(
    breaker: CircuitBreaker, *, error: Exception | None = None, max_calls: int = 10_000
) -> CircuitInfo:
    """Open ``breaker``'s circuit the way a failing downstream does: call it with a function
    that raises ``error`` until the breaker trips. Returns the open circuit's ``CircuitInfo``.

    The circuit is then really open (a trip written to the store, with its open period and
    open count), so recovery and probing can be tested by moving a ``FakeClock``. Raises
    ``RuntimeError`` if ``max_calls`` calls do not trip it: a config whose rules such failures
    cannot fire (``handled_exceptions`` that exclude ``error``, a fleet quorum of several
    processes, only a slow-call rule), an override forcing it closed, or bypassed breakers.
    """
    if max_calls < 1:
        raise ValueError(f"max_calls must be a positive integer, got {max_calls!r}")
    failure = TripError("failure injected by fleetbreaker.testing.trip") if error is None else error
    override = breaker.info().override
    if override is not None:
        raise ValueError(
            f"circuit {breaker.name!r} is forced {override.kind} ({override.reason!r}): "
            "clear the override before tripping it"
        )

    def fail() -> None:
        raise failure

    for _ in range(max_calls):
        if breaker.state is CircuitState.OPEN:
            break
        with contextlib.suppress(CircuitOpenError, type(failure)):
            breaker.call(fail)
    info = breaker.info()
    if info.state is CircuitState.OPEN and info.held_open_until is None:
        return info
    raise RuntimeError(
        f"circuit {breaker.name!r} did not open after {max_calls} failed calls: its config "
        "may not count this error, need other processes' reports (fleet_minimum_reporters), "
        "or it may be forced closed or bypassed (breakers_disabled, FLEETBREAKER_DISABLED)"
    )
