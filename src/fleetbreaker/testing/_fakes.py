"""Fakes for tests: a clock that moves only when told to, and a hook that records transitions."""

from __future__ import annotations

import threading
import time

from fleetbreaker._info import CircuitTransition

__all__ = ["FakeClock", "RecordingHook"]


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
