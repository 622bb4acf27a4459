"""CircuitBreaker behaviour on one thread, driven by a fake clock."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

from fleetbreaker import (
    CircuitBreaker,
    CircuitInfo,
    CircuitOpenError,
    CircuitState,
    Config,
    ConfigError,
    MemoryStore,
    circuit_breaker,
)
from fleetbreaker._protocol import Record
from fleetbreaker.testing import FakeClock, RecordingHook
from tests.helpers import CountingStore, counts_of, down_store

CONFIG = Config(
    failure_threshold=3, recovery_timeout=10, success_threshold=2, local_cache_max_age=5
)


class Boom(Exception):
    pass


def boom() -> None:
    raise Boom("downstream failed")


def ok() -> str:
    return "ok"


def make(
    store: Any = None, clock: FakeClock | None = None, config: Config = CONFIG, **kw: Any
) -> CircuitBreaker:
    return CircuitBreaker(
        "svc", store=store or MemoryStore(), config=config, clock=clock or FakeClock(), **kw
    )


def fail(breaker: CircuitBreaker, times: int, fn: Callable[[], None] = boom) -> None:
    for _ in range(times):
        with pytest.raises(Boom):
            breaker.call(fn)


def stored(store: Any, name: str = "svc") -> Record | None:
    record: Record | None = store.load(name)
    return record


def test_healthy_path_writes_nothing_and_reads_once_per_cache_period() -> None:
    """Closed and healthy: zero writes, one read per local_cache_max_age."""
    store, clock = CountingStore(), FakeClock()
    breaker = make(store, clock)
    for _period in range(4):
        for _ in range(500):
            assert breaker.call(ok) == "ok"
        clock.advance(5.0)
    assert store.writes == 0
    assert store.counts["load"] == 4


def test_cold_process_reads_before_its_first_call() -> None:
    """A new process learns an existing trip before it routes its first call."""
    store, clock = MemoryStore(), FakeClock()
    fail(make(store, clock), 3)
    newcomer = make(store, clock)
    calls = []
    with pytest.raises(CircuitOpenError):
        newcomer.call(lambda: calls.append(1))
    assert calls == []


def test_trips_after_consecutive_failures_and_short_circuits() -> None:
    """failure_threshold consecutive failures open the circuit; then calls are refused."""
    store, clock, hook = CountingStore(), FakeClock(), RecordingHook()
    breaker = make(store, clock, on_transition=hook)
    fail(breaker, 3)
    with pytest.raises(CircuitOpenError) as refused:
        breaker.call(ok)
    info = refused.value.circuit
    assert (info.name, info.state, info.failure_count) == ("svc", CircuitState.OPEN, 3)
    assert str(refused.value).startswith("circuit 'svc' is open: call not attempted (next probe")
    assert info.retry_at == pytest.approx(clock.wall() + 10)
    assert hook.pairs() == [("closed", "open")]
    assert store.writes == 1


def test_success_resets_the_consecutive_count() -> None:
    """A success between failures restarts the count."""
    breaker = make()
    for _ in range(3):
        fail(breaker, 2)
        breaker.call(ok)
    assert breaker.state is CircuitState.CLOSED


def test_counted_failure_is_reraised_unchanged() -> None:
    """The caller gets its own exception object back, traceback intact."""
    breaker = make()
    original = Boom("mine")

    def raise_it() -> None:
        raise original

    for _ in range(3):
        with pytest.raises(Boom) as caught:
            breaker.call(raise_it)
        assert caught.value is original
        assert caught.traceback[-1].name == "raise_it"


def test_fallback_gets_the_call_arguments_and_the_circuit() -> None:
    """on_circuit_open receives the protected call's args plus circuit=CircuitInfo."""
    seen: list[tuple[Any, ...]] = []

    def fallback(*args: Any, circuit: CircuitInfo, **kwargs: Any) -> str:
        seen.append((args, kwargs, circuit.state))
        return "buffered"

    breaker = make(on_circuit_open=fallback)

    @breaker
    def charge(order: int, *, amount: int) -> str:
        raise Boom

    for _ in range(3):
        with pytest.raises(Boom):
            charge(1, amount=5)
    assert charge(2, amount=7) == "buffered"
    assert seen == [((2,), {"amount": 7}, CircuitState.OPEN)]


def test_ignored_exceptions_pass_through_without_counting() -> None:
    """An ignored exception propagates untouched and never trips."""
    breaker = make(config=Config(failure_threshold=2, ignored_exceptions=(KeyError,)))

    def missing() -> None:
        raise KeyError("k")

    for _ in range(5):
        with pytest.raises(KeyError):
            breaker.call(missing)
    assert breaker.state is CircuitState.CLOSED


def test_handled_exceptions_allowlist() -> None:
    """With handled_exceptions only those types count."""
    breaker = make(config=Config(failure_threshold=2, handled_exceptions=(TimeoutError,)))
    fail(breaker, 5)
    assert breaker.state is CircuitState.CLOSED

    def slow() -> None:
        raise TimeoutError

    for _ in range(2):
        with pytest.raises(TimeoutError):
            breaker.call(slow)
    assert breaker.state is CircuitState.OPEN


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit, GeneratorExit])
def test_base_exceptions_never_count(exc_type: type[BaseException]) -> None:
    """KeyboardInterrupt, SystemExit and friends are not downstream failures."""
    breaker = make()

    def interrupted() -> None:
        raise exc_type

    for _ in range(5):
        with pytest.raises(exc_type):
            breaker.call(interrupted)
    assert breaker.state is CircuitState.CLOSED


def opened_and_due(
    store: Any = None, clock: FakeClock | None = None, **kw: Any
) -> tuple[CircuitBreaker, Any, FakeClock]:
    store = store or CountingStore()
    clock = clock or FakeClock()
    breaker = make(store, clock, **kw)
    fail(breaker, 3)
    clock.advance(10)
    return breaker, store, clock


@pytest.mark.parametrize(
    ("exc", "counts"),
    [(KeyError("ignored"), False), (KeyboardInterrupt(), False), (Boom(), True)],
    ids=["ignored", "interrupt", "counted"],
)
def test_probe_outcomes(exc: BaseException, counts: bool) -> None:
    """A probe ended by a counted failure reopens; by anything else it just frees the slot."""
    breaker, store, _clock = opened_and_due(
        config=Config(failure_threshold=3, recovery_timeout=10, ignored_exceptions=(KeyError,))
    )

    def probe() -> None:
        raise exc

    with pytest.raises(type(exc)):
        breaker.call(probe)
    record = stored(store)
    assert record is not None
    if counts:
        assert record.state is CircuitState.OPEN
    else:
        assert (record.state, record.probe_owner, record.successes) == (
            CircuitState.HALF_OPEN,
            None,
            0,
        )
        assert breaker.call(ok) == "ok"  # the freed slot is claimable at once


def test_recovery_takes_success_threshold_probes() -> None:
    """After recovery_timeout, success_threshold successful probes close the circuit."""
    hook = RecordingHook()
    breaker, store, _clock = opened_and_due(on_transition=hook)
    assert breaker.call(ok) == "ok"
    assert stored(store).state is CircuitState.HALF_OPEN  # type: ignore[union-attr]
    assert breaker.call(ok) == "ok"
    assert stored(store).state is CircuitState.CLOSED  # type: ignore[union-attr]
    assert hook.pairs() == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]


def test_failed_probe_reopens_and_reports_it() -> None:
    """A failing probe reopens the circuit for another recovery_timeout."""
    hook = RecordingHook()
    breaker, store, clock = opened_and_due(on_transition=hook)
    fail(breaker, 1)
    record = stored(store)
    assert record is not None
    assert (record.state, record.retry_at) == (CircuitState.OPEN, pytest.approx(clock.wall() + 10))
    assert hook.pairs()[-1] == ("half_open", "open")


@pytest.mark.logs_errors  # the hook's exception is logged on purpose
def test_hook_exceptions_are_logged_and_swallowed(caplog: pytest.LogCaptureFixture) -> None:
    """A broken on_transition hook never breaks the call that triggered it."""

    def broken(_t: object) -> None:
        raise RuntimeError("metrics down")

    breaker = make(on_transition=broken)
    with caplog.at_level(logging.ERROR, logger="fleetbreaker"):
        fail(breaker, 3)
    assert breaker.state is CircuitState.OPEN
    assert "on_transition hook raised" in caplog.text


def test_two_breakers_share_state_like_two_processes() -> None:
    """A trip by one breaker reaches another on the same store within its cache period."""
    store, clock = MemoryStore(), FakeClock()
    a, b = make(store, clock), make(store, clock)
    assert b.call(ok) == "ok"
    fail(a, 3)
    assert b.call(ok) == "ok"  # b's cached view is still fresh
    clock.advance(5)
    with pytest.raises(CircuitOpenError):
        b.call(ok)


def test_failing_process_checks_the_fleet_sooner() -> None:
    """After a failure, a view older than 0.5 s is re-read before the next call."""
    store, clock = MemoryStore(), FakeClock()
    a, b = make(store, clock), make(store, clock)
    b.call(ok)
    fail(a, 3)
    clock.advance(0.6)
    fail(b, 1)  # b's view is 0.6 s old: this failure makes the next call re-read
    with pytest.raises(CircuitOpenError):
        b.call(ok)


@pytest.mark.parametrize("refresh", [0.25, 2.0], ids=["default", "slower"])
def test_half_open_views_are_refreshed_every_half_open_refresh(refresh: float) -> None:
    """A process watching a half-open circuit learns of the close within half_open_refresh."""
    store, clock = MemoryStore(), FakeClock()
    config = Config(
        failure_threshold=3, recovery_timeout=10, success_threshold=2, half_open_refresh=refresh
    )
    a, b = make(store, clock, config), make(store, clock, config)
    fail(a, 3)
    clock.advance(10)
    a.call(ok)  # first probe succeeds: half-open, slot free
    gate: list[str] = []

    def hold() -> str:
        # While a's second probe runs, b sees the claim and is refused.
        with pytest.raises(CircuitOpenError):
            b.call(ok)
        gate.append("refused")
        return "ok"

    a.call(hold)
    assert gate == ["refused"]
    assert stored(store).state is CircuitState.CLOSED  # type: ignore[union-attr]
    clock.advance(refresh - 0.01)
    with pytest.raises(CircuitOpenError):
        b.call(ok)  # b's view (claimed) is younger than half_open_refresh
    clock.advance(0.01)
    assert b.call(ok) == "ok"


def test_open_view_is_reread_when_it_could_change() -> None:
    """An open view is trusted until retry_at (or the cache age) and re-read then."""
    store, clock = CountingStore(), FakeClock()
    breaker = make(
        store, clock, config=Config(failure_threshold=1, recovery_timeout=3, local_cache_max_age=5)
    )
    fail(breaker, 1)
    loads = store.counts["load"]
    for _ in range(100):
        with pytest.raises(CircuitOpenError):
            breaker.call(ok)
    clock.advance(2.9)
    with pytest.raises(CircuitOpenError):
        breaker.call(ok)
    assert store.counts["load"] == loads
    clock.advance(0.1)
    assert breaker.call(ok) == "ok"  # due: re-read, claimed, probed


def test_new_closed_episode_restarts_the_failure_count() -> None:
    """Failures counted before the fleet cycled the circuit do not carry over."""
    store, clock = MemoryStore(), FakeClock()
    a, b = make(store, clock), make(store, clock)
    fail(a, 2)
    fail(b, 3)
    clock.advance(10)
    b.call(ok)
    b.call(ok)  # closed again, at a newer epoch
    clock.advance(5)
    fail(a, 2)
    assert a.state is CircuitState.CLOSED
    fail(a, 1)
    assert a.state is CircuitState.OPEN


def test_stale_view_is_reread_before_a_trip_write() -> None:
    """A process whose view is stale re-reads before writing and does not write twice."""
    store, clock = CountingStore(), FakeClock()
    a, b = make(store, clock), make(store, clock)
    b.call(ok)
    fail(a, 3)
    writes = store.writes
    clock.advance(0.1)
    fail(b, 3)
    assert store.writes == writes
    assert store.counts["cas_lost"] == 0
    assert b.state is CircuitState.OPEN


def test_store_down_fails_open_and_backs_off() -> None:
    """A dead store never reaches the caller and is touched once per backoff period."""
    store, clock = down_store(), FakeClock()
    breaker = make(store, clock)
    results = []
    for _ in range(1000):
        results.append(breaker.call(ok))
        clock.advance(0.001)
    assert results == ["ok"] * 1000
    assert store.injected("partition", "load") <= 2  # 1 s of calls: backoff 0.5 s, then 1 s


def test_local_trip_protects_while_the_store_is_down() -> None:
    """A trip that cannot be persisted still stops this process calling until retry_at."""
    store, clock = down_store(), FakeClock()
    breaker = make(store, clock)
    fail(breaker, 3)
    calls = []
    for _ in range(50):
        with pytest.raises(CircuitOpenError):
            breaker.call(lambda: calls.append(1))
        clock.advance(0.1)
    assert calls == []
    clock.advance(5.1)
    assert breaker.call(ok) == "ok"  # past retry_at: a local probe runs


def test_store_back_after_outage_shares_state_again() -> None:
    """When the store returns, the breaker writes and reads it again."""
    store, clock = down_store(), FakeClock()
    breaker = make(store, clock)
    breaker.call(ok)
    store.heal()
    clock.advance(20)
    breaker.call(ok)
    fail(breaker, 3)
    assert stored(store.inner).state is CircuitState.OPEN  # type: ignore[union-attr]


def test_corrupt_record_is_logged_and_overwritten(caplog: pytest.LogCaptureFixture) -> None:
    """An unreadable record reads as closed and the next trip replaces it."""
    store = MemoryStore()
    store._put_raw("svc", 4, "{{{", 4e9)
    breaker = make(store)
    with caplog.at_level(logging.WARNING, logger="fleetbreaker"):
        assert breaker.call(ok) == "ok"
    assert "unreadable record" in caplog.text
    fail(breaker, 3)
    record = stored(store)
    assert record is not None
    assert (record.state, record.epoch) == (CircuitState.OPEN, 5)


def test_disabled_by_environment(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """FLEETBREAKER_DISABLED=true bypasses the breaker entirely and warns once."""
    from fleetbreaker import _switch

    monkeypatch.setenv("FLEETBREAKER_DISABLED", "true")
    monkeypatch.setattr(_switch._state, "warned", False)
    store = CountingStore()
    with caplog.at_level(logging.WARNING, logger="fleetbreaker"):
        breaker = make(store, config=Config(failure_threshold=1))
        other = make(store)
        fail(breaker, 5)
        fail(other, 5)
        with breaker.guard():
            pass
        assert breaker(ok)() == "ok"
    assert store.counts == {}
    assert caplog.text.count("FLEETBREAKER_DISABLED") == 1


def test_environment_reaches_breakers_that_already_exist(monkeypatch: pytest.MonkeyPatch) -> None:
    """Setting FLEETBREAKER_DISABLED after a breaker is warm (or open) takes effect at once."""
    monkeypatch.delenv("FLEETBREAKER_DISABLED", raising=False)
    store = CountingStore()
    warm, tripped = make(store), make(CountingStore(), config=Config(failure_threshold=1))
    assert warm.call(ok) == "ok"
    fail(tripped, 1)
    assert tripped.state is CircuitState.OPEN
    before = dict(store.counts)
    monkeypatch.setenv("FLEETBREAKER_DISABLED", "1")
    fail(warm, 10)  # would trip at 3
    assert tripped.call(ok) == "ok"  # an open circuit lets calls through too
    assert store.counts == before
    monkeypatch.delenv("FLEETBREAKER_DISABLED")
    with pytest.raises(CircuitOpenError):
        tripped.call(ok)


def test_testing_switch_is_immediate_scoped_and_nests(monkeypatch: pytest.MonkeyPatch) -> None:
    """breakers_disabled() bypasses existing breakers inside the block only, and nests."""
    from fleetbreaker.testing import breakers_disabled

    monkeypatch.delenv("FLEETBREAKER_DISABLED", raising=False)
    store = CountingStore()
    breaker = make(store, config=Config(failure_threshold=1))
    assert breaker.call(ok) == "ok"
    with breakers_disabled():
        fail(breaker, 3)
        assert breaker.state is CircuitState.CLOSED
        with breakers_disabled(disabled=False):
            fail(breaker, 1)
            assert breaker.state is CircuitState.OPEN
        assert breaker.call(ok) == "ok"
    with pytest.raises(CircuitOpenError):
        breaker.call(ok)
    monkeypatch.setenv("FLEETBREAKER_DISABLED", "1")
    with breakers_disabled(disabled=False), pytest.raises(CircuitOpenError):
        breaker.call(ok)


def test_guard_context_manager() -> None:
    """guard() refuses entry when open and records the block's outcome."""
    breaker = make()
    for _ in range(3):
        with pytest.raises(Boom), breaker.guard():
            raise Boom
    with pytest.raises(CircuitOpenError), breaker.guard():
        pytest.fail("the block must not run")


def test_info_reads_the_store_and_falls_back_when_down() -> None:
    """info() reports the stored record, or the local view if the store fails."""
    store, clock = down_store(), FakeClock()
    store.heal()
    a, b = make(store, clock), make(store, clock)
    fail(a, 3)
    info = b.info()
    assert (info.state, info.failure_count, info.epoch) == (CircuitState.OPEN, 3, 1)
    store.partition()
    assert b.info().state is CircuitState.OPEN


def test_decorator_keeps_the_function_identity() -> None:
    """The wrapper keeps name, docstring and __wrapped__, and exposes its breaker."""
    breaker = make()

    @breaker
    def documented(x: int) -> int:
        """Doubles."""
        return 2 * x

    assert documented(4) == 8
    assert documented.__name__ == "documented"
    assert documented.__doc__ == "Doubles."
    assert documented.__wrapped__(1) == 2  # type: ignore[attr-defined]
    assert documented.breaker is breaker  # type: ignore[attr-defined]


def test_decorator_factory() -> None:
    """@circuit_breaker(name=...) builds a breaker and decorates with it."""

    @circuit_breaker(name="factory", config=Config(failure_threshold=1))
    def flaky() -> None:
        raise Boom

    with pytest.raises(Boom):
        flaky()
    with pytest.raises(CircuitOpenError):
        flaky()


def test_local_trip_outlives_a_store_that_comes_back_closed() -> None:
    """Once the store is back, an unpersisted trip holds until retry_at, read once per cache age."""
    store, clock = down_store(), FakeClock()
    breaker = make(store, clock)
    breaker.call(ok)
    fail(breaker, 3)
    store.heal()
    clock.advance(5.5)  # the view's cache age is over, retry_at is not; the store says closed
    calls = []
    for _ in range(200):
        with pytest.raises(CircuitOpenError):
            breaker.call(lambda: calls.append(1))
    assert calls == []
    assert counts_of(store)["load"] <= 1
    clock.advance(4.5)
    assert breaker.call(ok) == "ok"  # retry_at: the store's closed record routes again


def test_first_probe_is_reserved_for_the_tripping_process() -> None:
    """After the open period only the process that tripped may probe; others after the
    reservation, both measured from when each first saw the trip."""
    store, clock = CountingStore(), FakeClock()
    a, b = make(store, clock), make(store, clock)
    b.call(ok)
    fail(a, 3)
    clock.advance(6)
    with pytest.raises(CircuitOpenError):
        b.call(ok)  # b learns of the trip, 6 s after it: its periods run from here
    writes = store.writes
    clock.advance(10.5)  # past the open period for b
    for _ in range(2):
        with pytest.raises(CircuitOpenError):
            b.call(ok)  # reserved for a: b re-reads, but does not try to claim
        clock.advance(0.2)
    assert store.writes == writes
    clock.advance(0.1)  # a made no call: the reservation lapses, anyone may probe
    assert b.call(ok) == "ok"
    record = stored(store.inner)
    assert record is not None
    assert (record.state, record.successes) == (CircuitState.HALF_OPEN, 1)


def test_prober_keeps_probing_while_others_wait() -> None:
    """After a successful probe, the same process takes the next one without a race."""
    store, clock = CountingStore(), FakeClock()
    a, b = make(store, clock), make(store, clock)
    fail(a, 3)
    clock.advance(10)
    assert a.call(ok) == "ok"  # probe 1 of 2
    with pytest.raises(CircuitOpenError):
        b.call(ok)  # the freed slot is a's for a moment
    assert a.call(ok) == "ok"  # probe 2: closes
    assert stored(store.inner).state is CircuitState.CLOSED  # type: ignore[union-attr]
    assert store.counts["cas_lost"] == 0


def test_the_store_checks_the_name_when_the_breaker_is_built() -> None:
    """A name the store cannot keep is refused with ConfigError at construction, not later."""

    class ShortKeys(MemoryStore):
        def check_name(self, name: str) -> None:
            if len(name) > 3:
                raise ConfigError(f"name {name!r} is too long for this store")

    assert CircuitBreaker("abc", store=ShortKeys()).name == "abc"
    with pytest.raises(ConfigError, match="too long for this store"):
        CircuitBreaker("abcd", store=ShortKeys())
