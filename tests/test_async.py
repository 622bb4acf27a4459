"""The asyncio entry points: same protocol, and the event loop never waits on the store."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest

from fleetbreaker import (
    CircuitBreaker,
    CircuitInfo,
    CircuitOpenError,
    CircuitState,
    CircuitTransition,
    Config,
    MemoryStore,
)
from fleetbreaker.testing import FakeClock, RecordingHook
from tests.helpers import CountingStore, ParkingStore, down_store

REFUSED = "refused"


class Boom(Exception):
    pass


async def boom() -> None:
    raise Boom


async def ok() -> str:
    return "ok"


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def tripped(store: Any, clock: FakeClock, **kw: Any) -> CircuitBreaker:
    config = kw.pop("config", Config(failure_threshold=2, recovery_timeout=10, success_threshold=3))
    breaker = CircuitBreaker("svc", store=store, config=config, clock=clock, **kw)

    async def trip() -> None:
        for _ in range(config.failure_threshold):
            with pytest.raises(Boom):
                await breaker.acall(boom)

    run(trip())
    return breaker


def test_async_decorator_trips_and_short_circuits() -> None:
    """An async def decorated by the same breaker class follows the same protocol."""
    hook = RecordingHook()
    breaker = CircuitBreaker(
        "svc", config=Config(failure_threshold=2), clock=FakeClock(), on_transition=hook
    )

    @breaker
    async def fetch(x: int) -> int:
        if x < 0:
            raise Boom
        return x * 2

    async def scenario() -> None:
        assert await fetch(2) == 4
        for _ in range(2):
            with pytest.raises(Boom):
                await fetch(-1)
        with pytest.raises(CircuitOpenError):
            await fetch(1)

    run(scenario())
    assert hook.pairs() == [("closed", "open")]
    assert asyncio.iscoroutinefunction(fetch)


def test_async_fallback_is_awaited() -> None:
    """A coroutine-function fallback is awaited on the async path."""

    async def fallback(x: int, *, circuit: CircuitInfo) -> str:
        return f"fallback {x} {circuit.state.value}"

    breaker = CircuitBreaker(
        "svc", config=Config(failure_threshold=1), clock=FakeClock(), on_circuit_open=fallback
    )

    @breaker
    async def fetch(x: int) -> str:
        raise Boom

    async def scenario() -> str:
        with pytest.raises(Boom):
            await fetch(1)
        return await fetch(7)

    assert run(scenario()) == "fallback 7 open"


def test_many_tasks_obey_the_one_probe_rule() -> None:
    """Tasks on one loop: one probe at a time, and exactly success_threshold probes close it."""
    store, clock, hook = CountingStore(), FakeClock(), RecordingHook()
    breaker = tripped(store, clock, on_transition=hook, on_circuit_open=lambda *_a, **_kw: REFUSED)
    clock.advance(10)
    in_flight = 0
    max_in_flight = 0
    probes = 0

    async def probe() -> str:
        nonlocal in_flight, max_in_flight, probes
        in_flight += 1
        probes += 1
        max_in_flight = max(max_in_flight, in_flight)
        for _ in range(5):
            await asyncio.sleep(0)  # let every other task try while this probe is in flight
        in_flight -= 1
        return "ok"

    async def task() -> list[str]:
        seen = []
        while breaker.state is not CircuitState.CLOSED:
            seen.append(await breaker.acall(probe))
            # Refused: give the loop to the others (claim writes run in a worker thread).
            await asyncio.sleep(0.001 if seen[-1] == REFUSED else 0)
        return seen

    async def scenario() -> list[list[str]]:
        return await asyncio.gather(*(task() for _ in range(50)))

    outcomes = [r for rs in run(scenario()) for r in rs]
    assert max_in_flight == 1
    assert probes == 3
    assert outcomes.count("ok") == 3
    assert outcomes.count(REFUSED) > 50
    assert hook.pairs() == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]


def test_store_io_does_not_block_the_event_loop() -> None:
    """While a store read is stuck, other tasks on the loop keep running."""
    store = ParkingStore(MemoryStore(), operation="load")
    breaker = CircuitBreaker("svc", store=store, clock=FakeClock())

    async def scenario() -> int:
        call = asyncio.create_task(breaker.acall(ok))
        assert await asyncio.to_thread(store.parked.wait, 10)
        ticks = 0
        for _ in range(100):
            await asyncio.sleep(0)
            ticks += 1
        assert not call.done()
        store.release.set()
        assert await call == "ok"
        return ticks

    assert run(scenario()) == 100


def test_cancelled_probe_frees_the_slot() -> None:
    """A probe cancelled mid-call is not a failure and releases its claim."""
    store, clock = CountingStore(), FakeClock()
    breaker = tripped(store, clock)
    clock.advance(10)

    async def scenario() -> None:
        started = asyncio.Event()

        async def hang() -> None:
            started.set()
            await asyncio.Event().wait()

        task = asyncio.create_task(breaker.acall(hang))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(scenario())
    record = store.inner.load("svc")
    assert record is not None
    assert (record.state, record.probe_owner, record.successes) == (CircuitState.HALF_OPEN, None, 0)


def test_async_guard() -> None:
    """async with breaker.guard() records outcomes and refuses entry when open."""
    breaker = CircuitBreaker("svc", config=Config(failure_threshold=2), clock=FakeClock())

    async def scenario() -> None:
        for _ in range(2):
            with pytest.raises(Boom):
                async with breaker.guard():
                    raise Boom
        with pytest.raises(CircuitOpenError):
            async with breaker.guard():
                pytest.fail("must not run")

    run(scenario())


def test_async_store_down_fails_open() -> None:
    """A dead store on the async path never reaches the caller."""
    store = down_store()
    breaker = CircuitBreaker(
        "svc", store=store, config=Config(failure_threshold=2), clock=FakeClock()
    )

    async def scenario() -> list[str]:
        results = [await breaker.acall(ok) for _ in range(20)]
        info = await breaker.ainfo()
        assert info.state is CircuitState.CLOSED
        return results

    assert run(scenario()) == ["ok"] * 20


def test_async_and_threads_share_one_breaker() -> None:
    """A breaker used from a thread and from an event loop keeps one view and one count."""
    breaker = CircuitBreaker("svc", config=Config(failure_threshold=2), clock=FakeClock())

    def sync_boom() -> None:
        raise Boom

    with pytest.raises(Boom):
        breaker.call(sync_boom)
    worker = threading.Thread(target=lambda: run(_fail_async(breaker)))
    worker.start()
    worker.join(timeout=10)
    assert breaker.state is CircuitState.OPEN


async def _fail_async(breaker: CircuitBreaker) -> None:
    with pytest.raises(Boom):
        await breaker.acall(boom)


class AsyncRecordingHook:
    """An async def on_transition hook that records what it was awaited with."""

    def __init__(self) -> None:
        self.pairs: list[tuple[str, str]] = []
        self.done = threading.Event()

    async def __call__(self, transition: CircuitTransition) -> None:
        await asyncio.sleep(0)  # a real suspension: the hook is awaited, not just called
        self.pairs.append((transition.from_state.value, transition.to_state.value))
        self.done.set()


def test_async_transition_hook_is_awaited_on_the_async_path() -> None:
    """An async def on_transition is awaited in the caller's task before the call returns."""
    hook = AsyncRecordingHook()
    clock = FakeClock()
    config = Config(failure_threshold=1, recovery_timeout=10, success_threshold=1)
    breaker = CircuitBreaker("svc", config=config, clock=clock, on_transition=hook)

    async def scenario() -> None:
        with pytest.raises(Boom):
            await breaker.acall(boom)
        assert hook.pairs == [("closed", "open")]
        clock.advance(10)
        assert await breaker.acall(ok) == "ok"
        assert hook.pairs[1:] == [("open", "half_open"), ("half_open", "closed")]

    run(scenario())


def test_async_transition_hook_runs_on_the_sync_path() -> None:
    """With no event loop running, a sync call runs an async hook to completion inline."""
    hook = AsyncRecordingHook()
    breaker = CircuitBreaker(
        "svc", config=Config(failure_threshold=1), clock=FakeClock(), on_transition=hook
    )

    def sync_boom() -> None:
        raise Boom

    with pytest.raises(Boom):
        breaker.call(sync_boom)
    assert hook.pairs == [("closed", "open")]


def test_async_transition_hook_from_a_sync_call_inside_a_running_loop() -> None:
    """A sync call made inside a running loop schedules the async hook as a task of it."""
    hook = AsyncRecordingHook()
    breaker = CircuitBreaker(
        "svc", config=Config(failure_threshold=1), clock=FakeClock(), on_transition=hook
    )

    def sync_boom() -> None:
        raise Boom

    async def scenario() -> None:
        with pytest.raises(Boom):
            breaker.call(sync_boom)
        assert len(breaker._transition_hook._tasks) == 1  # held until done
        assert await asyncio.to_thread(hook.done.wait, 10)
        for _ in range(3):  # let the done callback run
            await asyncio.sleep(0)
        assert breaker._transition_hook._tasks == set()

    run(scenario())
    assert hook.pairs == [("closed", "open")]


@pytest.mark.logs_errors  # the hook's exception is logged on purpose
@pytest.mark.parametrize("path", ["async", "sync"], ids=["async-path", "sync-path"])
def test_async_transition_hook_exceptions_are_logged(
    path: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An async hook that raises is logged; the call that triggered it is unaffected."""

    async def broken(_t: CircuitTransition) -> None:
        await asyncio.sleep(0)
        raise RuntimeError("metrics down")

    breaker = CircuitBreaker(
        "svc", config=Config(failure_threshold=1), clock=FakeClock(), on_transition=broken
    )

    def sync_boom() -> None:
        raise Boom

    call = (
        (lambda: run(breaker.acall(boom))) if path == "async" else (lambda: breaker.call(sync_boom))
    )
    with caplog.at_level(logging.ERROR, logger="fleetbreaker"), pytest.raises(Boom):
        call()
    assert breaker.state is CircuitState.OPEN
    assert "on_transition hook raised" in caplog.text
    assert "metrics down" in caplog.text


def test_async_transition_hook_via_async_guard() -> None:
    """async with breaker.guard() awaits an async hook too."""
    hook = AsyncRecordingHook()
    breaker = CircuitBreaker(
        "svc", config=Config(failure_threshold=1), clock=FakeClock(), on_transition=hook
    )

    async def scenario() -> None:
        with pytest.raises(Boom):
            async with breaker.guard():
                raise Boom
        assert hook.pairs == [("closed", "open")]

    run(scenario())
