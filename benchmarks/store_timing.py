"""What the store benchmarks (``bench_redis.py``, ``bench_postgres.py``) time alike: the
downstream they protect, calls per nanosecond, and a probe's claim and release.

Shared by the benchmark scripts (run as ``python benchmarks/NAME.py``, which puts this folder on
``sys.path``), so that their figures are measured the same way and read side by side.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from itertools import repeat


def downstream(x: int) -> int:
    return x


async def adownstream(x: int) -> int:
    return x


class DownstreamError(Exception):
    pass


def failing(_x: int) -> int:
    raise DownstreamError


def ns_per_call(run: Callable[[int], None], calls: int, repeats: int) -> float:
    """Best of ``repeats`` (the slower ones measure the machine's neighbours)."""
    run(min(calls, 1_000))  # warm: connections made, views cached
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter_ns()
        run(calls)
        best = min(best, (time.perf_counter_ns() - start) / calls)
    return best


def sync_runner(fn: Callable[[int], int]) -> Callable[[int], None]:
    def run(n: int) -> None:
        for _ in repeat(None, n):
            fn(1)

    return run


def async_runner(fn: Callable[[int], Awaitable[int]]) -> Callable[[int], None]:
    """``n`` awaited calls in one event loop."""

    async def many(n: int) -> None:
        for _ in repeat(None, n):
            await fn(1)

    return lambda n: asyncio.run(many(n))


@dataclass
class ProbeTimes:
    """Each timed call's microseconds and the round trips it sent (``sent()`` counts them)."""

    sent: Callable[[], int]
    micros: list[float] = field(default_factory=list)
    round_trips: list[int] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.micros)

    @property
    def p99(self) -> float:
        return sorted(self.micros)[min(len(self.micros) - 1, int(len(self.micros) * 0.99))]

    def time(self, call: Callable[[], object]) -> None:
        sent = self.sent()
        start = time.perf_counter_ns()
        call()
        self.micros.append((time.perf_counter_ns() - start) / 1000)
        self.round_trips.append(self.sent() - sent)
