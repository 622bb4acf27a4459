"""FaultyStore: each fault does what it says, counts itself, and nothing else changes."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator

import pytest

from fleetbreaker import ConfigError, MemoryStore, Store, StoreError
from fleetbreaker.testing import FaultyStore
from fleetbreaker.testing.store_contract import StoreContract, rec
from tests.helpers import CountingStore


class TestFaultyStoreWithoutFaults(StoreContract):
    """With no fault injected, a FaultyStore is its inner store: it passes the contract."""

    @pytest.fixture
    def make_store(self) -> Callable[[], Store]:
        shared = MemoryStore()
        return lambda: FaultyStore(shared)


class Sleeps:
    """A fake sleep (sync and async) that records how long it was asked to wait."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)

    async def asleep(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def load_via(store: Store, path: str) -> object:
    """``load("c")`` on the sync or the async path."""
    return store.load("c") if path == "sync" else asyncio.run(store.aload("c"))


def create_via(store: Store, path: str) -> bool:
    """``compare_and_set("c", None, rec(1))`` on the sync or the async path."""
    if path == "sync":
        return store.compare_and_set("c", None, rec(1))
    return asyncio.run(store.acompare_and_set("c", None, rec(1)))


def test_fixed_latency_waits_before_every_operation(sleeps: Sleeps) -> None:
    """latency=s waits s seconds before each load, write and names, sync or async."""
    store = FaultyStore(MemoryStore(), latency=0.25, sleep=sleeps, async_sleep=sleeps.asleep)
    store.load("c")
    store.compare_and_set("c", None, rec(1))
    store.names()
    asyncio.run(store.aload("c"))
    assert sleeps.waits == [0.25] * 4
    assert store.injected("latency") == 4
    assert store.injected("latency", "write") == 1
    assert store.load("c") == rec(1)


def test_latency_by_operation(sleeps: Sleeps) -> None:
    """A latency callable is asked per operation; zero waits nothing."""
    store = FaultyStore(
        MemoryStore(), latency=lambda op: 2.0 if op == "write" else 0.0, sleep=sleeps
    )
    store.load("c")
    store.compare_and_set("c", None, rec(1))
    assert sleeps.waits == [2.0]
    assert store.injected("latency") == 1


def test_a_latency_callable_returning_nonsense_is_an_error() -> None:
    """A negative latency from the callable raises ValueError at the operation."""
    store = FaultyStore(MemoryStore(), latency=lambda _op: -1.0)
    with pytest.raises(ValueError, match="latency must be a finite number of seconds"):
        store.load("c")


def test_the_default_sleep_is_the_real_one() -> None:
    """Without an injected sleep, latency really waits (here 10 ms)."""
    import time

    store = FaultyStore(MemoryStore(), latency=0.01)
    start = time.monotonic()
    store.load("c")
    assert time.monotonic() - start >= 0.01


def test_fail_next_fails_that_many_of_one_operation() -> None:
    """fail_next(2, operation="load") fails the next two loads only, before the inner store."""
    inner = CountingStore()
    store = FaultyStore(inner)
    store.fail_next(2, operation="load")
    assert store.compare_and_set("c", None, rec(1)) is True
    for _ in range(2):
        with pytest.raises(StoreError, match="load of circuit 'c': injected error"):
            store.load("c")
    assert store.load("c") == rec(1)
    assert inner.counts["load"] == 1
    assert store.injected("error", "load") == 2
    assert store.injected("error", "write") == 0


def test_fail_next_any_operation() -> None:
    """fail_next(operation="any") fails whatever comes next, names included."""
    store = FaultyStore(MemoryStore())
    store.fail_next(2)
    with pytest.raises(StoreError):
        store.names()
    with pytest.raises(StoreError):
        store.compare_and_set("c", None, rec(1))
    assert store.load("c") is None
    assert store.injected("error") == 2


def test_a_lost_write_is_not_applied() -> None:
    """lose_next_writes: StoreError, and the inner store never sees the write."""
    inner = MemoryStore()
    store = FaultyStore(inner)
    store.lose_next_writes()
    with pytest.raises(StoreError, match="request lost, not applied"):
        store.compare_and_set("c", None, rec(1))
    assert inner.load("c") is None
    assert store.compare_and_set("c", None, rec(1)) is True
    assert store.injected("lost_write") == 1


@pytest.mark.parametrize("path", ["sync", "async"])
def test_a_lost_ack_is_applied_then_raises(path: str) -> None:
    """lose_next_acks: the inner store applies the write, the caller gets StoreError."""
    inner = MemoryStore()
    store = FaultyStore(inner)
    store.lose_next_acks()
    with pytest.raises(StoreError, match="applied, answer lost"):
        create_via(store, path)
    assert inner.load("c") == rec(1)
    assert store.compare_and_set("c", 1, rec(2)) is True
    assert store.injected("lost_ack", "write") == 1


@pytest.mark.parametrize("applied", [False, True], ids=["lost-write", "lost-ack"])
def test_lost_request_rates(applied: bool) -> None:
    """At rate 1 every write is lost, on the way (never applied) or on the way back (applied,
    then StoreError); reads are never lost."""
    inner = MemoryStore()
    if applied:
        store = FaultyStore(inner, lost_ack_rate=1.0)
    else:
        store = FaultyStore(inner, lost_write_rate=1.0)
    for i in range(20):
        with pytest.raises(StoreError):
            store.compare_and_set(f"c{i}", None, rec(1))
        assert (inner.load(f"c{i}") == rec(1)) is applied
        assert store.load(f"c{i}") == inner.load(f"c{i}")
    fault = "lost_ack" if applied else "lost_write"
    assert store.injected(fault, "write") == 20
    assert store.injected() == 20


def test_a_lost_ack_of_a_losing_write_changes_nothing() -> None:
    """A write the inner store refuses, its answer lost, leaves the stored record as it was."""
    inner = MemoryStore()
    store = FaultyStore(inner)
    store.compare_and_set("c", None, rec(1))
    store.lose_next_acks()
    with pytest.raises(StoreError):
        store.compare_and_set("c", 7, rec(8))
    assert inner.load("c") == rec(1)


def test_rates_are_drawn_from_the_seed() -> None:
    """The same seed injects the same faults into the same sequence of operations."""

    def run(seed: int) -> list[str]:
        store = FaultyStore(
            MemoryStore(), error_rate=0.3, lost_write_rate=0.2, lost_ack_rate=0.3, seed=seed
        )
        outcomes = []
        for i in range(200):
            try:
                store.compare_and_set(f"c{i}", None, rec(1))
                outcomes.append("ok")
            except StoreError as exc:
                outcomes.append(str(exc).rsplit(": ", 1)[-1])
        return outcomes

    first = run(7)
    assert first == run(7)
    assert first != run(8)
    assert 20 < first.count("injected error") < 100
    assert 10 < first.count("applied, answer lost") < 80
    assert 5 < first.count("request lost, not applied") < 60


@pytest.mark.parametrize(("rate", "failures"), [(0.0, 0), (1.0, 50)], ids=["never", "always"])
def test_error_rate_bounds(rate: float, failures: int) -> None:
    """error_rate 0 never fails; 1 always does, and no call reaches the inner store."""
    inner = CountingStore()
    store = FaultyStore(inner, error_rate=rate)
    failed = 0
    for _ in range(50):
        try:
            store.load("c")
        except StoreError:
            failed += 1
    assert failed == failures
    assert inner.counts["load"] == 50 - failures


@pytest.mark.parametrize("path", ["sync", "async"])
def test_a_partition_fails_every_operation_until_healed(path: str, sleeps: Sleeps) -> None:
    """While partitioned every operation waits partition_timeout and raises; heal() ends it."""
    inner = CountingStore()
    store = FaultyStore(inner, partition_timeout=3.0, sleep=sleeps, async_sleep=sleeps.asleep)
    store.partition()
    assert store.partitioned
    with pytest.raises(StoreError, match="partitioned"):
        load_via(store, path)
    with pytest.raises(StoreError, match="partitioned"):
        create_via(store, path)
    with pytest.raises(StoreError, match="partitioned"):
        store.names()
    assert sleeps.waits == [3.0, 3.0, 3.0]
    assert inner.counts == {}
    store.heal()
    assert store.compare_and_set("c", None, rec(1)) is True
    assert store.injected("partition") == 3


def test_partition_as_a_context_manager_heals_at_the_end() -> None:
    """``with store.partition():`` heals at the end of the block, even on an exception."""
    store = FaultyStore(MemoryStore())
    seen: list[bool] = []

    def cut_off_then_raise() -> None:
        with store.partition():
            seen.append(store.partitioned)
            raise KeyError

    with pytest.raises(KeyError):
        cut_off_then_raise()
    assert seen == [True]
    assert not store.partitioned
    assert store.load("c") is None


def test_starting_partitioned_and_the_partition_wins_over_scripted_faults() -> None:
    """partitioned=True starts cut off; a partition is what a scripted fault's call meets."""
    store = FaultyStore(MemoryStore(), partitioned=True)
    store.fail_next()
    with pytest.raises(StoreError, match="partitioned"):
        store.load("c")
    store.heal()
    with pytest.raises(StoreError, match="injected error"):
        store.load("c")


def test_check_name_and_close_pass_through_even_when_partitioned() -> None:
    """check_name and close reach the inner store whatever is injected."""

    class Picky(MemoryStore):
        closed = False

        def check_name(self, name: str) -> None:
            if len(name) > 3:
                raise ConfigError("name too long")

        def close(self) -> None:
            self.closed = True

    inner = Picky()
    store = FaultyStore(inner, partitioned=True)
    store.check_name("abc")
    with pytest.raises(ConfigError, match="too long"):
        store.check_name("abcd")
    store.close()
    assert inner.closed
    assert "partitioned" in repr(store)


def test_scripted_faults_are_counted_exactly_across_threads() -> None:
    """fail_next(n) fails exactly n of many concurrent operations."""
    store = FaultyStore(MemoryStore())
    store.fail_next(37)
    threads_n, calls = 8, 25
    barrier = threading.Barrier(threads_n)
    failed: list[int] = []
    lock = threading.Lock()

    def work() -> None:
        barrier.wait()
        for _ in range(calls):
            try:
                store.load("c")
            except StoreError:
                with lock:
                    failed.append(1)

    threads = [threading.Thread(target=work) for _ in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(failed) == 37
    assert store.injected("error") == 37


def _bad_arguments() -> Iterator[tuple[dict[str, object], str]]:
    yield {"error_rate": 1.5}, "error_rate must be a number in"
    yield {"error_rate": -0.1}, "error_rate must be a number in"
    yield {"error_rate": True}, "error_rate must be a number in"
    yield {"lost_ack_rate": "0.5"}, "lost_ack_rate must be a number in"
    yield {"lost_write_rate": 2}, "lost_write_rate must be a number in"
    yield {"latency": -1}, "latency must be a finite number of seconds"
    yield {"latency": float("inf")}, "latency must be a finite number of seconds"
    yield {"partition_timeout": float("nan")}, "partition_timeout must be a finite number"


@pytest.mark.parametrize(("kwargs", "message"), list(_bad_arguments()))
def test_bad_arguments_are_refused_at_construction(kwargs: dict[str, object], message: str) -> None:
    """Each bad argument raises ValueError naming it."""
    with pytest.raises(ValueError, match=message):
        FaultyStore(MemoryStore(), **kwargs)  # type: ignore[arg-type]


def test_bad_control_arguments() -> None:
    """Counts, operations and fault names are checked where they are given."""
    store = FaultyStore(MemoryStore())
    with pytest.raises(TypeError, match="inner must be a fleetbreaker Store"):
        FaultyStore(object())  # type: ignore[arg-type]
    for count in (0, -1, True, 1.5):
        with pytest.raises(ValueError, match="count must be a positive integer"):
            store.fail_next(count)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="operation must be 'any' or one of"):
        store.fail_next(operation="read")
    with pytest.raises(ValueError, match="count must be a positive integer"):
        store.lose_next_acks(0)
    with pytest.raises(ValueError, match="count must be a positive integer"):
        store.lose_next_writes(0)
    with pytest.raises(ValueError, match="fault must be one of"):
        store.injected("boom")
    with pytest.raises(ValueError, match="operation must be one of"):
        store.injected(operation="cas")
