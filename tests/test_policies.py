"""Trip and recovery policies through the public API: the consecutive, failure-rate and
slow-call-rate rules over count and time windows, slow calls, ignored outcomes, record_result,
the open-time schedule with its jitter, retry_after, and what CircuitInfo and
CircuitTransition say about a trip.

Every breaker runs on a FakeClock whose wall time starts at START, a whole number of seconds:
the times a record stores and the buckets of a time window then come out exact.
"""

from __future__ import annotations

import asyncio
import logging
import math
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from fleetbreaker import (
    CircuitBreaker,
    CircuitInfo,
    CircuitOpenError,
    CircuitState,
    CircuitTransition,
    Config,
    MemoryStore,
    Store,
)
from fleetbreaker._windows import Rates
from fleetbreaker.config import DAY
from fleetbreaker.testing import FakeClock, RecordingHook

T = TypeVar("T")

START = 1_000_000.0
SLOW = 2.0  # slow_call_duration_threshold of every config with a slow-call rule
ENTRIES = ["call", "decorator", "guard", "acall", "async_decorator", "async_guard"]
VALUE_ENTRIES = [entry for entry in ENTRIES if "guard" not in entry]  # a block returns nothing
ASYNC_ENTRIES = ["acall", "async_decorator", "async_guard"]
OPEN, CLOSED = CircuitState.OPEN, CircuitState.CLOSED


class Boom(Exception):
    pass


class Ignored(Exception):
    pass


class RateLimited(Exception):
    def __init__(self, retry_after: object) -> None:
        super().__init__(f"retry after {retry_after!r}")
        self.retry_after = retry_after


BAD = {"status": 503}  # the returned value record_result calls a failure


def is_bad(value: object) -> bool:
    return isinstance(value, dict) and value.get("status") == 503


def hinted(failure: object) -> Any:
    """A retry_after that reads the hint off the failure."""
    return getattr(failure, "retry_after", None)


def count_config(size: int = 4, **kw: Any) -> Config:
    """A count window of ``size`` calls, no verdict before it is full; rules off unless given."""
    options: dict[str, Any] = {
        "failure_threshold": None,
        "sliding_window_type": "count",
        "sliding_window_size": size,
        "minimum_number_of_calls": size,
        "recovery_timeout": 10,
        "success_threshold": 1,
    }
    return Config(**{**options, **kw})


def slow_rule(**kw: Any) -> dict[str, Any]:
    return {"slow_call_rate_threshold": 0.5, "slow_call_duration_threshold": SLOW, **kw}


def make(
    config: Config,
    clock: FakeClock | None = None,
    store: Store | None = None,
    **kw: Any,
) -> CircuitBreaker:
    return CircuitBreaker(
        "svc",
        store=MemoryStore() if store is None else store,
        config=config,
        clock=FakeClock(start=START) if clock is None else clock,
        **kw,
    )


def invoke(breaker: CircuitBreaker, entry: str, effect: Callable[[], T]) -> T | None:
    """Run ``effect`` through ``breaker`` by ``entry``; a guard block returns None."""
    if entry == "call":
        return breaker.call(effect)
    if entry == "decorator":
        return breaker(effect)()
    if entry == "guard":
        with breaker.guard():
            effect()
        return None

    async def coroutine() -> T:
        return effect()

    async def scenario() -> T | None:
        if entry == "acall":
            return await breaker.acall(coroutine)
        if entry == "async_decorator":
            return await breaker(coroutine)()
        async with breaker.guard():
            effect()
        return None

    return asyncio.run(scenario())


def ok() -> str:
    return "ok"


def returning(value: T) -> Callable[[], T]:
    return lambda: value


def boom() -> str:
    raise Boom


def slow(clock: FakeClock, seconds: float = SLOW, result: object = "slow") -> Callable[[], Any]:
    """A call that takes ``seconds`` on ``clock`` and returns ``result``."""

    def effect() -> object:
        clock.advance(seconds)
        return result

    return effect


def slow_boom(clock: FakeClock, seconds: float = SLOW) -> Callable[[], str]:
    def effect() -> str:
        clock.advance(seconds)
        raise Boom

    return effect


def run_calls(breaker: CircuitBreaker, clock: FakeClock, pattern: str, entry: str = "call") -> None:
    """One call per letter: o ok, f failure, s slow success, S slow failure, i ignored."""
    effects: dict[str, Callable[[], Any]] = {
        "o": ok,
        "f": boom,
        "s": slow(clock),
        "S": slow_boom(clock),
        "i": ignored,
    }
    for letter in pattern:
        if letter in "fS":
            with pytest.raises(Boom):
                invoke(breaker, entry, effects[letter])
        elif letter == "i":
            with pytest.raises(Ignored):
                invoke(breaker, entry, effects[letter])
        else:
            invoke(breaker, entry, effects[letter])


def ignored() -> str:
    raise Ignored


def period(info: CircuitInfo | CircuitTransition) -> float:
    """How long the writer of the trip or re-open expects the circuit to stay open."""
    opened = info.opened_at if isinstance(info, CircuitInfo) else info.at
    assert info.retry_at is not None
    assert opened is not None
    return info.retry_at - opened


def refused(breaker: CircuitBreaker) -> bool:
    """Whether ``breaker`` refuses a call now (a call it lets through runs ``ok``)."""
    try:
        breaker.call(ok)
    except CircuitOpenError:
        return True
    return False


def opened(hook: RecordingHook) -> list[CircuitTransition]:
    return [t for t in hook.transitions if t.to_state is OPEN]


# --- the rules -------------------------------------------------------------------------------


@pytest.mark.parametrize("entry", ENTRIES)
def test_consecutive_rule_trips_alone(entry: str) -> None:
    """failure_threshold consecutive failures open the circuit, reported as "consecutive"."""
    clock = FakeClock(start=START)
    breaker = make(Config(failure_threshold=3, recovery_timeout=10), clock)
    run_calls(breaker, clock, "ffoff", entry)
    assert breaker.info().state is CLOSED
    run_calls(breaker, clock, "f", entry)
    info = breaker.info()
    assert (info.state, info.rule, info.failure_count) == (OPEN, "consecutive", 3)
    assert (info.failure_rate, info.slow_call_rate) == (None, None)  # no window


@pytest.mark.parametrize("entry", ENTRIES)
def test_failure_rate_rule_trips_alone(entry: str) -> None:
    """Three failures are no verdict below the minimum; the call that reaches it trips."""
    clock = FakeClock(start=START)
    breaker = make(count_config(failure_rate_threshold=0.5), clock)
    run_calls(breaker, clock, "fff", entry)
    info = breaker.info()
    assert (info.state, info.failure_rate) == (CLOSED, 1.0)
    run_calls(breaker, clock, "o", entry)  # a success brings the window to its minimum
    info = breaker.info()
    assert (info.state, info.rule, info.failure_rate, info.slow_call_rate) == (
        OPEN,
        "failure_rate",
        0.75,
        0.0,
    )
    assert info.failure_count == 3


@pytest.mark.parametrize("entry", ENTRIES)
def test_slow_call_rate_rule_trips_alone(entry: str) -> None:
    """Slow successes trip the slow-call rule once the window holds the minimum."""
    clock = FakeClock(start=START)
    breaker = make(count_config(**slow_rule()), clock)
    run_calls(breaker, clock, "so", entry)
    info = breaker.info()
    assert (info.state, info.slow_call_rate, info.failure_rate) == (CLOSED, 0.5, 0.0)
    run_calls(breaker, clock, "os", entry)
    info = breaker.info()
    assert (info.state, info.rule, info.slow_call_rate, info.failure_rate) == (
        OPEN,
        "slow_call_rate",
        0.5,
        0.0,
    )


ALL_RULES = {"failure_threshold": 3, "failure_rate_threshold": 0.5, **slow_rule()}


@pytest.mark.parametrize(
    ("pattern", "size", "rule", "rates"),
    [
        pytest.param("fff", 4, "consecutive", (1.0, 0.0), id="consecutive-below-minimum"),
        pytest.param("oooooofff", 10, "consecutive", (1 / 3, 0.0), id="consecutive"),
        pytest.param("foof", 4, "failure_rate", (0.5, 0.0), id="failure-rate"),
        pytest.param("ssoo", 4, "slow_call_rate", (0.0, 0.5), id="slow-call-rate"),
        pytest.param("SoSo", 4, "failure_rate", (0.5, 0.5), id="both-rates-failure-rate-wins"),
        pytest.param("osfS", 4, "failure_rate", (0.5, 0.5), id="both-rates-on-a-slow-failure"),
    ],
)
def test_rules_combine_and_the_first_to_fire_is_reported(
    pattern: str, size: int, rule: str, rates: tuple[float, float]
) -> None:
    """With every rule enabled, the circuit trips on the first rule to fire, and says which."""
    clock, hook = FakeClock(start=START), RecordingHook()
    breaker = make(
        count_config(size, minimum_number_of_calls=4, **ALL_RULES), clock, on_transition=hook
    )
    run_calls(breaker, clock, pattern[:-1])
    assert breaker.info().state is CLOSED
    run_calls(breaker, clock, pattern[-1])
    info = breaker.info()
    assert (info.state, info.rule, (info.failure_rate, info.slow_call_rate)) == (OPEN, rule, rates)
    assert [t.rule for t in hook.transitions] == [rule]


@pytest.mark.parametrize("window", ["count", "time"])
def test_minimum_number_of_calls_is_respected(window: str) -> None:
    """No rate verdict below minimum_number_of_calls, however bad the calls so far."""
    clock = FakeClock(start=START)
    config = Config(
        failure_threshold=None,
        failure_rate_threshold=0.2,
        sliding_window_type=window,
        sliding_window_size=10,
        minimum_number_of_calls=5,
    )
    breaker = make(config, clock)
    run_calls(breaker, clock, "ffff")
    info = breaker.info()
    assert (info.state, info.failure_rate) == (CLOSED, 1.0)
    run_calls(breaker, clock, "o")
    info = breaker.info()
    assert (info.state, info.failure_rate) == (OPEN, 0.8)


def test_count_window_holds_the_last_n_calls() -> None:
    """A count window forgets the calls beyond its size: its rate is over the last N."""
    clock = FakeClock(start=START)
    breaker = make(count_config(failure_rate_threshold=0.75), clock)
    run_calls(breaker, clock, "ffoo")  # f f o o: 0.5
    run_calls(breaker, clock, "o")  # f o o o: 0.25 (2 of 5 calls so far)
    assert breaker.info().failure_rate == 0.25
    run_calls(breaker, clock, "ooof")  # o o o f
    assert breaker.info().failure_rate == 0.25
    run_calls(breaker, clock, "f")  # o o f f: 0.5
    assert breaker.info().state is CLOSED
    run_calls(breaker, clock, "f")  # o f f f: 0.75, though 5 of 11 calls failed in all
    info = breaker.info()
    assert (info.state, info.rule, info.failure_rate) == (OPEN, "failure_rate", 0.75)


@pytest.mark.parametrize("offset", [0.0, 0.25, 0.5, 0.75])
def test_time_window_forgets_calls_older_than_ten_buckets(offset: float) -> None:
    """Buckets align to Unix time: a call at START + offset leaves the window at START + 10."""
    clock = FakeClock(start=START + offset)
    config = Config(
        failure_threshold=None,
        failure_rate_threshold=0.9,
        sliding_window_size=10,  # 10 buckets of 1 s
        minimum_number_of_calls=100,
    )
    breaker = make(config, clock)
    run_calls(breaker, clock, "ffo")  # bucket START
    clock.advance(1.0 - offset)  # START + 1: the next bucket, exactly
    run_calls(breaker, clock, "fooo")
    assert breaker.info().failure_rate == 3 / 7
    clock.advance(8.875)  # START + 9.875: still ten buckets
    assert breaker.info().failure_rate == 3 / 7
    clock.advance(0.125)  # START + 10: the first bucket has left
    assert breaker.info().failure_rate == 1 / 4
    run_calls(breaker, clock, "f")  # a call there rolls the buckets the same way
    assert breaker.info().failure_rate == 2 / 5
    clock.advance(0.875)
    assert breaker.info().failure_rate == 2 / 5
    clock.advance(0.125)  # START + 11: the second bucket has left too
    assert breaker.info().failure_rate == 1.0  # the failure at START + 10 alone
    clock.advance(9.0)  # START + 20: everything has left
    assert breaker.info().failure_rate == 0.0
    assert breaker.info().state is CLOSED


def test_time_window_trips_only_on_calls_within_it() -> None:
    """Failures ten buckets apart never meet in one window; nine apart they do."""
    for gap, expected in ((10.0, CLOSED), (9.5, OPEN)):
        clock = FakeClock(start=START)
        config = Config(
            failure_threshold=None,
            failure_rate_threshold=0.5,
            sliding_window_size=10,
            minimum_number_of_calls=4,
        )
        breaker = make(config, clock)
        run_calls(breaker, clock, "ff")
        clock.advance(gap)
        run_calls(breaker, clock, "oo")
        assert breaker.info().state is expected, gap


def test_old_successes_leaving_the_time_window_can_trip_it() -> None:
    """A success that pushes old successes out of the window can trip it (rate goes up)."""
    clock = FakeClock(start=START)
    config = Config(
        failure_threshold=None,
        failure_rate_threshold=0.5,
        sliding_window_size=10,
        minimum_number_of_calls=4,
    )
    breaker = make(config, clock)
    run_calls(breaker, clock, "oooo")
    clock.advance(5)
    run_calls(breaker, clock, "fff")  # 3 of 7
    assert breaker.info().state is CLOSED
    clock.advance(5)  # START + 10: the four successes leave
    run_calls(breaker, clock, "o")  # 3 of 4
    info = breaker.info()
    assert (info.state, info.rule, info.failure_rate) == (OPEN, "failure_rate", 0.75)


@pytest.mark.parametrize("window", ["count", "time"])
def test_a_new_closed_episode_starts_with_an_empty_window(window: str) -> None:
    """After a trip and a recovery the window is empty: one failure cannot trip it."""
    clock = FakeClock(start=START)
    config = Config(
        failure_threshold=3,
        failure_rate_threshold=0.5,
        sliding_window_type=window,
        sliding_window_size=60 if window == "time" else 4,
        minimum_number_of_calls=4,
        recovery_timeout=10,
        success_threshold=2,
    )
    breaker = make(config, clock)
    run_calls(breaker, clock, "ofof")
    assert breaker.info().state is OPEN
    clock.advance(10)
    run_calls(breaker, clock, "oo")  # two probes close it, within the same window of time
    info = breaker.info()
    assert (info.state, info.failure_rate, info.failure_count) == (CLOSED, 0.0, 0)
    run_calls(breaker, clock, "f")  # in the old window: 3 of the last 4 (3 of 5) calls failed
    info = breaker.info()
    assert (info.state, info.failure_rate, info.failure_count) == (CLOSED, 1.0, 1)
    run_calls(breaker, clock, "f")  # the consecutive count started afresh too
    assert breaker.info().state is CLOSED
    run_calls(breaker, clock, "f")
    assert breaker.info().rule == "consecutive"


def test_another_process_window_restarts_when_the_fleet_recovers() -> None:
    """A process that saw the fleet trip and recover starts its own window empty too."""
    clock, store = FakeClock(start=START), MemoryStore()
    config = count_config(failure_rate_threshold=0.5, failure_threshold=3)
    a, b = make(config, clock, store), make(config, clock, store)
    run_calls(b, clock, "ff")  # b's window: 2 of 2, below the minimum
    run_calls(a, clock, "fff")  # a trips (consecutive)
    clock.advance(10)
    run_calls(a, clock, "o")  # a's probe closes the circuit
    info = b.info()  # b reads the new closed episode
    assert (info.state, info.failure_rate, info.failure_count) == (CLOSED, 0.0, 0)
    run_calls(b, clock, "ff")  # on b's old counts: 3 then 4 consecutive, 4 of 4 calls
    assert b.info().state is CLOSED


# --- slow calls ------------------------------------------------------------------------------


@pytest.mark.parametrize("entry", VALUE_ENTRIES)
def test_slow_call_result_reaches_the_caller_unchanged(entry: str) -> None:
    """A slow call's result is returned as is, and it trips the slow rule all the same."""
    clock = FakeClock(start=START)
    breaker = make(count_config(size=2, **slow_rule()), clock)
    result = object()
    for _ in range(2):
        assert invoke(breaker, entry, slow(clock, result=result)) is result
    assert breaker.info().rule == "slow_call_rate"


@pytest.mark.parametrize("entry", ENTRIES)
def test_slow_call_exception_reaches_the_caller_unchanged(entry: str) -> None:
    """A slow failure's own exception object propagates."""
    clock = FakeClock(start=START)
    breaker = make(count_config(size=2, **slow_rule()), clock)
    error = Boom("mine")

    def effect() -> None:
        clock.advance(SLOW)
        raise error

    for _ in range(2):
        with pytest.raises(Boom) as caught:
            invoke(breaker, entry, effect)
        assert caught.value is error
    assert breaker.info().state is OPEN


@pytest.mark.parametrize("entry", ENTRIES)
def test_a_call_is_slow_from_the_threshold_on(entry: str) -> None:
    """A call that takes exactly slow_call_duration_threshold is slow; a shorter one is not."""
    clock = FakeClock(start=START)
    breaker = make(count_config(size=100, **slow_rule(slow_call_rate_threshold=1.0)), clock)
    invoke(breaker, entry, slow(clock, SLOW - 0.125))
    assert breaker.info().slow_call_rate == 0.0
    invoke(breaker, entry, slow(clock, SLOW))
    assert breaker.info().slow_call_rate == 0.5


def test_slow_failure_counts_in_both_rates() -> None:
    """A slow failure is a failure and a slow call."""
    clock = FakeClock(start=START)
    config = count_config(
        size=10, failure_rate_threshold=0.9, **slow_rule(slow_call_rate_threshold=0.9)
    )
    breaker = make(config, clock)
    run_calls(breaker, clock, "oSof")
    info = breaker.info()
    assert (info.failure_rate, info.slow_call_rate) == (0.5, 0.25)


def test_slow_success_ends_a_run_of_consecutive_failures() -> None:
    """A slow call that succeeded is a success for the consecutive rule: it resets the run."""
    clock = FakeClock(start=START)
    config = count_config(size=100, failure_threshold=3, **slow_rule(slow_call_rate_threshold=1.0))
    breaker = make(config, clock)
    run_calls(breaker, clock, "ffsff")
    info = breaker.info()
    assert (info.state, info.failure_count) == (CLOSED, 2)
    run_calls(breaker, clock, "f")
    assert breaker.info().rule == "consecutive"


def trip_slow_rule(entry: str = "call", **kw: Any) -> tuple[CircuitBreaker, FakeClock]:
    clock = FakeClock(start=START)
    breaker = make(count_config(size=2, **slow_rule(), **kw), clock)
    run_calls(breaker, clock, "ss", entry)
    assert breaker.info().state is OPEN
    clock.advance(10)
    return breaker, clock


@pytest.mark.parametrize("entry", ENTRIES)
def test_a_slow_probe_fails_the_probe(entry: str) -> None:
    """A slow probe reopens the circuit (open_count 1); its result still reaches the caller."""
    breaker, clock = trip_slow_rule(entry)
    result = invoke(breaker, entry, slow(clock, result="late"))
    assert result == (None if "guard" in entry else "late")
    info = breaker.info()
    assert (info.state, info.open_count, info.rule) == (OPEN, 1, "slow_call_rate")


@pytest.mark.parametrize("entry", ENTRIES)
def test_a_fast_probe_closes_the_circuit(entry: str) -> None:
    """A probe under the threshold succeeds."""
    breaker, clock = trip_slow_rule(entry)
    invoke(breaker, entry, slow(clock, SLOW - 0.125))
    assert breaker.info().state is CLOSED


@pytest.mark.parametrize("entry", ["guard", "async_guard"])
def test_guard_blocks_are_timed(entry: str) -> None:
    """A guard() block that takes the threshold is a slow call."""
    clock = FakeClock(start=START)
    breaker = make(count_config(size=10, **slow_rule(slow_call_rate_threshold=1.0)), clock)
    run_calls(breaker, clock, "sos", entry)
    assert breaker.info().slow_call_rate == 2 / 3


# --- outcomes that do not count --------------------------------------------------------------


@pytest.mark.parametrize("entry", ENTRIES)
def test_ignored_exceptions_count_in_neither_numerator_nor_denominator(entry: str) -> None:
    """An ignored exception, fast or slow, leaves both rates and the call count as they were."""
    clock = FakeClock(start=START)
    config = count_config(failure_rate_threshold=0.5, ignored_exceptions=(Ignored,), **slow_rule())
    breaker = make(config, clock)
    run_calls(breaker, clock, "of", entry)
    before = breaker.info()
    run_calls(breaker, clock, "iii", entry)

    def slow_ignored() -> None:
        clock.advance(SLOW)
        raise Ignored

    with pytest.raises(Ignored):
        invoke(breaker, entry, slow_ignored)
    after = breaker.info()
    assert (after.state, after.failure_rate, after.slow_call_rate) == (CLOSED, 0.5, 0.0)
    assert (before.failure_rate, before.slow_call_rate) == (0.5, 0.0)
    assert breaker._rules.rates(clock.wall()) == Rates(2, 1, 0)
    run_calls(breaker, clock, "o", entry)  # the minimum is not reached by ignored calls
    assert breaker.info().state is CLOSED


def not_handled() -> str:
    raise ValueError("not a Boom")


def test_exceptions_not_handled_are_excluded() -> None:
    """With handled_exceptions, any other exception counts nowhere."""
    clock = FakeClock(start=START)
    config = count_config(failure_rate_threshold=0.5, handled_exceptions=(Boom,))
    breaker = make(config, clock)
    run_calls(breaker, clock, "of")
    for _ in range(5):
        with pytest.raises(ValueError):
            breaker.call(not_handled)
    assert breaker._rules.rates(clock.wall()) == Rates(2, 1, 0)
    assert breaker.info().failure_rate == 0.5
    run_calls(breaker, clock, "o")
    assert breaker.info().state is CLOSED
    run_calls(breaker, clock, "f")  # o f o f: 0.5
    assert breaker.info().rule == "failure_rate"


@pytest.mark.parametrize("entry", ASYNC_ENTRIES)
def test_a_cancelled_call_is_not_counted(entry: str) -> None:
    """An async call cancelled mid-way (even after the slow threshold) counts nowhere."""
    clock = FakeClock(start=START)
    config = count_config(failure_rate_threshold=0.5, **slow_rule())
    breaker = make(config, clock)
    run_calls(breaker, clock, "of", entry)

    async def scenario() -> None:
        started = asyncio.Event()

        async def hang() -> None:
            clock.advance(SLOW)
            started.set()
            await asyncio.Event().wait()

        async def guarded() -> None:
            async with breaker.guard():
                await hang()

        call: Awaitable[None]
        if entry == "acall":
            call = breaker.acall(hang)
        elif entry == "async_decorator":
            call = breaker(hang)()
        else:
            call = guarded()
        task = asyncio.ensure_future(call)
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    for _ in range(3):
        asyncio.run(scenario())
    assert breaker._rules.rates(clock.wall()) == Rates(2, 1, 0)
    info = breaker.info()
    assert (info.state, info.failure_rate, info.slow_call_rate) == (CLOSED, 0.5, 0.0)


# --- record_result ---------------------------------------------------------------------------


@pytest.mark.parametrize("entry", VALUE_ENTRIES)
def test_failing_value_counts_for_the_consecutive_rule(entry: str) -> None:
    """record_result's failing value is returned unchanged and counts as a failure."""
    breaker = make(Config(failure_threshold=2, record_result=is_bad))
    assert invoke(breaker, entry, lambda: BAD) is BAD
    assert invoke(breaker, entry, ok) == "ok"  # a good value ends the run
    assert invoke(breaker, entry, lambda: BAD) is BAD
    assert breaker.info().state is CLOSED
    assert invoke(breaker, entry, lambda: BAD) is BAD
    info = breaker.info()
    assert (info.state, info.rule, info.failure_count) == (OPEN, "consecutive", 2)


@pytest.mark.parametrize("entry", VALUE_ENTRIES)
def test_failing_value_counts_for_the_failure_rate(entry: str) -> None:
    """A failing value counts in the failure rate."""
    breaker = make(count_config(failure_rate_threshold=0.5, record_result=is_bad))
    for value in ("ok", BAD, "ok"):
        assert invoke(breaker, entry, returning(value)) is value
    assert breaker.info().failure_rate == 1 / 3
    assert invoke(breaker, entry, lambda: BAD) is BAD
    info = breaker.info()
    assert (info.state, info.rule, info.failure_rate) == (OPEN, "failure_rate", 0.5)


@pytest.mark.parametrize("entry", VALUE_ENTRIES)
def test_failing_value_fails_the_probe(entry: str) -> None:
    """A probe that returns a failing value reopens the circuit; the caller gets the value."""
    clock = FakeClock(start=START)
    breaker = make(Config(failure_threshold=1, recovery_timeout=10, record_result=is_bad), clock)
    assert invoke(breaker, entry, lambda: BAD) is BAD
    clock.advance(10)
    assert invoke(breaker, entry, lambda: BAD) is BAD
    info = breaker.info()
    assert (info.state, info.open_count) == (OPEN, 1)


@pytest.mark.parametrize("entry", VALUE_ENTRIES)
def test_raising_predicate_counts_a_success(entry: str, caplog: pytest.LogCaptureFixture) -> None:
    """A raising record_result logs a warning; the call is a success, its result returned."""

    def judge(value: object) -> bool:
        if value == "odd":
            raise RuntimeError("cannot judge")
        return is_bad(value)

    clock = FakeClock(start=START)
    config = count_config(
        size=10, failure_threshold=2, failure_rate_threshold=1.0, record_result=judge
    )
    breaker = make(config, clock)
    run_calls(breaker, clock, "f", entry)
    with caplog.at_level(logging.WARNING, logger="fleetbreaker"):
        assert invoke(breaker, entry, lambda: "odd") == "odd"
    assert any("record_result raised" in r.getMessage() for r in caplog.records)
    assert all(r.levelno == logging.WARNING for r in caplog.records)
    run_calls(breaker, clock, "f", entry)  # the success ended the run: 1 consecutive
    info = breaker.info()
    assert (info.state, info.failure_count, info.failure_rate) == (CLOSED, 1, 2 / 3)


@pytest.mark.parametrize("entry", VALUE_ENTRIES)
def test_raising_predicate_on_a_probe_counts_a_success(entry: str) -> None:
    """A probe whose value the predicate cannot judge succeeds."""

    def judge(value: object) -> bool:
        if value == "odd":
            raise RuntimeError("cannot judge")
        return False

    clock = FakeClock(start=START)
    config = Config(
        failure_threshold=1, recovery_timeout=10, success_threshold=1, record_result=judge
    )
    breaker = make(config, clock)
    run_calls(breaker, clock, "f", entry)
    clock.advance(10)
    assert invoke(breaker, entry, lambda: "odd") == "odd"
    assert breaker.info().state is CLOSED


# --- the open-time schedule ------------------------------------------------------------------

SCHEDULE = Config(
    failure_threshold=1,
    recovery_timeout=10,
    recovery_backoff_multiplier=2,
    recovery_timeout_max=60,
    success_threshold=1,
)


def fail_probe_after(breaker: CircuitBreaker, clock: FakeClock, seconds: float) -> None:
    """Wait out ``seconds`` (refused until then), then fail the probe."""
    clock.advance(seconds - 0.5)
    assert refused(breaker)
    clock.advance(0.5)
    run_calls(breaker, clock, "f")


def test_open_period_doubles_up_to_the_maximum() -> None:
    """recovery_timeout * multiplier ** k, capped: 10, 20, 40, 60, 60, 60 as recoveries fail."""
    clock, hook = FakeClock(start=START), RecordingHook()
    breaker = make(SCHEDULE, clock, on_transition=hook)
    run_calls(breaker, clock, "f")
    seen = []
    for k in range(6):
        info = breaker.info()
        assert (info.state, info.open_count) == (OPEN, k)
        seen.append(period(info))
        fail_probe_after(breaker, clock, period(info))
    assert seen == [10, 20, 40, 60, 60, 60]
    reopens = opened(hook)
    assert [period(t) for t in reopens] == [10, 20, 40, 60, 60, 60, 60]
    assert [t.open_count for t in reopens] == [0, 1, 2, 3, 4, 5, 6]
    assert [t.from_state for t in reopens] == [CLOSED] + [CircuitState.HALF_OPEN] * 6


def test_a_close_resets_the_backoff() -> None:
    """After a recovery the next trip waits recovery_timeout again, with open_count 0."""
    clock = FakeClock(start=START)
    breaker = make(SCHEDULE, clock)
    run_calls(breaker, clock, "f")
    fail_probe_after(breaker, clock, 10)
    fail_probe_after(breaker, clock, 20)
    assert breaker.info().open_count == 2
    clock.advance(40)
    run_calls(breaker, clock, "o")
    info = breaker.info()
    assert (info.state, info.open_count) == (CLOSED, 0)
    run_calls(breaker, clock, "f")
    info = breaker.info()
    assert (info.state, info.open_count, period(info)) == (OPEN, 0, 10)
    fail_probe_after(breaker, clock, 10)
    assert period(breaker.info()) == 20


JITTERED = Config(
    failure_threshold=1,
    recovery_timeout=10,
    recovery_backoff_multiplier=2,
    recovery_timeout_max=60,
    recovery_jitter=0.2,
    success_threshold=1,
)


def test_jitter_keeps_each_period_within_its_bounds() -> None:
    """With jitter 0.2 every period the writer stores is in [0.8 d, d], drawn per trip."""
    clock, store = FakeClock(start=START), MemoryStore()
    trips, reopens = [], []
    for i in range(200):
        hook = RecordingHook()
        breaker = CircuitBreaker(
            f"svc-{i}", store=store, config=JITTERED, clock=clock, on_transition=hook
        )
        run_calls(breaker, clock, "f")
        trips.append(period(breaker.info()))
        clock.advance(10)
        run_calls(breaker, clock, "f")  # the probe fails: d = 20
        info = breaker.info()
        assert info.open_count == 1
        reopens.append(period(info))
        assert [period(t) for t in opened(hook)] == [trips[-1], reopens[-1]]
    tolerance = 1e-6
    assert all(8 - tolerance <= p <= 10 + tolerance for p in trips)
    assert all(16 - tolerance <= p <= 20 + tolerance for p in reopens)
    assert len(set(trips)) > 150  # a draw per trip, not one per process
    assert min(trips) < 8.5
    assert max(trips) > 9.5


@pytest.mark.parametrize(
    ("draw", "expected"),
    [
        pytest.param(0.0, (10.0, 20.0), id="draw-0"),
        pytest.param(1.0, (8.0, 16.0), id="draw-1"),
        pytest.param(math.nextafter(1.0, 0.0), (8.0, 16.0), id="draw-below-1"),
        pytest.param(0.5, (9.0, 18.0), id="draw-half"),
    ],
)
def test_jitter_bounds_are_pinned(
    draw: float, expected: tuple[float, float], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The draw maps onto [0.8 d, d]: 0 gives d, 1 gives 0.8 d."""
    monkeypatch.setattr("fleetbreaker._breaker.random.random", lambda: draw)
    clock = FakeClock(start=START)
    breaker = make(JITTERED, clock)
    run_calls(breaker, clock, "f")
    first = period(breaker.info())
    clock.advance(first)
    run_calls(breaker, clock, "f")
    second = period(breaker.info())
    assert (first, second) == pytest.approx(expected, abs=1e-9)
    assert 8.0 <= first <= 10.0
    assert 16.0 <= second <= 20.0


def test_every_process_waits_the_period_the_writer_stored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A process that never tripped waits the stored (jittered) period on its own clock."""
    monkeypatch.setattr("fleetbreaker._breaker.random.random", lambda: 1.0)  # 0.8 x 10 s
    store = MemoryStore()
    clock_a = FakeClock(start=START)
    clock_b = FakeClock(start=START + 3600.5)  # another host's wall clock, far off
    a, b = make(JITTERED, clock_a, store), make(JITTERED, clock_b, store)
    run_calls(a, clock_a, "f")
    assert refused(b)  # b first sees the trip now
    info = b.info()
    assert (info.state, period(info), info.retry_at) == (OPEN, 8.0, START + 8.0)
    for step in (4.0, 3.875):
        clock_a.advance(step)
        clock_b.advance(step)
        assert refused(b)  # within the stored 8 s
    clock_b.advance(0.125 + 1.0)  # 8 s, plus the second the free slot is reserved for a
    assert b.call(ok) == "ok"  # b probes (success_threshold 1): closed
    assert b.info().state is CLOSED


# --- retry_after -----------------------------------------------------------------------------


def test_retry_after_keeps_every_process_out_for_the_hint() -> None:
    """An exception's retry_after of 120 s keeps the circuit open 120 s for the whole fleet."""
    clock, store = FakeClock(start=START), MemoryStore()
    config = Config(
        failure_threshold=1, recovery_timeout=10, success_threshold=1, retry_after=hinted
    )
    a, b = make(config, clock, store), make(config, clock, store)
    with pytest.raises(RateLimited):
        a.call(_raise(RateLimited(120)))
    assert refused(b)  # b sees the trip at once
    info = a.info()
    assert (info.state, period(info)) == (OPEN, 120)
    for step in (10.0, 50.0, 59.5):  # 10 s, 60 s, 119.5 s
        clock.advance(step)
        assert refused(a)
        assert refused(b)
    clock.advance(0.5)
    assert a.call(ok) == "ok"  # the tripping process probes first, at 120 s
    assert b.call(ok) == "ok"


def _raise(error: Exception) -> Callable[[], str]:
    def effect() -> str:
        raise error

    return effect


def test_retry_after_gets_the_failing_value() -> None:
    """A failing returned value is what retry_after is given when it trips the circuit."""
    received: list[object] = []

    def hint(failure: object) -> float:
        received.append(failure)
        return 30

    clock = FakeClock(start=START)
    config = Config(failure_threshold=1, record_result=is_bad, retry_after=hint)
    breaker = make(config, clock)
    assert breaker.call(lambda: BAD) is BAD
    assert received == [BAD]
    assert received[0] is BAD
    assert period(breaker.info()) == 30


def test_retry_after_gets_the_exception() -> None:
    """The exception that tripped the circuit is what retry_after is given."""
    received: list[object] = []
    breaker = make(Config(failure_threshold=2, retry_after=received.append))
    error = Boom("second")
    with pytest.raises(Boom):
        breaker.call(boom)
    with pytest.raises(Boom):
        breaker.call(_raise(error))
    assert received == [error]
    assert period(breaker.info()) == 30  # None: the schedule's period


def test_retry_after_none_changes_nothing(caplog: pytest.LogCaptureFixture) -> None:
    """A retry_after answering None leaves the schedule's period, silently."""
    clock = FakeClock(start=START)
    breaker = make(Config(failure_threshold=1, recovery_timeout=10, retry_after=hinted), clock)
    with caplog.at_level(logging.WARNING, logger="fleetbreaker"):
        run_calls(breaker, clock, "f")
    assert period(breaker.info()) == 10
    assert [r for r in caplog.records if not hasattr(r, "to_state")] == []  # (transitions log)


def test_raising_retry_after_changes_nothing(caplog: pytest.LogCaptureFixture) -> None:
    """A retry_after that raises is logged as a warning; the schedule's period stands."""

    def hint(failure: object) -> float:
        raise RuntimeError(str(failure))

    clock = FakeClock(start=START)
    breaker = make(Config(failure_threshold=1, recovery_timeout=10, retry_after=hint), clock)
    with caplog.at_level(logging.WARNING, logger="fleetbreaker"):
        run_calls(breaker, clock, "f")
    info = breaker.info()
    assert (info.state, period(info)) == (OPEN, 10)
    records = [r for r in caplog.records if not hasattr(r, "to_state")]  # (transitions log)
    assert [r.levelno for r in records] == [logging.WARNING]
    assert "retry_after raised" in records[0].getMessage()


@pytest.mark.parametrize(
    ("hint", "maximum", "expected"),
    [
        pytest.param(1e12, 300.0, 300.0, id="float-capped-at-max"),
        pytest.param(10**12, None, DAY, id="int-capped-at-a-day"),
        pytest.param(1e308, None, DAY, id="largest-float-capped-at-a-day"),
        pytest.param(10**400, 300.0, 300.0, id="int-beyond-float-capped-at-max"),
        pytest.param(10**400, None, DAY, id="int-beyond-float-capped-at-a-day"),
        pytest.param(299.5, 300.0, 299.5, id="under-the-max"),
    ],
)
def test_huge_retry_after_is_capped(hint: float, maximum: float | None, expected: float) -> None:
    """A hint beyond recovery_timeout_max (24 h without one) opens for the maximum."""
    clock = FakeClock(start=START)
    config = Config(
        failure_threshold=1,
        recovery_timeout=10,
        recovery_timeout_max=maximum,
        retry_after=hinted,
    )
    breaker = make(config, clock)
    with pytest.raises(RateLimited):
        breaker.call(_raise(RateLimited(hint)))
    info = breaker.info()
    assert (info.state, period(info)) == (OPEN, expected)


@pytest.mark.parametrize(
    "hint",
    [
        pytest.param("120", id="text"),
        pytest.param(-120, id="negative"),
        pytest.param(-1e12, id="very-negative"),
        pytest.param(0, id="zero"),
        pytest.param(math.nan, id="nan"),
        pytest.param(True, id="bool"),
        pytest.param([120], id="list"),
        pytest.param(object(), id="object"),
    ],
)
def test_retry_after_that_is_not_a_period_is_ignored(hint: object) -> None:
    """Text, negative numbers, zero, NaN and other objects leave the schedule's period."""
    clock = FakeClock(start=START)
    breaker = make(Config(failure_threshold=1, recovery_timeout=10, retry_after=hinted), clock)
    with pytest.raises(RateLimited):
        breaker.call(_raise(RateLimited(hint)))
    info = breaker.info()
    assert (info.state, period(info)) == (OPEN, 10)


@pytest.mark.parametrize("entry", ENTRIES)
def test_retry_after_applies_to_a_failed_probe(entry: str) -> None:
    """A probe's failure is handed to retry_after, and its hint keeps the circuit open."""
    received: list[object] = []

    def hint(failure: object) -> Any:
        received.append(failure)
        return hinted(failure)

    clock = FakeClock(start=START)
    breaker = make(Config(failure_threshold=1, recovery_timeout=10, retry_after=hint), clock)
    run_calls(breaker, clock, "f", entry)
    clock.advance(10)
    error = RateLimited(45)
    with pytest.raises(RateLimited):
        invoke(breaker, entry, _raise(error))
    assert received[-1] is error
    info = breaker.info()
    assert (info.state, info.open_count, period(info)) == (OPEN, 1, 45)


@pytest.mark.parametrize("entry", ["guard", "async_guard"])
def test_retry_after_is_not_given_a_slow_block(entry: str) -> None:
    """A slow guard() block has no failure to hand over: retry_after is not called."""
    received: list[object] = []

    def hint(failure: object) -> None:
        received.append(failure)

    breaker, clock = trip_slow_rule(entry, retry_after=hint)
    invoke(breaker, entry, slow(clock))
    info = breaker.info()
    assert (info.state, info.open_count) == (OPEN, 1)
    assert received == []


# --- what a trip says about itself ------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "pattern", "expected"),
    [
        pytest.param(
            Config(failure_threshold=2, recovery_timeout=10, success_threshold=1),
            "ff",
            ("consecutive", None, None, 2),
            id="consecutive",
        ),
        pytest.param(
            count_config(failure_rate_threshold=0.5, failure_threshold=10),
            "ofof",
            ("failure_rate", 0.5, 0.0, 2),
            id="failure_rate",
        ),
        pytest.param(
            count_config(failure_rate_threshold=0.75, **slow_rule()),
            "sSoo",
            ("slow_call_rate", 0.25, 0.5, 1),
            id="slow_call_rate",
        ),
    ],
)
def test_info_and_transition_describe_the_trip(
    config: Config, pattern: str, expected: tuple[str, float | None, float | None, int]
) -> None:
    """CircuitInfo and the one transition carry rule, rates, open_count and retry_at."""
    clock, hook = FakeClock(start=START), RecordingHook()
    breaker = make(config, clock, on_transition=hook)
    run_calls(breaker, clock, pattern)
    trip_time = clock.wall()
    info = breaker.info()
    rule, failure_rate, slow_call_rate, failures = expected
    assert (info.state, info.rule, info.failure_rate, info.slow_call_rate) == (
        OPEN,
        rule,
        failure_rate,
        slow_call_rate,
    )
    assert (info.open_count, info.failure_count) == (0, failures)
    assert (info.opened_at, info.retry_at) == (trip_time, trip_time + 10)
    [transition] = hook.transitions
    assert (transition.from_state, transition.to_state) == (CLOSED, OPEN)
    assert (transition.rule, transition.failure_rate, transition.slow_call_rate) == (
        rule,
        failure_rate,
        slow_call_rate,
    )
    assert (transition.open_count, transition.failure_count) == (0, failures)
    assert (transition.at, transition.retry_at) == (trip_time, trip_time + 10)

    # A failed probe reopens for the same reason, one failed recovery more.
    clock.advance(10)
    run_calls(breaker, clock, "f")
    info = breaker.info()
    assert (info.rule, info.failure_rate, info.slow_call_rate, info.open_count) == (
        rule,
        failure_rate,
        slow_call_rate,
        1,
    )
    reopen = hook.transitions[-1]
    assert (reopen.from_state, reopen.to_state, reopen.rule, reopen.open_count) == (
        CircuitState.HALF_OPEN,
        OPEN,
        rule,
        1,
    )
    assert (reopen.at, reopen.retry_at) == (clock.wall(), clock.wall() + 10)
    assert reopen.failure_rate == failure_rate
    assert reopen.slow_call_rate == slow_call_rate


def test_closed_info_shows_this_process_rates_and_no_rule() -> None:
    """While closed, info() shows this process's window now, and no rule."""
    clock = FakeClock(start=START)
    breaker = make(
        count_config(
            size=10, failure_rate_threshold=0.9, **slow_rule(slow_call_rate_threshold=0.9)
        ),
        clock,
    )
    run_calls(breaker, clock, "osSf")
    info = breaker.info()
    assert (info.state, info.rule, info.failure_rate, info.slow_call_rate) == (
        CLOSED,
        None,
        0.5,
        0.5,
    )
    assert (info.open_count, info.retry_at, info.failure_count) == (0, None, 2)


def test_quorum_trip_is_reported_as_quorum() -> None:
    """When the fleet's quorum opens the circuit, the rule is "quorum", reported once."""
    clock, store, hook = FakeClock(start=START), MemoryStore(), RecordingHook()
    config = Config(failure_threshold=2, recovery_timeout=10, fleet_minimum_reporters=2)
    a = make(config, clock, store, on_transition=hook)
    run_calls(a, clock, "ff")  # a's rule fires: a holds itself open and reports
    info = a.info()  # its own view is open, held; the fleet's record is closed
    assert (info.state, info.reporters, info.rule) == (OPEN, 1, "consecutive")
    assert info.held_open_until == info.retry_at == clock.wall() + 10
    assert store.load(a.name).state is CLOSED  # type: ignore[union-attr]
    assert refused(a)
    b = make(config, clock, store, on_transition=hook)
    run_calls(b, clock, "ff")  # the second report completes the quorum
    info = b.info()
    assert (info.state, info.rule, info.open_count, period(info)) == (OPEN, "quorum", 0, 10)
    [transition] = hook.transitions
    assert (transition.rule, transition.to_state, transition.retry_at) == (
        "quorum",
        OPEN,
        clock.wall() + 10,
    )


@pytest.mark.parametrize(
    "config",
    [
        pytest.param(Config(failure_threshold=4, recovery_timeout=10), id="consecutive"),
        pytest.param(count_config(size=4, failure_rate_threshold=0.5), id="failure_rate"),
    ],
)
def test_threads_failing_at_once_trip_the_circuit_once(config: Config) -> None:
    """However many threads make the rule fire together, one transition is reported."""
    threads = 8
    clock, hook = FakeClock(start=START), RecordingHook()
    breaker = make(config, clock, on_transition=hook)
    breaker.info()  # a fresh view: every thread takes the closed path
    together = threading.Barrier(threads)
    errors: list[BaseException] = []

    @breaker
    def fail_together() -> None:
        together.wait(timeout=10)
        raise Boom

    def work() -> None:
        try:
            fail_together()
        except Boom:
            pass
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)
    assert errors == []
    assert hook.pairs() == [("closed", "open")]
    assert breaker.info().state is OPEN


# --- thread safety ---------------------------------------------------------------------------


def test_concurrent_calls_are_counted_exactly() -> None:
    """8 threads x 100_000 calls through one breaker: every call and failure counted once."""
    threads, per_thread = 8, 100_000
    clock = FakeClock(start=START)
    config = Config(
        failure_threshold=None,
        failure_rate_threshold=1.0,
        sliding_window_type="count",
        sliding_window_size=1_000_000,
        minimum_number_of_calls=1_000_000,  # never a verdict: the window only counts
    )
    breaker = make(config, clock)
    breaker.info()  # a fresh view that never goes stale: the clock does not move

    @breaker
    def call(fail: bool) -> None:
        if fail:
            raise Boom

    start = threading.Barrier(threads)
    errors: list[BaseException] = []

    def work(index: int) -> None:
        # Thread ``index`` fails one call in ``index + 2``: a known pattern per thread.
        every = index + 2
        try:
            start.wait(timeout=10)
            for i in range(per_thread):
                try:
                    call(i % every == 0)
                except Boom:
                    pass
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(index,)) for index in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=100)
    assert errors == []
    calls = threads * per_thread
    failures = sum(len(range(0, per_thread, index + 2)) for index in range(threads))
    assert breaker._rules.rates(clock.wall()) == Rates(calls, failures, 0)
    info = breaker.info()
    assert (info.state, info.failure_rate, info.slow_call_rate) == (
        CLOSED,
        failures / calls,
        0.0,
    )


def test_concurrent_failures_leave_a_sliding_window_in_call_order() -> None:
    """Failures recorded by racing threads leave the window in call order, one at a time."""
    threads, per_thread = 8, 25_000
    size = threads * per_thread
    clock = FakeClock(start=START)
    config = Config(
        failure_threshold=None,
        # A rule that never fires (nothing is slow on a clock that stands still): the window
        # only counts, however many calls fail.
        slow_call_rate_threshold=1.0,
        slow_call_duration_threshold=3600,
        sliding_window_type="count",
        sliding_window_size=size,
        minimum_number_of_calls=size,
    )
    breaker = make(config, clock)
    breaker.info()

    @breaker
    def call(fail: bool) -> None:
        if fail:
            raise Boom

    start = threading.Barrier(threads)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            start.wait(timeout=10)
            for _ in range(per_thread):
                try:
                    call(fail=True)
                except Boom:
                    pass
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    # Switch threads often, so that a call is interrupted between taking its number and
    # recording its failure unless the breaker's lock makes that one step.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)
    try:
        workers = [threading.Thread(target=work) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=100)
    finally:
        sys.setswitchinterval(interval)
    assert errors == []
    assert breaker._rules.rates(clock.wall()) == Rates(size, size, 0)
    wrong = []
    for successes in range(1, size + 1):
        call(fail=False)
        rates = breaker._rules.rates(clock.wall())
        if rates != Rates(size, size - successes, 0):
            wrong.append((successes, rates))
    assert wrong == []
    assert breaker.info().failure_rate == 0.0
