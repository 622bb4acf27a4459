"""Threads of one process on one breaker: interleavings forced with barriers and parked stores."""

from __future__ import annotations

import os
import select
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from fleetbreaker import (
    CircuitBreaker,
    CircuitInfo,
    CircuitOpenError,
    CircuitState,
    Config,
    MemoryStore,
    SQLiteStore,
)
from fleetbreaker.testing import FakeClock, RecordingHook
from tests.helpers import CountingStore, ParkingStore

REFUSED = object()


class Boom(Exception):
    pass


def refuse(*_args: Any, circuit: CircuitInfo) -> object:
    return REFUSED


def run_threads(count: int, target: Any) -> None:
    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a worker thread hung"


@pytest.mark.parametrize("threads", [8, 32])
def test_threads_trip_once_probe_one_at_a_time_and_close(threads: int) -> None:
    """N threads: one trip, one probe in flight, closed after exactly success_threshold probes."""
    store, clock, hook = CountingStore(), FakeClock(), RecordingHook()
    config = Config(failure_threshold=5, recovery_timeout=10, success_threshold=3)
    breaker = CircuitBreaker(
        "svc", store=store, config=config, clock=clock, on_transition=hook, on_circuit_open=refuse
    )
    barrier = threading.Barrier(threads)

    def until_refused(_i: int) -> None:
        barrier.wait()
        while True:
            try:
                if breaker.call(_raise_boom) is REFUSED:
                    return
            except Boom:
                pass

    run_threads(threads, until_refused)
    assert hook.pairs() == [("closed", "open")]
    assert store.writes == 1

    clock.advance(10)
    lock = threading.Lock()
    refusals = threading.Condition(lock)
    state = {"in_flight": 0, "max_in_flight": 0, "probes": 0, "refused": 0}
    probers: set[int] = set()

    def downstream() -> str:
        record = store.inner.load("svc")
        probing = record is not None and record.state is not CircuitState.CLOSED
        with lock:
            state["in_flight"] += 1
            state["max_in_flight"] = max(state["max_in_flight"], state["in_flight"])
            if probing:
                state["probes"] += 1
                probers.add(threading.get_ident())
                # Hold the probe until some other thread has been refused meanwhile.
                seen = state["refused"]
                refusals.wait_for(lambda: state["refused"] > seen, timeout=5)
            state["in_flight"] -= 1
        return "ok"

    def until_probed(_i: int) -> None:
        barrier.wait()
        while hook.pairs()[-1] != ("half_open", "closed"):
            if breaker.call(downstream) is REFUSED:
                with lock:
                    state["refused"] += 1
                    refusals.notify_all()
            elif threading.get_ident() in probers:
                return  # each thread probes at most once: every probe is a different thread

    run_threads(threads, until_probed)
    assert state["max_in_flight"] == 1
    assert state["probes"] == 3
    assert len(probers) == 3
    assert hook.pairs() == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]
    assert store.counts["cas_lost"] == 0


def _raise_boom() -> None:
    raise Boom


@pytest.mark.parametrize("threshold", [2, 8, 16])
def test_exactly_threshold_concurrent_failures_trip_once(threshold: int) -> None:
    """failure_threshold failures released together trip exactly once."""
    store, hook = CountingStore(), RecordingHook()
    breaker = CircuitBreaker(
        "svc",
        store=store,
        config=Config(failure_threshold=threshold),
        clock=FakeClock(),
        on_transition=hook,
    )
    breaker.call(lambda: None)  # warm the view so every thread takes the hot path
    barrier = threading.Barrier(threshold)

    def fail_together() -> None:
        barrier.wait()
        raise Boom

    def worker(_i: int) -> None:
        with pytest.raises(Boom):
            breaker.call(fail_together)

    run_threads(threshold, worker)
    assert hook.pairs() == [("closed", "open")]
    assert store.writes == 1


def test_one_short_of_threshold_does_not_trip() -> None:
    """failure_threshold - 1 concurrent failures leave the circuit closed."""
    store = CountingStore()
    breaker = CircuitBreaker(
        "svc", store=store, config=Config(failure_threshold=8), clock=FakeClock()
    )
    breaker.call(lambda: None)
    barrier = threading.Barrier(7)

    def worker(_i: int) -> None:
        barrier.wait()
        with pytest.raises(Boom):
            breaker.call(_raise_boom)

    run_threads(7, worker)
    assert store.writes == 0
    assert breaker.state is CircuitState.CLOSED


def _two_processes_due_for_a_probe() -> tuple[
    CountingStore, FakeClock, CircuitBreaker, CircuitBreaker
]:
    """Two breakers (as two processes) on a circuit that is open and due for its first probe,
    with a 3 s probe_timeout; the first probe is reserved for ``slow``, which tripped it."""
    store, clock = CountingStore(), FakeClock()
    config = Config(failure_threshold=1, recovery_timeout=10, success_threshold=2, probe_timeout=3)
    slow = CircuitBreaker("svc", store=store, config=config, clock=clock)
    other = CircuitBreaker("svc", store=store, config=config, clock=clock)
    with pytest.raises(Boom):
        slow.call(_raise_boom)
    clock.advance(10)
    return store, clock, slow, other


def test_overdue_probe_is_taken_over_and_its_late_outcome_changes_nothing() -> None:
    """A probe outliving probe_timeout is replaced; its late success or failure is fenced."""
    store, clock, slow, other = _two_processes_due_for_a_probe()
    entered, finish = threading.Event(), threading.Event()
    outcome: dict[str, object] = {}

    def hanging_probe() -> None:
        entered.set()
        finish.wait(timeout=30)
        raise Boom  # a late failure: must not reopen the circuit the new prober is healing

    def run_slow() -> None:
        try:
            slow.call(hanging_probe)
        except Boom as exc:
            outcome["exc"] = exc

    prober = threading.Thread(target=run_slow)
    prober.start()
    assert entered.wait(timeout=10)
    first_claim = store.inner.load("svc")
    assert first_claim is not None
    assert first_claim.state is CircuitState.HALF_OPEN
    assert first_claim.probe_owner is not None
    with pytest.raises(CircuitOpenError):
        other.call(lambda: "ok")  # other sees the claim: its probe_timeout runs from here
    clock.advance(3)  # the claim expires
    assert other.call(lambda: "ok") == "ok"  # takes over and succeeds (1 of 2)
    taken = store.inner.load("svc")
    assert taken is not None
    assert (taken.successes, taken.probe_owner) == (1, None)
    finish.set()
    prober.join(timeout=10)
    assert isinstance(outcome.get("exc"), Boom)  # the caller still gets its own exception
    assert store.inner.load("svc") == taken  # fenced: the late failure changed nothing


def test_late_success_of_a_taken_over_probe_changes_nothing() -> None:
    """A late success after takeover cannot count toward closing the newer episode."""
    store, clock, slow, other = _two_processes_due_for_a_probe()
    entered, finish = threading.Event(), threading.Event()

    def hanging_probe() -> str:
        entered.set()
        finish.wait(timeout=30)
        return "late"

    results: list[str] = []
    prober = threading.Thread(target=lambda: results.append(slow.call(hanging_probe)))
    prober.start()
    assert entered.wait(timeout=10)
    with pytest.raises(CircuitOpenError):
        other.call(lambda: "ok")  # other sees the claim: its probe_timeout runs from here
    clock.advance(3)
    entered_second, finish_second = threading.Event(), threading.Event()

    def second_probe() -> str:
        entered_second.set()
        finish_second.wait(timeout=30)
        return "ok"

    second = threading.Thread(target=lambda: results.append(other.call(second_probe)))
    second.start()
    assert entered_second.wait(timeout=10)
    before = store.inner.load("svc")
    finish.set()
    prober.join(timeout=10)
    assert store.inner.load("svc") == before  # the late success was fenced off
    finish_second.set()
    second.join(timeout=10)
    after = store.inner.load("svc")
    assert after is not None
    assert (after.state, after.successes) == (CircuitState.HALF_OPEN, 1)
    assert sorted(results) == ["late", "ok"]


def test_concurrent_cache_expiry_shares_one_read() -> None:
    """When the cached view expires under load, one thread reads; the rest keep serving."""
    store, clock = ParkingStore(operation="load"), FakeClock()
    breaker = CircuitBreaker("svc", store=store.inner, config=Config(), clock=clock)
    breaker.call(lambda: None)  # warm through the plain store
    breaker.store = store
    clock.advance(5)
    reader = threading.Thread(target=breaker.call, args=(lambda: None,))
    reader.start()
    assert store.parked.wait(timeout=10)
    served = []
    run_threads(16, lambda i: served.append(breaker.call(lambda: i)))
    assert sorted(served) == list(range(16))  # nobody waited for the parked read
    store.release.set()
    reader.join(timeout=10)
    assert store.counts["load"] == 1


def test_cold_process_callers_wait_for_the_first_read() -> None:
    """Concurrent first calls in a cold process share one read and all route on it."""
    inner = MemoryStore()
    tripper = CircuitBreaker(
        "svc", store=inner, config=Config(failure_threshold=1), clock=FakeClock()
    )
    with pytest.raises(Boom):
        tripper.call(_raise_boom)
    store = ParkingStore(inner, operation="load")
    cold = CircuitBreaker(
        "svc", store=store, config=Config(), clock=FakeClock(), on_circuit_open=refuse
    )
    results: list[object] = []
    first = threading.Thread(target=lambda: results.append(cold.call(lambda: "called")))
    first.start()
    assert store.parked.wait(timeout=10)
    others = [
        threading.Thread(target=lambda: results.append(cold.call(lambda: "called")))
        for _ in range(8)
    ]
    for t in others:
        t.start()
    store.release.set()
    for t in [first, *others]:
        t.join(timeout=10)
    assert results == [REFUSED] * 9
    assert store.counts["load"] == 1


def test_one_claim_write_per_process_per_recovery_window() -> None:
    """While one thread's claim write is in flight, the others are refused without writing."""
    store, clock = ParkingStore(operation="cas", armed=False), FakeClock()
    config = Config(failure_threshold=1, recovery_timeout=10, success_threshold=5)
    breaker = CircuitBreaker("svc", store=store, config=config, clock=clock, on_circuit_open=refuse)
    with pytest.raises(Boom):
        breaker.call(_raise_boom)
    clock.advance(10)
    writes = store.writes
    store.arm()
    results: list[object] = []
    claimer = threading.Thread(target=lambda: results.append(breaker.call(lambda: "probed")))
    claimer.start()
    assert store.parked.wait(timeout=10)  # the claim write is in flight
    run_threads(15, lambda _i: results.append(breaker.call(lambda: "probed")))
    store.release.set()
    claimer.join(timeout=10)
    assert results.count("probed") == 1
    assert results.count(REFUSED) == 15
    assert store.writes - writes == 2  # the claim, then the probe's success
    assert store.counts["cas_lost"] == 0


def test_threshold_crossing_is_observed_by_one_thread() -> None:
    """Of many concurrent failures on one closed view, exactly one is told to trip."""
    breaker = CircuitBreaker("svc", config=Config(failure_threshold=4), clock=FakeClock())
    breaker.call(lambda: None)
    view = breaker._view
    barrier = threading.Barrier(16)
    crossings: list[bool] = []

    def count(_i: int) -> None:
        barrier.wait()
        crossings.append(breaker._count_bad(view, failed=True, slow=False) is not None)

    run_threads(16, count)
    assert crossings.count(True) == 1


def test_callers_are_refused_while_the_trip_is_being_written() -> None:
    """From the threshold crossing on, this process stops calling, before the store answers."""
    store, hook = ParkingStore(operation="cas"), RecordingHook()
    breaker = CircuitBreaker(
        "svc",
        store=store,
        config=Config(failure_threshold=4),
        clock=FakeClock(),
        on_transition=hook,
        on_circuit_open=refuse,
    )
    breaker.call(lambda: None)
    tripper = threading.Thread(target=run_threads, args=(4, lambda _i: _expect_boom(breaker)))
    tripper.start()
    assert store.parked.wait(timeout=10)  # the crossing thread is writing the trip
    calls: list[int] = []
    results: list[object] = []
    run_threads(12, lambda i: results.append(breaker.call(lambda: calls.append(i))))
    store.release.set()
    tripper.join(timeout=10)
    assert calls == []
    assert results == [REFUSED] * 12
    assert store.writes == 1
    assert hook.pairs() == [("closed", "open")]


def _expect_boom(breaker: CircuitBreaker) -> None:
    with pytest.raises(Boom):
        breaker.call(_raise_boom)


@pytest.mark.timeout(30)
@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX-only")
def test_fork_with_a_held_claim_and_an_open_sqlite_connection(tmp_path: Path) -> None:
    """A child forked mid-probe neither settles the parent's claim nor reuses its connection."""
    store = SQLiteStore(tmp_path / "fleet.db")
    clock = FakeClock()
    config = Config(failure_threshold=1, recovery_timeout=10, success_threshold=2)
    breaker = CircuitBreaker("svc", store=store, config=config, clock=clock, on_circuit_open=refuse)
    with pytest.raises(Boom):
        breaker.call(_raise_boom)
    clock.advance(10)
    parent_conn = store._conn()
    read, write = os.pipe()

    def probe_that_forks() -> str:
        breaker._lock.acquire()  # fork while another thread would hold the breaker's lock
        pid = os.fork()
        if pid == 0:  # child: continues inside the parent's probe frame
            code = 1
            try:
                os.close(read)
                conn_is_new = store._conn() is not parent_conn
                refused = breaker.call(lambda: "child-called") is REFUSED  # the claim is held
                held = breaker.info().probe_in_flight  # takes the lock: must not deadlock
                os.write(write, f"{conn_is_new},{refused},{held}".encode())
                code = 0
            finally:
                # Return through the probe frame: its settle must be a no-op in the child.
                os._exit(code) if code else None
            return "child-result"
        breaker._lock.release()
        os.close(write)
        ready, _, _ = select.select([read], [], [], 20)
        if not ready:  # the child is stuck (a lock inherited held): never leave it behind
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung")
        report = os.read(read, 100).decode()
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, report
        assert report == "True,True,True", report
        return "parent-result"

    # The child returns "child-result" through the probe frame and must settle nothing; it exits
    # in the wrapper below, so the parent's record proves what the child did.
    before_pid = os.getpid()
    result = breaker.call(probe_that_forks)
    if os.getpid() != before_pid:  # pragma: no cover - child
        record = store.load("svc")
        os._exit(0 if record is not None and record.probe_owner is not None else 3)
    assert result == "parent-result"
    record = store.load("svc", consistent=True)
    assert record is not None
    assert (record.state, record.successes) == (CircuitState.HALF_OPEN, 1)
    sys.stdout.flush()
