"""Helpers for testing code that uses fleetbreaker: a fake clock, a recording hook, and a
scoped switch that bypasses every breaker."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

from fleetbreaker import _switch
from fleetbreaker._info import CircuitTransition

__all__ = ["FakeClock", "RecordingHook", "breakers_disabled"]


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


class FakeClock:
    """A clock that moves only when told to. Pass it as ``CircuitBreaker(..., clock=clock)``.

    Wall time starts at the real time (stores compare record expiry against the real clock)
    and both readings advance together.
    """

    def __init__(self, start: float | None = None) -> None:
        self._lock = threading.Lock()
        self._wall = time.time() if start is None else start
        self._mono = 1000.0

    def wall(self) -> float:
        return self._wall

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        """Move both clocks forward by ``seconds``."""
        if seconds < 0:
            raise ValueError("a clock cannot go back")
        with self._lock:
            self._wall += seconds
            self._mono += seconds


class RecordingHook:
    """An ``on_transition`` hook that keeps every transition it is given, thread-safely."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.transitions: list[CircuitTransition] = []

    def __call__(self, transition: CircuitTransition) -> None:
        with self._lock:
            self.transitions.append(transition)

    def pairs(self) -> list[tuple[str, str]]:
        """The transitions as (from, to) state values, in the order they were reported."""
        with self._lock:
            return [(t.from_state.value, t.to_state.value) for t in self.transitions]
