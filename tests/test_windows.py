"""The failure-rate and slow-call-rate windows, tested without a breaker: against a naive model
that recomputes the window after every call, at bucket boundaries, and from many threads."""

from __future__ import annotations

import itertools
import math
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from types import FrameType
from typing import TYPE_CHECKING

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetbreaker import _windows
from fleetbreaker._windows import (
    FAILURE_RATE,
    SLOW_CALL_RATE,
    CountWindow,
    Rates,
    TimeWindow,
    Verdict,
)

if TYPE_CHECKING:
    from _typeshed import TraceFunction

Window = CountWindow | TimeWindow
MakeWindow = Callable[..., Window]
T0 = 1_800_000_000.0  # a Unix time, a whole number of seconds

OUTCOMES = {"ok": (False, False), "failed": (True, False), "slow": (False, True)}
OUTCOMES["slow failure"] = (True, True)


@dataclass
class Naive:
    """Every call kept; the window, its rates and the verdict recomputed from scratch."""

    size: float
    minimum_calls: int
    failure_rate_threshold: float | None
    slow_call_rate_threshold: float | None
    by_time: bool
    calls: list[tuple[int, bool, bool]] = field(default_factory=list)  # (bucket, failed, slow)

    def bucket(self, now: float) -> int:
        index = math.floor(now / (self.size / 10)) if self.by_time else 0
        # A clock stepped back: the call counts in the newest bucket.
        return max([index] + [bucket for bucket, _, _ in self.calls])

    def record(self, *, failed: bool, slow: bool, now: float) -> None:
        self.calls.append((self.bucket(now), failed, slow))

    def rates(self, now: float) -> Rates:
        if self.by_time:
            newest = self.bucket(now)
            window = [call for call in self.calls if newest - 10 < call[0] <= newest]
        else:
            window = self.calls[-int(self.size) :]
        return Rates(
            calls=len(window),
            failures=sum(failed for _, failed, _ in window),
            slow_calls=sum(slow for _, _, slow in window),
        )

    def verdict(self, now: float) -> Verdict | None:
        rates = self.rates(now)
        minimum = self.minimum_calls if self.by_time else min(self.minimum_calls, int(self.size))
        if rates.calls < minimum:
            return None
        threshold = self.failure_rate_threshold
        if threshold is not None and rates.failures / rates.calls >= threshold:
            return Verdict(FAILURE_RATE, rates)
        threshold = self.slow_call_rate_threshold
        if threshold is not None and rates.slow_calls / rates.calls >= threshold:
            return Verdict(SLOW_CALL_RATE, rates)
        return None

    def reset(self) -> None:
        self.calls.clear()


def record(window: Window, outcome: str, now: float) -> Verdict | None:
    """Record one call as the breaker does: a success evaluates only when the window asks."""
    failed, slow = OUTCOMES[outcome]
    if failed or slow:
        return window.bad(failed=failed, slow=slow, now=now)
    number = window.success(now)
    return None if number == -1 else window.evaluate(number, now)


def advance(now: float, step: tuple[str, float], width: float, size: float) -> float:
    """The time after ``step``: stay, move by a multiple of a width, to the next bucket
    boundary, or past the whole window."""
    kind, amount = step
    if kind == "by":
        return now + amount * width
    if kind == "boundary":
        return max(now, (math.floor(now / width) + 1) * width)
    if kind == "gap":
        return now + size * amount
    return now


THRESHOLDS = st.sampled_from([None, 0.2, 0.25, 1 / 3, 0.5, 0.75, 1.0])
STEPS = st.one_of(
    st.tuples(st.just("stay"), st.just(0.0)),
    st.tuples(st.just("by"), st.sampled_from([1.0, 2.0, 9.0, 10.0, 0.5])),
    st.tuples(st.just("by"), st.floats(0.0, 3.0)),
    st.tuples(st.just("boundary"), st.just(0.0)),
    st.tuples(st.just("gap"), st.sampled_from([1.0, 1.05, 2.5])),
)
OUTCOME = st.sampled_from(["ok", "ok", "ok", "failed", "slow", "slow failure"])
Calls = list[tuple[str, tuple[str, float]]]


def drive(window: Window, naive: Naive, calls: Calls, now: float) -> None:
    """Feed ``calls`` to both; the same verdict and rates after each. A verdict trips the
    breaker, which closes again on an empty window: both are reset."""
    width = naive.size / 10
    for outcome, step in calls:
        now = advance(now, step, width, naive.size)
        failed, slow = OUTCOMES[outcome]
        naive.record(failed=failed, slow=slow, now=now)
        verdict = record(window, outcome, now)
        assert verdict == naive.verdict(now)
        assert window.rates(now) == naive.rates(now)
        if verdict is not None:
            window.reset()
            naive.reset()


@settings(max_examples=400, deadline=None)
@given(
    calls=st.lists(st.tuples(OUTCOME, STEPS), max_size=80),
    size=st.integers(1, 12),
    minimum_calls=st.integers(1, 15),
    failure_rate_threshold=THRESHOLDS,
    slow_call_rate_threshold=THRESHOLDS,
)
def test_count_window_matches_the_naive_model(
    *,
    calls: Calls,
    size: int,
    minimum_calls: int,
    failure_rate_threshold: float | None,
    slow_call_rate_threshold: float | None,
) -> None:
    """A count window gives the naive model's verdict and rates after every call (a minimum
    above the size included)."""
    window = CountWindow(
        size=size,
        minimum_calls=minimum_calls,
        failure_rate_threshold=failure_rate_threshold,
        slow_call_rate_threshold=slow_call_rate_threshold,
    )
    naive = Naive(
        size, minimum_calls, failure_rate_threshold, slow_call_rate_threshold, by_time=False
    )
    drive(window, naive, calls, T0)


@settings(max_examples=400, deadline=None)
@given(
    calls=st.lists(st.tuples(OUTCOME, STEPS), max_size=80),
    size=st.sampled_from([10.0, 1.0, 3.0, 0.5, 60.0]),
    start=st.sampled_from([0.0, T0, 1234.5678]),
    minimum_calls=st.integers(1, 15),
    failure_rate_threshold=THRESHOLDS,
    slow_call_rate_threshold=THRESHOLDS,
)
def test_time_window_matches_the_naive_model(
    *,
    calls: Calls,
    size: float,
    start: float,
    minimum_calls: int,
    failure_rate_threshold: float | None,
    slow_call_rate_threshold: float | None,
) -> None:
    """A time window gives the naive model's verdict and rates after every call, whatever
    the steps of time (exact bucket boundaries and gaps longer than the window included)."""
    window = TimeWindow(
        size=size,
        minimum_calls=minimum_calls,
        failure_rate_threshold=failure_rate_threshold,
        slow_call_rate_threshold=slow_call_rate_threshold,
    )
    naive = Naive(
        size, minimum_calls, failure_rate_threshold, slow_call_rate_threshold, by_time=True
    )
    drive(window, naive, calls, start)


@settings(max_examples=200, deadline=None)
@given(
    calls=st.lists(
        st.tuples(OUTCOME, st.one_of(STEPS, st.tuples(st.just("by"), st.floats(-15.0, 0.0)))),
        max_size=80,
    ),
    minimum_calls=st.integers(1, 8),
    failure_rate_threshold=THRESHOLDS,
    slow_call_rate_threshold=THRESHOLDS,
)
def test_time_window_survives_a_clock_stepped_back(
    *,
    calls: Calls,
    minimum_calls: int,
    failure_rate_threshold: float | None,
    slow_call_rate_threshold: float | None,
) -> None:
    """With time also going backwards, a time window still gives the naive model's verdict
    and rates (a call in an older bucket counts in the newest)."""
    window = TimeWindow(
        size=10.0,
        minimum_calls=minimum_calls,
        failure_rate_threshold=failure_rate_threshold,
        slow_call_rate_threshold=slow_call_rate_threshold,
    )
    naive = Naive(
        10.0, minimum_calls, failure_rate_threshold, slow_call_rate_threshold, by_time=True
    )
    drive(window, naive, calls, T0)


def count_window(size: int = 10, minimum_calls: int = 1, **thresholds: float) -> CountWindow:
    return CountWindow(
        size=size,
        minimum_calls=minimum_calls,
        failure_rate_threshold=thresholds.get("failure_rate_threshold"),
        slow_call_rate_threshold=thresholds.get("slow_call_rate_threshold"),
    )


def time_window(size: float = 10.0, minimum_calls: int = 1, **thresholds: float) -> TimeWindow:
    return TimeWindow(
        size=size,
        minimum_calls=minimum_calls,
        failure_rate_threshold=thresholds.get("failure_rate_threshold"),
        slow_call_rate_threshold=thresholds.get("slow_call_rate_threshold"),
    )


def test_rates_of_an_empty_window_are_zero() -> None:
    """An empty window's rates are 0.0, not a division by zero."""
    assert Rates(0, 0, 0).failure_rate == 0.0
    assert Rates(0, 0, 0).slow_call_rate == 0.0
    assert Rates(4, 1, 3).failure_rate == 0.25
    assert Rates(4, 1, 3).slow_call_rate == 0.75
    assert count_window().rates(T0) == Rates(0, 0, 0)
    assert time_window().rates(T0) == Rates(0, 0, 0)


def test_count_window_holds_the_last_size_calls() -> None:
    """A count window forgets a failure once ``size`` calls came after it."""
    window = count_window(size=3)
    window.bad(failed=True, slow=False, now=T0)
    record(window, "ok", T0)
    record(window, "ok", T0)
    assert window.rates(T0) == Rates(3, 1, 0)
    record(window, "ok", T0)
    assert window.rates(T0) == Rates(3, 0, 0)


def test_count_window_minimum_is_at_most_its_size() -> None:
    """A count window smaller than minimum_calls fires once it is full (resilience4j's rule)."""
    window = count_window(size=3, minimum_calls=100, failure_rate_threshold=0.5)
    assert window.bad(failed=True, slow=False, now=T0) is None
    assert window.bad(failed=True, slow=False, now=T0) is None
    assert window.bad(failed=True, slow=False, now=T0) == Verdict(FAILURE_RATE, Rates(3, 3, 0))


@pytest.mark.parametrize("make", [count_window, time_window], ids=["count", "time"])
def test_a_success_that_reaches_minimum_calls_asks_for_evaluation(make: MakeWindow) -> None:
    """Bad calls below the minimum fire nothing; the success that brings the window to the
    minimum returns its number, and evaluating it fires the rule."""
    window = make(minimum_calls=5, failure_rate_threshold=0.5)
    for _ in range(3):
        assert window.bad(failed=True, slow=False, now=T0) is None
    assert window.success(T0) == -1
    number = window.success(T0)
    assert number == 4
    assert window.evaluate(number, T0) == Verdict(FAILURE_RATE, Rates(5, 3, 0))


@pytest.mark.parametrize("make", [count_window, time_window], ids=["count", "time"])
def test_successes_that_cannot_raise_a_rate_skip_evaluation(make: MakeWindow) -> None:
    """Once the window holds the minimum, successes in its newest bucket return -1."""
    window = make(minimum_calls=3, failure_rate_threshold=0.9)
    window.bad(failed=True, slow=False, now=T0)
    asked = [window.success(T0 + 0.5) for _ in range(1000)]
    assert [number for number in asked if number != -1] == [2]


def test_successes_without_a_bad_outcome_skip_evaluation() -> None:
    """A success reaching the minimum of a window holding no bad outcome returns -1."""
    window = count_window(minimum_calls=3, failure_rate_threshold=0.1)
    assert [window.success(T0) for _ in range(5)] == [-1] * 5


def test_a_slow_failure_counts_in_both_rates_and_the_failure_rate_wins() -> None:
    """A slow failure counts as a failure and as a slow call; when both rules fire, the
    verdict names the failure rate."""
    window = count_window(failure_rate_threshold=0.5, slow_call_rate_threshold=0.5)
    assert window.bad(failed=True, slow=True, now=T0) == Verdict(FAILURE_RATE, Rates(1, 1, 1))
    window = count_window(failure_rate_threshold=0.5, slow_call_rate_threshold=0.5)
    assert window.bad(failed=False, slow=True, now=T0) == Verdict(SLOW_CALL_RATE, Rates(1, 0, 1))


def test_a_zero_threshold_needs_one_outcome_of_its_kind() -> None:
    """A rule with a threshold of 0 fires on one outcome of its kind, never on successes
    alone (which skip evaluation)."""
    window = count_window(failure_rate_threshold=0.5, slow_call_rate_threshold=0.0)
    record(window, "ok", T0)
    record(window, "ok", T0)
    assert window.bad(failed=True, slow=False, now=T0) is None
    assert window.bad(failed=False, slow=True, now=T0) == Verdict(SLOW_CALL_RATE, Rates(4, 1, 1))


def test_time_window_buckets_roll_at_exact_boundaries() -> None:
    """A call at exactly k * width opens bucket k; the window at k holds buckets k-9..k."""
    window = time_window(size=10.0)  # buckets of 1 s, aligned to Unix time
    window.bad(failed=True, slow=False, now=T0)  # bucket T0 (T0 is whole seconds)
    record(window, "ok", T0 + 0.999)
    window.bad(failed=False, slow=True, now=T0 + 9.999)  # bucket T0 + 9, the last one
    assert window.rates(T0 + 9.999) == Rates(3, 1, 1)
    number = window.success(T0 + 10.0)  # bucket T0 + 10: bucket T0 drops out
    assert number == 3
    assert window.evaluate(number, T0 + 10.0) is None
    assert window.rates(T0 + 10.0) == Rates(2, 0, 1)
    assert window.rates(T0 + 19.0) == Rates(1, 0, 0)  # only bucket T0 + 10 left
    assert window.rates(T0 + 20.0) == Rates(0, 0, 0)


def test_old_buckets_dropping_out_can_fire_a_rule() -> None:
    """Successes leaving the window raise the failure rate: the first success of a newer
    bucket asks for evaluation, and it fires."""
    window = time_window(size=10.0, minimum_calls=2, failure_rate_threshold=0.5)
    for _ in range(3):
        record(window, "ok", T0)
    assert window.bad(failed=True, slow=False, now=T0 + 5) is None  # 1 of 4
    assert window.bad(failed=True, slow=False, now=T0 + 5) is None  # 2 of 5
    number = window.success(T0 + 10.0)
    assert number != -1
    assert window.evaluate(number, T0 + 10.0) == Verdict(FAILURE_RATE, Rates(3, 2, 0))


def test_a_gap_longer_than_the_window_empties_it() -> None:
    """After a silence longer than the window, a time window holds only the new call."""
    window = time_window(size=10.0, minimum_calls=1, failure_rate_threshold=0.5)
    for _ in range(5):
        record(window, "ok", T0)
    window.bad(failed=False, slow=True, now=T0 + 1)
    assert window.rates(T0 + 9.5) == Rates(6, 0, 1)
    assert window.rates(T0 + 10.5) == Rates(1, 0, 1)
    assert window.rates(T0 + 11.0) == Rates(0, 0, 0)
    verdict = window.bad(failed=True, slow=False, now=T0 + 1000.0)
    assert verdict == Verdict(FAILURE_RATE, Rates(1, 1, 0))


def test_a_clock_stepped_back_counts_in_the_newest_bucket() -> None:
    """A call whose time falls in an older bucket counts in the newest one."""
    window = time_window(size=10.0)
    window.bad(failed=True, slow=False, now=T0)
    record(window, "ok", T0 + 5.0)
    assert window.success(T0 - 100.0) == -1
    window.bad(failed=False, slow=True, now=T0 - 100.0)
    assert window.rates(T0 - 100.0) == Rates(4, 1, 1)
    assert window.rates(T0 + 9.0) == Rates(4, 1, 1)
    assert window.rates(T0 + 10.0) == Rates(3, 0, 1)  # all but the first, counted at T0 + 5
    assert window.rates(T0 + 15.0) == Rates(0, 0, 0)


def test_successes_racing_at_a_boundary_are_counted_once() -> None:
    """Of two successes racing into newer buckets, the one with the smaller number but the
    newer bucket evaluates last: it is counted once, in an older bucket, and the window's
    calls never grow as time passes."""
    window = time_window(size=10.0)
    window.bad(failed=True, slow=False, now=T0)  # call 0, bucket T0
    racer = window.success(T0 + 2.0)  # call 1, bucket T0 + 2; its thread is descheduled
    other = window.success(T0 + 1.0)  # call 2, bucket T0 + 1; evaluates first
    window.evaluate(other, T0 + 1.0)
    window.evaluate(racer, T0 + 2.0)
    assert window.rates(T0 + 2.5) == Rates(3, 1, 0)
    assert window.rates(T0 + 10.5) == Rates(1, 0, 0)  # call 1 left with bucket T0
    assert window.rates(T0 + 11.5) == Rates(1, 0, 0)
    assert window.rates(T0 + 12.5) == Rates(0, 0, 0)


def test_successes_from_before_a_reset_leave_the_new_episode_alone() -> None:
    """Successes numbered before a reset but evaluated after it, before or after the new
    episode's first bucket, do not disturb its counts."""
    window = time_window(size=10.0)
    for _ in range(5):
        record(window, "ok", T0)
    early = window.success(T0 + 1.0)  # call 5, a newer bucket: asks for evaluation
    late = window.success(T0 + 2.0)  # call 6, likewise
    window.reset()
    fresh = window.success(T0 + 1.0)  # call 0 of the new episode
    window.evaluate(early, T0 + 1.0)
    window.evaluate(fresh, T0 + 1.0)
    assert window.rates(T0 + 1.0) == Rates(1, 0, 0)
    window.evaluate(late, T0 + 2.0)
    record(window, "ok", T0 + 2.0)
    assert window.rates(T0 + 2.0) == Rates(2, 0, 0)
    assert window.rates(T0 + 11.0) == Rates(1, 0, 0)


@pytest.mark.parametrize("make", [count_window, time_window], ids=["count", "time"])
def test_reset_empties_the_window(make: MakeWindow) -> None:
    """After reset the window holds nothing, and counts calls (and the minimum) afresh."""
    window = make(minimum_calls=2, failure_rate_threshold=0.5)
    record(window, "ok", T0)
    record(window, "ok", T0)
    window.bad(failed=False, slow=True, now=T0)
    window.reset()
    assert window.rates(T0) == Rates(0, 0, 0)
    assert window.bad(failed=True, slow=False, now=T0) is None  # 1 call, below the minimum
    assert window.evaluate(window.success(T0), T0) == Verdict(FAILURE_RATE, Rates(2, 1, 0))


THREADS = 8
CALLS_PER_THREAD = 100_000


def test_threads_recording_at_once_lose_no_call() -> None:
    """Threads recording at once (successes without a lock, bad outcomes under one, as the
    breaker does) leave the window counting every call and every failure."""
    window = count_window(size=1_000_000, minimum_calls=100, failure_rate_threshold=0.5)
    lock = threading.Lock()
    barrier = threading.Barrier(THREADS)

    def calls() -> None:
        barrier.wait()
        for i in range(CALLS_PER_THREAD):
            if i % 7 == 0:
                with lock:
                    window.bad(failed=True, slow=False, now=T0)
            else:
                number = window.success(T0)
                if number != -1:
                    with lock:
                        window.evaluate(number, T0)

    threads = [threading.Thread(target=calls) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    failures = THREADS * len(range(0, CALLS_PER_THREAD, 7))
    assert window.rates(T0) == Rates(THREADS * CALLS_PER_THREAD, failures, 0)


def interleave_every_bytecode(frame: FrameType, event: str, arg: object) -> TraceFunction | None:
    """A trace function that makes the running thread give up the GIL before every bytecode
    of fleetbreaker._windows: other threads run in the middle of its statements."""
    if frame.f_code.co_filename != _windows.__file__:
        return None
    frame.f_trace_opcodes = True
    if event == "opcode":
        os.sched_yield()
    return interleave_every_bytecode


@pytest.mark.parametrize(
    "make",
    [partial(count_window, size=1_000_000), partial(time_window, size=10.0)],
    ids=["count", "time"],
)
def test_threads_interleaved_at_every_bytecode_lose_no_call(make: MakeWindow) -> None:
    """Threads recording at once and switched between every bytecode of the window's code
    (where a plain ``+= 1`` would lose calls) leave it counting every call once; a time
    window's calls, rolled through its ten buckets meanwhile, only drop out as time passes."""
    window = make(minimum_calls=100, failure_rate_threshold=0.5)
    calls = 2_000
    lock = threading.Lock()
    barrier = threading.Barrier(THREADS)

    def record_calls(lag: float) -> None:
        barrier.wait()
        for i in range(calls):
            # Through the ten buckets of a 10 s window, each thread's clock a little behind
            # the one before: their calls straddle the boundaries.
            now = T0 + max(0.0, i * 10.0 / calls - lag)
            if i % 7 == 0:
                with lock:
                    window.bad(failed=True, slow=False, now=now)
            else:
                number = window.success(now)
                if number != -1:
                    with lock:
                        window.evaluate(number, now)

    previous = threading.gettrace()  # a coverage tool's, say
    threading.settrace(interleave_every_bytecode)
    try:
        threads = [
            threading.Thread(target=record_calls, args=(lag / 10,)) for lag in range(THREADS)
        ]
        for thread in threads:
            thread.start()
    finally:
        threading.settrace(previous)
    for thread in threads:
        thread.join()
    failures = THREADS * len(range(0, calls, 7))
    assert window.rates(T0 + 9.999) == Rates(THREADS * calls, failures, 0)
    later = [window.rates(T0 + 9.999 + seconds) for seconds in range(12)]
    assert all(rates.failures <= rates.calls for rates in later)
    for before, after in itertools.pairwise(later):
        assert after.calls <= before.calls
        assert after.failures <= before.failures


def test_a_time_window_keeps_ten_buckets_however_many_calls() -> None:
    """A time window fed a million bad calls over 1000 seconds holds ten buckets of counts."""
    window = time_window(size=10.0, minimum_calls=2_000_000, failure_rate_threshold=0.5)
    for i in range(1_000_000):
        window.bad(failed=True, slow=i % 2 == 0, now=i / 1000)
    assert window.rates(999.999) == Rates(10_000, 10_000, 5_000)
    assert len(window._ring) == 10
    for bucket in window._ring:
        assert [type(getattr(bucket, name)) for name in bucket.__slots__] == [int] * 4
    sized = [getattr(window, name) for name in window.__slots__]
    assert all(len(value) <= 10 for value in sized if hasattr(value, "__len__"))
