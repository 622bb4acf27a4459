"""Sliding windows of call outcomes, and the failure-rate and slow-call-rate rules over them.

A breaker process records each call's outcome into its own window and evaluates the rules after
every recorded call (resilience4j's policy). ``success()`` is the breaker's hot path: it runs
from many threads without a lock. Every other method runs under the breaker's lock. Pure: no
I/O, no locks, no clock reads; ``now`` is passed in (Unix seconds for a time window).

Every call takes a number from the window's ``itertools.count()``: ``next()`` on it is atomic
under the GIL, so the numbers taken are the calls recorded, with no lock and no lost update.
A success takes its number and nothing else; the window keeps only its bad outcomes and the
call numbers where the window starts. Rates count every number taken when they are read, so an
evaluation under the lock also sees the successes racing it.

Why ``success()`` may skip evaluation. A success adds a call that neither failed nor was slow,
so by itself it can only lower both rates. It can change the verdict in two ways only, and then
it returns its number so that the breaker evaluates (under its lock):

(a) it brings the window up to the minimum number of calls (the rules could not fire before);
(b) in a time window, it falls in a newer bucket than the newest one, so older buckets may drop
    out of the window, and their successes with them (``evaluate`` rolls the buckets).

Both only matter if the window holds a bad outcome at all (a cheap check). A time window asks
on (b) regardless, to learn the number where each bucket starts (without it, the call counts of
later windows would be wrong): about one evaluation per bucket. Every other success lowers or
keeps the rates of a window whose verdict, evaluated after the previous call, was no: it would
be no again. Skipping it gives exactly the trip decisions of evaluating after every call.

Three attributes are the state ``success()`` reads, public so that a breaker's hot path can
read them inline instead of paying for the call: ``numbers`` (the counter), ``reach`` (the
number of the call that brings the window to its minimum) and ``next_bucket_at`` (no later
than the newest bucket's end; never for a count window). A success whose number is ``reach``,
or whose time is at or past ``next_bucket_at``, must be evaluated; any other need not be (the
inline test skips the "any bad outcome at all" refinement, so it evaluates once more per
episode, with the same verdict).
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from dataclasses import dataclass
from typing import Final

__all__ = [
    "FAILURE_RATE",
    "SLOW_CALL_RATE",
    "CountWindow",
    "Rates",
    "TimeWindow",
    "Verdict",
]

FAILURE_RATE: Final = "failure_rate"
SLOW_CALL_RATE: Final = "slow_call_rate"

_BUCKETS: Final = 10
"""A time window is this many buckets of ``size / _BUCKETS`` seconds."""


@dataclass(frozen=True, slots=True)
class Rates:
    """The calls a window holds now, and how many of them failed and how many were slow.

    A slow failure counts in both ``failures`` and ``slow_calls``.
    """

    calls: int
    failures: int
    slow_calls: int

    @property
    def failure_rate(self) -> float:
        """``failures / calls``; 0.0 for an empty window."""
        return self.failures / self.calls if self.calls else 0.0

    @property
    def slow_call_rate(self) -> float:
        """``slow_calls / calls``; 0.0 for an empty window."""
        return self.slow_calls / self.calls if self.calls else 0.0


@dataclass(frozen=True, slots=True)
class Verdict:
    """A rule fired: ``rule`` is ``FAILURE_RATE`` or ``SLOW_CALL_RATE`` (the failure rate wins
    when both fire), over the window's ``rates``."""

    rule: str
    rates: Rates


@dataclass(frozen=True, slots=True)
class _Rules:
    minimum_calls: int
    failure_rate_threshold: float | None
    slow_call_rate_threshold: float | None

    def verdict(self, rates: Rates) -> Verdict | None:
        """The rule that fires on ``rates``, the failure rate first; ``None`` if neither."""
        if rates.calls < self.minimum_calls:
            return None
        if _reached(rates.failures, rates.calls, self.failure_rate_threshold):
            return Verdict(FAILURE_RATE, rates)
        if _reached(rates.slow_calls, rates.calls, self.slow_call_rate_threshold):
            return Verdict(SLOW_CALL_RATE, rates)
        return None


def _reached(count: int, calls: int, threshold: float | None) -> bool:
    # ``count`` must be positive: a rule with a zero threshold would otherwise fire on a window
    # of successes, which skip evaluation (see the module docstring). It also keeps a window
    # with no calls from dividing by zero.
    return threshold is not None and count > 0 and count / calls >= threshold


def _taken(numbers: itertools.count[int]) -> int:
    """How many numbers ``numbers`` (counting from 0) has handed out."""
    # A count cannot be read without taking a number. Its repr shows the next one, "count(7)",
    # and is built in one C call: under the GIL it is as atomic as next().
    return int(repr(numbers)[6:-1])


class CountWindow:
    """The outcomes of the last ``size`` calls.

    The rules need ``min(minimum_calls, size)`` calls (resilience4j's rule): the window never
    holds more than ``size`` calls, so a larger minimum could never be reached.
    """

    __slots__ = ("_failed", "_rules", "_size", "_slow", "next_bucket_at", "numbers", "reach")

    def __init__(
        self,
        *,
        size: int,
        minimum_calls: int,
        failure_rate_threshold: float | None,
        slow_call_rate_threshold: float | None,
    ) -> None:
        self._size = size
        self._rules = _Rules(
            min(minimum_calls, size), failure_rate_threshold, slow_call_rate_threshold
        )
        # Calls are numbered from 0 and this window never shrinks: the call numbered
        # minimum - 1 is the one that brings it to the minimum, once per episode.
        self.reach = self._rules.minimum_calls - 1
        self.next_bucket_at = math.inf  # no buckets: a success never rolls anything
        # The numbers of the failed calls and of the slow calls in the window, ascending (they
        # are taken and appended under the breaker's lock).
        self._failed: deque[int] = deque()
        self._slow: deque[int] = deque()
        self.numbers = itertools.count()

    def success(self, now: float) -> int:  # noqa: ARG002 - shared API
        """Record a call that neither failed nor was slow; lock-free.

        Returns the call's number if the verdict could have changed (call ``evaluate`` with it,
        under the lock), else -1.
        """
        number = next(self.numbers)
        if number == self.reach and (self._failed or self._slow):
            return number
        return -1

    def bad(self, *, failed: bool, slow: bool, now: float) -> Verdict | None:
        """Record a failed and/or slow call, and evaluate the rules."""
        number = next(self.numbers)
        if failed:
            self._failed.append(number)
        if slow:
            self._slow.append(number)
        return self.evaluate(number, now)

    def evaluate(self, number: int, now: float) -> Verdict | None:  # noqa: ARG002 - shared API
        """Evaluate the rules after the success ``number`` asked for it.

        A count window needs no ``number``: it evaluates over every call recorded so far.
        """
        return self._rules.verdict(self.rates(now))

    def rates(self, now: float) -> Rates:  # noqa: ARG002 - shared API
        """What the window holds."""
        taken = _taken(self.numbers)
        oldest = taken - self._size  # the number of the oldest call in the window
        for numbers in (self._failed, self._slow):
            while numbers and numbers[0] < oldest:
                numbers.popleft()
        return Rates(min(taken, self._size), len(self._failed), len(self._slow))

    def reset(self) -> None:
        """Empty the window (a new closed episode)."""
        self._failed.clear()
        self._slow.clear()
        # Last: a success that takes a number from the new count sees the empty window.
        self.numbers = itertools.count()


class _Bucket:
    """One bucket of a time window: its index, the number of the first call counted in it, and
    how many of its calls failed and were slow."""

    __slots__ = ("failures", "first", "index", "slow_calls")

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.index: float = -math.inf  # older than any bucket: not in the window
        self.first = 0
        self.failures = 0
        self.slow_calls = 0


class TimeWindow:
    """The outcomes of the calls of the last ``size`` seconds, in 10 buckets aligned to Unix time.

    A call at ``now`` goes in bucket ``floor(now / (size / 10))``, so the buckets of every
    process line up; the window at ``now`` is that bucket and the 9 before it. A call whose
    bucket is older than the newest bucket (a wall clock stepped back) counts in the newest.

    Memory is 10 buckets however many calls arrive: the window's calls are the numbers taken
    since the first call of its oldest bucket. Calls racing at a bucket boundary may be counted
    in the neighbouring bucket; each is counted once.
    """

    __slots__ = (
        "_current",
        "_failures",
        "_newest",
        "_oldest_first",
        "_ring",
        "_rules",
        "_slow_calls",
        "_width",
        "next_bucket_at",
        "numbers",
        "reach",
    )

    def __init__(
        self,
        *,
        size: float,
        minimum_calls: int,
        failure_rate_threshold: float | None,
        slow_call_rate_threshold: float | None,
    ) -> None:
        self._width = size / _BUCKETS
        self._rules = _Rules(minimum_calls, failure_rate_threshold, slow_call_rate_threshold)
        # Bucket ``index`` lives in slot ``index % 10``: the window's buckets never collide.
        self._ring = tuple(_Bucket() for _ in range(_BUCKETS))
        self.reset()

    def reset(self) -> None:
        """Empty the window (a new closed episode)."""
        for bucket in self._ring:
            bucket.clear()
        self._newest = self._ring[0]
        # What the window holds with bucket ``_current`` newest: kept up to date so that a
        # bad outcome and an evaluation cost O(1), and for success() to read.
        self._failures = 0
        self._slow_calls = 0
        self._oldest_first = 0
        self.reach = -1  # the number of the call that brings the window to the minimum
        self._current: float = -math.inf  # the newest bucket's index
        self.next_bucket_at = -math.inf  # no later than the newest bucket's end (Unix time)
        # Last: a success that takes a number from the new count sees the empty window.
        self.numbers = itertools.count()

    def success(self, now: float) -> int:
        """Record a call that neither failed nor was slow; lock-free.

        Returns the call's number if the verdict could have changed or the buckets must roll
        (call ``evaluate`` with it, under the lock), else -1.
        """
        number = next(self.numbers)
        # One comparison with a precomputed time instead of a floor division: the hot path.
        if now >= self.next_bucket_at or (
            number == self.reach and (self._failures or self._slow_calls)
        ):
            return number
        return -1

    def bad(self, *, failed: bool, slow: bool, now: float) -> Verdict | None:
        """Record a failed and/or slow call, and evaluate the rules."""
        number = next(self.numbers)
        index = math.floor(now / self._width)
        if index > self._current:
            self._roll(index, number)
        if failed:
            self._newest.failures += 1
            self._failures += 1
        if slow:
            self._newest.slow_calls += 1
            self._slow_calls += 1
        return self._rules.verdict(self.rates(now))

    def evaluate(self, number: int, now: float) -> Verdict | None:
        """Evaluate the rules after the success ``number`` asked for it, rolling the buckets
        first if it fell in a newer one."""
        index = math.floor(now / self._width)
        if index > self._current:
            self._roll(index, number)
        return self._rules.verdict(self.rates(now))

    def rates(self, now: float) -> Rates:
        """What the window holds at ``now``."""
        index = math.floor(now / self._width)
        if index <= self._current:
            calls = _taken(self.numbers) - self._oldest_first
            return Rates(calls, self._failures, self._slow_calls)
        # Time moved on since the last call: count what the window at ``now`` still holds.
        live = self._live(index)
        if not live:
            return Rates(0, 0, 0)
        return Rates(
            _taken(self.numbers) - live[0].first,
            sum(bucket.failures for bucket in live),
            sum(bucket.slow_calls for bucket in live),
        )

    def _live(self, newest: float) -> list[_Bucket]:
        """The buckets the window holds when ``newest`` is its newest bucket, oldest first."""
        live = [bucket for bucket in self._ring if bucket.index > newest - _BUCKETS]
        live.sort(key=lambda bucket: bucket.index)
        return live

    def _roll(self, index: int, number: int) -> None:
        """Make ``index`` the newest bucket, starting at call ``number``."""
        if self._current == -math.inf:
            # The episode's first bucket holds every call since the reset, whichever of the
            # calls racing into it took the lock first.
            first = 0
        else:
            # First numbers must not decrease from bucket to bucket, nor pass the numbers
            # taken (a larger number was taken before a reset): a success that raced past a
            # boundary is then counted in the neighbouring bucket, once.
            first = min(max(number, self._newest.first), _taken(self.numbers))
        bucket = self._ring[index % _BUCKETS]
        bucket.index = index
        bucket.first = first
        bucket.failures = bucket.slow_calls = 0
        self._newest = bucket
        live = self._live(index)
        self._failures = sum(bucket.failures for bucket in live)
        self._slow_calls = sum(bucket.slow_calls for bucket in live)
        self._oldest_first = live[0].first
        self.reach = self._oldest_first + self._rules.minimum_calls - 1
        # Last: a success that sees this bucket as the newest also sees the totals above, and
        # one that does not asks for an evaluation itself.
        self._current = index
        # A hair early (float rounding must never let a call of the next bucket pass unseen):
        # a success just before the boundary merely asks for an evaluation that rolls nothing.
        self.next_bucket_at = (index + 1) * self._width * (1 - 1e-12)
