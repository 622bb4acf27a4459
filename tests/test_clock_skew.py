"""Hosts' clocks disagree: no process's clock may decide another's timing (in one process,
breakers as hosts, each with its own clock; tests/stores/test_fleet.py does it across real
processes)."""

from __future__ import annotations

import logging

import pytest

from fleetbreaker import CircuitBreaker, CircuitOpenError, CircuitState, Config, MemoryStore
from fleetbreaker.testing import FakeClock
from tests.helpers import CountingStore

YEAR = 365 * 24 * 3600.0
SKEWS = [30.0, -30.0, 300.0, -300.0, 10 * YEAR, -10 * YEAR]
SKEW_IDS = ["+30s", "-30s", "+5min", "-5min", "+10y", "-10y"]
CONFIG = Config(
    failure_threshold=1,
    recovery_timeout=30,
    success_threshold=1,
    probe_timeout=30,
    local_cache_max_age=5,
)


class SkewedClock:
    """One host's clocks: the fleet's fake time, its wall clock off by ``skew`` seconds and its
    monotonic clock from an origin of its own."""

    def __init__(self, base: FakeClock, skew: float, origin: float) -> None:
        self.base, self.skew, self.origin = base, skew, origin

    def wall(self) -> float:
        return self.base.wall() + self.skew

    def monotonic(self) -> float:
        return self.base.monotonic() - 1000.0 + self.origin


class Boom(Exception):
    pass


def boom() -> None:
    raise Boom


def host(store: object, clock: FakeClock, skew: float, origin: float = 0.0) -> CircuitBreaker:
    return CircuitBreaker(
        "svc",
        store=store,  # type: ignore[arg-type]
        config=CONFIG,
        clock=SkewedClock(clock, skew, origin),
    )


def first_probe_after(breaker: CircuitBreaker, clock: FakeClock, *, limit: float) -> float:
    """Step the fleet's time by 0.1 s until ``breaker`` has refused a call and then admits one
    (its first probe); the seconds that took."""
    waited = 0.0
    while True:  # calls admitted on a view read before the trip are not probes
        try:
            breaker.call(lambda: None)
        except CircuitOpenError:
            break
        clock.advance(0.1)
        waited += 0.1
        assert waited <= limit, "the trip was never seen"
    while waited <= limit:
        try:
            breaker.call(lambda: None)
        except CircuitOpenError:
            clock.advance(0.1)
            waited += 0.1
        else:
            return waited
    pytest.fail(f"no call admitted within {limit} s")


@pytest.mark.parametrize("skew", SKEWS, ids=SKEW_IDS)
def test_a_skewed_tripper_cannot_pin_or_rush_the_fleet(skew: float) -> None:
    """A host whose clock is off trips; a healthy host probes after the period, not sooner and
    not later than the period plus one cache period."""
    store, clock = MemoryStore(), FakeClock()
    skewed, healthy = host(store, clock, skew, origin=5e6), host(store, clock, 0.0)
    healthy.call(lambda: None)  # warm: its view is read now, fresh for a cache period
    with pytest.raises(Boom):
        skewed.call(boom)
    waited = first_probe_after(healthy, clock, limit=60)
    # The first probe is reserved for the tripper for 1 s past the period.
    assert CONFIG.recovery_timeout <= waited <= CONFIG.recovery_timeout + 5 + 1 + 0.2


@pytest.mark.parametrize("skew", SKEWS, ids=SKEW_IDS)
def test_a_skewed_host_never_probes_early(skew: float) -> None:
    """A host whose clock is off waits the full period after a trip it saw."""
    store, clock = MemoryStore(), FakeClock()
    tripper, skewed = host(store, clock, 0.0), host(store, clock, skew, origin=-7e5)
    skewed.call(lambda: None)
    with pytest.raises(Boom):
        tripper.call(boom)
    waited = first_probe_after(skewed, clock, limit=60)
    assert waited >= CONFIG.recovery_timeout + 1  # open period + the tripper's reservation


@pytest.mark.parametrize("skew", SKEWS, ids=SKEW_IDS)
def test_a_skewed_host_never_takes_over_a_live_claim(skew: float) -> None:
    """A host whose clock is off leaves a live probe alone for probe_timeout after seeing it."""
    store, clock = CountingStore(), FakeClock()
    prober, skewed = host(store, clock, 0.0), host(store, clock, skew, origin=123.0)
    skewed.call(lambda: None)
    with pytest.raises(Boom):
        prober.call(boom)
    clock.advance(CONFIG.recovery_timeout)
    seen: list[str] = []

    def probe() -> None:
        # While the probe runs, the skewed host calls again and again over 29 s.
        for _ in range(290):
            with pytest.raises(CircuitOpenError):
                skewed.call(lambda: seen.append("second probe"))
            clock.advance(0.1)

    prober.call(probe)
    assert seen == []
    record = store.inner.load("svc")
    assert record is not None
    assert record.state is CircuitState.CLOSED  # the live probe's outcome was written


def test_a_record_from_year_3000_opens_for_the_configured_period_only() -> None:
    """A stored retry time centuries ahead holds the circuit open recovery_timeout at most."""
    store, clock = MemoryStore(), FakeClock()
    writer = host(store, clock, 1000 * YEAR)
    reader = host(store, clock, 0.0)
    with pytest.raises(Boom):
        writer.call(boom)
    info = reader.info()
    assert info.retry_at is not None
    assert info.opened_at is not None
    assert info.retry_at - info.opened_at <= CONFIG.recovery_timeout
    str(CircuitOpenError(info))  # formats
    waited = first_probe_after(reader, clock, limit=60)
    assert waited <= CONFIG.recovery_timeout + 1 + 0.2


def test_differently_configured_processes_are_told_once(caplog: pytest.LogCaptureFixture) -> None:
    """A process that sees the fleet run its circuit with other periods logs it once."""
    store, clock = MemoryStore(), FakeClock()
    slow = CircuitBreaker(
        "svc",
        store=store,
        clock=clock,
        config=Config(failure_threshold=1, recovery_timeout=999),
    )
    fast = CircuitBreaker(
        "svc", store=store, clock=clock, config=Config(failure_threshold=1, recovery_timeout=30)
    )
    with pytest.raises(Boom):
        slow.call(boom)
    with caplog.at_level(logging.WARNING, logger="fleetbreaker"):
        for _ in range(3):
            with pytest.raises(CircuitOpenError):
                fast.call(lambda: None)
            clock.advance(6)
    assert caplog.text.count("recovery_timeout=999") == 1
    assert "recovery_timeout=30" not in caplog.text  # the slow one never read a 30 s record
