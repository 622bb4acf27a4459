"""A run's parameters, the simulated clocks, a key's short history and the downstream."""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

from fleetbreaker.config import Config

__all__ = [
    "DOWN",
    "RATIO",
    "SHAPES",
    "SICK",
    "SICK_ENV",
    "SLOW",
    "WALL0",
    "Downstream",
    "DownstreamError",
    "EnvClock",
    "History",
    "Params",
    "Shape",
    "SimTime",
    "downstream_model",
]

WALL0: Final = 1_700_000_000.0
"""Wall-clock time (Unix seconds) at simulation time 0: a whole second, so the Powertools
model's ``int(now)`` truncation falls on whole simulated seconds."""

DOWN: Final = "down"
RATIO: Final = "ratio"
SLOW: Final = "slow"
SICK: Final = "sick"
SHAPES: Final = (DOWN, RATIO, SLOW, SICK)
SICK_ENV: Final = 0
"""The one environment whose downstream fails in the ``sick`` shape."""

T = TypeVar("T")


class DownstreamError(ConnectionError):
    """The simulated downstream failed a call. A ``ConnectionError``, so ``handled_exceptions``
    or ``ignored_exceptions`` given as builtin names can include or exclude it."""


@dataclass(frozen=True, slots=True)
class Shape:
    """What goes wrong during the outage: every call fails (``down``); a seeded share of them
    fail (``ratio``); every call takes ``slow_latency`` seconds and succeeds (``slow``); or every
    call of environment ``SICK_ENV`` fails and the others succeed (``sick``)."""

    kind: str = DOWN
    failure_ratio: float = 1.0
    slow_latency: float = 0.0

    def describe(self) -> str:
        return {
            DOWN: "down (every call fails)",
            RATIO: f"ratio ({self.failure_ratio:.0%} of the calls fail, seeded)",
            SLOW: f"slow (every call takes {self.slow_latency:g} s and succeeds)",
            SICK: f"sick (every call of environment {SICK_ENV} fails; the others succeed)",
        }[self.kind]

    @property
    def text(self) -> str:
        """The shape as ``--outage-shape`` takes it."""
        if self.kind == RATIO:
            return f"{RATIO}:{self.failure_ratio:g}"
        if self.kind == SLOW:
            return f"{SLOW}:{self.slow_latency:g}s"
        return self.kind


@dataclass(frozen=True, slots=True)
class Params:
    """One run: the fleet, its traffic, the outage, the store and the breakers' ``Config``."""

    envs: int
    rps: float
    duration: float
    outage_start: float
    heal: float
    rtt: float
    latency: float
    seed: int
    config: Config
    shape: Shape = Shape()
    policy: str = "custom"
    """The preset the config was built from (``consecutive``, ``rate``, ``quorum``): a label."""

    @property
    def outage(self) -> float:
        return self.heal - self.outage_start

    def affects(self, env: int) -> bool:
        """Whether ``env``'s downstream is affected by the outage."""
        return self.shape.kind != SICK or env == SICK_ENV

    @property
    def warmup(self) -> float:
        """Environments start cold at random times in ``[0, warmup)``."""
        return min(self.config.local_cache_max_age, self.outage_start / 2)


class EnvClock:
    """One environment's clock: the simulation time it has reached (a ``fleetbreaker.Clock``)."""

    __slots__ = ("env", "t")

    def __init__(self, env: int = -1) -> None:
        self.env = env
        self.t = 0.0

    def wall(self) -> float:
        return WALL0 + self.t

    def monotonic(self) -> float:
        return self.t


class SimTime:
    """The time of the event being handled, and the clock of the environment handling it."""

    __slots__ = ("current", "now")

    def __init__(self) -> None:
        self.now = 0.0
        self.current = EnvClock()

    def wait(self, seconds: float) -> None:
        """The current environment waits ``seconds`` (a store round trip)."""
        self.current.t += seconds


class History(Generic[T]):
    """Values written to one key, so a read can see the value as it stood a moment ago."""

    __slots__ = ("_base", "_recent", "current", "written_at")

    def __init__(self, initial: T) -> None:
        self._recent: deque[tuple[float, T]] = deque()
        self._base = initial  # the value at the last time asked for
        self.current = initial
        self.written_at = -1.0  # when ``current`` was written (never: before any read)

    def write(self, at: float, value: T) -> None:
        self._recent.append((at, value))
        self.current = value
        self.written_at = at

    def as_of(self, at: float, *, oldest: float | None = None) -> tuple[T, bool]:
        """The value at time ``at``, and whether it is the current value. ``oldest`` (default
        ``at``) promises that no later call asks for a time before it."""
        # Most reads come long after the last write: the current value, without a walk.
        if at >= self.written_at:
            if self._recent and (oldest is None or oldest >= self.written_at):
                self._base = self.current
                self._recent.clear()
            return self.current, True
        recent = self._recent
        floor = at if oldest is None else min(at, oldest)
        while recent and recent[0][0] <= floor:
            self._base = recent.popleft()[1]
        value = self._base
        for written, later in recent:
            if written > at:
                return value, False
            value = later
        return value, True


Downstream = Callable[[int, float], tuple[bool, bool, float]]
"""``(env, now) -> (affected, fails, latency)`` for a call starting in ``env`` at ``now``."""


def downstream_model(p: Params) -> Downstream:
    """How the downstream answers a call under ``p.shape``. The draws of ``ratio`` come from an
    RNG of their own, so every shape sees the same request arrivals."""
    outage_start, heal, latency = p.outage_start, p.heal, p.latency
    healthy = (False, False, latency)
    kind = p.shape.kind
    if kind == RATIO:
        draw, share = random.Random(f"{p.seed}:failures").random, p.shape.failure_ratio
        ok, fail = (True, False, latency), (True, True, latency)

        def ratio(_env: int, now: float) -> tuple[bool, bool, float]:
            if outage_start <= now < heal:
                return fail if draw() < share else ok
            return healthy

        return ratio
    if kind == SLOW:
        # The call returns after slow_latency on the environment's own clock (the engine
        # settles it at that time), so the breaker times it as slow.
        slow = (True, False, p.shape.slow_latency)
        return lambda _env, now: slow if outage_start <= now < heal else healthy
    down = (True, True, latency)
    if kind == SICK:
        return lambda env, now: down if env == SICK_ENV and outage_start <= now < heal else healthy
    return lambda _env, now: down if outage_start <= now < heal else healthy
