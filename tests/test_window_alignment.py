"""A breaker's time window is aligned to Unix time even when its monotonic clock is not."""

from __future__ import annotations

import pytest

from fleetbreaker import CircuitBreaker, Config


class Boom(Exception):
    """The downstream's failure."""


class SplitClock:
    """A wall clock on a bucket boundary and a monotonic clock a fraction of a second off one,
    moving together (a real host's two clocks have no relation to each other)."""

    def __init__(self, wall: float, monotonic: float) -> None:
        self._wall, self._mono = wall, monotonic

    def wall(self) -> float:
        return self._wall

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        self._wall += seconds
        self._mono += seconds


T0 = 1_800_000_000.0  # a whole second: a bucket boundary of a 10 s window (1 s buckets)


def fail(breaker: CircuitBreaker) -> None:
    def boom() -> None:
        raise Boom

    with pytest.raises(Boom):
        breaker.call(boom)


@pytest.mark.parametrize("monotonic", [77.3, 1000.0, 5.75], ids=["77.3", "1000", "5.75"])
def test_buckets_follow_the_wall_clock_not_the_monotonic_one(monotonic: float) -> None:
    """A failure at T0 + 0.5 s leaves the window exactly when bucket T0 + 10 begins on the wall
    clock, whatever the monotonic clock reads."""
    clock = SplitClock(T0, monotonic)
    config = Config(
        failure_threshold=None,
        failure_rate_threshold=1.0,
        minimum_number_of_calls=1_000,  # never trips: the rates are only read
        sliding_window_type="time",
        sliding_window_size=10,
    )
    breaker = CircuitBreaker("aligned", config=config, clock=clock)
    breaker.call(lambda: None)
    clock.advance(0.5)
    fail(breaker)
    clock.advance(9.45)  # T0 + 9.95: the failure's bucket (T0) is the oldest of the window
    breaker.call(lambda: None)
    assert breaker.info().failure_rate == pytest.approx(1 / 3)
    clock.advance(0.05)  # T0 + 10: bucket T0 has left the window
    breaker.call(lambda: None)
    assert breaker.info().failure_rate == 0.0
