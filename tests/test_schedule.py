"""The open-period schedule: backoff over failed recoveries, jitter, and ``retry_after`` hints.

Pure functions of a Config and plain numbers: the writer of a trip or a re-open draws the
period once and stores it, so every case here is a value in, a value out.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from fleetbreaker import Config
from fleetbreaker._limits import MAX_COUNT, MAX_PERIOD, MAX_RECORD_TTL
from fleetbreaker._schedule import backoff, hint_seconds, open_period_for
from fleetbreaker.config import DAY

GROWING = Config(recovery_timeout=10, recovery_backoff_multiplier=2, recovery_timeout_max=60)


def never(_failure: object) -> None:
    """A ``retry_after`` that never hints (it only lets the period grow to 24 h)."""


def test_backoff_doubles_from_recovery_timeout_up_to_the_max() -> None:
    """recovery_timeout=10, multiplier=2, max=60 over k=0..6: 10, 20, 40, then 60 for good."""
    assert [backoff(GROWING, k) for k in range(7)] == [10, 20, 40, 60, 60, 60, 60]


def test_backoff_is_a_power_of_the_multiplier() -> None:
    """recovery_timeout * multiplier ** k: with 3, the periods are 1, 3, 9, 27, 81 s."""
    config = Config(recovery_timeout=1, recovery_backoff_multiplier=3, recovery_timeout_max=1000)
    assert [backoff(config, k) for k in range(5)] == [1, 3, 9, 27, 81]


def test_open_period_without_jitter_or_hint_is_the_backoff() -> None:
    """With no jitter and no hint the open period is exactly the schedule's step."""
    assert [open_period_for(GROWING, k, draw=0.7) for k in range(7)] == [
        10,
        20,
        40,
        60,
        60,
        60,
        60,
    ]


def test_a_multiplier_of_one_keeps_every_period_at_recovery_timeout() -> None:
    """The default multiplier never grows the period, however many recoveries failed."""
    config = Config(recovery_timeout=7)
    assert {backoff(config, k) for k in (0, 1, 5, 1000, MAX_COUNT)} == {7.0}


@pytest.mark.parametrize("open_count", [-1, -(2**40)], ids=["minus-one", "very-negative"])
def test_a_negative_open_count_reads_as_the_first_period(open_count: int) -> None:
    """A count below zero (never written, but not trusted) is the first period, not a shrink."""
    assert backoff(GROWING, open_count) == 10


@pytest.mark.parametrize(
    "settings",
    [
        {"recovery_backoff_multiplier": 1000},
        {
            "recovery_backoff_multiplier": 1000,
            "recovery_timeout_max": MAX_PERIOD,
            "record_ttl": MAX_RECORD_TTL,
        },
        {"recovery_backoff_multiplier": 2, "recovery_timeout_max": 60},
        {"recovery_backoff_multiplier": 1.0000001},
    ],
    ids=["x1000-24h", "x1000-max-period", "x2-60s", "barely-growing"],
)
@pytest.mark.parametrize("open_count", [2**31 - 1, 2**63], ids=["2^31-1", "2^63"])
def test_backoff_never_overflows(settings: dict[str, Any], open_count: int) -> None:
    """Huge counts and multipliers give the longest period, never OverflowError or inf."""
    config = Config(recovery_timeout=10, **settings)
    assert backoff(config, open_count) == config.max_open_period
    assert open_period_for(config, open_count, draw=0.0) == config.max_open_period


@given(
    recovery_timeout=st.floats(min_value=0, max_value=DAY, exclude_min=True),
    multiplier=st.floats(min_value=1, max_value=1000),
    open_count=st.integers(min_value=0, max_value=MAX_COUNT),
)
@example(recovery_timeout=5e-324, multiplier=2.0, open_count=1100)
@example(recovery_timeout=5e-324, multiplier=2.0, open_count=1050)
@example(recovery_timeout=1e-310, multiplier=1000.0, open_count=MAX_COUNT)
def test_backoff_is_a_finite_period_within_bounds_for_any_valid_config(
    recovery_timeout: float, multiplier: float, open_count: int
) -> None:
    """For any valid config and count the period is finite, in [recovery_timeout, longest]."""
    config = Config(recovery_timeout=recovery_timeout, recovery_backoff_multiplier=multiplier)
    period = backoff(config, open_count)
    assert math.isfinite(period)
    assert recovery_timeout <= period <= config.max_open_period


@given(
    multiplier=st.floats(min_value=1, max_value=1000),
    counts=st.lists(st.integers(min_value=0, max_value=MAX_COUNT), min_size=2, max_size=5),
)
def test_backoff_never_shrinks_as_failed_recoveries_grow(
    multiplier: float, counts: list[int]
) -> None:
    """One more failed recovery never gives a shorter period."""
    config = Config(recovery_timeout=3, recovery_backoff_multiplier=multiplier)
    periods = [backoff(config, k) for k in sorted(counts)]
    assert periods == sorted(periods)


@given(
    jitter=st.floats(min_value=0, max_value=1, exclude_max=True),
    draw=st.floats(min_value=0, max_value=1),
    open_count=st.integers(min_value=0, max_value=10),
)
def test_jitter_draws_the_period_from_the_band_below_the_step(
    jitter: float, draw: float, open_count: int
) -> None:
    """A draw in [0, 1] gives a period in [(1 - jitter) d, d], d being the schedule's step."""
    config = Config(
        recovery_timeout=10,
        recovery_backoff_multiplier=2,
        recovery_timeout_max=60,
        recovery_jitter=jitter,
    )
    step = backoff(config, open_count)
    period = open_period_for(config, open_count, draw=draw)
    assert (1 - jitter) * step <= period <= step


def test_the_draw_picks_the_point_of_the_band() -> None:
    """Draw 0 is the full step, draw 1 the bottom of the band, draw 0.5 half-way."""
    config = Config(recovery_timeout=10, recovery_jitter=0.5)
    periods = [open_period_for(config, 0, draw=draw) for draw in (0.0, 0.5, 1.0)]
    assert periods == [10.0, 7.5, 5.0]


@pytest.mark.parametrize(
    ("draw", "expected"),
    [(-0.5, 10.0), (-math.inf, 10.0), (1.5, 8.0), (1e300, 8.0), (math.inf, 8.0)],
    ids=["below-zero", "minus-inf", "above-one", "huge", "inf"],
)
def test_a_draw_outside_the_unit_interval_is_clamped(draw: float, expected: float) -> None:
    """A draw below 0 counts as 0 and above 1 as 1: the period never leaves the band."""
    config = Config(recovery_timeout=10, recovery_jitter=0.2)
    assert open_period_for(config, 0, draw=draw) == expected


@given(
    hint=st.floats(min_value=0, max_value=2 * DAY, exclude_min=True),
    draw=st.floats(min_value=0, max_value=1),
    open_count=st.integers(min_value=0, max_value=10),
    capped=st.booleans(),
)
def test_a_hint_raises_the_period_to_at_least_the_hint_up_to_the_cap(
    hint: float, draw: float, open_count: int, capped: bool
) -> None:
    """A hint makes the period max(schedule, min(hint, cap)): cap is the max, else 24 h."""
    extra: dict[str, Any] = {"recovery_timeout_max": 600} if capped else {"retry_after": never}
    config = Config(
        recovery_timeout=10, recovery_backoff_multiplier=2, recovery_jitter=0.3, **extra
    )
    cap = 600 if capped else DAY
    scheduled = open_period_for(config, open_count, draw=draw)
    hinted = open_period_for(config, open_count, draw=draw, hint=hint)
    assert hinted == max(scheduled, min(hint, cap))
    assert hinted >= scheduled  # never lowers it
    assert hinted >= min(hint, cap)
    assert hinted <= max(scheduled, cap)


@pytest.mark.parametrize(
    ("extra", "cap"),
    [
        ({"retry_after": never}, DAY),
        ({"recovery_timeout_max": 300}, 300.0),
        ({"recovery_timeout_max": 300, "retry_after": never}, 300.0),
    ],
    ids=["no-max-24h", "max", "max-with-retry-after"],
)
def test_a_huge_hint_is_capped_at_the_max_or_a_day(extra: dict[str, Any], cap: float) -> None:
    """A hint beyond the cap keeps the circuit open exactly the cap, not the hint."""
    config = Config(recovery_timeout=10, **extra)
    assert open_period_for(config, 0, draw=0.0, hint=1e12) == cap
    assert config.max_open_period >= cap  # a reader waits the whole hinted period


def test_a_hint_shorter_than_the_schedule_never_lowers_it() -> None:
    """A hint below the drawn period leaves the period as the schedule drew it."""
    assert open_period_for(GROWING, 2, draw=0.0, hint=1.0) == 40.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1, 1.0), (2.5, 2.5), (1e-9, 1e-9), (86400, 86400.0)],
    ids=["int", "float", "tiny", "a-day"],
)
def test_hint_seconds_accepts_positive_finite_numbers(value: object, expected: float) -> None:
    """A positive finite int or float is a hint, as a float."""
    hint = hint_seconds(value)
    assert hint == expected
    assert type(hint) is float


@pytest.mark.parametrize(
    "value",
    [True, False, math.nan, math.inf, -math.inf, -1, -0.5, 0, 0.0, -0.0, "5", "", None, [5], b"5"],
    ids=repr,
)
def test_hint_seconds_rejects_anything_but_a_positive_finite_number(value: object) -> None:
    """Bools, NaN, infinities, negatives, zero, text, None and containers are no hint."""
    assert hint_seconds(value) is None


def test_hint_seconds_takes_an_int_too_large_for_a_float_as_a_long_hint() -> None:
    """A huge int from ``retry_after`` is a hint at least as long as any period, not an error."""
    hint = hint_seconds(10**400)
    assert hint is not None
    assert hint >= MAX_PERIOD
    assert open_period_for(GROWING, 0, draw=0.0, hint=hint) == 60


def test_hint_seconds_rejects_a_negative_int_too_large_for_a_float() -> None:
    """A hugely negative int is no hint, and no OverflowError either."""
    assert hint_seconds(-(10**400)) is None
