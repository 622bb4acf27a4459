"""The breaker's bookkeeping, tested without a breaker: view freshness (``make_view``), the
store's health (``StoreHealth``) and this process's own claims (``OwnClaims``)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from fleetbreaker import CircuitState, Config
from fleetbreaker._admission import make_view
from fleetbreaker._own_claims import OwnClaims
from fleetbreaker._protocol import ABSENT, Record, claim, trip
from fleetbreaker._store_health import BACKOFF_MAX, BACKOFF_MIN, StoreHealth

CONFIG = Config(
    failure_threshold=1,
    recovery_timeout=10,
    probe_timeout=4,
    local_cache_max_age=5,
    half_open_refresh=0.25,
)
T0 = 1_800_000_000.0


def opened() -> Record:
    record = trip(ABSENT, now=T0, failures=1, config=CONFIG, owner="me")
    assert record is not None
    return record


def claimed(owner: str = "me") -> Record:
    record = claim(opened(), now=T0 + 10, elapsed=11.0, owner=owner, config=CONFIG)
    assert record is not None
    return record


def ttl(record: Record, *, elapsed: float, extra: float = 0.0) -> float:
    view = make_view(
        record, 100.0, CONFIG, local=False, absent=False, seen_at=100.0 - elapsed, extra=extra
    )
    return view.fresh_until - view.read_at


@pytest.mark.parametrize(
    ("elapsed", "expected"),
    [(0.0, 5.0), (6.0, 4.0), (9.5, 0.5), (9.9, 0.1), (10.0, 0.25), (30.0, 0.25)],
    ids=["fresh-trip", "cache-age-first", "half-a-second-left", "a-tenth-left", "due", "long-due"],
)
def test_an_open_view_is_fresh_until_its_period_ends(elapsed: float, expected: float) -> None:
    """An open view is trusted for the rest of its open period (or the cache age, if sooner),
    then re-read every half_open_refresh."""
    assert ttl(opened(), elapsed=elapsed) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("elapsed", "expected"),
    [(0.0, 0.25), (3.9, 0.1), (3.95, 0.05), (4.0, 0.25), (9.0, 0.25)],
    ids=["fresh-claim", "lease-ends-sooner", "lease-nearly-over", "lease-over", "long-over"],
)
def test_a_claimed_view_is_reread_when_its_lease_could_end(elapsed: float, expected: float) -> None:
    """A half-open view with a live claim is re-read every half_open_refresh, or when the
    claim's lease ends if that is sooner."""
    assert ttl(claimed(), elapsed=elapsed) == pytest.approx(expected)


def test_a_free_half_open_view_is_reread_every_half_open_refresh() -> None:
    """A half-open view with the slot free (no lease to wait for) is re-read every refresh."""
    free = Record(state=CircuitState.HALF_OPEN, epoch=3, updated_at=T0, expires_at=T0 + 1e5)
    assert ttl(free, elapsed=0.0) == pytest.approx(0.25)


def test_a_backoff_extends_every_view() -> None:
    """While the store is in backoff, views stay fresh that much longer."""
    assert ttl(ABSENT, elapsed=0.0, extra=2.0) == pytest.approx(7.0)
    assert ttl(claimed(), elapsed=4.0, extra=2.0) == pytest.approx(2.25)
    assert ttl(opened(), elapsed=10.0, extra=2.0) == pytest.approx(2.25)


def test_a_view_remembers_when_its_record_was_first_seen() -> None:
    """make_view keeps seen_at, local and absent as given, and a closed view is closed."""
    view = make_view(ABSENT, 7.0, CONFIG, local=True, absent=True, seen_at=3.0)
    assert (view.read_at, view.seen_at, view.local, view.absent, view.closed) == (
        7.0,
        3.0,
        True,
        True,
        True,
    )
    assert not make_view(opened(), 7.0, CONFIG, local=False, absent=False, seen_at=7.0).closed


def test_store_backoff_doubles_from_half_a_second_to_fifteen_and_resets() -> None:
    """Each error in a row doubles the backoff, bounded; an answer resets it."""
    health = StoreHealth()
    assert not health.resting(0.0)
    waits = [health.failed(100.0) for _ in range(8)]
    assert waits == [BACKOFF_MIN, 1.0, 2.0, 4.0, 8.0, BACKOFF_MAX, BACKOFF_MAX, BACKOFF_MAX]
    assert health.resting(100.0 + BACKOFF_MAX - 0.001)
    assert not health.resting(100.0 + BACKOFF_MAX)
    health.answered(0.01)
    assert health.failed(200.0) == BACKOFF_MIN
    health.forget_errors()
    assert not health.resting(200.0)
    assert health.failed(300.0) == BACKOFF_MIN


def test_store_round_trip_is_smoothed_and_ages_views() -> None:
    """The first answer sets the round trip, later ones move it by a fifth; a view older than
    three round trips is outdated."""
    health = StoreHealth()
    assert health.outdated(0.001)  # no round trip measured yet: any age is old
    health.answered(0.010)
    assert health.rtt == pytest.approx(0.010)
    health.answered(0.020)
    assert health.rtt == pytest.approx(0.012)
    assert not health.outdated(0.036)
    assert health.outdated(0.0361)


def test_own_claims_tell_orphans_from_claims_being_probed() -> None:
    """A claim of ours is an orphan only while no call probes on it; others' never are."""
    claims, mine = OwnClaims(), claimed("me")
    assert claims.orphaned(mine, "me")
    assert not claims.orphaned(mine, "someone else")
    assert not claims.orphaned(opened(), "me")  # not a claim at all
    claims.probing(mine.epoch)
    assert not claims.orphaned(mine, "me")
    claims.done(mine.epoch)
    assert claims.orphaned(mine, "me")


def test_an_unsettled_outcome_is_taken_once_and_only_for_its_own_claim() -> None:
    """The deferred outcome comes back for a read of its very claim, once; a claim with
    another epoch or owner (a newer episode) drops it."""
    claims, mine = OwnClaims(), claimed("me")
    assert claims.take_unsettled(mine) is None
    claims.defer(mine, "success")
    taken = claims.take_unsettled(mine)
    assert taken is not None
    assert (taken.claim, taken.outcome) == (mine, "success")
    assert claims.take_unsettled(mine) is None
    for newer in (
        replace(mine, epoch=mine.epoch + 2),  # ours again, a later claim
        replace(mine, probe_owner="other"),  # same epoch, not ours
        replace(mine, epoch=mine.epoch + 1, probe_owner="other"),
    ):
        claims.defer(mine, "failure")
        assert claims.take_unsettled(newer) is None
        assert claims.take_unsettled(mine) is None  # dropped, not kept for later
