"""CircuitBreaker behaviours the mutation run (``make mutate``) showed no test pinned.

Each test forces its situation (a fake clock, a store that fails or interferes on cue) and
pins what a user or the fleet would see go wrong; the shared conftest guard also fails any of
them during which the breaker logged an error it survived.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import pytest

from fleetbreaker import (
    CircuitBreaker,
    CircuitInfo,
    CircuitOpenError,
    CircuitState,
    CircuitTransition,
    Config,
    MemoryStore,
    _switch,
    circuit_breaker,
)
from fleetbreaker._protocol import Record, Route
from fleetbreaker.testing import FakeClock, FaultyStore, RecordingHook, breakers_disabled
from tests.helpers import CountingStore, down_store
from tests.test_breaker import Boom, boom, fail, make, ok


def refused(breaker: CircuitBreaker) -> bool:
    """Whether the breaker refuses a call now (the call never runs when refused)."""
    ran: list[int] = []
    try:
        breaker.call(lambda: ran.append(1))
    except CircuitOpenError:
        assert ran == []
        return True
    assert ran == [1]
    return False


def stored(store: Any) -> Record:
    record: Record | None = store.load("svc")
    assert record is not None
    return record


class ScriptedStore(CountingStore):
    """A store that can run a callback just before a write reaches the store (to make another
    process win the race)."""

    def __init__(self, inner: Any = None) -> None:
        super().__init__(inner)
        self.before_write: Callable[[], None] | None = None

    def compare_and_set(self, name: str, expected_epoch: int | None, record: Record) -> bool:
        interfere, self.before_write = self.before_write, None
        if interfere is not None:
            interfere()
        return super().compare_and_set(name, expected_epoch, record)


# --- construction ----------------------------------------------------------------------------


def test_circuit_breaker_factory_passes_every_argument_through() -> None:
    """circuit_breaker(...) builds a breaker on the given store, config, hooks and clock."""
    store, clock, hook = CountingStore(), FakeClock(), RecordingHook()
    config = Config(failure_threshold=1, recovery_timeout=7)

    def fallback(*_args: object, circuit: CircuitInfo) -> str:
        return f"fallback {circuit.state.value}"

    breaker = circuit_breaker(
        name="payments",
        store=store,
        config=config,
        on_circuit_open=fallback,
        on_transition=hook,
        clock=clock,
    )
    assert breaker.name == "payments"
    assert breaker.store is store
    assert breaker.config is config
    assert breaker.on_circuit_open is fallback
    assert breaker.on_transition is hook
    with pytest.raises(Boom):
        breaker.call(boom)
    record = store.inner.load("payments")  # the trip reached the fleet's store
    assert record is not None
    assert record.state is CircuitState.OPEN
    assert record.updated_at == clock.wall()  # written on the given clock
    assert record.retry_at == clock.wall() + 7
    assert breaker.call(ok) == "fallback open"
    assert hook.pairs() == [("closed", "open")]


def test_defaults_are_a_fresh_config_and_a_private_memory_store() -> None:
    """Without config= or store=, a breaker runs Config() on a MemoryStore of its own."""
    breaker = CircuitBreaker("svc")
    other = CircuitBreaker("svc")
    assert breaker.config == Config()
    assert isinstance(breaker.store, MemoryStore)
    assert breaker.store is not other.store
    threshold = Config().failure_threshold
    assert threshold is not None
    for _ in range(threshold - 1):
        with pytest.raises(Boom):
            breaker.call(boom)
    assert breaker.state is CircuitState.CLOSED
    with pytest.raises(Boom):
        breaker.call(boom)
    assert breaker.state is CircuitState.OPEN
    assert other.call(ok) == "ok"


# --- transitions reported --------------------------------------------------------------------


def test_every_transition_reports_name_states_epoch_time_and_count() -> None:
    """on_transition gets each persisted transition's name, states, epoch, time and count."""
    store, clock, hook = MemoryStore(), FakeClock(), RecordingHook()
    config = Config(failure_threshold=3, recovery_timeout=10, success_threshold=1)
    breaker = CircuitBreaker("orders", store=store, config=config, clock=clock, on_transition=hook)
    for _ in range(3):
        with pytest.raises(Boom):
            breaker.call(boom)
    tripped_at = clock.wall()
    clock.advance(10)
    with pytest.raises(Boom):
        breaker.call(boom)  # a failed probe reopens
    reopened_at = clock.wall()
    clock.advance(10)
    assert breaker.call(ok) == "ok"  # a successful probe closes
    closed_at = clock.wall()
    open_, half, closed = CircuitState.OPEN, CircuitState.HALF_OPEN, CircuitState.CLOSED
    assert hook.transitions == [
        CircuitTransition(
            "orders",
            closed,
            open_,
            epoch=1,
            at=tripped_at,
            failure_count=3,
            rule="consecutive",
            retry_at=tripped_at + 10,
        ),
        CircuitTransition("orders", open_, half, epoch=2, at=reopened_at, failure_count=0),
        CircuitTransition(
            "orders",
            half,
            open_,
            epoch=3,
            at=reopened_at,
            failure_count=3,
            rule="consecutive",
            open_count=1,
            retry_at=reopened_at + 10,
        ),
        CircuitTransition(
            "orders", open_, half, epoch=4, at=closed_at, failure_count=0, open_count=1
        ),
        CircuitTransition("orders", half, closed, epoch=5, at=closed_at, failure_count=0),
    ]


def test_a_write_that_keeps_the_state_reports_nothing() -> None:
    """A probe success short of success_threshold stays half-open: no transition reported."""
    hook = RecordingHook()
    clock = FakeClock()
    breaker = make(clock=clock, on_transition=hook)
    fail(breaker, 3)
    clock.advance(10)
    assert breaker.call(ok) == "ok"
    assert breaker.call(ok) == "ok"
    assert hook.pairs() == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),  # the second claim (half_open -> half_open) is not reported
    ]


# --- counting failures -----------------------------------------------------------------------


def test_a_failure_admitted_before_the_fleet_cycled_is_not_counted_in_the_new_episode() -> None:
    """A call admitted in one closed episode that fails after the circuit tripped and closed
    again does not count towards the new episode's trip."""
    store, clock = MemoryStore(), FakeClock()
    slow, other = make(store, clock), make(store, clock)
    assert slow.call(ok) == "ok"

    def long_call() -> None:
        # While this call runs, the fleet trips and recovers, and this process learns of it.
        fail(other, 3)
        clock.advance(10)
        other.call(ok)
        other.call(ok)
        assert slow.info().epoch == 5  # closed again, a newer episode
        raise Boom("from the old episode")

    with pytest.raises(Boom):
        slow.call(long_call)
    fail(slow, 2)
    assert slow.state is CircuitState.CLOSED  # two failures of this episode, not three
    fail(slow, 1)
    assert slow.state is CircuitState.OPEN


def test_a_failure_admitted_before_a_trip_does_not_count_against_the_open_circuit() -> None:
    """A call admitted while closed that fails after this process saw the trip is not counted
    (and writes nothing)."""
    store, clock = CountingStore(), FakeClock()
    slow, other = make(store, clock), make(store, clock)
    assert slow.call(ok) == "ok"

    def long_call() -> None:
        fail(other, 3)
        assert slow.info().state is CircuitState.OPEN
        raise Boom

    with pytest.raises(Boom):
        slow.call(long_call)
    assert slow.info().failure_count == 3
    assert store.writes == 1


def test_success_restarts_the_run_and_failures_count_again() -> None:
    """After a success the consecutive run is zero and later failures count from one."""
    breaker = make()
    fail(breaker, 2)
    assert breaker.info().failure_count == 2
    assert breaker.call(ok) == "ok"
    assert breaker.info().failure_count == 0
    fail(breaker, 2)
    assert breaker.info().failure_count == 2
    assert breaker.state is CircuitState.CLOSED
    fail(breaker, 1)
    assert breaker.state is CircuitState.OPEN


# --- claims ----------------------------------------------------------------------------------


def test_the_loser_of_a_claim_race_is_refused_while_the_winner_probes() -> None:
    """Two processes claim the same free slot: the one whose write loses does not run a
    second probe beside the winner's."""
    inner, clock = MemoryStore(), FakeClock()
    winner = make(CountingStore(inner), clock)
    loser_store = ScriptedStore(inner)
    loser = make(loser_store, clock)
    fail(winner, 3)
    assert loser.info().state is CircuitState.OPEN  # the loser sees the trip as it happens
    clock.advance(12)  # past the open period and the tripper's reservation
    probes: list[str] = []

    def winner_probe() -> str:
        probes.append("winner")
        assert stored(inner).probe_owner == winner._owner
        return "ok"

    race_outcome: list[str] = []

    def winner_probe_during_race() -> None:
        race_outcome.append(winner.call(winner_probe))

    # The loser reads the free slot, and just before its claim write lands the winner claims.
    loser_store.before_write = winner_probe_during_race
    with pytest.raises(CircuitOpenError):
        loser.call(lambda: probes.append("loser"))
    assert race_outcome == ["ok"]
    assert probes == ["winner"]
    assert loser_store.counts["cas_lost"] == 1
    assert stored(inner).successes == 1  # only the winner's probe was counted


def test_the_loser_of_a_claim_race_is_admitted_when_the_winner_closed_the_circuit() -> None:
    """A claimer whose write lost to a probe that closed the circuit is admitted as a closed
    call, and its failure counts."""
    inner, clock = MemoryStore(), FakeClock()
    config = Config(failure_threshold=2, recovery_timeout=10, success_threshold=1)
    winner = make(CountingStore(inner), clock, config)
    loser_store = ScriptedStore(inner)
    loser = make(loser_store, clock, config)
    fail(winner, 2)
    assert loser.info().state is CircuitState.OPEN
    clock.advance(12)

    def winner_closes_it() -> None:
        assert winner.call(ok) == "ok"

    loser_store.before_write = winner_closes_it
    fail(loser, 1)  # admitted on the closed record the loser re-read, and counted
    assert loser_store.counts["cas_lost"] == 1
    assert stored(inner).state is CircuitState.CLOSED
    assert loser.info().failure_count == 1
    fail(loser, 1)
    assert stored(inner).state is CircuitState.OPEN


def test_a_claimer_whose_reread_finds_the_circuit_closed_is_admitted_and_counted() -> None:
    """A process that routes to claim on a view read a moment ago, and learns from its re-read
    that the fleet closed the circuit, makes its call as a closed call (its failure counts)."""
    store, clock = CountingStore(), FakeClock()
    config = Config(failure_threshold=2, recovery_timeout=10, success_threshold=1)
    late_store = ReadLog(store.inner)
    tripper, late = make(store, clock, config), make(late_store, clock, config)
    fail(tripper, 2)
    assert late.info().state is CircuitState.OPEN  # late sees the trip as it happens
    clock.advance(11.5)  # past the period and the tripper's reservation
    assert late.info().state is CircuitState.OPEN  # late's view: open, due, fresh
    assert tripper.call(ok) == "ok"  # the tripper's probe closes the circuit meanwhile
    clock.advance(0.125)  # late's view is older than a round trip: it re-reads first
    writes = store.writes
    late_store.take()
    fail(late, 1)
    assert late_store.take() == [True]
    assert store.writes == writes  # no claim was attempted on the closed record
    assert late.state is CircuitState.CLOSED
    assert late.info().failure_count == 1


# --- store reads: which are consistent --------------------------------------------------------


class ReadLog(ScriptedStore):
    """Records the ``consistent`` flag of every read."""

    def __init__(self, inner: Any = None) -> None:
        super().__init__(inner)
        self.reads: list[object] = []

    def load(self, name: str, *, consistent: bool = False) -> Record | None:
        self.reads.append(consistent)
        return super().load(name, consistent=consistent)

    def take(self) -> list[object]:
        reads, self.reads = self.reads, []
        return reads


def test_cache_refreshes_read_cheaply_and_decisions_read_consistently() -> None:
    """A cache refresh is an eventually consistent read; info(), ainfo() and the re-read
    before a trip write are consistent reads; a claim on a view read this instant re-reads
    nothing."""
    store, clock = ReadLog(), FakeClock()
    breaker = make(store, clock)
    assert breaker.call(ok) == "ok"
    assert store.take() == [False]  # the cold read
    clock.advance(5)
    assert breaker.call(ok) == "ok"
    assert store.take() == [False]  # a cache refresh
    breaker.info()
    assert store.take() == [True]
    asyncio.run(breaker.ainfo())
    assert store.take() == [True]
    clock.advance(1)
    fail(breaker, 2)  # a failure makes a view older than 0.5 s stale: a cheap refresh
    assert store.take() == [False]
    clock.advance(0.25)
    fail(breaker, 1)  # the view is 0.25 s old: re-read before the trip write
    assert store.take() == [True]
    assert stored(store.inner).state is CircuitState.OPEN
    clock.advance(10)  # the tripper's probe: refresh the stale view, then claim at once
    assert breaker.call(ok) == "ok"
    assert store.take() == [False]
    assert stored(store.inner).state is CircuitState.HALF_OPEN


def test_a_lost_claim_write_is_followed_by_a_consistent_read() -> None:
    """A process whose claim write lost re-reads consistently and routes on what it finds."""
    inner, clock = MemoryStore(), FakeClock()
    winner = make(inner, clock)
    store = ReadLog(inner)
    loser = make(store, clock)
    fail(winner, 3)
    loser.info()
    clock.advance(12)
    store.take()

    def winner_probes() -> None:
        assert winner.call(ok) == "ok"

    store.before_write = winner_probes
    assert refused(loser)
    assert store.take() == [False, True]  # the refresh, then the re-read after the loss
    assert loser.state is CircuitState.HALF_OPEN
    assert loser._view.record == stored(inner)


# --- store backoff ----------------------------------------------------------------------------


def claim_held_by_another(store: Any, clock: FakeClock, probe_timeout: float) -> Record:
    claim = Record(
        state=CircuitState.HALF_OPEN,
        epoch=7,
        probe_owner="another-host:1:abcd",
        probe_expires_at=clock.wall() + probe_timeout,
        updated_at=clock.wall(),
        expires_at=clock.wall() + 10 * probe_timeout,
    )
    assert store.compare_and_set("svc", None, claim)
    return claim


def attempts_at(
    breaker: CircuitBreaker,
    store: FaultyStore,
    clock: FakeClock,
    *,
    until: float,
    step: float = 0.25,
) -> list[float]:
    """Call every ``step`` seconds until ``until`` seconds have passed; the times (from the
    start) of the calls that tried the store."""
    start = clock.monotonic()
    seen: list[float] = []
    tried = store.injected("partition")
    while clock.monotonic() - start <= until:
        with contextlib.suppress(CircuitOpenError):
            breaker.call(ok)
        now = store.injected("partition")
        if now != tried:
            seen.append(clock.monotonic() - start)
            tried = now
        clock.advance(step)
    return seen


def test_a_dead_store_is_retried_after_a_doubling_backoff_from_half_a_second_to_15() -> None:
    """While the store is down, a process watching a claim tries it after 0.5, 1, 2, 4, 8 and
    then every 15 seconds, from the very end of each backoff, never in between."""
    store, clock = down_store(), FakeClock()
    store.heal()
    config = Config(failure_threshold=1, recovery_timeout=10, probe_timeout=120)
    breaker = make(store, clock, config)
    claim_held_by_another(store.inner, clock, probe_timeout=120)
    assert refused(breaker)
    store.partition()
    clock.advance(0.25)  # the half-open view is stale: the next call reads, and fails
    times = attempts_at(breaker, store, clock, until=61)
    assert times == [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 30.5, 45.5, 60.5]


def test_a_dead_store_behind_a_closed_view_is_retried_after_cache_age_plus_backoff() -> None:
    """A healthy-looking process keeps its closed view for the cache age plus the backoff, and
    tries the store again then."""
    store, clock = down_store(), FakeClock()
    breaker = make(store, clock)
    times = attempts_at(breaker, store, clock, until=41)
    # read, then 5 s + 0.5, 5 + 1, 5 + 2, 5 + 4, 5 + 8
    assert times == [0.0, 5.5, 11.5, 18.5, 27.5, 40.5]


def test_info_reads_the_store_even_during_a_backoff() -> None:
    """info()/ainfo() always ask the store, even while calls are served from the local view."""
    store, clock = down_store(), FakeClock()
    sync_breaker, async_breaker = make(store, clock), make(store, clock)

    async def aok() -> str:
        return "ok"

    assert sync_breaker.call(ok) == "ok"  # the read fails: backoff
    assert asyncio.run(async_breaker.acall(aok)) == "ok"
    store.heal()
    fail(make(store, clock), 3)
    assert sync_breaker.call(ok) == "ok"  # served from the kept view
    assert sync_breaker.info().state is CircuitState.OPEN
    assert asyncio.run(async_breaker.ainfo()).state is CircuitState.OPEN


def test_a_forked_child_starts_without_the_parents_backoff_or_pending_work() -> None:
    """What a forked child runs (``_after_fork_in_child``) forgets the parent's backoff, its
    growth and its pending work: the child backs off afresh from 0.5 s."""
    store, clock = down_store(), FakeClock()
    store.heal()
    config = Config(failure_threshold=1, recovery_timeout=10, success_threshold=1)
    breaker = make(store, clock, config)
    fail(breaker, 1)
    store.partition()
    breaker.info()
    breaker.info()  # two failed reads: the parent backs off 1 s, 2 s at the next error
    breaker._after_fork_in_child()  # as os.fork runs it in the child
    breaker.info()  # the child's first store error backs off 0.5 s
    assert attempts_at(breaker, store, clock, until=1) == [0.5]
    store.heal()
    clock.advance(10)

    async def probe() -> str:
        return "probed"

    assert asyncio.run(breaker.acall(probe)) == "probed"
    assert stored(store.inner).state is CircuitState.CLOSED


def test_repr_names_the_circuit_its_state_and_its_store() -> None:
    """repr() shows the circuit's name, the state of this process's view and the store."""
    store = MemoryStore()
    breaker = make(store, config=Config(failure_threshold=1))
    fail(breaker, 1)
    assert repr(breaker) == f"CircuitBreaker('svc', state=open, store={store!r})"


# --- every path passes the call's arguments -------------------------------------------------


def test_every_sync_path_passes_the_arguments() -> None:
    """Cold, hot, probing and bypassed calls all get the caller's positional and keyword
    arguments."""
    clock = FakeClock()
    breaker = make(clock=clock, config=Config(failure_threshold=1, recovery_timeout=10))
    seen: list[tuple[object, ...]] = []

    def record(*args: object, **kwargs: object) -> str:
        seen.append((args, kwargs))
        return "ok"

    assert breaker.call(record, 1, k=2) == "ok"  # cold: the slow path
    assert breaker.call(record, 3, k=4) == "ok"  # the hot path
    fail(breaker, 1)
    clock.advance(10)
    assert breaker.call(record, 5, k=6) == "ok"  # a probe
    fail(breaker, 1)  # the probe closed it; trip it again
    with breakers_disabled():
        assert breaker.call(record, 7, k=8) == "ok"  # an open circuit, bypassed
    assert seen == [((1,), {"k": 2}), ((3,), {"k": 4}), ((5,), {"k": 6}), ((7,), {"k": 8})]


def test_every_async_path_passes_the_arguments() -> None:
    """The same for acall: cold, hot, probing and bypassed calls get every argument."""
    clock = FakeClock()
    breaker = make(clock=clock, config=Config(failure_threshold=1, recovery_timeout=10))
    seen: list[tuple[object, ...]] = []

    async def record(*args: object, **kwargs: object) -> str:
        seen.append((args, kwargs))
        return "ok"

    async def scenario() -> None:
        assert await breaker.acall(record, 1, k=2) == "ok"
        assert await breaker.acall(record, 3, k=4) == "ok"
        with pytest.raises(Boom):
            await breaker.acall(aboom)
        clock.advance(10)
        assert await breaker.acall(record, 5, k=6) == "ok"
        with pytest.raises(Boom):
            await breaker.acall(aboom)
        with breakers_disabled():
            assert await breaker.acall(record, 7, k=8) == "ok"

    asyncio.run(scenario())
    assert seen == [((1,), {"k": 2}), ((3,), {"k": 4}), ((5,), {"k": 6}), ((7,), {"k": 8})]


async def aboom() -> None:
    raise Boom


# --- failing open ------------------------------------------------------------------------------


class GarbageOnce(CountingStore):
    """Returns something that is not a record from its first read (a broken adapter)."""

    def __init__(self) -> None:
        super().__init__()
        self.garbage = 1

    def load(self, name: str, *, consistent: bool = False) -> Record | None:
        if self.garbage:
            self.garbage -= 1
            return "not a record"  # type: ignore[return-value]
        return super().load(name, consistent=consistent)


@pytest.mark.logs_errors  # the failed admission is logged on purpose
@pytest.mark.parametrize("path", ["sync", "async"])
def test_a_call_let_through_by_a_failed_admission_counts_as_a_closed_call(path: str) -> None:
    """When admission itself fails, the call goes ahead on the current view, and its failure
    is counted like any closed-path failure."""
    store = GarbageOnce()
    breaker = make(store, config=Config(failure_threshold=1))
    if path == "sync":
        fail(breaker, 1)
    else:
        with pytest.raises(Boom):
            asyncio.run(breaker.acall(aboom))
    assert stored(store.inner).state is CircuitState.OPEN


def test_a_view_refreshed_while_the_call_looked_is_routed_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A call that found the view stale, when another caller refreshed it meanwhile, is
    admitted on the fresh closed view (not refused)."""
    clock = FakeClock()
    breaker = make(clock=clock)
    assert breaker.call(ok) == "ok"
    clock.advance(5)  # stale
    real = _switch.bypassed
    refreshed: list[int] = []

    def refresh_meanwhile() -> bool:
        if not refreshed:
            refreshed.append(1)
            breaker.info()  # another thread's refresh lands now
        return real()

    monkeypatch.setattr(_switch, "bypassed", refresh_meanwhile)
    assert breaker.call(ok) == "ok"
    assert refreshed == [1]


# --- what info() shows --------------------------------------------------------------------------


def test_info_shows_an_open_record_until_this_processs_own_period_at_most() -> None:
    """A record written with a longer recovery_timeout shows the retry time this process will
    wait for; a record written with a retry time before its write time shows it as stored."""
    store, clock = MemoryStore(), FakeClock()
    slow_writer = CircuitBreaker(
        "svc", store=store, clock=clock, config=Config(failure_threshold=1, recovery_timeout=999)
    )
    reader = make(store, clock, Config(failure_threshold=1, recovery_timeout=30))
    with pytest.raises(Boom):
        slow_writer.call(boom)
    info = reader.info()
    assert info.opened_at is not None
    assert info.retry_at == info.opened_at + 30
    odd = Record(
        state=CircuitState.OPEN,
        epoch=2,
        opened_at=clock.wall(),
        retry_at=clock.wall() - 5,
        updated_at=clock.wall(),
        expires_at=clock.wall() + 1000,
    )
    assert store.compare_and_set("svc", 1, odd)
    assert reader.info().retry_at == clock.wall() - 5


# --- trips ---------------------------------------------------------------------------------------


def test_a_trip_on_an_older_view_rereads_and_still_writes_over_no_record() -> None:
    """A trip decided on a view older than a round trip re-reads; finding no record (or the
    same closed one) it writes the trip."""
    store, clock = CountingStore(), FakeClock()
    breaker = make(store, clock, Config(failure_threshold=1, recovery_timeout=10))
    assert breaker.call(ok) == "ok"  # reads: no record
    clock.advance(1)
    fail(breaker, 1)
    record = stored(store.inner)
    assert (record.state, record.epoch) == (CircuitState.OPEN, 1)


def test_a_trip_on_an_older_view_rereads_and_still_writes_over_the_same_closed_record() -> None:
    """The same over a stored closed record of the episode the view shows."""
    store, clock = CountingStore(), FakeClock()
    config = Config(failure_threshold=1, recovery_timeout=10, success_threshold=1)
    breaker = make(store, clock, config)
    fail(breaker, 1)
    clock.advance(10)
    assert breaker.call(ok) == "ok"  # closed again at epoch 3
    clock.advance(1)
    fail(breaker, 1)
    record = stored(store.inner)
    assert (record.state, record.epoch) == (CircuitState.OPEN, 4)


def test_a_trip_on_an_outdated_closed_episode_adopts_the_fleets_record() -> None:
    """A trip decided on a closed episode the fleet has left is not written: the newer
    record is adopted (epochs never go back)."""
    store, clock = CountingStore(), FakeClock()
    config = Config(
        failure_threshold=1, recovery_timeout=10, success_threshold=1, local_cache_max_age=60
    )
    slow, other = make(store, clock, config), make(store, clock, config)
    assert slow.call(ok) == "ok"  # epoch 0, fresh for a minute
    fail(other, 1)
    clock.advance(10)
    assert other.call(ok) == "ok"  # the fleet is closed again, at epoch 3
    writes = store.writes
    fail(slow, 1)
    assert store.writes == writes
    record = stored(store.inner)
    assert (record.state, record.epoch) == (CircuitState.CLOSED, 3)
    assert slow.state is CircuitState.CLOSED


def test_a_trip_on_a_view_read_this_instant_is_written_without_a_reread() -> None:
    """No re-read when the view is younger than three store round trips."""
    store, clock = CountingStore(), FakeClock()
    breaker = make(store, clock, Config(failure_threshold=1))
    breaker.info()
    loads = store.counts["load"]
    fail(breaker, 1)
    assert store.counts["load"] == loads
    assert stored(store.inner).state is CircuitState.OPEN


def test_a_lost_trip_write_is_followed_by_one_consistent_read() -> None:
    """A process whose trip write loses re-reads consistently and adopts the fleet's record."""
    inner, clock = MemoryStore(), FakeClock()
    store = ReadLog(inner)
    config = Config(failure_threshold=1)
    breaker, other = make(store, clock, config), make(inner, clock, config)
    breaker.info()
    other.info()
    store.take()

    def other_trips_first() -> None:
        fail(other, 1)

    store.before_write = other_trips_first
    fail(breaker, 1)
    assert store.counts["cas_lost"] == 1
    assert store.take() == [True]
    assert breaker._view.record == stored(inner)


def test_a_trip_that_could_not_be_written_holds_through_every_reread() -> None:
    """A trip whose write failed protects the downstream from this process until its retry
    time, however often the store (back, still closed) is re-read meanwhile."""
    counting, clock = CountingStore(), FakeClock()
    store = FaultyStore(counting)
    config = Config(failure_threshold=1, recovery_timeout=10, local_cache_max_age=1)
    breaker = make(store, clock, config)
    assert breaker.call(ok) == "ok"
    store.fail_next(operation="write")
    fail(breaker, 1)
    assert store.injected("error", "write") == 1  # the trip's write failed
    loads = counting.counts["load"]
    for _ in range(39):
        clock.advance(0.25)
        assert refused(breaker)
    assert counting.counts["load"] - loads >= 5  # re-read about once a second
    clock.advance(0.25)
    assert breaker.call(ok) == "ok"  # retry time: the store's closed record routes again


def test_a_trip_that_could_not_be_written_holds_through_a_failed_reread() -> None:
    """The same when a re-read fails in between (the view is kept through the backoff)."""
    store, clock = FaultyStore(CountingStore()), FakeClock()
    config = Config(failure_threshold=1, recovery_timeout=10, local_cache_max_age=1)
    breaker = make(store, clock, config)
    assert breaker.call(ok) == "ok"
    store.fail_next(operation="write")
    fail(breaker, 1)
    store.fail_next(operation="load")
    clock.advance(1)
    assert refused(breaker)  # the re-read fails
    assert store.injected("error") == 2
    for _ in range(30):
        clock.advance(0.25)
        assert refused(breaker)


# --- counting failures, continued --------------------------------------------------------------


def test_a_failure_from_a_superseded_view_touches_no_store() -> None:
    """A call admitted before this process saw the fleet trip (or trip and close again) fails:
    nothing is counted, re-read or written, even when its episode had failures before."""
    store, clock = CountingStore(), FakeClock()
    config = Config(failure_threshold=3, recovery_timeout=10, success_threshold=1)
    breaker, other = make(store, clock, config), make(store, clock, config)
    fail(breaker, 2)

    def trip_meanwhile() -> None:
        fail(other, 3)
        assert breaker.info().state is CircuitState.OPEN
        raise Boom

    with pytest.raises(Boom):
        breaker.call(trip_meanwhile)
    clock.advance(10)
    assert other.call(ok) == "ok"  # closed again
    assert breaker.info().state is CircuitState.CLOSED
    fail(breaker, 2)

    def cycle_meanwhile() -> None:
        fail(other, 3)
        clock.advance(10)
        assert other.call(ok) == "ok"
        assert breaker.info().state is CircuitState.CLOSED
        raise Boom

    loads, writes = store.counts["load"], store.writes
    with pytest.raises(Boom):
        breaker.call(cycle_meanwhile)
    assert store.counts["load"] == loads + 2  # other's refresh and breaker's info() inside
    assert store.writes == writes + 3  # other's trip, claim and close
    assert breaker.info().failure_count == 0


def test_a_failure_never_extends_a_view_fresher_than_half_a_second() -> None:
    """With a cache age under 0.5 s, a failure leaves the view's freshness alone."""
    store, clock = CountingStore(), FakeClock()
    breaker = make(store, clock, Config(local_cache_max_age=0.25))
    assert breaker.call(ok) == "ok"
    fail(breaker, 1)
    loads = store.counts["load"]
    clock.advance(0.25)
    assert breaker.call(ok) == "ok"
    assert store.counts["load"] == loads + 1


@pytest.mark.parametrize("path", ["sync", "async"])
def test_a_view_is_reread_at_exactly_its_cache_age(path: str) -> None:
    """At local_cache_max_age exactly, the next call re-reads (the hot path ends there)."""
    store, clock = CountingStore(), FakeClock()
    breaker = make(store, clock)

    async def aok() -> str:
        return "ok"

    def call() -> None:
        if path == "sync":
            assert breaker.call(ok) == "ok"
        else:
            assert asyncio.run(breaker.acall(aok)) == "ok"

    call()
    clock.advance(5)
    call()
    assert store.counts["load"] == 2


def test_a_fenced_late_probe_rereads_the_store_consistently() -> None:
    """A probe whose claim was taken over while it ran re-reads once its outcome is fenced."""
    inner, clock = MemoryStore(), FakeClock()
    store = ReadLog(inner)
    config = Config(failure_threshold=1, recovery_timeout=10, success_threshold=2, probe_timeout=2)
    slow, other = make(store, clock, config), make(inner, clock, config)
    fail(slow, 1)
    other.info()
    clock.advance(12)

    def overdue_probe() -> str:
        assert other.info().probe_in_flight  # other sees the claim ...
        clock.advance(3)  # ... for longer than probe_timeout
        assert other.call(ok) == "ok"  # takes over the expired claim
        store.take()
        return "late"

    assert slow.call(overdue_probe) == "late"
    assert store.counts["cas_lost"] == 1
    assert store.take() == [True]
    assert slow._view.record == stored(inner)


def test_a_claimer_whose_reread_finds_a_live_claim_is_refused() -> None:
    """A process that routes to claim on a view read a moment ago, and learns from its re-read
    that another process is probing, is refused without writing."""
    store, clock = CountingStore(), FakeClock()
    config = Config(failure_threshold=1, recovery_timeout=10, success_threshold=1)
    tripper, late = make(store, clock, config), make(store, clock, config)
    fail(tripper, 1)
    late.info()
    clock.advance(11.5)
    late.info()  # open, due, fresh

    def probe() -> str:
        clock.advance(0.125)
        writes = store.writes
        assert refused(late)
        assert store.writes == writes
        return "ok"

    assert tripper.call(probe) == "ok"


def test_the_store_is_written_again_from_the_very_end_of_a_backoff() -> None:
    """A trip decided exactly when the backoff ends is written to the store."""
    store, clock = down_store(), FakeClock()
    breaker = make(store, clock, Config(failure_threshold=1))
    assert breaker.call(ok) == "ok"  # the read fails: 0.5 s backoff
    store.heal()
    clock.advance(0.5)
    fail(breaker, 1)
    assert stored(store.inner).state is CircuitState.OPEN


class SlowStore(CountingStore):
    """Each operation takes ``delay`` seconds of the fake clock."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.clock = clock
        self.delay = 0.0

    def load(self, name: str, *, consistent: bool = False) -> Record | None:
        self.clock.advance(self.delay)
        return super().load(name, consistent=consistent)


@pytest.mark.parametrize(("age", "rereads"), [(1.25, False), (1.5, True)])
def test_a_trip_rereads_a_view_older_than_three_smoothed_round_trips(
    age: float, rereads: bool
) -> None:
    """Round trips of 0.5 s then 0.25 s smooth to 0.45 s: a trip re-reads a view older than
    1.35 s before writing, and writes on a younger one at once."""
    clock = FakeClock()
    store = SlowStore(clock)
    breaker = make(store, clock, Config(failure_threshold=1))
    store.delay = 0.5
    assert breaker.call(ok) == "ok"
    store.delay = 0.25
    breaker.info()
    store.delay = 0.0
    clock.advance(age)
    loads = store.counts["load"]
    fail(breaker, 1)
    assert store.counts["load"] - loads == (1 if rereads else 0)
    assert stored(store.inner).state is CircuitState.OPEN


def test_an_open_view_is_trusted_until_its_period_ends_and_not_longer() -> None:
    """A process that saw a trip re-reads once a cache period, then exactly at the end of the
    open period, trusts that read for half_open_refresh, and so learns of a close at once."""
    inner, clock = MemoryStore(), FakeClock()
    config = Config(
        failure_threshold=1, recovery_timeout=9, success_threshold=1, local_cache_max_age=4
    )
    tripper = make(inner, clock, config)
    store = CountingStore(inner)
    watcher = make(store, clock, config)
    fail(tripper, 1)
    watcher.info()
    loads = store.counts["load"]
    reads_at: list[float] = []
    for step in range(37):  # up to 9 s, every 0.25 s
        assert refused(watcher)
        if store.counts["load"] != loads:
            loads = store.counts["load"]
            reads_at.append(step * 0.25)
        if step < 36:
            clock.advance(0.25)
    assert reads_at == [4.0, 8.0, 9.0]
    clock.advance(0.125)  # the tripper's reservation is not over
    assert refused(watcher)  # on the read made at 9 s, still fresh
    assert store.counts["load"] == loads
    assert tripper.call(ok) == "ok"  # the tripper probes and closes
    clock.advance(0.125)
    assert watcher.call(ok) == "ok"  # the watcher's 9 s read is stale: it learns at once


def test_a_claim_routes_again_on_a_view_a_sibling_installed_meanwhile() -> None:
    """A thread about to claim whose process learned of a newer record meanwhile (another
    thread read it, or claimed) routes on that record: no write on the stale one, no call."""
    from fleetbreaker import _protocol as protocol

    store, clock = CountingStore(), FakeClock()
    config = Config(failure_threshold=1, recovery_timeout=10, success_threshold=1)
    breaker = make(store, clock, config)
    fail(breaker, 1)
    clock.advance(config.recovery_timeout)  # due: the slot is reserved for this process
    tripped = store.inner.load("svc")
    assert tripped is not None
    taken = protocol.claim(
        tripped, now=tripped.updated_at + 11, elapsed=11.0, owner="another process", config=config
    )
    assert taken is not None
    routes: list[object] = []
    route = breaker._route

    def route_then_learn(view: Any) -> Any:
        where = route(view)
        routes.append(where)
        if len(routes) == 1:  # routed to claim; meanwhile another process claims, and a
            # sibling thread of ours reads that claim and installs it
            assert where is Route.CLAIM
            assert store.inner.compare_and_set("svc", tripped.epoch, taken)
            breaker._install(taken, clock.monotonic())
        return where

    breaker._route = route_then_learn  # type: ignore[method-assign]
    writes, ran = store.writes, []
    with pytest.raises(CircuitOpenError):
        breaker.call(lambda: ran.append(1))
    assert ran == []
    assert store.writes == writes  # no claim written over the stale record
    assert breaker.state is CircuitState.HALF_OPEN
