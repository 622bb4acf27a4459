"""The per-process counts behind the metrics: every call, refusal, probe, transition and store
operation is counted once, on every entry point, and nothing is counted while metrics are off."""

from __future__ import annotations

import asyncio
import gc
import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from fleetbreaker import (
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    Config,
    MemoryStore,
    SQLiteStore,
    Store,
)
from fleetbreaker import _tally as tally
from fleetbreaker._protocol import Record
from fleetbreaker._tally import Counts, Durations, Tally
from fleetbreaker.metrics import _sources
from fleetbreaker.testing import FakeClock
from tests.helpers import CountingStore, down_store

SUCCESS = ("success", False, "")
REJECTED = ("rejected", False, "")
RATE_RULE = Config(failure_rate_threshold=0.5, minimum_number_of_calls=1000)
SLOW_RULE = Config(
    slow_call_duration_threshold=1.0, slow_call_rate_threshold=1.0, minimum_number_of_calls=1000
)


class Boom(Exception):
    """The downstream's failure."""


class Ignored(Exception):
    """An exception the config does not count."""


@pytest.fixture(autouse=True)
def metrics_on() -> Iterator[None]:
    _sources.count_calls(on=True)
    try:
        yield
    finally:
        _sources.count_calls(on=False)


def calls(breaker: CircuitBreaker) -> dict[tuple[str, bool, str], int]:
    """The breaker's call counts, zero counts left out."""
    return {key: n for key, n in breaker._tally.read().calls.items() if n}


def ok() -> str:
    return "ok"


def boom() -> None:
    raise Boom


async def aok() -> str:
    return "ok"


# --- entry points ------------------------------------------------------------------------------


def _decorator(breaker: CircuitBreaker, n: int) -> None:
    wrapped = breaker(ok)
    for _ in range(n):
        assert wrapped() == "ok"


def _call(breaker: CircuitBreaker, n: int) -> None:
    for _ in range(n):
        assert breaker.call(ok) == "ok"


def _guard(breaker: CircuitBreaker, n: int) -> None:
    for _ in range(n):
        with breaker.guard():
            pass


def _async_decorator(breaker: CircuitBreaker, n: int) -> None:
    wrapped = breaker(aok)

    async def run() -> None:
        for _ in range(n):
            assert await wrapped() == "ok"

    asyncio.run(run())


def _acall(breaker: CircuitBreaker, n: int) -> None:
    async def run() -> None:
        for _ in range(n):
            assert await breaker.acall(aok) == "ok"

    asyncio.run(run())


def _async_guard(breaker: CircuitBreaker, n: int) -> None:
    async def run() -> None:
        for _ in range(n):
            async with breaker.guard():
                pass

    asyncio.run(run())


ENTRY_POINTS = {
    "decorator": _decorator,
    "call": _call,
    "guard": _guard,
    "async-decorator": _async_decorator,
    "acall": _acall,
    "async-guard": _async_guard,
}
CONFIGS = {
    "default-rule": Config(),
    "rate-rule": RATE_RULE,
    "count-window": Config(
        failure_rate_threshold=0.5, sliding_window_type="count", sliding_window_size=10
    ),
    "record-result": Config(record_result=lambda value: value == "bad"),
}


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
@pytest.mark.parametrize("entry", ENTRY_POINTS.values(), ids=ENTRY_POINTS.keys())
def test_every_success_is_counted_once(
    entry: Callable[[CircuitBreaker, int], None], config: Config
) -> None:
    """50 successful calls through any entry point, under any rule, count 50 successes."""
    breaker = CircuitBreaker("ok", config=config, clock=FakeClock())
    entry(breaker, 50)
    assert calls(breaker) == {SUCCESS: 50}


def test_the_hot_path_counts_only_while_metrics_are_on() -> None:
    """Off: the view is hot and nothing is counted. On: the view takes the counting path."""
    clock = FakeClock()
    breaker = CircuitBreaker("switch", clock=clock)
    wrapped = breaker(ok)
    _sources.count_calls(on=False)
    wrapped()
    assert breaker._view.hot_until > -math.inf
    assert breaker._view.tally_until == -math.inf
    for _ in range(3):
        wrapped()
    assert calls(breaker) == {}
    _sources.count_calls(on=True)
    # The breaker's existing view was made again: the very next call is counted.
    assert breaker._view.hot_until == -math.inf
    assert breaker._view.tally_until > -math.inf
    for _ in range(4):
        wrapped()
    assert calls(breaker) == {SUCCESS: 4}
    _sources.count_calls(on=False)
    assert breaker._view.hot_until > -math.inf
    wrapped()
    assert calls(breaker) == {SUCCESS: 4}


def test_a_view_made_while_counting_routes_to_the_counting_path() -> None:
    """A breaker created after metrics were switched on counts from its first call."""
    breaker = CircuitBreaker("late", clock=FakeClock())
    wrapped = breaker(ok)
    for _ in range(3):
        wrapped()
    assert calls(breaker) == {SUCCESS: 3}
    assert breaker._view.hot_until == -math.inf


# --- failures, ignored exceptions, slow calls ---------------------------------------------------


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_failures_and_ignored_exceptions_carry_their_type(config: Config) -> None:
    """Counted failures and ignored exceptions are counted by outcome and exception type."""
    config = replace(config, failure_threshold=100, ignored_exceptions=(Ignored,))
    breaker = CircuitBreaker("fail", config=config, clock=FakeClock())

    @breaker
    def downstream(what: str) -> str:
        if what == "boom":
            raise Boom
        if what == "ignored":
            raise Ignored
        return what

    for what, times in (("boom", 3), ("ignored", 2), ("ok", 4)):
        for _ in range(times):
            if what == "ok":
                downstream(what)
            else:
                with pytest.raises(Exception):  # noqa: B017
                    downstream(what)
    assert calls(breaker) == {
        ("failure", False, "Boom"): 3,
        ("ignored", False, "Ignored"): 2,
        SUCCESS: 4,
    }


def test_a_value_judged_a_failure_is_a_failure() -> None:
    """record_result's failures count as failures of type record_result."""
    config = Config(record_result=lambda value: value == "bad", failure_threshold=100)
    breaker = CircuitBreaker("judged", config=config, clock=FakeClock())

    @breaker
    def wrapped(value: str) -> str:
        return value

    for value in ("bad", "good", "bad"):
        wrapped(value)
    assert calls(breaker) == {("failure", False, "record_result"): 2, SUCCESS: 1}


@pytest.mark.parametrize("entry", ["decorator", "call", "guard"])
def test_slow_calls_are_counted_slow(entry: str) -> None:
    """With a slow-call rule, calls at or past the threshold are counted slow, failed or not."""
    clock = FakeClock()
    breaker = CircuitBreaker("slow", config=SLOW_RULE, clock=clock)

    def downstream(seconds: float, fail: bool) -> str:
        clock.advance(seconds)
        if fail:
            raise Boom
        return "ok"

    def run(seconds: float, fail: bool) -> None:
        if entry == "decorator":
            breaker(downstream)(seconds, fail)
        elif entry == "call":
            breaker.call(downstream, seconds, fail)
        else:
            with breaker.guard():
                downstream(seconds, fail)

    for seconds, fail, times in ((0.5, False, 3), (1.0, False, 2), (2.0, True, 1), (0.1, True, 4)):
        for _ in range(times):
            if fail:
                with pytest.raises(Boom):
                    run(seconds, fail)
            else:
                run(seconds, fail)
    assert calls(breaker) == {
        SUCCESS: 3,
        ("success", True, ""): 2,
        ("failure", True, "Boom"): 1,
        ("failure", False, "Boom"): 4,
    }


def test_error_types_per_circuit_are_capped() -> None:
    """Past MAX_ERROR_TYPES distinct exception types, further ones count as _OTHER."""
    breaker = CircuitBreaker("many", config=Config(failure_threshold=1000), clock=FakeClock())
    kinds = [type(f"Error{i}", (Exception,), {}) for i in range(tally.MAX_ERROR_TYPES + 5)]
    for kind in kinds:
        with pytest.raises(kind):
            breaker.call(_raiser(kind))
    with pytest.raises(kinds[0]):
        breaker.call(_raiser(kinds[0]))  # a type that already has a series keeps it
    counted = calls(breaker)
    assert counted[("failure", False, tally.OTHER)] == 5
    assert counted[("failure", False, "Error0")] == 2
    assert len(counted) == tally.MAX_ERROR_TYPES + 1


def _raiser(kind: type[Exception]) -> Callable[[], None]:
    def fail() -> None:
        raise kind

    return fail


# --- refusals, probes, transitions --------------------------------------------------------------


def _open_breaker(clock: FakeClock, store: Store | None = None, **config: object) -> CircuitBreaker:
    settings: dict[str, object] = {"failure_threshold": 1, "recovery_timeout": 10.0}
    settings.update(config)
    breaker = CircuitBreaker("open", store=store, config=Config(**settings), clock=clock)  # type: ignore[arg-type]
    with pytest.raises(Boom):
        breaker.call(boom)
    assert breaker.state is CircuitState.OPEN
    return breaker


def test_refusals_are_counted_on_every_entry_point() -> None:
    """Each refused call counts one rejection: decorator, fallback, call, guard, async."""
    clock = FakeClock()
    breaker = _open_breaker(clock)
    wrapped = breaker(ok)
    with pytest.raises(CircuitOpenError):
        wrapped()
    with pytest.raises(CircuitOpenError):
        breaker.call(ok)
    with pytest.raises(CircuitOpenError), breaker.guard():
        pass

    async def refused() -> None:
        with pytest.raises(CircuitOpenError):
            await breaker(aok)()
        with pytest.raises(CircuitOpenError):
            await breaker.acall(aok)

    asyncio.run(refused())
    with_fallback = CircuitBreaker(
        "open",
        store=breaker.store,
        config=breaker.config,
        clock=clock,
        on_circuit_open=lambda *, circuit: "fallback",  # noqa: ARG005
    )
    assert with_fallback(ok)() == "fallback"
    assert calls(breaker) == {("failure", False, "Boom"): 1, REJECTED: 5}
    assert calls(with_fallback) == {REJECTED: 1}


def test_probes_and_transitions_of_a_recovery() -> None:
    """A trip and a recovery of three probes: three transitions written, the probes counted."""
    clock = FakeClock()
    breaker = _open_breaker(clock)
    clock.advance(10.0)
    with pytest.raises(Boom):
        breaker.call(boom)  # the first probe fails: open again
    clock.advance(10.0)
    for _ in range(3):
        assert breaker.call(ok) == "ok"
        clock.advance(0.5)
    assert breaker.state is CircuitState.CLOSED
    counts = breaker._tally.read()
    assert dict(counts.probes) == {"success": 3, "failure": 1, "released": 0}
    assert calls(breaker) == {("failure", False, "Boom"): 2, SUCCESS: 3}
    assert {key: n for key, n in counts.transitions.items() if n} == {
        ("closed", "open", True): 1,
        ("open", "half_open", True): 2,
        ("half_open", "open", True): 1,
        ("half_open", "closed", True): 1,
    }


def test_a_released_probe() -> None:
    """A probe that raised an ignored exception is released, and its call counted ignored."""
    clock = FakeClock()
    breaker = _open_breaker(clock, ignored_exceptions=(Ignored,))
    clock.advance(10.0)

    def ignored() -> None:
        raise Ignored

    with pytest.raises(Ignored):
        breaker.call(ignored)
    assert dict(breaker._tally.read().probes) == {"success": 0, "failure": 0, "released": 1}
    assert calls(breaker) == {("failure", False, "Boom"): 1, ("ignored", False, "Ignored"): 1}


def test_a_transition_read_from_the_store_is_not_written_by_this_process() -> None:
    """Another process's trip, read from the store, counts as written_by_this_process=false."""
    clock, store = FakeClock(), MemoryStore()
    config = Config(failure_threshold=1, recovery_timeout=60.0)
    other = CircuitBreaker("shared", store=store, config=config, clock=clock)
    this = CircuitBreaker("shared", store=store, config=config, clock=clock)
    assert this.call(ok) == "ok"  # this process reads the closed record
    with pytest.raises(Boom):
        other.call(boom)
    clock.advance(config.local_cache_max_age)
    with pytest.raises(CircuitOpenError):
        this.call(ok)
    assert dict(this._tally.read().transitions) == {("closed", "open", False): 1}
    assert dict(other._tally.read().transitions) == {("closed", "open", True): 1}


def test_transitions_seen_in_reads_and_writes() -> None:
    """A read counts a transition only for a newer record in another state; an absent record
    reads as closed and older than any; a write in another state is written by this process."""
    t = Tally("pure", Config(), FakeClock().monotonic)

    def record(epoch: int, state: CircuitState) -> Record:
        return Record(state=state, epoch=epoch)

    t.loaded(record(3, CircuitState.CLOSED))  # the first read: no transition, a baseline
    t.loaded(record(4, CircuitState.OPEN))
    t.loaded(record(3, CircuitState.CLOSED))  # a read that raced a newer one: stale
    t.loaded(record(5, CircuitState.OPEN))  # newer, same state
    t.wrote(record(6, CircuitState.HALF_OPEN))
    t.wrote(record(7, CircuitState.HALF_OPEN))  # a write in the same state: no transition
    t.loaded(record(7, CircuitState.HALF_OPEN))  # what we wrote: nothing new
    t.loaded(None)  # the store forgot the record: closed
    t.loaded(record(1, CircuitState.OPEN))  # a new record's epochs start afresh
    assert dict(t.read().transitions) == {
        ("closed", "open", False): 2,
        ("open", "half_open", True): 1,
        ("half_open", "closed", False): 1,
    }


# --- store operations ---------------------------------------------------------------------------


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
        return
    sqlite = SQLiteStore(tmp_path / "breakers.db")
    try:
        yield sqlite
    finally:
        sqlite.close()


def test_store_operations_are_counted_and_timed(store: Store) -> None:
    """Reads and writes are counted by operation and result, each in a duration bucket."""
    clock = FakeClock()
    counting = CountingStore(store)
    breaker = _open_breaker(clock, counting)
    clock.advance(10.0)
    assert breaker.call(ok) == "ok"  # a probe: its claim and its outcome written
    operations = breaker._tally.read().operations
    loads = counting.counts["load"]
    writes = counting.counts["cas"]
    assert loads >= 1
    assert writes >= 3
    assert operations[tally.LOAD, tally.OK] == Durations(loads, 0.0, _first_bucket(loads))
    assert operations[tally.COMPARE_AND_SET, tally.OK] == Durations(
        writes, 0.0, _first_bucket(writes)
    )
    assert set(operations) == {(tally.LOAD, tally.OK), (tally.COMPARE_AND_SET, tally.OK)}


def _first_bucket(n: int) -> tuple[int, ...]:
    """Durations of n operations that took no time on the fake clock."""
    return (n,) + (0,) * len(tally.DURATION_BOUNDS)


@pytest.mark.logs_errors
def test_store_errors_and_lost_writes() -> None:
    """A store that raises counts errors; a write fenced off by another writer counts lost."""
    clock = FakeClock()
    failing = down_store()
    breaker = CircuitBreaker("down", store=failing, clock=clock)
    assert breaker.call(ok) == "ok"
    assert dict(breaker._tally.read().operations)[tally.LOAD, tally.ERROR].count == 1

    store = MemoryStore()
    config = Config(failure_threshold=1)
    first = CircuitBreaker("race", store=store, config=config, clock=clock)
    second = CircuitBreaker("race", store=store, config=config, clock=clock)
    first.call(ok)
    second.call(ok)  # both read the closed record
    with pytest.raises(Boom):
        first.call(boom)  # writes the trip
    with pytest.raises(Boom):
        second.call(boom)  # its trip's compare-and-set finds the record moved on
    operations = second._tally.read().operations
    assert operations[tally.COMPARE_AND_SET, tally.LOST].count == 1


def test_durations_go_to_the_sinks() -> None:
    """Each store operation's duration is handed to every sink registered."""
    seen: list[tuple[str, str, str, float]] = []

    def sink(circuit: str, operation: str, result: str, seconds: float) -> None:
        seen.append((circuit, operation, result, seconds))

    tally.add_duration_sink(sink)
    try:
        CircuitBreaker("sunk", clock=FakeClock()).call(ok)
    finally:
        tally.remove_duration_sink(sink)
    CircuitBreaker("unsunk", clock=FakeClock()).call(ok)
    assert seen == [("sunk", tally.LOAD, tally.OK, 0.0)]


def test_duration_buckets() -> None:
    """A duration is counted in the first bucket whose bound it does not exceed."""
    t = Tally("buckets", Config(), FakeClock().monotonic)
    for seconds in (0.0005, 0.0006, 0.3, 99.0):
        t.operated(tally.LOAD, tally.OK, seconds)
    durations = t.read().operations[tally.LOAD, tally.OK]
    bounds = tally.DURATION_BOUNDS
    expected = [0] * (len(bounds) + 1)
    expected[0] = 1  # 0.0005: at the first bound
    expected[1] = 1  # 0.0006
    expected[bounds.index(0.5)] = 1  # 0.3
    expected[-1] = 1  # beyond the last bound
    assert durations == Durations(4, 0.0005 + 0.0006 + 0.3 + 99.0, tuple(expected))


# --- threads, the registry ----------------------------------------------------------------------

THREADS, CALLS = 8, 2_000


@pytest.mark.parametrize("config", [Config(), RATE_RULE], ids=["default-rule", "rate-rule"])
def test_threads_lose_no_count(config: Config) -> None:
    """8 threads x 2,000 calls (a tenth of them ignored exceptions) are all counted."""
    config = replace(config, ignored_exceptions=(Ignored,))
    breaker = CircuitBreaker("threads", config=config, clock=FakeClock())

    @breaker
    def downstream(i: int) -> int:
        if i % 10 == 0:
            raise Ignored
        return i

    barrier = threading.Barrier(THREADS)

    def work() -> None:
        barrier.wait()
        for i in range(CALLS):
            try:
                downstream(i)
            except Ignored:
                pass

    threads = [threading.Thread(target=work) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls(breaker) == {
        SUCCESS: THREADS * CALLS * 9 // 10,
        ("ignored", False, "Ignored"): THREADS * CALLS // 10,
    }


def test_a_dropped_breaker_leaves_the_registry() -> None:
    """The registry holds breakers weakly: one that is dropped is no longer read."""
    breaker = CircuitBreaker("dropped", clock=FakeClock())
    assert breaker in tally.tracked()
    del breaker
    gc.collect()
    assert all(b.name != "dropped" for b in tally.tracked())


def test_samples_sum_breakers_of_one_name() -> None:
    """Two breakers of one name read as one circuit, their counts summed."""
    store = MemoryStore()
    first = CircuitBreaker("twin", store=store, clock=FakeClock())
    second = CircuitBreaker("twin", store=store, clock=FakeClock())
    first.call(ok)
    second.call(ok)
    second.call(ok)
    (sample,) = [s for s in _sources.samples() if s.name == "twin"]
    assert sample.counts.calls[SUCCESS] == 3
    assert sample.state is CircuitState.CLOSED
    assert sample.rates is None


def test_counts_add_up() -> None:
    """Counts.plus sums every count, and the durations bucket by bucket."""
    one = Durations(1, 0.5, (1, 0))
    a = Counts({SUCCESS: 1}, {("closed", "open", True): 1}, {"success": 1}, {("load", "ok"): one})
    b = Counts({SUCCESS: 2, REJECTED: 1}, {}, {"success": 0}, {("load", "ok"): one})
    total = a.plus(b)
    assert dict(total.calls) == {SUCCESS: 3, REJECTED: 1}
    assert dict(total.transitions) == {("closed", "open", True): 1}
    assert dict(total.probes) == {"success": 1}
    assert dict(total.operations) == {("load", "ok"): Durations(2, 1.0, (2, 0))}


def test_reading_while_threads_call_and_build_breakers() -> None:
    """Scrapes racing calls and new breakers neither fail nor disturb the counts."""
    breaker = CircuitBreaker("raced", clock=FakeClock())
    wrapped = breaker(ok)
    start, stop = threading.Barrier(4), threading.Event()
    errors: list[BaseException] = []
    built: list[CircuitBreaker] = []

    def call() -> None:
        start.wait()
        for _ in range(CALLS):
            wrapped()

    def build() -> None:
        start.wait()
        while not stop.is_set():
            built.append(CircuitBreaker(f"built-{len(built)}", clock=FakeClock()))

    def read() -> None:
        start.wait()
        try:
            while not stop.is_set():
                _sources.samples()
        except BaseException as exc:  # re-raised below
            errors.append(exc)

    callers = [threading.Thread(target=call) for _ in range(2)]
    others = [threading.Thread(target=build), threading.Thread(target=read)]
    for thread in [*callers, *others]:
        thread.start()
    for thread in callers:
        thread.join()
    stop.set()
    for thread in others:
        thread.join()
    assert errors == []
    assert calls(breaker) == {SUCCESS: 2 * CALLS}
    (sample,) = [s for s in _sources.samples() if s.name == "raced"]
    assert sample.counts.calls[SUCCESS] == 2 * CALLS


# --- shadow mode, operator overrides ------------------------------------------------------------


def test_a_shadow_breaker_counts_what_it_would_have_refused() -> None:
    """Shadow mode: after the trip it would have made, calls are made but counted rejected."""
    clock = FakeClock()
    config = Config(failure_threshold=2, recovery_timeout=60.0, mode="shadow")
    breaker = CircuitBreaker("shadow", config=config, clock=clock)
    wrapped = breaker(ok)
    assert wrapped() == "ok"
    for _ in range(2):
        with pytest.raises(Boom):
            breaker.call(boom)
    assert breaker.state is CircuitState.OPEN  # in its private store
    for _ in range(3):
        assert wrapped() == "ok"
    assert breaker.call(ok) == "ok"
    with pytest.raises(Boom):
        breaker.call(boom)
    assert calls(breaker) == {SUCCESS: 1, ("failure", False, "Boom"): 2, REJECTED: 5}
    transitions = dict(breaker._tally.read().transitions)
    assert transitions == {("closed", "open", True): 1}


def test_operator_overrides_and_reset() -> None:
    """Forced open refuses (rejected) and shows in the sample; a reset is a transition written
    by this process."""
    clock = FakeClock()
    breaker = _open_breaker(clock)
    breaker.reset(reason="fixed", actor="ops")
    assert breaker.state is CircuitState.CLOSED
    breaker.force_open(duration=60.0, reason="maintenance", actor="ops")
    with pytest.raises(CircuitOpenError):
        breaker(ok)()
    with pytest.raises(CircuitOpenError):
        breaker.call(ok)
    (sample,) = [s for s in _sources.samples() if s.name == "open"]
    assert sample.override == "forced_open"
    breaker.force_closed(duration=60.0, reason="ride it out", actor="ops")
    assert breaker.call(ok) == "ok"
    (sample,) = [s for s in _sources.samples() if s.name == "open"]
    assert sample.override == "forced_closed"
    clock.advance(60.0)
    (sample,) = [s for s in _sources.samples() if s.name == "open"]
    assert sample.override is None
    assert calls(breaker) == {("failure", False, "Boom"): 1, REJECTED: 2, SUCCESS: 1}
    assert dict(breaker._tally.read().transitions) == {
        ("closed", "open", True): 1,
        ("open", "closed", True): 1,
    }
