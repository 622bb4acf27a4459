"""make_view's policy fields: when a view certainly refuses, a process's own hold, and which
views the hot paths may admit on (pure: records and times in, a view out)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from fleetbreaker import CircuitState, Config
from fleetbreaker._admission import make_view
from fleetbreaker._protocol import ABSENT, Record

CONFIG = Config(recovery_timeout=10, probe_timeout=4, local_cache_max_age=5)
T0 = 1_800_000_000.0
NOW = 1000.0
NEVER = -math.inf

OPEN = Record(state=CircuitState.OPEN, epoch=3, opened_at=T0, retry_at=T0 + 10, updated_at=T0)
CLAIMED = Record(
    state=CircuitState.HALF_OPEN,
    epoch=4,
    probe_owner="prober",
    probe_expires_at=T0 + 4,
    updated_at=T0,
)
CLOSED = replace(ABSENT, epoch=5, updated_at=T0)


def view(record: Record, *, seen_at: float = NOW - 2, **kwargs: object):  # type: ignore[no-untyped-def]
    return make_view(record, NOW, CONFIG, local=False, absent=False, seen_at=seen_at, **kwargs)  # type: ignore[arg-type]


def test_an_open_view_certainly_refuses_until_its_period_from_first_sight() -> None:
    """OPEN: refuse_until is when this process first saw it plus the open period."""
    assert view(OPEN).refuse_until == NOW - 2 + 10


def test_a_held_claim_certainly_refuses_until_the_claim_period_from_first_sight() -> None:
    """HALF_OPEN with a probe in flight: refuse_until is first sight plus the claim period."""
    assert view(CLAIMED).refuse_until == NOW - 2 + 4


@pytest.mark.parametrize(
    "record",
    [CLOSED, replace(CLAIMED, probe_owner=None, probe_expires_at=None)],
    ids=["closed", "half-open-free-slot"],
)
def test_a_view_that_may_admit_never_certainly_refuses(record: Record) -> None:
    """A closed view, or a free probe slot, has no certain refusal: calls are routed."""
    assert view(record).refuse_until == NEVER


def test_a_hold_refuses_a_closed_record_until_it_ends() -> None:
    """Under a hold a closed record makes a view that is not closed, goes stale at the hold's
    end (or sooner), refuses until then, and keeps its flags."""
    held = make_view(
        CLOSED, NOW, CONFIG, local=True, absent=True, seen_at=NOW - 2, held_until=NOW + 3
    )
    assert held.closed is False
    assert held.read_at == NOW
    assert held.fresh_until == NOW + 3  # the hold ends before the 5 s cache age
    assert held.refuse_until == held.held_until == NOW + 3
    assert (held.local, held.absent, held.seen_at) == (True, True, NOW - 2)
    assert held.hot_until == held.closed_until == NEVER
    long = view(CLOSED, held_until=NOW + 60)
    assert long.fresh_until == NOW + 5  # re-read within the cache age during a long hold


def test_a_hold_that_has_ended_leaves_the_view_closed() -> None:
    """At the hold's end the view is the record's own (closed, hot, no certain refusal)."""
    ended = view(CLOSED, held_until=NOW)
    assert ended.closed is True
    assert ended.refuse_until == NEVER
    assert ended.hot_until == ended.fresh_until == NOW + 5


def test_a_counted_failure_takes_the_view_off_the_plain_hot_path_only() -> None:
    """counting: the plain hot path (hot_until) is off, the recorded one (closed_until) is on."""
    counting = view(CLOSED, counting=True)
    assert counting.counting is True
    assert counting.hot_until == NEVER
    assert counting.closed_until == counting.fresh_until == NOW + 5
    plain = view(CLOSED)
    assert plain.counting is False
    assert plain.hot_until == plain.closed_until == NOW + 5


def test_a_view_that_is_not_closed_is_never_admitted_by_a_hot_path() -> None:
    """An open view's hot_until and closed_until are never, however fresh it is."""
    open_view = view(OPEN)
    assert open_view.fresh_until > NOW
    assert open_view.hot_until == open_view.closed_until == NEVER


def test_extra_lengthens_only_by_what_is_given() -> None:
    """Without extra, a closed view is fresh for exactly local_cache_max_age."""
    assert view(CLOSED).fresh_until == NOW + 5
    assert view(CLOSED, extra=2.0).fresh_until == NOW + 7
