"""The store operations protocol steps yield, and the two drivers that run them.

The breaker writes each protocol step once, as a generator that yields ``Load``,
``CompareAndSet`` or ``Wait`` and receives the result (or has the store's exception thrown in).
``drive`` runs the steps with the sync store methods, ``adrive`` with the async ones, so the
sync and asyncio entry points share every decision. While metrics are on, the drivers also time
each store operation and count its result in the breaker's tally (``_tally``): they are the one
place every store round trip passes through.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeVar

from fleetbreaker import _tally
from fleetbreaker._hooks import collecting

if TYPE_CHECKING:
    from fleetbreaker._protocol import Record
    from fleetbreaker._tally import Tally
    from fleetbreaker.stores.base import Store

__all__ = ["CompareAndSet", "Load", "Steps", "Wait", "adrive", "drive", "resolve"]

R = TypeVar("R")

COLD_READ_WAIT: Final = 2.0
"""How long a cold call waits for another thread's first read before failing open."""


@dataclass(frozen=True, slots=True)
class Load:
    consistent: bool


@dataclass(frozen=True, slots=True)
class CompareAndSet:
    expected_epoch: int | None
    record: Record


@dataclass(frozen=True, slots=True)
class Wait:
    """Wait (bounded) for another caller's read in flight."""

    flight: concurrent.futures.Future[None]


Op = Load | CompareAndSet | Wait
Steps = Generator[Op, Any, R]


def drive(store: Store, name: str, steps: Steps[R], tally: Tally | None = None) -> R:
    """Run protocol steps with the sync store methods (timed into ``tally`` for the metrics)."""
    clock = _timing(tally)
    try:
        op = next(steps)
        while True:
            started = 0.0 if clock is None else clock()
            try:
                if isinstance(op, Load):
                    result: Any = store.load(name, consistent=op.consistent)
                elif isinstance(op, CompareAndSet):
                    result = store.compare_and_set(name, op.expected_epoch, op.record)
                else:
                    _wait_sync(op.flight)
                    result = None
            except Exception as exc:  # handed to the step, which decides
                if clock is not None:
                    _count(tally, op, exc, clock() - started)
                op = steps.throw(exc)
            else:
                if clock is not None:
                    _count(tally, op, result, clock() - started)
                op = steps.send(result)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    finally:
        steps.close()  # a step interrupted by BaseException still runs its finally blocks


async def adrive(store: Store, name: str, steps: Steps[R], tally: Tally | None = None) -> R:
    """Run protocol steps with the async store methods (never blocking the event loop).

    Awaitables that hooks returned while the steps ran (``async def`` hooks) are awaited here,
    in the caller's task, once the steps are done (``_hooks.py``).
    """
    with collecting() as collected:
        result = await _adrive(store, name, steps, tally)
    await collected.run()
    return result


async def _adrive(store: Store, name: str, steps: Steps[R], tally: Tally | None) -> R:
    clock = _timing(tally)
    try:
        op = next(steps)
        while True:
            started = 0.0 if clock is None else clock()
            try:
                if isinstance(op, Load):
                    result: Any = await store.aload(name, consistent=op.consistent)
                elif isinstance(op, CompareAndSet):
                    result = await store.acompare_and_set(name, op.expected_epoch, op.record)
                else:
                    await _wait_async(op.flight)
                    result = None
            except Exception as exc:
                if clock is not None:
                    _count(tally, op, exc, clock() - started)
                op = steps.throw(exc)
            else:
                if clock is not None:
                    _count(tally, op, result, clock() - started)
                op = steps.send(result)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    finally:
        steps.close()


def _timing(tally: Tally | None) -> Callable[[], float] | None:
    """The clock to time store operations with: ``None`` while metrics are off."""
    return tally.clock if tally is not None and _tally.SWITCH.on else None


def _count(tally: Tally | None, op: Op, outcome: object, seconds: float) -> None:
    """Count one store operation that returned ``outcome`` (or raised it) for the metrics."""
    if tally is None or isinstance(op, Wait):
        return  # waiting for a sibling's read is not a store operation
    failed = isinstance(outcome, Exception)
    if isinstance(op, Load):
        if not failed:
            tally.loaded(outcome)  # type: ignore[arg-type]  # what a load returns
        result = _tally.ERROR if failed else _tally.OK
        tally.operated(_tally.LOAD, result, seconds)
    else:
        if not failed and outcome:
            tally.wrote(op.record)
        result = _tally.ERROR if failed else _tally.OK if outcome else _tally.LOST
        tally.operated(_tally.COMPARE_AND_SET, result, seconds)


def resolve(flight: concurrent.futures.Future[None]) -> None:
    try:
        flight.set_result(None)
    except concurrent.futures.InvalidStateError:  # cancelled by a waiter that gave up
        pass


def _wait_sync(flight: concurrent.futures.Future[None]) -> None:
    try:
        flight.result(timeout=COLD_READ_WAIT)
    except (concurrent.futures.TimeoutError, concurrent.futures.CancelledError):
        pass  # fail open with whatever view there is


async def _wait_async(flight: concurrent.futures.Future[None]) -> None:
    try:
        await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(flight)), COLD_READ_WAIT)
    except (TimeoutError, asyncio.TimeoutError):  # distinct types before Python 3.11
        pass  # fail open with whatever view there is
