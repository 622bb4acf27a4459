"""The pure protocol: transitions as functions of (record, times), and their invariants."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from fleetbreaker import CircuitState, Config
from fleetbreaker._protocol import (
    ABSENT,
    CLAIM_RESERVATION,
    Record,
    Route,
    claim,
    claim_period,
    open_period,
    probe_failed,
    probe_released,
    probe_succeeded,
    reservation_period,
    route,
    trip,
)

CONFIG = Config(failure_threshold=3, recovery_timeout=10, success_threshold=3, probe_timeout=4)
T0 = 1_800_000_000.0
YEAR = 365 * 24 * 3600.0


def route_at(rec: Record, now: float, owner: str | None = None) -> Route:
    """Route for a reader that saw ``rec`` the moment it was written, at wall time ``now``."""
    return route(rec, elapsed=now - rec.updated_at, config=CONFIG, owner=owner)


def claim_at(rec: Record, *, now: float, owner: str, config: Config = CONFIG) -> Record | None:
    """Claim by a reader that saw ``rec`` the moment it was written."""
    return claim(rec, now=now, elapsed=now - rec.updated_at, owner=owner, config=config)


def opened(epoch: int = 1, at: float = T0) -> Record:
    new = trip(replace(ABSENT, epoch=epoch - 1), now=at, failures=3, config=CONFIG)
    assert new is not None
    return new


def test_trip_opens_closed_only() -> None:
    """A closed record trips to OPEN one epoch later; anything else does not trip."""
    new = opened(at=T0)
    assert (new.state, new.epoch, new.retry_at, new.failure_count) == (
        CircuitState.OPEN,
        1,
        T0 + 10,
        3,
    )
    assert trip(new, now=T0, failures=3, config=CONFIG) is None


def test_open_rejects_until_retry_then_offers_claim() -> None:
    """OPEN refuses calls until retry_at, then offers the probe slot."""
    rec = opened()
    assert route_at(rec, T0 + 9.999) is Route.REJECT
    assert claim_at(rec, now=T0 + 9.999, owner="a", config=CONFIG) is None
    assert route_at(rec, T0 + 10) is Route.CLAIM


def test_claim_is_exclusive_until_it_expires() -> None:
    """A held claim refuses others until probe_timeout has passed, then can be taken over."""
    held = claim_at(opened(), now=T0 + 10, owner="a", config=CONFIG)
    assert held is not None
    assert (held.state, held.epoch, held.probe_owner) == (CircuitState.HALF_OPEN, 2, "a")
    assert claim_at(held, now=T0 + 13.9, owner="b", config=CONFIG) is None
    taken = claim_at(held, now=T0 + 14, owner="b", config=CONFIG)
    assert taken is not None
    assert (taken.epoch, taken.probe_owner) == (3, "b")


def test_successes_release_the_slot_and_close_at_threshold() -> None:
    """Each success frees the slot (for anyone, once its short reservation lapses); the
    success_threshold-th closes."""
    rec: Record = opened()
    now = T0 + 10 + CLAIM_RESERVATION
    for n in range(1, 4):
        held = claim_at(rec, now=now, owner=f"caller-{n}", config=CONFIG)
        assert held is not None
        done = probe_succeeded(held, token=held.epoch, now=now, config=CONFIG)
        assert done is not None
        rec = done
        if n < 3:
            assert (rec.state, rec.successes, rec.probe_owner) == (CircuitState.HALF_OPEN, n, None)
        now += CLAIM_RESERVATION
    assert rec.state is CircuitState.CLOSED
    assert rec.epoch == 1 + 2 * 3


def test_first_probe_is_reserved_for_the_tripper() -> None:
    """After a trip, the tripping process alone may claim until the reservation lapses."""
    rec = trip(ABSENT, now=T0, failures=3, config=CONFIG, owner="tripper")
    assert rec is not None
    assert route_at(rec, T0 + 10, "tripper") is Route.CLAIM
    assert route_at(rec, T0 + 10, "other") is Route.REJECT
    assert claim_at(rec, now=T0 + 10, owner="other", config=CONFIG) is None
    assert route_at(rec, T0 + 10 + CLAIM_RESERVATION, "other") is Route.CLAIM


@pytest.mark.parametrize("outcome", [probe_succeeded, probe_released, probe_failed])
def test_freed_slot_is_reserved_for_the_last_prober(outcome: object) -> None:
    """The process that freed the slot may claim next at once; others after the reservation."""
    held = claim_at(opened(), now=T0 + 10 + CLAIM_RESERVATION, owner="prober", config=CONFIG)
    assert held is not None
    freed = outcome(held, token=held.epoch, now=T0 + 20, config=CONFIG)  # type: ignore[operator]
    assert freed is not None
    due = T0 + 20 if freed.state is CircuitState.HALF_OPEN else freed.retry_at
    assert route_at(freed, due, "prober") is Route.CLAIM
    assert route_at(freed, due, "other") is Route.REJECT
    assert route_at(freed, due + CLAIM_RESERVATION, "other") is Route.CLAIM


def test_failed_probe_reopens_for_a_full_recovery_timeout() -> None:
    """A failed probe reopens the circuit and resets the episode's successes."""
    held = claim_at(opened(), now=T0 + 10, owner="a", config=CONFIG)
    assert held is not None
    reopened = probe_failed(held, token=held.epoch, now=T0 + 11, config=CONFIG)
    assert reopened is not None
    assert (reopened.state, reopened.retry_at, reopened.successes) == (
        CircuitState.OPEN,
        T0 + 21,
        0,
    )


@pytest.mark.parametrize("outcome", [probe_succeeded, probe_failed, probe_released])
def test_outcomes_are_fenced_by_the_token(outcome: object) -> None:
    """An outcome with a token that is not the record's epoch changes nothing."""
    held = claim_at(opened(), now=T0 + 10, owner="a", config=CONFIG)
    assert held is not None
    taken = claim_at(held, now=T0 + 20, owner="b", config=CONFIG)
    assert taken is not None
    assert outcome(taken, token=held.epoch, now=T0 + 21, config=CONFIG) is None  # type: ignore[operator]
    assert outcome(held, token=held.epoch + 5, now=T0 + 21, config=CONFIG) is None  # type: ignore[operator]


def test_release_keeps_successes() -> None:
    """A released probe frees the slot without counting, keeping earlier successes."""
    held = claim_at(replace(opened(), retry_at=T0), now=T0 + 10, owner="a", config=CONFIG)
    assert held is not None
    one = probe_succeeded(held, token=held.epoch, now=T0, config=CONFIG)
    assert one is not None
    again = claim_at(one, now=T0 + CLAIM_RESERVATION, owner="b", config=CONFIG)
    assert again is not None
    released = probe_released(again, token=again.epoch, now=T0, config=CONFIG)
    assert released is not None
    assert (released.successes, released.probe_owner) == (1, None)


def test_payload_round_trip_and_unknown_fields() -> None:
    """A record survives its payload; unknown fields from newer writers are ignored."""
    held = claim_at(opened(), now=T0 + 10.123456789, owner="host:1:ab", config=CONFIG)
    assert held is not None
    payload = held.to_payload()
    assert Record.from_payload(held.epoch, payload) == held
    assert Record.from_payload(held.epoch, {**payload, "window": [1, 2]}) == held


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"v": 99, "state": "open"},
        {"v": 1, "state": "ajar"},
        {"v": 1, "state": "open"},
        {"v": 1, "state": "closed", "successes": -1},
        {"v": 1, "state": "closed", "opened_at": "yesterday"},
        {"v": 1, "state": "half_open", "probe_owner": "x"},
        {"v": True, "state": "closed"},
    ],
    ids=[
        "empty",
        "future-version",
        "bad-state",
        "open-no-retry",
        "negative",
        "bad-time",
        "claim-no-expiry",
        "bool-version",
    ],
)
def test_malformed_payloads_are_rejected(payload: dict[str, object]) -> None:
    """Anything that is not a valid record raises ValueError (stores then log and skip it)."""
    with pytest.raises(ValueError):
        Record.from_payload(1, payload)


class ProtocolMachine(RuleBasedStateMachine):
    """Several callers act on one stored record through compare-and-set, as the breaker does.

    Each caller's wall clock is off by its own amount (seconds to years), and each measures a
    record's periods from when it first looked at it, as the breaker does. Model time
    (``now``) is the truth the invariants judge by.
    """

    callers = ("a", "b", "c")

    @initialize(
        skews=st.lists(
            st.sampled_from([0.0, 30.0, -30.0, 300.0, -300.0, 10 * YEAR, -10 * YEAR]),
            min_size=3,
            max_size=3,
        )
    )
    def start(self, skews: list[float]) -> None:
        self.now = T0
        self.skew = dict(zip(self.callers, skews, strict=True))
        self.stored: Record = ABSENT
        self.written_at = T0  # model time of the stored record's write
        self.seen: dict[str, tuple[Record, float]] = {}  # caller -> (record, model time seen)
        self.claims: dict[str, Record] = {}  # each caller's latest claim (its token)
        self.last_epoch = 0
        self.episode_successes = 0
        self.writes: list[tuple[Record, Record]] = []
        self.checked = 0

    def wall(self, caller: str) -> float:
        return self.now + self.skew[caller]

    def write(self, expected: Record, new: Record | None) -> bool:
        """compare_and_set: lands only if nothing was written since ``expected``."""
        if new is None or expected.epoch != self.stored.epoch:
            return False
        self.writes.append((self.stored, new))
        self.stored = new
        self.written_at = self.now
        return True

    def elapsed(self, caller: str) -> float:
        """How long ago ``caller`` first saw the stored record (looking at it now if new)."""
        record, at = self.seen.get(caller, (None, 0.0))
        if record != self.stored:
            self.seen[caller] = (self.stored, self.now)
            return 0.0
        return self.now - at

    @rule(seconds=st.sampled_from([0.5, 1.0, 3.9, 4.0, 10.0, 11.0, 25.0]))
    def advance(self, seconds: float) -> None:
        self.now += seconds

    @rule(caller=st.sampled_from(callers))
    def look(self, caller: str) -> None:
        self.elapsed(caller)

    @rule(caller=st.sampled_from(callers))
    def fail_closed(self, caller: str) -> None:
        new = trip(self.stored, now=self.wall(caller), failures=3, config=CONFIG, owner=caller)
        if self.write(self.stored, new):
            self.episode_successes = 0

    @rule(caller=st.sampled_from(callers))
    def try_claim(self, caller: str) -> None:
        elapsed = self.elapsed(caller)
        old = self.stored
        new = claim(old, now=self.wall(caller), elapsed=elapsed, owner=caller, config=CONFIG)
        routed = route(old, elapsed=elapsed, config=CONFIG, owner=caller)
        if routed is not Route.CLAIM:
            assert new is None
        age = self.now - self.written_at  # true time since the record was written
        if new is not None:
            # No clock can rush a probe or a takeover: each period has truly passed.
            if old.state is CircuitState.OPEN:
                assert age >= CONFIG.recovery_timeout
            if old.probe_owner is not None:
                assert age >= CONFIG.effective_probe_timeout, "a live claim was taken over"
            if old.probe_owner is None and old.reserved_for not in (None, caller):
                assert age >= reservation_period(old, CONFIG)
        if self.write(old, new):
            assert new is not None
            if self.writes[-1][0].state is CircuitState.OPEN:
                self.episode_successes = 0
            self.claims[caller] = new

    @precondition(lambda self: bool(self.claims))
    @rule(data=st.data(), outcome=st.sampled_from(["success", "failure", "release"]))
    def settle(self, data: st.DataObject, outcome: str) -> None:
        caller = data.draw(st.sampled_from(sorted(self.claims)))
        held = self.claims.pop(caller)
        decide = {"success": probe_succeeded, "failure": probe_failed, "release": probe_released}
        new = decide[outcome](held, token=held.epoch, now=self.wall(caller), config=CONFIG)
        stale = self.stored.epoch != held.epoch
        before = self.stored
        landed = self.write(held, new)
        if stale:
            assert not landed, "a stale prober changed a newer episode"
            assert self.stored == before
        elif landed and outcome == "success":
            self.episode_successes += 1
        elif landed and outcome == "failure":
            self.episode_successes = 0

    @invariant()
    def epoch_grows_by_one_per_write(self) -> None:
        for old, new in self.writes[-1:]:
            assert new.epoch == old.epoch + 1
        assert self.stored.epoch >= self.last_epoch
        self.last_epoch = self.stored.epoch

    @invariant()
    def at_most_one_live_token(self) -> None:
        live = [c for c, held in self.claims.items() if held.epoch == self.stored.epoch]
        assert len(live) <= 1
        if self.stored.state is CircuitState.HALF_OPEN and self.stored.probe_owner is not None:
            assert live == [self.stored.probe_owner] or not live

    @invariant()
    def closes_only_after_threshold_successes(self) -> None:
        for old, new in self.writes[self.checked :]:
            if old.state is CircuitState.HALF_OPEN and new.state is CircuitState.CLOSED:
                assert self.episode_successes == CONFIG.success_threshold
                self.episode_successes = 0
        self.checked = len(self.writes)

    @invariant()
    def record_is_well_formed(self) -> None:
        rec = self.stored
        if rec.state is CircuitState.OPEN:
            assert rec.retry_at == rec.opened_at + CONFIG.recovery_timeout  # type: ignore[operator]
            assert open_period(rec, CONFIG) == CONFIG.recovery_timeout
            assert rec.probe_owner is None
        if rec.probe_owner is not None:
            assert claim_period(rec, CONFIG) == CONFIG.effective_probe_timeout
        if rec.state is CircuitState.HALF_OPEN:
            assert 0 <= rec.successes < CONFIG.success_threshold
        assert Record.from_payload(rec.epoch, rec.to_payload()) == rec


ProtocolMachine.TestCase.settings = settings(
    max_examples=300, stateful_step_count=40, deadline=None
)
test_protocol_state_machine = ProtocolMachine.TestCase


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("retry_at", T0 + 1000 * YEAR),  # a record holding a time in year ~3000
        ("retry_at", T0 - 10 * YEAR),  # a deadline before the write
        ("updated_at", T0 - 10 * YEAR),  # a writer whose clock ran 10 years behind
    ],
    ids=["far-future-deadline", "deadline-before-write", "writer-years-behind"],
)
def test_open_period_is_bounded_by_the_readers_configuration(field: str, value: float) -> None:
    """No stored time can hold a circuit open past recovery_timeout, from first sight."""
    rec = replace(opened(), **{field: value})  # type: ignore[arg-type]
    period = open_period(rec, CONFIG)
    assert 0 <= period <= CONFIG.recovery_timeout
    assert route(rec, elapsed=CONFIG.recovery_timeout, config=CONFIG) is Route.CLAIM


@pytest.mark.parametrize("skew", [-10 * YEAR, -300.0, -30.0, 30.0, 300.0, 10 * YEAR])
def test_a_writers_clock_cannot_shorten_or_stretch_a_claim(skew: float) -> None:
    """A claim written on any clock holds exactly probe_timeout from when a reader saw it."""
    held = claim(opened(at=T0 + skew), now=T0 + skew, elapsed=10.0, owner="a", config=CONFIG)
    assert held is not None
    assert claim_period(held, CONFIG) == CONFIG.effective_probe_timeout
    below = CONFIG.effective_probe_timeout - 0.001
    assert route(held, elapsed=below, config=CONFIG, owner="b") is Route.REJECT
    assert claim(held, now=T0, elapsed=below, owner="b", config=CONFIG) is None
    assert route(held, elapsed=below + 0.001, config=CONFIG, owner="b") is Route.CLAIM


def test_a_shorter_configured_period_wins_over_a_longer_stored_one() -> None:
    """A process configured with a shorter recovery_timeout waits its own period."""
    long = Config(recovery_timeout=999, failure_threshold=3)
    rec = trip(ABSENT, now=T0, failures=3, config=long)
    assert rec is not None
    assert open_period(rec, long) == 999
    assert open_period(rec, CONFIG) == CONFIG.recovery_timeout
