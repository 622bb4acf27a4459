"""A claim its own process knows about is released or settled as soon as the store lets it."""

from __future__ import annotations

import asyncio
import threading

import pytest

from fleetbreaker import CircuitBreaker, CircuitOpenError, CircuitState, Config
from fleetbreaker._protocol import Record
from fleetbreaker.testing import FakeClock
from tests.helpers import ParkingStore, counts_of, down_store

CONFIG = Config(failure_threshold=1, recovery_timeout=10, success_threshold=1, probe_timeout=30)


class Boom(Exception):
    pass


def boom() -> None:
    raise Boom


class AsyncParkingStore(ParkingStore):
    """Parks an armed async write on the event loop itself, as a native asyncio client does
    (cancelling the awaiting task cancels the write), until ``release`` is set."""

    async def acompare_and_set(self, name: str, expected_epoch: int | None, record: Record) -> bool:
        with self._arm_lock:
            park, self._armed = self._armed, False
        if park:
            self.parked.set()
            while not self.release.is_set():  # noqa: ASYNC110 - a threading.Event, as in the base
                await asyncio.sleep(0)
        return self.compare_and_set(name, expected_epoch, record)


STORES = [ParkingStore, AsyncParkingStore]
STORE_IDS = ["write-in-a-thread", "write-on-the-loop"]


async def settle_background(breaker: CircuitBreaker) -> None:
    """Wait for the work a cancelled call left running (a release, a settle)."""
    while breaker._background:
        await asyncio.gather(*list(breaker._background))


@pytest.mark.parametrize("kind", STORES, ids=STORE_IDS)
def test_caller_cancelled_during_its_claim_write_releases_the_claim(
    kind: type[ParkingStore],
) -> None:
    """A task cancelled while its claim write is in flight leaves no claim behind."""
    store, clock = kind(operation="cas", armed=False), FakeClock()
    breaker = CircuitBreaker("svc", store=store, config=CONFIG, clock=clock)
    with pytest.raises(Boom):
        breaker.call(boom)
    clock.advance(CONFIG.recovery_timeout)
    calls: list[str] = []

    async def probe() -> str:
        calls.append("probe")
        return "ok"

    async def scenario() -> None:
        store.arm()
        task = asyncio.create_task(breaker.acall(probe))
        assert await asyncio.to_thread(store.parked.wait, 10)  # the claim write is in flight
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        store.release.set()  # the claim lands after its caller is gone
        await settle_background(breaker)

    asyncio.run(scenario())
    assert calls == []
    record = store.inner.load("svc")
    assert record is not None
    assert (record.state, record.probe_owner) == (CircuitState.HALF_OPEN, None)
    # The slot is free at once (reserved briefly for this process), not after probe_timeout.
    assert breaker.call(lambda: "ok") == "ok"
    closed = store.inner.load("svc")
    assert closed is not None
    assert closed.state is CircuitState.CLOSED


@pytest.mark.parametrize("kind", STORES, ids=STORE_IDS)
def test_cancelled_while_its_outcome_is_written_still_writes_it(kind: type[ParkingStore]) -> None:
    """A probe cancelled during its settle write does not abandon the write half-way."""
    store, clock = kind(operation="cas", armed=False), FakeClock()
    breaker = CircuitBreaker("svc", store=store, config=CONFIG, clock=clock)
    with pytest.raises(Boom):
        breaker.call(boom)
    clock.advance(CONFIG.recovery_timeout)

    async def probe() -> str:
        store.arm()  # park the next write: the probe's success
        return "ok"

    async def scenario() -> None:
        task = asyncio.create_task(breaker.acall(probe))
        assert await asyncio.to_thread(store.parked.wait, 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        store.release.set()
        await settle_background(breaker)

    asyncio.run(scenario())
    record = store.inner.load("svc")
    assert record is not None
    assert record.state is CircuitState.CLOSED


def test_a_lost_settle_is_written_when_the_store_is_back() -> None:
    """A probe whose outcome could not be written settles at the next read, not after
    probe_timeout: the process holds the claim's token."""
    store, clock = down_store(), FakeClock()
    store.heal()
    breaker = CircuitBreaker("svc", store=store, config=CONFIG, clock=clock)
    other = CircuitBreaker("svc", store=store, config=CONFIG, clock=clock)
    other.call(lambda: "warm")
    with pytest.raises(Boom):
        breaker.call(boom)
    clock.advance(CONFIG.recovery_timeout)

    def probe() -> str:
        store.partition()  # the store goes away before the outcome is written
        return "ok"

    assert breaker.call(probe) == "ok"
    claim = store.inner.load("svc")
    assert claim is not None
    assert (claim.state, claim.probe_owner) == (CircuitState.HALF_OPEN, breaker._owner)
    store.heal()
    clock.advance(1.0)  # past the store backoff; far less than probe_timeout
    writes = counts_of(store)["cas"]
    assert breaker.call(lambda: "ok") == "ok"
    assert (
        counts_of(store)["cas"] == writes + 1
    )  # the probe's own success: no release, no new probe
    record = store.inner.load("svc")
    assert record is not None
    assert record.state is CircuitState.CLOSED
    for _ in range(4):
        assert breaker.call(lambda: "ok") == "ok"
    clock.advance(CONFIG.local_cache_max_age)
    assert other.call(lambda: "ok") == "ok"


def test_a_lost_settle_is_dropped_when_the_claim_was_taken_over() -> None:
    """An outcome still to be written is never written over a newer episode."""
    store, clock = down_store(), FakeClock()
    store.heal()
    config = Config(failure_threshold=1, recovery_timeout=10, success_threshold=2, probe_timeout=2)
    breaker = CircuitBreaker("svc", store=store, config=config, clock=clock)
    other = CircuitBreaker("svc", store=store, config=config, clock=clock)
    with pytest.raises(Boom):
        breaker.call(boom)
    clock.advance(10)

    def probe() -> str:
        with pytest.raises(CircuitOpenError):
            other.call(lambda: "no")  # other sees the claim
        clock.advance(3)  # ... for longer than probe_timeout
        assert other.call(lambda: "taken over") == "taken over"
        store.partition()
        return "late"

    assert breaker.call(probe) == "late"
    taken = store.inner.load("svc")
    assert taken is not None
    assert (taken.successes, taken.probe_owner) == (1, None)
    store.heal()
    clock.advance(1.0)
    try:
        breaker.call(lambda: "after")
    except CircuitOpenError:
        pass
    assert store.inner.load("svc") == taken  # the late success was never written


def test_a_claim_left_by_a_loop_that_shut_down_is_released_at_the_next_read() -> None:
    """A claim that landed after its event loop shut down is found and freed by this process's
    next read, instead of holding the slot for probe_timeout."""
    store, clock = ParkingStore(operation="cas", armed=False), FakeClock()
    breaker = CircuitBreaker("svc", store=store, config=CONFIG, clock=clock)
    with pytest.raises(Boom):
        breaker.call(boom)
    clock.advance(CONFIG.recovery_timeout)

    async def probe() -> str:
        return "never called"

    async def scenario() -> None:
        store.arm()
        task = asyncio.create_task(breaker.acall(probe))
        assert await asyncio.to_thread(store.parked.wait, 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        store.release.set()  # the write lands while asyncio.run cancels what is left

    asyncio.run(scenario())
    orphan = store.inner.load("svc")
    assert orphan is not None
    assert (orphan.state, orphan.probe_owner) == (CircuitState.HALF_OPEN, breaker._owner)
    clock.advance(CONFIG.half_open_refresh)  # far less than probe_timeout
    assert breaker.call(lambda: "ok") == "ok"
    record = store.inner.load("svc")
    assert record is not None
    assert record.state is CircuitState.CLOSED


def test_a_siblings_read_never_releases_a_claim_being_probed_or_settled() -> None:
    """While one thread probes (and writes its outcome), another thread's reads leave the
    claim alone: the probe's success is what closes the circuit."""
    store, clock = ParkingStore(operation="cas", armed=False), FakeClock()
    breaker = CircuitBreaker("svc", store=store, config=CONFIG, clock=clock)
    with pytest.raises(Boom):
        breaker.call(boom)
    clock.advance(CONFIG.recovery_timeout)

    def probe() -> str:
        for _ in range(3):  # a sibling re-reads the claim while the probe runs
            clock.advance(CONFIG.half_open_refresh)
            with pytest.raises(CircuitOpenError):
                breaker.call(lambda: "refused")
        store.arm()  # park the outcome's write
        return "probed"

    results: list[str] = []
    prober = threading.Thread(target=lambda: results.append(breaker.call(probe)))
    prober.start()
    assert store.parked.wait(10)
    clock.advance(CONFIG.half_open_refresh)
    with pytest.raises(CircuitOpenError):
        breaker.call(lambda: "refused")  # reads the claim while its outcome is in flight
    store.release.set()
    prober.join(10)
    assert results == ["probed"]
    record = store.inner.load("svc")
    assert record is not None
    assert record.state is CircuitState.CLOSED
    assert store.counts["cas_lost"] == 0
