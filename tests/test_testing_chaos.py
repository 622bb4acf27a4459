"""The breaker against a store that loses answers, loses requests or is partitioned away
(FaultyStore), on a fake clock: no lost or doubled state, no orphaned claim, fail open."""

from __future__ import annotations

import contextlib

import pytest

from fleetbreaker import CircuitBreaker, CircuitOpenError, CircuitState, Config, MemoryStore
from fleetbreaker._protocol import Record
from fleetbreaker.testing import FakeClock, FaultyStore, RecordingHook

CONFIG = Config(failure_threshold=2, recovery_timeout=10, success_threshold=1, probe_timeout=30)


class Boom(Exception):
    pass


def boom() -> None:
    raise Boom


def ok() -> str:
    return "ok"


def fail(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        with pytest.raises(Boom):
            breaker.call(boom)


def stored(store: MemoryStore) -> Record:
    record = store.load("svc")
    assert record is not None
    return record


def admitted(breaker: CircuitBreaker) -> bool:
    """Whether one call was let through."""
    try:
        breaker.call(ok)
    except CircuitOpenError:
        return False
    return True


def test_a_trip_applied_but_not_acknowledged_is_neither_lost_nor_doubled() -> None:
    """The trip reaches the store but its answer is lost: the circuit is open once (one trip,
    one epoch), this process refuses calls, and a later probe closes it normally."""
    shared, clock, hook = MemoryStore(), FakeClock(), RecordingHook()
    store = FaultyStore(shared)
    breaker = CircuitBreaker("svc", store=store, config=CONFIG, clock=clock, on_transition=hook)
    other = CircuitBreaker("svc", store=shared, config=CONFIG, clock=clock)
    assert other.call(ok) == "ok"
    fail(breaker, 1)
    store.lose_next_acks()
    fail(breaker, 1)  # the trip: applied, then StoreError
    assert store.injected("lost_ack") == 1
    tripped = stored(shared)
    assert (tripped.state, tripped.epoch) == (CircuitState.OPEN, 1)
    for _ in range(20):
        assert not admitted(breaker)
        clock.advance(0.4)  # 8 s: past the cache age and the store backoff, short of retry_at
    assert not admitted(other)
    assert stored(shared).epoch == 1  # nobody tripped it again
    clock.advance(CONFIG.recovery_timeout)
    assert admitted(breaker)  # the probe
    assert stored(shared).state is CircuitState.CLOSED
    assert ("open", "half_open") in hook.pairs()
    assert hook.pairs().count(("closed", "open")) <= 1


def test_a_probe_claim_applied_but_not_acknowledged_is_not_orphaned() -> None:
    """The claim reaches the store but its answer is lost: the slot is held no longer than
    probe_timeout, after which a probe runs and closes the circuit."""
    shared, clock = MemoryStore(), FakeClock()
    store = FaultyStore(shared)
    breaker = CircuitBreaker("svc", store=store, config=CONFIG, clock=clock)
    fail(breaker, 2)
    clock.advance(CONFIG.recovery_timeout)
    store.lose_next_acks()
    ran: list[int] = []
    with contextlib.suppress(CircuitOpenError):
        breaker.call(lambda: ran.append(1))
    assert store.injected("lost_ack", "write") == 1
    claim = stored(shared)
    assert claim.state is CircuitState.HALF_OPEN
    assert claim.probe_owner is not None
    assert CONFIG.probe_timeout is not None
    deadline = CONFIG.probe_timeout + CONFIG.local_cache_max_age + 2
    waited = 0.0
    while stored(shared).state is not CircuitState.CLOSED and waited <= deadline:
        with contextlib.suppress(CircuitOpenError):
            breaker.call(ok)
        clock.advance(0.5)
        waited += 0.5
    assert stored(shared).state is CircuitState.CLOSED, f"still {stored(shared)}"


def test_a_write_lost_on_the_way_leaves_the_store_unchanged_and_the_trip_local() -> None:
    """A trip lost before it reaches the store: nothing is written, and this process still
    refuses calls until retry_at."""
    shared, clock = MemoryStore(), FakeClock()
    store = FaultyStore(shared)
    breaker = CircuitBreaker("svc", store=store, config=CONFIG, clock=clock)
    assert breaker.call(ok) == "ok"
    store.lose_next_writes()
    fail(breaker, 2)
    assert store.injected("lost_write") == 1
    assert shared.load("svc") is None
    for _ in range(19):
        assert not admitted(breaker)
        clock.advance(0.5)
    assert shared.load("svc") is None


@pytest.mark.parametrize("lose", ["lose_next_writes", "fail_next"], ids=["lost", "refused"])
def test_after_an_unpersisted_trip_the_next_run_of_failures_trips_again(lose: str) -> None:
    """A trip the store never got protects until retry_at; the closed record then routes
    calls again, and a new run of failure_threshold failures trips the circuit in the store."""
    shared, clock = MemoryStore(), FakeClock()
    store = FaultyStore(shared)
    breaker = CircuitBreaker("svc", store=store, config=CONFIG, clock=clock)
    assert breaker.call(ok) == "ok"
    if lose == "fail_next":
        store.fail_next(operation="write")
    else:
        store.lose_next_writes()
    fail(breaker, 2)
    clock.advance(CONFIG.recovery_timeout + 1)
    after_the_hold = breaker.info()
    assert (after_the_hold.state, after_the_hold.failure_count) == (CircuitState.CLOSED, 0)
    fail(breaker, CONFIG.failure_threshold)  # type: ignore[arg-type]
    assert stored(shared).state is CircuitState.OPEN, "the failures never tripped it again"


def test_a_partitioned_process_fails_open_and_obeys_the_fleet_once_healed() -> None:
    """A process cut off from the store while the fleet trips keeps calling (fail open); once
    the partition heals it reads the open circuit and refuses."""
    shared, clock = MemoryStore(), FakeClock()
    cut_off = FaultyStore(shared)
    tripper = CircuitBreaker("svc", store=shared, config=CONFIG, clock=clock)
    partitioned = CircuitBreaker("svc", store=cut_off, config=CONFIG, clock=clock)
    assert partitioned.call(ok) == "ok"
    with cut_off.partition():
        fail(tripper, 2)
        for _ in range(10):
            clock.advance(CONFIG.local_cache_max_age)
            assert partitioned.call(ok) == "ok"  # the store fails: calls go through
        assert cut_off.injected("partition", "load") >= 2
    assert not cut_off.partitioned
    clock.advance(CONFIG.local_cache_max_age)  # past the store backoff (15 s at most)
    refused = 0
    for _ in range(40):
        refused += not admitted(partitioned)
        clock.advance(0.5)
        if refused:
            break
    assert refused, "the healed process never obeyed the open circuit"


def test_a_partition_during_an_outage_keeps_the_open_view_then_resyncs() -> None:
    """A process that saw the circuit open keeps refusing while partitioned (until its
    retry_at), and after healing it follows the fleet's record, here closed by another."""
    shared, clock = MemoryStore(), FakeClock()
    cut_off = FaultyStore(shared)
    breaker = CircuitBreaker("svc", store=cut_off, config=CONFIG, clock=clock)
    other = CircuitBreaker("svc", store=shared, config=CONFIG, clock=clock)
    fail(breaker, 2)
    assert other.info().state is CircuitState.OPEN  # its open period starts now, as breaker's
    cut_off.partition()
    for _ in range(10):
        assert not admitted(breaker)
        clock.advance(0.5)
    clock.advance(CONFIG.recovery_timeout + 1 + CONFIG.local_cache_max_age)
    assert admitted(other)  # the fleet's probe closes the circuit
    assert stored(shared).state is CircuitState.CLOSED
    cut_off.heal()
    clock.advance(16)  # past any store backoff
    assert admitted(breaker)
    assert breaker.info().state is CircuitState.CLOSED
    assert stored(shared).state is CircuitState.CLOSED
