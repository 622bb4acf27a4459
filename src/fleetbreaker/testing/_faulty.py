"""FaultyStore: any store, made slow, failing, forgetful or cut off on demand, for chaos tests.

Each operation first asks :meth:`FaultyStore._plan` (one place, under a short lock) what to do
to it: wait, fail before reaching the inner store, or reach it and then lose the answer. The
sync and async methods are thin shells that carry the plan out with the injected sleeps.
"""

from __future__ import annotations

import asyncio
import math
import random
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from types import TracebackType
from typing import Final, TypeAlias

from fleetbreaker._protocol import Record
from fleetbreaker.errors import StoreError
from fleetbreaker.stores.base import Store

__all__ = ["FAULTS", "OPERATIONS", "FaultyStore"]

OPERATIONS: Final = ("load", "write", "names")
"""What a fault can target: ``load``/``aload``, ``compare_and_set``/``acompare_and_set`` and
``names``."""

FAULTS: Final = ("latency", "error", "lost_write", "lost_ack", "partition")
"""What ``FaultyStore.injected`` counts."""

Latency: TypeAlias = float | Callable[[str], float]


@dataclass(frozen=True, slots=True)
class _Plan:
    """What to do to one operation: wait ``delay`` seconds, then raise ``error`` without
    reaching the inner store, or reach it and raise ``lost_ack`` instead of its answer."""

    delay: float = 0.0
    error: StoreError | None = None
    lost_ack: StoreError | None = None


def _rate(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)


def _seconds(value: object, name: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValueError(f"{name} must be a finite number of seconds >= 0, got {value!r}")
    return float(value)


def _count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"count must be a positive integer, got {value!r}")
    return value


class FaultyStore(Store):
    """Wraps ``inner`` (any :class:`~fleetbreaker.stores.base.Store`) and injects faults.

    * ``latency``: seconds every operation waits first, or ``latency(operation) -> seconds``
      (operation one of ``OPERATIONS``).
    * ``error_rate``: the share of operations that raise ``StoreError`` without reaching
      ``inner`` (a write so refused was not applied). Lost requests, each a ``StoreError`` as
      a timeout would raise: ``lost_write_rate``, the share of writes lost on the way (not
      applied), and ``lost_ack_rate``, the share of writes that reach ``inner`` and whose
      answer is lost (applied, not acknowledged). Drawn from ``random.Random(seed)``.
    * Scripted faults: ``fail_next``, ``lose_next_writes`` and ``lose_next_acks``.
    * A partition: ``partition()`` (also a context manager that heals at its end) and
      ``heal()``; while partitioned every operation waits ``partition_timeout`` seconds and
      raises ``StoreError``. ``partitioned=True`` starts partitioned.

    ``sleep`` and ``async_sleep`` do the waiting (default: the real ones); pass a fake clock's
    ``advance`` to test timeouts without waiting. ``injected(fault, operation)`` counts what was
    injected. ``check_name`` and ``close`` pass through untouched. Thread-safe.
    """

    def __init__(
        self,
        inner: Store,
        *,
        latency: Latency = 0.0,
        error_rate: float = 0.0,
        lost_write_rate: float = 0.0,
        lost_ack_rate: float = 0.0,
        seed: int | None = None,
        partitioned: bool = False,
        partition_timeout: float = 0.0,
        sleep: Callable[[float], object] = time.sleep,
        async_sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if not isinstance(inner, Store):
            raise TypeError(f"inner must be a fleetbreaker Store, got {type(inner).__name__}")
        if not callable(latency):
            _seconds(latency, "latency")
        self.inner = inner
        self._latency = latency
        self._error_rate = _rate(error_rate, "error_rate")
        self._lost_write_rate = _rate(lost_write_rate, "lost_write_rate")
        self._lost_ack_rate = _rate(lost_ack_rate, "lost_ack_rate")
        self._partition_timeout = _seconds(partition_timeout, "partition_timeout")
        self._sleep = sleep
        self._async_sleep = async_sleep
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._partitioned = bool(partitioned)
        self._fail_next: Counter[str] = Counter()  # operation (or "any") -> calls left
        self._lose_writes = 0
        self._lose_acks = 0
        self._injected: Counter[tuple[str, str]] = Counter()

    def __repr__(self) -> str:
        state = "partitioned" if self._partitioned else "connected"
        return f"FaultyStore({self.inner!r}, {state})"

    # --- controls ----------------------------------------------------------------------------

    def fail_next(self, count: int = 1, *, operation: str = "any") -> None:
        """Make the next ``count`` operations (of ``operation``, or any) raise ``StoreError``
        without reaching the inner store."""
        count = _count(count)
        if operation != "any" and operation not in OPERATIONS:
            raise ValueError(f"operation must be 'any' or one of {OPERATIONS}, got {operation!r}")
        with self._lock:
            self._fail_next[operation] += count

    def lose_next_writes(self, count: int = 1) -> None:
        """Lose the next ``count`` writes on the way to the store: ``StoreError``, not applied."""
        count = _count(count)
        with self._lock:
            self._lose_writes += count

    def lose_next_acks(self, count: int = 1) -> None:
        """Lose the answers of the next ``count`` writes: each is applied (or refused) by the
        inner store, then ``StoreError`` is raised as if it had timed out."""
        count = _count(count)
        with self._lock:
            self._lose_acks += count

    def partition(self) -> AbstractContextManager[None]:
        """Cut the store off until ``heal()``. Also a context manager: ``with store.partition():``
        heals at the end of the block."""
        with self._lock:
            self._partitioned = True
        return _Healing(self)

    def heal(self) -> None:
        """End a partition (nothing happens if there is none)."""
        with self._lock:
            self._partitioned = False

    @property
    def partitioned(self) -> bool:
        return self._partitioned

    def injected(self, fault: str | None = None, operation: str | None = None) -> int:
        """How many times ``fault`` (one of ``FAULTS``; default: any) was injected into
        ``operation`` (one of ``OPERATIONS``; default: any)."""
        if fault is not None and fault not in FAULTS:
            raise ValueError(f"fault must be one of {FAULTS}, got {fault!r}")
        if operation is not None and operation not in OPERATIONS:
            raise ValueError(f"operation must be one of {OPERATIONS}, got {operation!r}")
        with self._lock:
            return sum(
                n
                for (f, op), n in self._injected.items()
                if fault in (None, f) and operation in (None, op)
            )

    # --- the one place that decides ----------------------------------------------------------

    def _plan(self, operation: str, name: str) -> _Plan:
        delay = self._latency(operation) if callable(self._latency) else self._latency
        delay = _seconds(delay, "latency")
        where = f"FaultyStore: {operation} of circuit {name!r}"
        with self._lock:
            if self._partitioned:
                self._injected["partition", operation] += 1
                return _Plan(self._partition_timeout, StoreError(f"{where}: partitioned"))
            if delay > 0:
                self._injected["latency", operation] += 1
            for key in (operation, "any"):
                if self._fail_next[key] > 0:
                    self._fail_next[key] -= 1
                    self._injected["error", operation] += 1
                    return _Plan(delay, StoreError(f"{where}: injected error"))
            if operation == "write" and (
                self._lose_writes > 0
                or (self._lost_write_rate and self._random.random() < self._lost_write_rate)
            ):
                self._lose_writes = max(0, self._lose_writes - 1)
                self._injected["lost_write", operation] += 1
                return _Plan(delay, StoreError(f"{where}: request lost, not applied"))
            if self._error_rate and self._random.random() < self._error_rate:
                self._injected["error", operation] += 1
                return _Plan(delay, StoreError(f"{where}: injected error"))
            if operation == "write" and (
                self._lose_acks > 0
                or (self._lost_ack_rate and self._random.random() < self._lost_ack_rate)
            ):
                self._lose_acks = max(0, self._lose_acks - 1)
                self._injected["lost_ack", operation] += 1
                return _Plan(delay, lost_ack=StoreError(f"{where}: applied, answer lost"))
            return _Plan(delay)

    def _before(self, plan: _Plan) -> None:
        if plan.delay > 0:
            self._sleep(plan.delay)
        if plan.error is not None:
            raise plan.error

    async def _abefore(self, plan: _Plan) -> None:
        if plan.delay > 0:
            await self._async_sleep(plan.delay)
        if plan.error is not None:
            raise plan.error

    # --- the Store interface -----------------------------------------------------------------

    def load(self, name: str, *, consistent: bool = False) -> Record | None:
        self._before(self._plan("load", name))
        return self.inner.load(name, consistent=consistent)

    def compare_and_set(self, name: str, expected_epoch: int | None, record: Record) -> bool:
        plan = self._plan("write", name)
        self._before(plan)
        won = self.inner.compare_and_set(name, expected_epoch, record)
        if plan.lost_ack is not None:
            raise plan.lost_ack
        return won

    def names(self) -> list[str]:
        self._before(self._plan("names", "*"))
        return self.inner.names()

    async def aload(self, name: str, *, consistent: bool = False) -> Record | None:
        await self._abefore(self._plan("load", name))
        return await self.inner.aload(name, consistent=consistent)

    async def acompare_and_set(self, name: str, expected_epoch: int | None, record: Record) -> bool:
        plan = self._plan("write", name)
        await self._abefore(plan)
        won = await self.inner.acompare_and_set(name, expected_epoch, record)
        if plan.lost_ack is not None:
            raise plan.lost_ack
        return won

    def check_name(self, name: str) -> None:
        self.inner.check_name(name)

    def close(self) -> None:
        self.inner.close()


class _Healing(AbstractContextManager[None]):
    """What ``FaultyStore.partition()`` returns: ends the partition at the end of a block."""

    def __init__(self, store: FaultyStore) -> None:
        self._store = store

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._store.heal()
