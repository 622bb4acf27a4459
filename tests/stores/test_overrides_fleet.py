"""Overrides on every store: one client writes, others obey. Across real processes, and
between clients of one store in this process (on a fake clock)."""

from __future__ import annotations

import multiprocessing
import threading

import pytest

from fleetbreaker import (
    CircuitBreaker,
    CircuitInfo,
    CircuitOpenError,
    CircuitState,
    Config,
    OverrideConflictError,
    Store,
    operations,
)
from fleetbreaker._protocol import Record
from fleetbreaker.testing import FakeClock
from tests.stores import override_worker as ow
from tests.stores.conftest import Harness
from tests.stores.fleet_worker import SharedClock

PROCESSES = 3
MAX_AGE = 2.0


@pytest.mark.timeout(180)
def test_force_open_from_one_process_is_obeyed_by_the_others(fleet_harness: Harness) -> None:
    """Three processes on the shared fake clock: admitted while their views are fresh, all
    refused once local_cache_max_age has passed, admitted again when the override is cleared
    and again once a second override has expired."""
    assert fleet_harness.factory is not None
    ctx = multiprocessing.get_context("spawn")
    offset = ctx.Value("d", 0.0)
    clock = SharedClock(offset)
    steps = ow.Steps(
        factory=fleet_harness.factory,
        clock=clock,
        barrier=ctx.Barrier(PROCESSES + 1),
        results=ctx.Queue(),
        steps=6,
        max_age=MAX_AGE,
    )
    workers = [ctx.Process(target=ow.run, args=(steps, i)) for i in range(PROCESSES)]
    for worker in workers:
        worker.start()
    operator = CircuitBreaker("ops", store=fleet_harness.client(), clock=clock)

    def step(advance: float) -> set[str]:
        with offset.get_lock():
            offset.value += advance
        steps.barrier.wait(timeout=60)  # the workers call
        steps.barrier.wait(timeout=60)  # and have reported
        return {steps.results.get(timeout=30)[2] for _ in range(PROCESSES)}

    try:
        assert step(0) == {ow.ADMITTED}  # every worker caches a closed view
        operator.force_open(duration=60, reason="INC-9 maintenance", actor="alice")
        assert step(MAX_AGE / 2) == {ow.ADMITTED}  # views still fresh
        assert step(MAX_AGE / 2) == {"refused: INC-9 maintenance"}
        operator.clear_override(reason="done")
        assert step(MAX_AGE) == {ow.ADMITTED}
        operator.force_open(duration=10, reason="short", actor="alice")
        assert step(MAX_AGE) == {"refused: short"}
        assert step(10) == {ow.ADMITTED}  # expired: nothing written, everyone resumes
    finally:
        for worker in workers:
            worker.join(timeout=30)
            if worker.is_alive():
                worker.kill()
    assert all(worker.exitcode == 0 for worker in workers)


def refused(breaker: CircuitBreaker) -> bool:
    try:
        breaker.call(lambda: None)
    except CircuitOpenError:
        return True
    return False


def test_override_round_trips_on_every_store(harness: Harness) -> None:
    """Forced open by one client, refused by another's breaker after max age; info() of both
    shows the override and the history; clear resumes."""
    clock = FakeClock()
    config = Config(local_cache_max_age=1.0)
    a = CircuitBreaker("svc", store=harness.client(), clock=clock, config=config)
    b = CircuitBreaker("svc", store=harness.client(), clock=clock, config=config)
    assert not refused(b)
    written = a.force_open(duration=300, reason="INC-1", actor="alice")
    clock.advance(1.0)
    assert refused(b)
    seen = b.info()
    assert seen.override == written.override
    assert seen.history == written.history
    a.clear_override(reason="done", actor="alice")
    clock.advance(1.0)
    assert not refused(b)
    assert [(h.from_state, h.to_state) for h in b.info().history] == [
        ("closed", "forced_open"),
        ("forced_open", "closed"),
    ]


def test_expiry_resumes_an_open_circuit_on_every_store(harness: Harness) -> None:
    """Forced closed over an open circuit: admitted, nothing written; after it, one probe."""
    clock = FakeClock()
    config = Config(failure_threshold=1, recovery_timeout=30, success_threshold=1)
    a = CircuitBreaker("svc", store=harness.client(), clock=clock, config=config)
    b = CircuitBreaker("svc", store=harness.client(), clock=clock, config=config)

    def fail() -> None:
        raise ConnectionError

    with pytest.raises(ConnectionError):
        b.call(fail)
    a.force_closed(duration=60, reason="false alarm", actor="bob")
    clock.advance(config.local_cache_max_age)
    epoch = a.info().epoch
    assert not refused(b)
    assert a.info().epoch == epoch
    clock.advance(60)
    assert not refused(b)  # the probe closes it
    assert a.info().state is CircuitState.CLOSED


def test_history_is_bounded_and_ordered_on_every_store(harness: Harness) -> None:
    """Twenty-two overrides: the store keeps the last twenty, in order."""
    store = harness.client()
    for i in range(22):
        operations.force_open(store, "svc", duration=60 + i, reason=f"r{i}", actor="a")
    info = operations.read(harness.client(), "svc")
    assert info is not None
    assert [h.reason for h in info.history] == [f"r{i}" for i in range(2, 22)]


class ParkedStore(Store):
    """Delegates to ``inner``; parks the thread named ``parked`` before its write."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.arrived = threading.Event()
        self.release = threading.Event()

    def load(self, name: str, *, consistent: bool = False) -> Record | None:
        return self.inner.load(name, consistent=consistent)

    def compare_and_set(self, name: str, expected_epoch: int | None, record: Record) -> bool:
        if threading.current_thread().name == "parked":
            self.arrived.set()
            assert self.release.wait(30)
        return self.inner.compare_and_set(name, expected_epoch, record)

    def names(self) -> list[str]:
        return self.inner.names()


def test_concurrent_operators_one_wins_on_every_store(harness: Harness) -> None:
    """Two operators on two clients at once: one override stands, the other is told."""
    parked = ParkedStore(harness.client())
    outcome: list[object] = []

    def bob() -> None:
        try:
            outcome.append(operations.force_closed(parked, "svc", duration=60, reason="fa"))
        except OverrideConflictError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=bob, name="parked")
    thread.start()
    assert parked.arrived.wait(30)
    operations.force_open(harness.client(), "svc", duration=60, reason="maint", actor="alice")
    parked.release.set()
    thread.join(30)
    assert isinstance(outcome[0], OverrideConflictError)
    info = operations.read(harness.client(), "svc")
    assert isinstance(info, CircuitInfo)
    assert info.override is not None
    assert info.override.actor == "alice"
