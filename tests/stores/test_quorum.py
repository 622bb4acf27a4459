"""Fleet quorum on every store: a process whose rules fire protects the downstream from itself
and reports; the circuit opens for the fleet, once, when K processes have reported in time.

Each ``CircuitBreaker`` object is one process of the fleet (its own view, counts and reports);
the multi-process tests run real spawned processes (``quorum_worker``).
"""

from __future__ import annotations

import functools
import multiprocessing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from fleetbreaker import (
    CircuitBreaker,
    CircuitInfo,
    CircuitOpenError,
    CircuitState,
    Config,
    Store,
)
from fleetbreaker._clock import Clock
from fleetbreaker._protocol import CLAIM_RESERVATION, QUORUM, Record
from fleetbreaker.testing import FakeClock, RecordingHook
from tests.helpers import CountingStore
from tests.stores import quorum_worker as qw
from tests.stores.conftest import Harness
from tests.stores.fleet_worker import SharedClock

NAME = qw.NAME
K = 3
THRESHOLD = 2
HOLD = 30.0  # recovery_timeout: how long a process whose rules fired refuses its own calls
GAP = 0.1  # seconds between a sick process's failures
WORKER_TIMEOUT = 60.0
# The transitions of one outage and its recovery: a trip, a probe, a close.
RECOVERY = [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]


def quorum_config(**overrides: Any) -> Config:
    settings: dict[str, Any] = {
        "failure_threshold": THRESHOLD,
        "fleet_minimum_reporters": K,
        "recovery_timeout": HOLD,
    }
    settings.update(overrides)
    return Config(**settings)


class RecordingStore(CountingStore):
    """Counts one breaker's store calls; logs each record it wrote in a log its fleet shares."""

    def __init__(self, inner: Store, written: list[Record]) -> None:
        super().__init__(inner)
        self.written = written

    def compare_and_set(self, name: str, expected_epoch: int | None, record: Record) -> bool:
        won = super().compare_and_set(name, expected_epoch, record)
        if won:
            self.written.append(record)
        return won


@dataclass
class Member:
    """One process of an in-test fleet: its breaker and its own store client."""

    breaker: CircuitBreaker
    store: RecordingStore


class Fleet:
    """Breaker objects on one circuit of one store, sharing a hook and a log of written records."""

    def __init__(self, harness: Harness, config: Config, clock: FakeClock) -> None:
        self.harness = harness
        self.config = config
        self.clock = clock
        self.hook = RecordingHook()
        self.written: list[Record] = []
        self.observer = harness.client()

    def join(self, *, clock: Clock | None = None, **kwargs: Any) -> Member:
        store = RecordingStore(self.harness.client(), self.written)
        breaker = CircuitBreaker(
            NAME,
            store=store,
            config=self.config,
            clock=self.clock if clock is None else clock,
            on_transition=self.hook,
            **kwargs,
        )
        return Member(breaker, store)

    def record(self) -> Record:
        record = self.observer.load(NAME, consistent=True)
        assert record is not None
        return record

    def trips(self) -> list[Record]:
        return [r for r in self.written if r.state is CircuitState.OPEN]


def down() -> str:
    raise ConnectionError("downstream down")


def up() -> str:
    return "ok"


def fall_sick(member: Member, clock: FakeClock, *, gap: float = GAP) -> None:
    """Fail THRESHOLD calls ``gap`` seconds apart: the last one makes the member's rules fire."""
    for i in range(THRESHOLD):
        if i:
            clock.advance(gap)
        with pytest.raises(ConnectionError):
            member.breaker.call(down)


def refusal(breaker: CircuitBreaker) -> CircuitInfo | None:
    """The circuit a call was refused with, or None when the call reached the downstream."""
    try:
        assert breaker.call(up) == "ok"
    except CircuitOpenError as refused:
        return refused.circuit
    return None


def held(member: Member) -> bool:
    """Whether the member refuses its own calls on its hold: its own view is open (until
    ``held_open_until``), whatever the fleet's record says."""
    refused = refusal(member.breaker)
    info = member.breaker.info()
    return (
        refused is not None
        and refused.state is CircuitState.OPEN
        and refused.held_open_until is not None
        and info.state is CircuitState.OPEN
        and member.breaker.state is CircuitState.OPEN
        and info.held_open_until is not None
        and info.retry_at == info.held_open_until
    )


def test_k_sick_processes_open_the_fleet_once(harness: Harness) -> None:
    """Two sick processes of three needed hold themselves and report; the third opens it once."""
    clock = FakeClock()
    fleet = Fleet(harness, quorum_config(), clock)
    first, second, healthy = fleet.join(), fleet.join(), fleet.join()
    assert refusal(healthy.breaker) is None
    for sick in (first, second):
        fall_sick(sick, clock)
        assert sick.store.writes == 1  # its report
        assert held(sick)
    record = fleet.record()
    assert record.state is CircuitState.CLOSED
    assert len({owner for owner, _ in record.reports}) == 2
    for _ in range(3):
        clock.advance(1)
        assert refusal(healthy.breaker) is None
    assert healthy.breaker.info().reporters == 2
    assert healthy.store.writes == 0
    assert fleet.hook.transitions == []

    third = fleet.join()
    fall_sick(third, clock)
    assert third.store.writes == 1  # the trip, not a report
    record = fleet.record()
    assert record.state is CircuitState.OPEN
    assert record.rule == QUORUM
    assert len(fleet.trips()) == 1
    assert fleet.hook.pairs() == [("closed", "open")]
    assert fleet.hook.transitions[0].rule == QUORUM
    assert len(fleet.written) == 3
    assert all(len(r.reports) <= K for r in fleet.written)
    for member in (first, second, healthy, third):
        assert member.breaker.info().state is CircuitState.OPEN
        refused = refusal(member.breaker)
        assert refused is not None
        assert refused.state is CircuitState.OPEN
    assert len(fleet.written) == 3


def test_a_report_that_loses_a_race_is_written_again(harness: Harness) -> None:
    """Two processes whose rules fire on one record both count: the loser re-reports (here, the
    quorum's trip) instead of dropping its report."""
    clock = FakeClock()
    fleet = Fleet(harness, quorum_config(), clock)
    first, second, third = fleet.join(), fleet.join(), fleet.join()
    fall_sick(first, clock)
    assert refusal(second.breaker) is None
    assert refusal(third.breaker) is None
    # Both decide on the record with one report; the second's write lands first.
    fall_sick(second, clock, gap=0)
    fall_sick(third, clock, gap=0)
    record = fleet.record()
    assert record.state is CircuitState.OPEN
    assert record.rule == QUORUM
    assert fleet.hook.pairs() == [("closed", "open")]
    assert len(fleet.trips()) == 1


def test_expired_reports_do_not_count(harness: Harness) -> None:
    """Reports older than fleet_report_window (as the reader has watched them age) do not make
    a quorum: the third sick process only reports."""
    clock = FakeClock()
    fleet = Fleet(harness, quorum_config(fleet_report_window=10), clock)
    first, second, third = fleet.join(), fleet.join(), fleet.join()
    assert refusal(third.breaker) is None
    fall_sick(first, clock)
    fall_sick(second, clock)
    assert refusal(third.breaker) is None  # reads the two reports
    assert third.breaker.info().reporters == 2
    clock.advance(11)
    assert third.breaker.info().reporters == 0
    fall_sick(third, clock)
    assert held(third)
    record = fleet.record()
    assert record.state is CircuitState.CLOSED
    assert [owner for owner, _ in record.reports] == [third.breaker._owner]
    assert third.breaker.info().reporters == 1
    assert fleet.trips() == []
    assert fleet.hook.transitions == []


def test_one_report_per_window(harness: Harness) -> None:
    """A process whose rules fire again within the report window writes no second report;
    after the window it reports again."""
    clock = FakeClock()
    config = quorum_config()
    assert config.effective_report_window == 60
    fleet = Fleet(harness, config, clock)
    sick = fleet.join()
    fall_sick(sick, clock)
    assert sick.store.writes == 1
    reported = fleet.record()

    clock.advance(HOLD + 1)  # the hold is over, the report still counts
    fall_sick(sick, clock)
    assert held(sick)
    assert sick.store.writes == 1
    assert fleet.record() == reported

    clock.advance(HOLD + 1)  # past the window: the report has expired
    fall_sick(sick, clock)
    assert held(sick)
    assert sick.store.writes == 2
    record = fleet.record()
    assert record.state is CircuitState.CLOSED
    assert len(record.reports) == 1
    assert record.reports[0][1] > reported.reports[0][1]
    assert fleet.hook.transitions == []


def test_a_report_consumed_by_a_trip_does_not_silence_the_next_episode(harness: Harness) -> None:
    """After the fleet trips and closes again, processes that reported in the old episode report
    in the new one (within the window): an outage that returns opens the circuit again."""
    clock = FakeClock()
    fleet = Fleet(harness, quorum_config(success_threshold=1), clock)
    members = [fleet.join() for _ in range(K)]
    for member in members:
        fall_sick(member, clock)
    assert fleet.record().state is CircuitState.OPEN
    clock.advance(HOLD)
    assert refusal(members[-1].breaker) is None  # the tripping process probes; it closes
    assert fleet.record().state is CircuitState.CLOSED
    assert clock.wall() - fleet.written[0].updated_at < fleet.config.effective_report_window
    for member in members:
        fall_sick(member, clock)
    record = fleet.record()
    assert record.state is CircuitState.OPEN
    assert record.rule == QUORUM
    assert len(fleet.trips()) == 2
    assert fleet.hook.pairs() == [*RECOVERY, ("closed", "open")]


def test_a_held_process_reopens_its_view_after_its_open_period(harness: Harness) -> None:
    """A process that tripped alone refuses calls for recovery_timeout, then calls again; the
    fleet stays closed throughout."""
    clock = FakeClock()
    fleet = Fleet(harness, quorum_config(), clock)
    sick = fleet.join()
    fall_sick(sick, clock)
    tripped_at = clock.wall()
    info = sick.breaker.info()
    assert info.held_open_until == pytest.approx(tripped_at + HOLD)
    clock.advance(HOLD - 0.5)
    assert held(sick)
    clock.advance(0.5)
    assert refusal(sick.breaker) is None
    info = sick.breaker.info()
    assert info.state is CircuitState.CLOSED
    assert info.held_open_until is None
    assert fleet.record().state is CircuitState.CLOSED
    assert sick.store.writes == 1
    assert fleet.hook.transitions == []


def test_a_hold_is_local_to_its_process(harness: Harness) -> None:
    """One process's hold refuses its own calls (or calls its fallback) and no one else's."""
    clock = FakeClock()
    fleet = Fleet(harness, quorum_config(), clock)
    fallbacks: list[CircuitInfo] = []

    def fallback(*_args: object, circuit: CircuitInfo) -> str:
        fallbacks.append(circuit)
        return "fallback"

    sick, other = fleet.join(on_circuit_open=fallback), fleet.join()
    assert other.breaker.call(up) == "ok"
    fall_sick(sick, clock)
    assert sick.breaker.call(up) == "fallback"
    assert fallbacks[0].state is CircuitState.OPEN  # its own view; the fleet's stays closed
    assert fallbacks[0].held_open_until is not None
    for _ in range(3):
        assert other.breaker.call(up) == "ok"
    clock.advance(fleet.config.local_cache_max_age + 1)  # the other re-reads the record
    assert other.breaker.call(up) == "ok"
    assert other.breaker.info().held_open_until is None
    assert other.breaker.info().reporters == 1
    assert other.store.writes == 0
    assert sick.breaker.call(up) == "fallback"


# --- retry_after ---------------------------------------------------------------------------

RETRY_AFTER = 120.0
RETRY_CONFIG: dict[str, Any] = {
    "failure_threshold": 1,
    "recovery_timeout": HOLD,
    "success_threshold": 1,
    "retry_after": qw.retry_after_of,
}
# Wall clocks of the readers, off the writer's as hosts' clocks can be.
SKEWS = (0.0, 300.0, -10 * 365 * 24 * 3600.0)


def retry_later() -> str:
    raise qw.RetryLaterError(RETRY_AFTER)


def test_retry_after_holds_every_process_of_the_fleet(harness: Harness) -> None:
    """A trip whose failure says retry after 120 s keeps every process refusing for 120 s of its
    own clock, each showing the writer's retry_at."""
    writer_clock = FakeClock()
    fleet = Fleet(harness, Config(**RETRY_CONFIG), writer_clock)
    writer = fleet.join()
    with pytest.raises(qw.RetryLaterError):
        writer.breaker.call(retry_later)
    record = fleet.record()
    assert record.state is CircuitState.OPEN
    assert record.retry_at == pytest.approx(writer_clock.wall() + RETRY_AFTER)
    clocks = [FakeClock(writer_clock.wall() + skew) for skew in SKEWS]
    readers = [fleet.join(clock=clock) for clock in clocks]
    for reader in readers:
        refused = refusal(reader.breaker)
        assert refused is not None
        assert refused.retry_at == record.retry_at
        assert reader.breaker.info().retry_at == record.retry_at
    for clock in (writer_clock, *clocks):
        clock.advance(RETRY_AFTER - 0.1)
    for member in (writer, *readers):
        refused = refusal(member.breaker)
        assert refused is not None
        assert refused.state is CircuitState.OPEN
        assert refused.retry_at == record.retry_at
    # Past the writer's reservation of the first probe, any process may probe; the first
    # closes the circuit (success_threshold=1) and the rest call through.
    for clock in (writer_clock, *clocks):
        clock.advance(0.1 + CLAIM_RESERVATION + 0.1)
    for reader in readers:
        assert refusal(reader.breaker) is None
    assert fleet.record().state is CircuitState.CLOSED
    assert fleet.hook.pairs() == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]


@pytest.fixture(params=["sqlite", "redis"])
def shared_harness(request: pytest.FixtureRequest) -> Harness:
    """A store real processes share: a SQLite file, the test Redis server."""
    value: Harness = request.getfixturevalue(f"{request.param}_harness")
    return value


class Workers:
    """Spawned fleet processes, each taking one step when told to, and what they reported."""

    def __init__(self, harness: Harness, offset: Any, ctx: Any) -> None:
        assert harness.factory is not None
        self.factory = harness.factory
        self.offset = offset
        self.ctx = ctx
        self.results: Any = ctx.Queue()
        self.go: list[Any] = []
        self.processes: list[Any] = []
        self.transitions: list[tuple[int, str, str, str | None]] = []
        self.done: set[int] = set()

    def start(self, config: dict[str, Any], steps: tuple[str, ...], *, skew: float = 0.0) -> int:
        index = len(self.processes)
        go = self.ctx.Event()
        clock = SharedClock(self.offset, skew=skew, mono_base=1000.0 * (index + 2))
        worker = qw.Worker(self.factory, index, clock, config, steps, go, self.results)
        process = self.ctx.Process(target=qw.run_worker, args=(worker,))
        process.start()
        self.go.append(go)
        self.processes.append(process)
        return index

    def step(self, *indexes: int) -> dict[int, tuple[str, CircuitInfo]]:
        """Let the processes take their next step together; each one's outcome and info."""
        for index in indexes:
            self.go[index].set()
        outcomes: dict[int, tuple[str, CircuitInfo]] = {}
        while len(outcomes) < len(indexes):
            message = self._next()
            if message[0] == "step":
                _, index, _action, outcome, info = message
                outcomes[index] = (outcome, info)
        return outcomes

    def finish(self) -> None:
        """Wait for every process to send its last message and exit cleanly."""
        while len(self.done) < len(self.processes):
            self._next()
        for process in self.processes:
            process.join(timeout=WORKER_TIMEOUT)
        assert [p.exitcode for p in self.processes] == [0] * len(self.processes)

    def _next(self) -> tuple[Any, ...]:
        message: tuple[Any, ...] = self.results.get(timeout=WORKER_TIMEOUT)
        if message[0] == "transition":
            self.transitions.append(message[1:])
        elif message[0] == "done":
            self.done.add(message[1])
        return message

    def stop(self) -> None:
        for process in self.processes:
            process.join(timeout=1)
            if process.is_alive():
                process.kill()
                process.join(timeout=WORKER_TIMEOUT)


@pytest.fixture
def workers(shared_harness: Harness) -> Iterator[Workers]:
    ctx = multiprocessing.get_context("spawn")
    spawned = Workers(shared_harness, ctx.Value("d", 0.0), ctx)
    yield spawned
    spawned.stop()


@pytest.mark.timeout(180)
def test_retry_after_holds_every_process_across_real_processes(
    shared_harness: Harness, workers: Workers
) -> None:
    """Real processes with skewed clocks read the writer's retry_at and refuse until 120 s have
    passed on their own clocks."""
    writer_clock = SharedClock(workers.offset)
    fleet = Fleet(shared_harness, Config(**RETRY_CONFIG), FakeClock())
    writer = fleet.join(clock=writer_clock)
    with pytest.raises(qw.RetryLaterError):
        writer.breaker.call(retry_later)
    record = fleet.record()
    assert record.retry_at == pytest.approx(writer_clock.wall() + RETRY_AFTER)
    steps = (qw.CALL, qw.CALL, qw.CALL)
    readers = [workers.start(RETRY_CONFIG, steps, skew=skew) for skew in SKEWS]

    seen = workers.step(*readers)  # at the trip
    assert {outcome for outcome, _ in seen.values()} == {qw.REFUSED}
    assert {info.retry_at for _, info in seen.values()} == {record.retry_at}

    workers.offset.value = RETRY_AFTER - 0.1
    seen = workers.step(*readers)
    assert {outcome for outcome, _ in seen.values()} == {qw.REFUSED}
    assert {info.retry_at for _, info in seen.values()} == {record.retry_at}
    assert refusal(writer.breaker) is not None

    workers.offset.value = RETRY_AFTER + CLAIM_RESERVATION + 0.1
    assert refusal(writer.breaker) is None  # its probe closes the circuit
    seen = workers.step(*readers)
    assert {outcome for outcome, _ in seen.values()} == {qw.CALLED}
    workers.finish()
    assert workers.transitions == []  # the writer persisted every transition
    assert fleet.hook.pairs() == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]


@pytest.mark.timeout(180)
def test_quorum_across_real_processes(shared_harness: Harness, workers: Workers) -> None:
    """Two real processes whose downstream fails leave the fleet closed with two reports and a
    healthy process calling; a third opens it, once."""
    config = {
        "failure_threshold": THRESHOLD,
        "fleet_minimum_reporters": K,
        "recovery_timeout": HOLD,
    }
    first, second = workers.start(config, (qw.SICK,)), workers.start(config, (qw.SICK,))
    healthy = workers.start(config, (qw.CALL, qw.CALL))
    third = workers.start(config, (qw.SICK,))
    observer = shared_harness.client()
    load = functools.partial(observer.load, NAME, consistent=True)

    assert workers.step(healthy)[healthy][0] == qw.CALLED
    seen = workers.step(first, second)  # at once: their reports race
    for outcome, info in seen.values():
        assert outcome == qw.REFUSED
        assert info.state is CircuitState.OPEN  # its own view: held
        assert info.held_open_until is not None
    record = load()
    assert record is not None
    assert record.state is CircuitState.CLOSED
    assert len({owner for owner, _ in record.reports}) == 2
    outcome, info = workers.step(healthy)[healthy]
    assert outcome == qw.CALLED
    assert info.reporters == 2
    assert workers.transitions == []

    outcome, info = workers.step(third)[third]
    assert outcome == qw.REFUSED
    assert info.state is CircuitState.OPEN
    workers.finish()
    record = load()
    assert record is not None
    assert record.state is CircuitState.OPEN
    assert record.rule == QUORUM
    assert record.epoch == 3  # two reports and one trip: nothing else was written
    assert workers.transitions == [(third, "closed", "open", QUORUM)]
