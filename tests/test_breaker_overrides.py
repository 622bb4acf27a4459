"""Operator overrides through the breaker, two processes (breakers) on one store and one fake
clock: forced open refuses everywhere within local_cache_max_age, forced closed admits and
trips nothing, expiry and clear resume the state underneath, reset starts afresh, and two
operators at once: one wins, the other is told."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

import pytest

from fleetbreaker import (
    CircuitBreaker,
    CircuitInfo,
    CircuitOpenError,
    CircuitState,
    Config,
    ConfigError,
    MemoryStore,
    OverrideConflictError,
    Store,
    operations,
)
from fleetbreaker._protocol import Record
from fleetbreaker.testing import FakeClock, RecordingHook

CONFIG = Config(failure_threshold=2, recovery_timeout=30, success_threshold=1)
MAX_AGE = CONFIG.local_cache_max_age


class Boom(Exception):
    pass


def ok() -> str:
    return "ok"


def fail() -> str:
    raise Boom


def fleet(
    store: Store | None = None, **kwargs: object
) -> tuple[FakeClock, CircuitBreaker, CircuitBreaker]:
    """Two processes of one fleet: ``a`` (the operator's) and ``b``."""
    clock = FakeClock()
    store = MemoryStore() if store is None else store
    config = kwargs.pop("config", CONFIG)
    a = CircuitBreaker("svc", store=store, clock=clock, config=config)  # type: ignore[arg-type]
    b = CircuitBreaker("svc", store=store, clock=clock, config=config, **kwargs)  # type: ignore[arg-type]
    return clock, a, b


def refused(breaker: CircuitBreaker) -> CircuitInfo | None:
    """The circuit a refusal showed, or None when the call was made."""
    try:
        breaker.call(ok)
    except CircuitOpenError as exc:
        return exc.circuit
    return None


def trip(breaker: CircuitBreaker) -> None:
    for _ in range(CONFIG.failure_threshold or 0):
        with pytest.raises(Boom):
            breaker.call(fail)
    assert breaker.info().state is CircuitState.OPEN


def test_forced_open_is_obeyed_by_every_process_within_local_cache_max_age() -> None:
    """Another process admits on its cached view, and refuses once that is max-age old."""
    clock, a, b = fleet()
    assert b.call(ok) == "ok"  # b caches a closed view
    info = a.force_open(duration=900, reason="INC-4121 maintenance", actor="alice")
    assert info.state is CircuitState.CLOSED  # the state underneath
    assert info.override is not None
    assert (info.override.kind, info.override.actor) == ("open", "alice")
    assert refused(a) is not None  # the writer obeys at once
    clock.advance(MAX_AGE - 0.01)
    assert refused(b) is None
    clock.advance(0.01)
    circuit = refused(b)
    assert circuit is not None
    assert circuit.override is not None
    assert circuit.override.reason == "INC-4121 maintenance"
    assert circuit.override.until == pytest.approx(clock.wall() - MAX_AGE + 900)


def test_a_refusal_under_an_override_says_so() -> None:
    """CircuitOpenError's message names the override, its actor, reason and end."""
    _, a, _ = fleet()
    a.force_open(duration=60, reason="INC-7 payments maintenance", actor="alice")
    with pytest.raises(CircuitOpenError, match=r"forced open until .* by alice: INC-7 pay"):
        a.call(ok)


def test_the_fallback_sees_the_override() -> None:
    """A fallback is given the circuit with its override."""
    seen: list[CircuitInfo] = []

    def fallback(*, circuit: CircuitInfo) -> str:
        seen.append(circuit)
        return "cached"

    _, a, b = fleet(on_circuit_open=fallback)
    a.force_open(duration=60, reason="maintenance")
    b.info()  # b reads the record
    assert b.call(ok) == "cached"
    assert seen[0].override is not None
    assert seen[0].override.reason == "maintenance"


def test_expiry_resumes_the_state_underneath() -> None:
    """Forced closed over an open circuit: calls admitted, no probe claimed; at the end the
    open period (long past) lets one probe through."""
    clock, a, b = fleet()
    trip(b)
    a.force_closed(duration=120, reason="false alarm", actor="bob")
    clock.advance(MAX_AGE)
    epoch = a.info().epoch
    for _ in range(10):
        assert b.call(ok) == "ok"
    assert a.info().epoch == epoch  # nothing written: no claim, no close
    assert b.info().state is CircuitState.OPEN
    clock.advance(120)
    assert b.call(ok) == "ok"  # the probe (success_threshold=1 closes)
    info = a.info()
    assert info.state is CircuitState.CLOSED
    assert info.override is None
    assert [(h.from_state, h.to_state) for h in info.history] == [
        ("closed", "open"),
        ("open", "forced_closed"),
        ("half_open", "closed"),
    ]


def test_forced_open_over_closed_resumes_closed_at_its_end() -> None:
    """At the override's end calls are admitted again (nothing written to resume)."""
    clock, a, b = fleet()
    a.force_open(duration=60, reason="maintenance")
    clock.advance(MAX_AGE)
    assert refused(b) is not None
    clock.advance(60 - MAX_AGE)
    assert refused(b) is None
    assert b.info().override is None


def test_forced_closed_trips_nothing_and_logs_what_it_would_have_done(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Failures under forced closed are observed: the trip is logged, not written."""
    _, a, b = fleet()
    a.force_closed(duration=600, reason="false alarm, see INC-4122", actor="bob")
    b.info()
    with caplog.at_level(logging.WARNING, logger="fleetbreaker"):
        for _ in range(5):
            with pytest.raises(Boom):
                b.call(fail)
    info = a.info()
    assert info.state is CircuitState.CLOSED
    assert info.epoch == 1  # only the override's write
    would = [r for r in caplog.records if "would have tripped" in r.getMessage()]
    assert len(would) == 2  # once per threshold of failures: the count starts afresh
    assert would[0].actor == "bob"  # type: ignore[attr-defined]
    assert would[0].rule == "consecutive"  # type: ignore[attr-defined]


def test_clear_resumes_at_once_for_the_writer_and_within_max_age_for_others() -> None:
    """Clearing a forced open circuit: calls admitted again."""
    clock, a, b = fleet()
    a.force_open(duration=600, reason="maintenance")
    b.info()
    assert refused(b) is not None
    info = a.clear_override(reason="maintenance done", actor="alice")
    assert info.override is None
    assert refused(a) is None
    clock.advance(MAX_AGE)
    assert refused(b) is None
    assert info.history[-1].from_state == "forced_open"
    assert info.history[-1].to_state == "closed"
    assert info.history[-1].reason == "maintenance done"


def test_reset_clears_counts_backoff_and_override() -> None:
    """A reset closes afresh: open_count 0, no override, every process admits."""
    clock, a, b = fleet(config=Config(failure_threshold=2, recovery_backoff_multiplier=2))
    trip(b)
    a.force_open(duration=600, reason="hold")
    info = a.reset(reason="fresh start", actor="ops")
    assert info.state is CircuitState.CLOSED
    assert info.override is None
    assert info.open_count == 0
    clock.advance(MAX_AGE)
    assert b.call(ok) == "ok"
    with pytest.raises(Boom):
        b.call(fail)
    assert b.info().failure_count == 1  # counting afresh
    assert a.info().history[-1].to_state == "closed"


def test_an_override_on_a_circuit_without_a_record() -> None:
    """An operator can force a circuit no process has used yet."""
    store = MemoryStore()
    info = operations.force_open(store, "never-used", duration=60, reason="pre-empt")
    assert info.epoch == 1
    breaker = CircuitBreaker("never-used", store=store, config=CONFIG)
    assert refused(breaker) is not None


def test_history_is_bounded_at_twenty_and_ordered() -> None:
    """Twenty-three overrides and clears: info() shows the last twenty, oldest first."""
    clock, a, _ = fleet()
    for i in range(23):
        if i % 2:
            a.clear_override(reason=f"clear {i}")
        else:
            a.force_open(duration=60, reason=f"force {i}")
        clock.advance(1)
    history = a.info().history
    assert len(history) == 20
    assert [h.reason for h in history] == [
        f"clear {i}" if i % 2 else f"force {i}" for i in range(3, 23)
    ]
    assert [h.at for h in history] == sorted(h.at for h in history)


class ParkingStore(MemoryStore):
    """Parks the thread named ``parked`` just before its compare-and-set."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived = threading.Event()
        self.release = threading.Event()

    def compare_and_set(self, name: str, expected_epoch: int | None, record: Record) -> bool:
        if threading.current_thread().name == "parked":
            self.arrived.set()
            assert self.release.wait(10)
        return super().compare_and_set(name, expected_epoch, record)


def run_parked(action: Callable[[], object], store: ParkingStore) -> list[object]:
    """Start ``action`` in a thread parked before its write; return its outcome holder."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(action())
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, name="parked")
    thread.start()
    assert store.arrived.wait(10)
    outcome.append(thread)
    return outcome


def finish(outcome: list[object], store: ParkingStore) -> object:
    thread = outcome.pop(0)
    assert isinstance(thread, threading.Thread)
    store.release.set()
    thread.join(10)
    return outcome[0]


def test_two_operators_at_once_one_wins_the_other_is_told() -> None:
    """Both read the circuit without an override; the second to write gets a conflict."""
    store = ParkingStore()
    pending = run_parked(
        lambda: operations.force_closed(
            store, "svc", duration=60, reason="false alarm", actor="bob"
        ),
        store,
    )
    operations.force_open(store, "svc", duration=60, reason="maintenance", actor="alice")
    result = finish(pending, store)
    assert isinstance(result, OverrideConflictError)
    assert result.current is not None
    assert result.current.actor == "alice"
    assert "alice forced it open meanwhile" in str(result)
    info = operations.read(store, "svc")
    assert info is not None
    assert info.override is not None
    assert info.override.actor == "alice"


def test_a_stale_writer_cannot_clear_a_newer_override() -> None:
    """A clear decided on alice's override loses to bob's newer one: told, nothing cleared."""
    store = ParkingStore()
    operations.force_open(store, "svc", duration=60, reason="maintenance", actor="alice")
    pending = run_parked(lambda: operations.clear_override(store, "svc", actor="carol"), store)
    operations.force_open(store, "svc", duration=600, reason="longer", actor="bob")
    result = finish(pending, store)
    assert isinstance(result, OverrideConflictError)
    info = operations.read(store, "svc")
    assert info is not None
    assert info.override is not None
    assert (info.override.actor, info.override.reason) == ("bob", "longer")


def test_a_protocol_write_under_an_override_keeps_it() -> None:
    """A write that lost to the override is decided again on it, and keeps it."""
    store = ParkingStore()
    clock = FakeClock()
    b = CircuitBreaker("svc", store=store, clock=clock, config=Config(failure_threshold=1))
    operations.force_open(store, "svc", duration=60, reason="earlier")
    operations.clear_override(store, "svc")  # a closed record whose episode b is in
    b.info()
    pending = run_parked(lambda: b.call(fail), store)  # b's trip, parked before its write
    operations.force_closed(store, "svc", duration=600, reason="false alarm", actor="bob")
    result = finish(pending, store)
    assert isinstance(result, Boom)
    info = operations.read(store, "svc")
    assert info is not None
    assert info.state is CircuitState.CLOSED
    assert info.override is not None
    assert info.override.actor == "bob"


def test_an_unrelated_lost_write_is_retried() -> None:
    """An operator's write that loses to a protocol write (not an override) is retried."""
    store = ParkingStore()
    clock = FakeClock()
    b = CircuitBreaker("svc", store=store, clock=clock, config=Config(failure_threshold=1))
    b.info()
    pending = run_parked(
        lambda: operations.force_open(store, "svc", duration=60, reason="maint"), store
    )
    with pytest.raises(Boom):
        b.call(fail)  # b trips meanwhile
    result = finish(pending, store)
    assert isinstance(result, CircuitInfo)
    assert result.state is CircuitState.OPEN
    assert result.override is not None
    assert [h.to_state for h in result.history] == ["open", "forced_open"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"duration": 0, "reason": "r"}, "duration must be > 0"),
        ({"duration": -5, "reason": "r"}, "duration must be > 0"),
        ({"duration": float("nan"), "reason": "r"}, "duration must be > 0"),
        ({"duration": True, "reason": "r"}, "duration must be a number"),
        ({"duration": "15m", "reason": "r"}, "duration must be a number"),
        ({"duration": CONFIG.record_ttl + 1, "reason": "r"}, "at most record_ttl"),
        ({"duration": 60, "reason": ""}, "reason is required"),
        ({"duration": 60, "reason": "   "}, "reason is required"),
        ({"duration": 60, "reason": None}, "reason must be a str"),
        ({"duration": 60, "reason": "x" * 257}, "at most 256 characters"),
        ({"duration": 60, "reason": "two\nlines"}, "reason must be printable"),
        ({"duration": 60, "reason": "r", "actor": ""}, "actor must be a non-empty str"),
        ({"duration": 60, "reason": "r", "actor": 5}, "actor must be a non-empty str"),
    ],
    ids=[
        "zero",
        "negative",
        "nan",
        "bool",
        "text",
        "past-record-ttl",
        "empty-reason",
        "blank-reason",
        "no-reason",
        "long-reason",
        "newline",
        "empty-actor",
        "actor-number",
    ],
)
def test_bad_arguments_raise_config_error_and_write_nothing(
    kwargs: dict[str, object], message: str
) -> None:
    """Each bad argument is named; the record is untouched."""
    _, a, _ = fleet()
    with pytest.raises(ConfigError, match=message):
        a.force_open(**kwargs)  # type: ignore[arg-type]
    assert a.info().epoch == 0


def test_actor_defaults_to_user_at_host() -> None:
    """Without an actor the override names user@host."""
    _, a, _ = fleet()
    info = a.force_open(duration=60, reason="r")
    assert info.override is not None
    assert "@" in info.override.actor


def test_async_twins() -> None:
    """aforce_open, aforce_closed, aclear_override and areset do what their twins do."""
    _, a, _ = fleet()

    async def scenario() -> list[str | None]:
        kinds = []
        info = await a.aforce_open(duration=60, reason="r")
        kinds.append(info.override.kind if info.override else None)
        info = await a.aforce_closed(duration=60, reason="r")
        kinds.append(info.override.kind if info.override else None)
        info = await a.aclear_override(reason="r")
        kinds.append(info.override.kind if info.override else None)
        await a.aforce_open(duration=60, reason="r")
        info = await a.areset(reason="r")
        kinds.append(info.override.kind if info.override else None)
        return kinds

    assert asyncio.run(scenario()) == ["open", "closed", None, None]


def test_overrides_and_transitions_are_logged_once_with_stable_fields(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """WARNING for opening (a trip, a forced open), INFO otherwise; the extra fields set."""
    _, a, b = fleet()
    with caplog.at_level(logging.INFO, logger="fleetbreaker"):
        trip(b)
        a.force_open(duration=60, reason="INC-1", actor="alice")
        a.clear_override(reason="done", actor="alice")
    changes = [r for r in caplog.records if hasattr(r, "to_state")]
    assert [(r.levelname, r.from_state, r.to_state) for r in changes] == [  # type: ignore[attr-defined]
        ("WARNING", "closed", "open"),
        ("WARNING", "open", "forced_open"),
        ("INFO", "forced_open", "open"),
    ]
    for record in changes:
        for field in ("circuit", "from_state", "to_state", "rule", "epoch", "actor", "reason"):
            assert hasattr(record, field), field
    assert changes[0].rule == "consecutive"  # type: ignore[attr-defined]
    assert (changes[1].actor, changes[1].reason) == ("alice", "INC-1")  # type: ignore[attr-defined]


def test_shadow_mode_never_refuses_never_writes_the_store_and_reports() -> None:
    """A shadow breaker trips in its own memory (on_transition with shadow=True), keeps
    admitting every call, and the fleet's store stays empty."""
    store = MemoryStore()
    hook = RecordingHook()
    clock = FakeClock()
    config = Config(failure_threshold=2, recovery_timeout=30, success_threshold=1, mode="shadow")
    breaker = CircuitBreaker("svc", store=store, clock=clock, config=config, on_transition=hook)
    calls = 0

    @breaker
    def downstream(*, healthy: bool) -> str:
        nonlocal calls
        calls += 1
        if not healthy:
            raise Boom
        return "ok"

    for _ in range(5):
        with pytest.raises(Boom):
            downstream(healthy=False)
    assert calls == 5  # nothing refused
    assert breaker.info().state is CircuitState.OPEN  # what it would have done
    assert downstream(healthy=True) == "ok"
    assert store.names() == []
    assert [(t.from_state, t.to_state, t.shadow) for t in hook.transitions] == [
        (CircuitState.CLOSED, CircuitState.OPEN, True)
    ]
    clock.advance(30)
    assert downstream(healthy=True) == "ok"  # the probe it would have let through
    assert [t.to_state for t in hook.transitions][-1] is CircuitState.CLOSED
    assert store.names() == []


def test_shadow_mode_is_validated() -> None:
    """mode is 'enforce' or 'shadow'."""
    with pytest.raises(ConfigError, match="mode must be 'enforce' or 'shadow'"):
        Config(mode="dry-run")


def test_a_process_started_late_ends_the_override_with_the_fleet() -> None:
    """A process first seeing a 15-minute override 10 minutes in refuses for 5 more, not 15."""
    clock, a, _ = fleet()
    a.force_open(duration=900, reason="maintenance")
    clock.advance(600)
    late = CircuitBreaker("svc", store=a.store, clock=clock, config=CONFIG)
    assert refused(late) is not None
    clock.advance(299)
    assert refused(late) is not None
    clock.advance(1)
    assert refused(late) is None


@pytest.mark.parametrize("skew", [-3600.0, 10 * 365 * 24 * 3600.0], ids=["behind", "years-ahead"])
def test_a_skewed_clock_neither_ends_nor_extends_an_override_past_first_sight(
    skew: float,
) -> None:
    """A host an hour behind, or years ahead, measures the whole override from first sight."""
    clock, a, _ = fleet()
    a.force_open(duration=900, reason="maintenance")
    skewed = FakeClock(start=clock.wall() + skew)
    b = CircuitBreaker("svc", store=a.store, clock=skewed, config=CONFIG)
    assert refused(b) is not None
    skewed.advance(899)
    assert refused(b) is not None
    skewed.advance(1)
    assert refused(b) is None


def test_clear_of_the_override_seen_never_clears_a_newer_one() -> None:
    """A clear told which override it saw refuses when another replaced it meanwhile."""
    store = MemoryStore()
    operations.force_open(store, "svc", duration=60, reason="maintenance", actor="alice")
    seen = operations.read(store, "svc")
    assert seen is not None
    operations.force_open(store, "svc", duration=600, reason="longer", actor="bob")
    with pytest.raises(OverrideConflictError, match="bob forced it open"):
        operations.clear_override(store, "svc", actor="carol", expected=seen.override)
    info = operations.read(store, "svc")
    assert info is not None
    assert info.override is not None
    assert info.override.actor == "bob"
    current = info.override
    cleared = operations.clear_override(store, "svc", actor="carol", expected=current)
    assert cleared.override is None


class CountingStore(MemoryStore):
    """Counts reads, and whether each asked for a consistent one."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[bool] = []

    def load(self, name: str, *, consistent: bool = False) -> Record | None:
        self.reads.append(consistent)
        return super().load(name, consistent=consistent)


def test_a_forced_view_is_trusted_for_local_cache_max_age() -> None:
    """Under an override a process re-reads the record once per max age, not per call."""
    store = CountingStore()
    clock, a, b = fleet(store)
    a.force_open(duration=600, reason="maintenance")
    b.info()
    reads = len(store.reads)
    for _ in range(20):
        assert refused(b) is not None
    clock.advance(MAX_AGE - 0.01)
    assert refused(b) is not None
    assert len(store.reads) == reads
    clock.advance(0.01)
    refused(b)
    assert len(store.reads) == reads + 1


def test_operator_actions_read_consistently() -> None:
    """Every read of an operator's action asks the store for a consistent read."""
    store = CountingStore()
    operations.force_open(store, "svc", duration=60, reason="r")
    operations.clear_override(store, "svc")
    operations.reset(store, "svc", reason="r")
    assert store.reads
    assert all(store.reads)


def test_a_shadow_breaker_forced_open_still_makes_every_call() -> None:
    """Shadow mode never refuses, an override included."""
    config = Config(mode="shadow")
    breaker = CircuitBreaker("svc", config=config, clock=FakeClock())
    info = breaker.force_open(duration=60, reason="try it")
    assert info.override is not None
    assert breaker.call(ok) == "ok"

    @breaker
    def decorated() -> str:
        return "made"

    assert decorated() == "made"


def test_durations_at_the_bounds() -> None:
    """Half a second and exactly record_ttl are both valid durations; 256 characters too."""
    _, a, _ = fleet()
    assert a.force_open(duration=0.5, reason="r").override is not None
    info = a.force_closed(duration=CONFIG.record_ttl, reason="x" * 256, actor="y" * 256)
    assert info.override is not None
    assert info.override.until - info.override.at == CONFIG.record_ttl


def test_actions_record_their_actor_and_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    """clear and reset (sync and async) write who and why; without a user name, 'unknown'."""
    _, a, _ = fleet()

    def no_user() -> str:
        raise KeyError("no passwd entry")

    monkeypatch.setattr("getpass.getuser", no_user)

    async def scenario() -> None:
        await a.aforce_open(duration=60, reason="one", actor="alice")
        await a.aclear_override(reason="two", actor="bob")
        await a.aforce_closed(duration=60, reason="three", actor="carol")
        await a.areset(reason="four", actor="dave")
        a.force_open(duration=60, reason="five", actor="erin")
        a.clear_override(actor="frank")
        a.reset(reason="six")

    asyncio.run(scenario())
    history = a.info().history
    assert [(h.by, h.reason) for h in history] == [
        ("alice", "one"),
        ("bob", "two"),
        ("carol", "three"),
        ("dave", "four"),
        ("erin", "five"),
        ("frank", "override cleared"),
        (history[-1].by, "six"),
    ]
    assert history[-1].by.startswith("unknown@")


def test_a_reset_ends_a_quorum_hold_in_every_process() -> None:
    """A process holding itself open (its rules fired, no quorum yet) admits again once it
    reads a reset: a hold belongs to the closed episode it was made in."""
    config = Config(failure_threshold=1, fleet_minimum_reporters=2, recovery_timeout=60)
    clock, a, b = fleet(config=config)
    with pytest.raises(Boom):
        b.call(fail)
    assert b.info().held_open_until is not None
    assert refused(b) is not None
    a.reset(reason="false alarm")
    clock.advance(config.local_cache_max_age)
    assert refused(b) is None
    assert b.info().held_open_until is None
