"""The exact record each transition writes, and the periods a reader derives from a record.

``test_protocol.py`` checks the protocol's rules and invariants; these tests pin every field of
every written record (a field a transition forgets to set or to clear is a stored bug), and the
caps and boundaries of the periods a reader measures.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetbreaker import CircuitState, Config, HistoryEntry
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
    reserved_for_another,
    route,
    trip,
)

# Every period differs from every other, so a transition that takes the wrong one shows.
CONFIG = Config(
    failure_threshold=3,
    recovery_timeout=10,
    success_threshold=3,
    probe_timeout=4,
    record_ttl=1000,
)
T0 = 1_800_000_000.0
NOW = T0 + 50.0

Outcome = Callable[..., Record | None]
OUTCOMES = [probe_succeeded, probe_failed, probe_released]
OUTCOME_IDS = ["succeeded", "failed", "released"]


def open_record(**changes: object) -> Record:
    """An OPEN record written at T0 by ``tripper`` after 7 failures, epoch 5."""
    rec = Record(
        state=CircuitState.OPEN,
        epoch=5,
        opened_at=T0,
        retry_at=T0 + 10,
        failure_count=7,
        updated_at=T0,
        expires_at=T0 + 1000,
        reserved_for="tripper",
        reserved_until=T0 + 11,
    )
    return replace(rec, **changes)  # type: ignore[arg-type]


def held_record(**changes: object) -> Record:
    """A HALF_OPEN record whose probe slot ``prober`` holds, one success into the episode."""
    rec = Record(
        state=CircuitState.HALF_OPEN,
        epoch=6,
        opened_at=T0,
        probe_owner="prober",
        probe_expires_at=T0 + 14,
        successes=1,
        failure_count=7,
        updated_at=T0 + 10,
        expires_at=T0 + 1010,
    )
    return replace(rec, **changes)  # type: ignore[arg-type]


def free_record(**changes: object) -> Record:
    """A HALF_OPEN record whose slot ``prober`` freed at T0 + 12, reserved for it."""
    rec = Record(
        state=CircuitState.HALF_OPEN,
        epoch=7,
        opened_at=T0,
        successes=1,
        failure_count=7,
        updated_at=T0 + 12,
        expires_at=T0 + 1012,
        reserved_for="prober",
        reserved_until=T0 + 13,
    )
    return replace(rec, **changes)  # type: ignore[arg-type]


# --- the records transitions write ---------------------------------------------------------------


@pytest.mark.parametrize("owner", ["tripper", None], ids=["reserved", "unreserved"])
def test_trip_writes_a_complete_open_record(owner: str | None) -> None:
    """A trip stores failure_count, updated_at, expires_at and the tripper's reservation."""
    closed = replace(ABSENT, epoch=4, updated_at=T0 - 99, expires_at=T0 + 5)
    assert trip(closed, now=NOW, failures=7, config=CONFIG, owner=owner) == Record(
        state=CircuitState.OPEN,
        epoch=5,
        opened_at=NOW,
        retry_at=NOW + 10,
        failure_count=7,
        updated_at=NOW,
        expires_at=NOW + 1000,
        reserved_for=owner,
        reserved_until=None if owner is None else NOW + 10 + CLAIM_RESERVATION,
        rule="consecutive",
        history=(HistoryEntry(NOW, "closed", "open", owner or "unknown", "consecutive"),),
    )


def test_claim_of_an_open_record_starts_a_clean_episode() -> None:
    """Claiming OPEN clears retry_at, reservation and successes; refreshes updated/expires_at."""
    rec = open_record(successes=2)
    assert claim(rec, now=NOW, elapsed=10.0, owner="tripper", config=CONFIG) == Record(
        state=CircuitState.HALF_OPEN,
        epoch=6,
        opened_at=T0,
        retry_at=None,
        probe_owner="tripper",
        probe_expires_at=NOW + 4,
        successes=0,
        failure_count=7,
        updated_at=NOW,
        expires_at=NOW + 1000,
        reserved_for=None,
        reserved_until=None,
    )


def test_claim_of_a_free_slot_keeps_the_episodes_successes() -> None:
    """Claiming a freed slot keeps the episode's successes and clears the reservation."""
    rec = free_record()
    assert claim(rec, now=NOW, elapsed=0.0, owner="prober", config=CONFIG) == Record(
        state=CircuitState.HALF_OPEN,
        epoch=8,
        opened_at=T0,
        probe_owner="prober",
        probe_expires_at=NOW + 4,
        successes=1,
        failure_count=7,
        updated_at=NOW,
        expires_at=NOW + 1000,
    )


def test_takeover_of_an_expired_claim_keeps_the_episodes_successes() -> None:
    """Taking over an expired claim moves the slot to the new owner with a fresh expiry."""
    rec = held_record()
    assert claim(rec, now=NOW, elapsed=4.0, owner="rescuer", config=CONFIG) == replace(
        rec,
        epoch=7,
        probe_owner="rescuer",
        probe_expires_at=NOW + 4,
        updated_at=NOW,
        expires_at=NOW + 1000,
    )


def test_success_below_threshold_frees_the_slot_for_the_prober() -> None:
    """A success below threshold counts, frees the slot for the prober and refreshes expires_at."""
    rec = held_record()
    assert probe_succeeded(rec, token=6, now=NOW, config=CONFIG) == Record(
        state=CircuitState.HALF_OPEN,
        epoch=7,
        opened_at=T0,
        successes=2,
        failure_count=7,
        updated_at=NOW,
        expires_at=NOW + 1000,
        reserved_for="prober",
        reserved_until=NOW + CLAIM_RESERVATION,
    )


@pytest.mark.parametrize("successes", [2, 5], ids=["reaching", "past"])
def test_success_at_or_past_threshold_closes_with_a_clean_record(successes: int) -> None:
    """The success reaching (or passing) success_threshold writes a clean CLOSED record."""
    rec = held_record(successes=successes)
    assert probe_succeeded(rec, token=6, now=NOW, config=CONFIG) == Record(
        state=CircuitState.CLOSED,
        epoch=7,
        updated_at=NOW,
        expires_at=NOW + 1000,
        history=(HistoryEntry(NOW, "half_open", "closed", "prober", "probe succeeded"),),
    )


def test_failed_probe_reopens_keeping_the_failure_count() -> None:
    """A failed probe reopens, keeping failure_count and reserving the next probe for the prober."""
    rec = held_record()
    assert probe_failed(rec, token=6, now=NOW, config=CONFIG) == Record(
        state=CircuitState.OPEN,
        epoch=7,
        opened_at=NOW,
        retry_at=NOW + 10,
        failure_count=7,
        updated_at=NOW,
        expires_at=NOW + 1000,
        reserved_for="prober",
        reserved_until=NOW + 10 + CLAIM_RESERVATION,
        open_count=1,
        history=(HistoryEntry(NOW, "half_open", "open", "prober", "probe failed"),),
    )


def test_released_probe_frees_the_slot_without_counting() -> None:
    """A released probe frees the slot uncounted, reserved for the prober; expires_at refreshed."""
    rec = held_record()
    assert probe_released(rec, token=6, now=NOW, config=CONFIG) == Record(
        state=CircuitState.HALF_OPEN,
        epoch=7,
        opened_at=T0,
        successes=1,
        failure_count=7,
        updated_at=NOW,
        expires_at=NOW + 1000,
        reserved_for="prober",
        reserved_until=NOW + CLAIM_RESERVATION,
    )


@given(
    now=st.floats(min_value=0, max_value=4e9),
    successes=st.integers(min_value=0, max_value=5),
    step=st.sampled_from(["trip", "claim", *OUTCOME_IDS]),
)
def test_every_write_is_stamped_and_lives_record_ttl(now: float, successes: int, step: str) -> None:
    """Every write stores its time and an expiry record_ttl later: a busy episode never expires."""
    if step == "trip":
        new = trip(ABSENT, now=now, failures=3, config=CONFIG)
    elif step == "claim":
        new = claim(
            free_record(successes=successes), now=now, elapsed=1.0, owner="b", config=CONFIG
        )
    else:
        outcome = OUTCOMES[OUTCOME_IDS.index(step)]
        new = outcome(held_record(successes=successes), token=6, now=now, config=CONFIG)
    assert new is not None
    assert (new.updated_at, new.expires_at) == (now, now + CONFIG.record_ttl)


# --- fencing: who may settle a probe ------------------------------------------------------------


@pytest.mark.parametrize("outcome", OUTCOMES, ids=OUTCOME_IDS)
@pytest.mark.parametrize(
    "rec",
    [
        free_record(epoch=6),  # the slot was freed: nobody holds it any more
        open_record(epoch=6, probe_owner="prober", probe_expires_at=T0 + 14),
        replace(held_record(), state=CircuitState.CLOSED),
    ],
    ids=["freed-slot", "open", "closed"],
)
def test_only_a_held_half_open_claim_can_be_settled(outcome: Outcome, rec: Record) -> None:
    """A token equal to the epoch settles nothing unless the record is HALF_OPEN with an owner."""
    assert outcome(rec, token=rec.epoch, now=NOW, config=CONFIG) is None


@pytest.mark.parametrize("outcome", OUTCOMES, ids=OUTCOME_IDS)
def test_the_holder_settles_its_claim(outcome: Outcome) -> None:
    """The holder's outcome, with the epoch of its claim as the token, is written."""
    rec = held_record()
    assert outcome(rec, token=rec.epoch, now=NOW, config=CONFIG) is not None
    assert outcome(rec, token=rec.epoch - 1, now=NOW, config=CONFIG) is None


# --- routes and claims at their boundaries ------------------------------------------------------


def test_closed_admits_whatever_else_the_record_holds() -> None:
    """A CLOSED record admits every caller, even holding stale deadlines or a reservation."""
    rec = replace(open_record(), state=CircuitState.CLOSED)
    assert route(rec, elapsed=0.0, config=CONFIG, owner="other") is Route.ADMIT
    assert claim(rec, now=NOW, elapsed=0.0, owner="other", config=CONFIG) is None


def test_the_reserved_owner_claims_as_soon_as_the_circuit_is_due() -> None:
    """The tripper claims once the circuit is due; others also wait out the reservation."""
    rec = open_record()
    assert claim(rec, now=NOW, elapsed=10.0, owner="tripper", config=CONFIG) is not None
    assert claim(rec, now=NOW, elapsed=10.0, owner="other", config=CONFIG) is None
    assert claim(rec, now=NOW, elapsed=11.0, owner="other", config=CONFIG) is not None


@pytest.mark.parametrize("owner", ["other", None], ids=["another-process", "no-owner"])
def test_a_reserved_free_slot_refuses_others_until_the_reservation_lapses(
    owner: str | None,
) -> None:
    """A reserved free slot refuses others until CLAIM_RESERVATION has passed; never its owner."""
    rec = free_record()
    below = CLAIM_RESERVATION - 0.001
    assert route(rec, elapsed=below, config=CONFIG, owner=owner) is Route.REJECT
    assert route(rec, elapsed=CLAIM_RESERVATION, config=CONFIG, owner=owner) is Route.CLAIM
    assert route(rec, elapsed=0.0, config=CONFIG, owner="prober") is Route.CLAIM
    assert reserved_for_another(rec, elapsed=below, config=CONFIG, owner=owner)
    assert not reserved_for_another(rec, elapsed=CLAIM_RESERVATION, config=CONFIG, owner=owner)
    assert not reserved_for_another(rec, elapsed=0.0, config=CONFIG, owner="prober")


def test_an_unreserved_free_slot_is_anyones_at_once() -> None:
    """A free slot reserved for nobody may be claimed by anyone at first sight."""
    rec = free_record(reserved_for=None, reserved_until=None)
    assert not reserved_for_another(rec, elapsed=0.0, config=CONFIG, owner="other")
    assert route(rec, elapsed=0.0, config=CONFIG, owner="other") is Route.CLAIM
    assert route(rec, elapsed=0.0, config=CONFIG) is Route.CLAIM


def test_an_expired_claim_is_taken_over_whoever_the_slot_was_reserved_for() -> None:
    """An expired claim may be taken over by anyone, whoever the slot was once reserved for."""
    rec = held_record(reserved_for="prober", reserved_until=T0 + 1e6)
    assert route(rec, elapsed=3.999, config=CONFIG, owner="other") is Route.REJECT
    assert route(rec, elapsed=4.0, config=CONFIG, owner="other") is Route.CLAIM
    assert claim(rec, now=NOW, elapsed=4.0, owner="other", config=CONFIG) is not None


def test_a_held_claim_refuses_even_its_owner() -> None:
    """While a claim holds, its owner too is refused a second probe."""
    rec = held_record()
    assert route(rec, elapsed=0.0, config=CONFIG, owner="prober") is Route.REJECT
    assert claim(rec, now=NOW, elapsed=0.0, owner="prober", config=CONFIG) is None


# --- periods: differences of one writer's times, capped by the reader's config ------------------


@pytest.mark.parametrize(
    ("written", "expected"),
    [(3.0, 3.0), (10.0, 10.0), (10.5, 10.0), (1e9, 10.0), (0.0, 0.0), (-5.0, 0.0)],
    ids=["shorter", "exactly-the-cap", "just-above", "far-future", "zero", "negative"],
)
def test_open_period_is_the_stored_difference_capped_by_recovery_timeout(
    written: float, expected: float
) -> None:
    """open_period is retry_at - updated_at, at least 0 and at most recovery_timeout."""
    rec = open_record(updated_at=T0 + 3, retry_at=T0 + 3 + written)
    assert open_period(rec, CONFIG) == expected


@pytest.mark.parametrize(
    ("written", "expected"),
    [(1.5, 1.5), (4.0, 4.0), (9.0, 4.0), (-1.0, 0.0)],
    ids=["shorter", "exactly-the-cap", "longer", "negative"],
)
def test_claim_period_is_the_stored_difference_capped_by_probe_timeout(
    written: float, expected: float
) -> None:
    """claim_period is probe_expires_at - updated_at clamped to [0, probe_timeout]."""
    rec = held_record(updated_at=T0 + 3, probe_expires_at=T0 + 3 + written)
    assert claim_period(rec, CONFIG) == expected


@pytest.mark.parametrize(
    ("state", "written", "expected"),
    [
        (CircuitState.OPEN, 5.0, 5.0),
        (CircuitState.OPEN, 11.0, 11.0),
        (CircuitState.OPEN, 1e9, 10.0 + CLAIM_RESERVATION),
        (CircuitState.OPEN, -2.0, 0.0),
        (CircuitState.HALF_OPEN, 0.5, 0.5),
        (CircuitState.HALF_OPEN, 5.0, CLAIM_RESERVATION),
        (CircuitState.HALF_OPEN, -2.0, 0.0),
    ],
    ids=[
        "open-shorter",
        "open-exactly-the-cap",
        "open-far-future",
        "open-negative",
        "half-open-shorter",
        "half-open-longer",
        "half-open-negative",
    ],
)
def test_reservation_period_cap_covers_the_wait_only_while_open(
    state: CircuitState, written: float, expected: float
) -> None:
    """The reservation cap is recovery_timeout + CLAIM_RESERVATION while OPEN, else the latter."""
    rec = replace(free_record(), state=state, updated_at=T0, reserved_until=T0 + written)
    assert reservation_period(rec, CONFIG) == expected


def test_a_period_without_a_deadline_is_zero() -> None:
    """A record without the deadline a period derives from holds nothing: the period is 0."""
    assert open_period(open_record(retry_at=None), CONFIG) == 0.0
    assert claim_period(held_record(probe_expires_at=None), CONFIG) == 0.0
    assert reservation_period(open_record(reserved_until=None), CONFIG) == 0.0


def test_periods_follow_the_readers_config_not_the_writers() -> None:
    """The caps are the reader's own periods: a reader with shorter ones waits less."""
    short = Config(recovery_timeout=2, probe_timeout=1, record_ttl=1000)
    assert open_period(open_record(), short) == 2.0
    assert claim_period(held_record(), short) == 1.0
    assert reservation_period(open_record(), short) == 2.0 + CLAIM_RESERVATION
    assert route(open_record(), elapsed=2.0, config=short, owner="tripper") is Route.CLAIM
    assert route(held_record(), elapsed=1.0, config=short, owner="other") is Route.CLAIM


@given(
    written_at=st.integers(min_value=0, max_value=2**33).map(float),
    delta=st.integers(min_value=-(2**20), max_value=2**20).map(lambda n: n / 4),
)
def test_open_period_is_clamped_for_any_stored_times(written_at: float, delta: float) -> None:
    """open_period is any two stored times' difference clamped to [0, recovery_timeout]."""
    rec = open_record(updated_at=written_at, retry_at=written_at + delta, reserved_for=None)
    period = min(max(delta, 0.0), CONFIG.recovery_timeout)
    assert open_period(rec, CONFIG) == period
    assert route(rec, elapsed=period, config=CONFIG) is Route.CLAIM
    if period > 0:
        assert route(rec, elapsed=period - 0.125, config=CONFIG) is Route.REJECT
