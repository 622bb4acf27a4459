"""Store wrappers the tests use to count and park store calls, and a store that is down."""

from __future__ import annotations

import os
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable

from fleetbreaker import CircuitState, MemoryStore, Store
from fleetbreaker._protocol import Record
from fleetbreaker.errors import StoreError
from fleetbreaker.testing import FaultyStore


class CountingStore(Store):
    """Delegates to ``inner`` and counts every call by operation and outcome."""

    def __init__(self, inner: Store | None = None) -> None:
        self.inner = MemoryStore() if inner is None else inner
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def _count(self, key: str) -> None:
        with self._lock:
            self.counts[key] += 1

    def load(self, name: str, *, consistent: bool = False) -> Record | None:
        self._count("load")
        return self.inner.load(name, consistent=consistent)

    def compare_and_set(self, name: str, expected_epoch: int | None, record: Record) -> bool:
        self._count("cas")
        won = self.inner.compare_and_set(name, expected_epoch, record)
        self._count("cas_won" if won else "cas_lost")
        return won

    def names(self) -> list[str]:
        return self.inner.names()

    @property
    def writes(self) -> int:
        return self.counts["cas"]


def down_store() -> FaultyStore:
    """A store that is down (partitioned: every call raises StoreError) until ``heal()``,
    over a ``CountingStore`` that counts the calls that get through."""
    return FaultyStore(CountingStore(), partitioned=True)


def counts_of(store: FaultyStore) -> Counter[str]:
    """The counts of the ``CountingStore`` under a ``down_store()``."""
    assert isinstance(store.inner, CountingStore)
    return store.inner.counts


class ParkingStore(CountingStore):
    """Parks the first call of a chosen operation until released, to force an interleaving.

    ``parked`` is set once a thread is parked inside the store; ``release`` lets it go.
    """

    def __init__(
        self, inner: Store | None = None, *, operation: str = "load", armed: bool = True
    ) -> None:
        super().__init__(inner)
        self.operation = operation
        self.parked = threading.Event()
        self.release = threading.Event()
        self._armed = armed
        self._arm_lock = threading.Lock()

    def arm(self) -> None:
        """Park the next call of the chosen operation."""
        with self._arm_lock:
            self._armed = True

    def _maybe_park(self, operation: str) -> None:
        with self._arm_lock:
            park = self._armed and operation == self.operation
            if park:
                self._armed = False
        if park:
            self.parked.set()
            if not self.release.wait(timeout=30):
                raise AssertionError("parked store call was never released")

    def load(self, name: str, *, consistent: bool = False) -> Record | None:
        self._maybe_park("load")
        return super().load(name, consistent=consistent)

    def compare_and_set(self, name: str, expected_epoch: int | None, record: Record) -> bool:
        self._maybe_park("cas")
        return super().compare_and_set(name, expected_epoch, record)


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Block until ``condition()`` holds, checking every millisecond; fail after ``timeout``."""
    idle = threading.Event()
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition never became true")
        idle.wait(0.001)


def open_record(epoch: int) -> Record:
    """An open record, written now, that lives ten minutes: what the store tests write."""
    now = time.time()
    return Record(
        CircuitState.OPEN,
        epoch,
        opened_at=now,
        retry_at=now + 30,
        updated_at=now,
        expires_at=now + 600,
    )


def timed(call: Callable[[], object]) -> tuple[BaseException | None, float]:
    """Run ``call``; return what it raised and how long it took."""
    start = time.monotonic()
    try:
        call()
    except Exception as exc:
        return exc, time.monotonic() - start
    return None, time.monotonic() - start


def fork() -> int:
    """os.fork(); the child only runs code of its test and leaves through os._exit."""
    with warnings.catch_warnings():
        # Python >= 3.12 warns when other threads exist (a server's, a proxy's): they stay in
        # this process, and the child touches nothing they own.
        warnings.filterwarnings("ignore", "This process .* is multi-threaded", DeprecationWarning)
        return os.fork()


def every_operation_fails_fast(store: Store, *, says: str, within: float) -> None:
    """Each operation of ``store`` (sync and async) on circuit "c" (at epoch 1) raises a
    ``StoreError`` that ``says`` what happened, within ``within`` seconds."""
    import asyncio

    calls: list[Callable[[], object]] = [
        lambda: store.load("c"),
        lambda: store.compare_and_set("c", 1, open_record(2)),
        store.names,
        lambda: asyncio.run(store.aload("c")),
    ]
    for call in calls:
        error, elapsed = timed(call)
        assert isinstance(error, StoreError), error
        assert says in str(error), error
        assert elapsed < within, elapsed


def marked_record(failure_count: int, *, expires_at: float) -> Record:
    """An open record at epoch 1 told apart by its ``failure_count`` (the fork tests' mark)."""
    return Record(
        CircuitState.OPEN,
        1,
        opened_at=1.0,
        retry_at=2.0,
        failure_count=failure_count,
        expires_at=expires_at,
    )
