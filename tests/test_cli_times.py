"""The CLI's times and durations: ISO 8601 UTC plus a relative time, and the durations it reads."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetbreaker import CircuitInfo, CircuitState
from fleetbreaker._cli import views
from fleetbreaker._cli.times import duration_text, human, iso, json_time, parse_duration, relative

NOW = 1_795_957_500.0  # 2026-11-29T13:05:00Z


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90),
        ("90s", 90),
        ("15m", 900),
        ("2h", 7200),
        ("1h30m", 5400),
        ("1d", 86400),
        ("1.5h", 5400),
        ("0.5", 0.5),
        ("2m30s", 150),
    ],
    ids=["bare", "s", "m", "h", "h-m", "d", "fraction-h", "fraction-s", "m-s"],
)
def test_durations_read(text: str, seconds: float) -> None:
    """Bare seconds, s, m, h and d, and combinations largest unit first."""
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0", "more than 0 s, got '0'"),
        ("0s", "more than 0 s, got '0s'"),
        ("0h0m", "more than 0 s"),
        ("-5", "more than 0 s, got '-5'"),
        ("-5m", "more than 0 s, got '-5m'"),
        ("", "expected a duration such as 90, 90s, 15m, 2h or 1h30m, got ''"),
        ("15x", "got '15x'"),
        ("m", "got 'm'"),
        ("1m1h", "got '1m1h'"),
        ("15 m", "got '15 m'"),
        ("1e3", "got '1e3'"),
        ("nan", "got 'nan'"),
        ("inf", "got 'inf'"),
        ("9" * 400, "too long a duration"),
        ("\u0661\u0662", "expected a duration"),  # Arabic-Indic digits are not a duration
    ],
    ids=[
        "zero",
        "zero-s",
        "zero-h-m",
        "negative",
        "negative-m",
        "empty",
        "unknown-unit",
        "no-number",
        "units-out-of-order",
        "space",
        "exponent",
        "nan",
        "inf",
        "overflow",
        "non-ascii-digits",
    ],
)
def test_bad_durations_are_refused(text: str, message: str) -> None:
    """Zero, negatives and junk are a ValueError whose message shows the forms accepted."""
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        parse_duration(text)


def test_iso_is_utc_whole_seconds() -> None:
    """A time prints as ISO 8601 UTC with a Z, fractions of a second dropped."""
    assert iso(NOW) == "2026-11-29T13:05:00Z"
    assert iso(NOW + 0.999) == "2026-11-29T13:05:00Z"
    assert iso(0.0) == "1970-01-01T00:00:00Z"
    assert iso(None) is None


@pytest.mark.parametrize(
    ("offset", "text"),
    [
        (0.4, "now"),
        (-0.9, "now"),
        (12.7, "in 13 s"),
        (1799.99, "in 30 min"),
        (-59, "59 s ago"),
        (-180, "3 min ago"),
        (90, "in 1 min 30 s"),
        (1800, "in 30 min"),
        (-(2 * 3600 + 5 * 60), "2 h 5 min ago"),
        (3 * 86400, "in 3 d"),
        (-(86400 + 7200), "1 d 2 h ago"),
    ],
)
def test_relative_times(offset: float, text: str) -> None:
    """A relative time in the largest sensible units: in 12 s, 3 min ago, 2 h 5 min ago."""
    assert relative(NOW + offset, NOW) == text


def test_human_time_is_iso_and_relative() -> None:
    """The form every human-readable output uses; '-' for no time."""
    assert human(NOW + 12, NOW) == "2026-11-29T13:05:12Z (in 12 s)"
    assert human(None, NOW) == "-"


@pytest.mark.parametrize(
    "wall", [math.nan, math.inf, -math.inf, 1e20, -1e20], ids=["nan", "inf", "-inf", "big", "neg"]
)
def test_a_time_that_is_not_a_date_shows_raw(wall: float) -> None:
    """A stored time no calendar holds is shown as the number, and is null in JSON."""
    assert human(wall, NOW) == f"{wall!r} (not a date)"
    assert json_time("at", wall) == {"at": None, "at_iso": None}


def test_json_time_pairs_epoch_and_iso() -> None:
    """--json gives each time as epoch seconds and an ISO string beside it."""
    assert json_time("retry_at", NOW + 0.5) == {
        "retry_at": NOW + 0.5,
        "retry_at_iso": "2026-11-29T13:05:00Z",
    }
    assert json_time("retry_at", None) == {"retry_at": None, "retry_at_iso": None}


def test_duration_text() -> None:
    """A duration in a confirmation message."""
    assert duration_text(1800) == "30 min"
    assert duration_text(90) == "1 min 30 s"
    assert duration_text(0.5) == "0.5 s"


times = st.none() | st.floats(allow_nan=True, allow_infinity=True)
rates = st.none() | st.floats(allow_nan=True, allow_infinity=True)


circuits = st.builds(
    CircuitInfo,
    name=st.just("svc"),
    state=st.sampled_from(CircuitState),
    failure_count=st.integers(min_value=0, max_value=10**9),
    opened_at=times,
    retry_at=times,
    probe_in_flight=st.booleans(),
    rule=st.none() | st.just("failure_rate"),
    failure_rate=rates,
    slow_call_rate=rates,
)


@given(info=circuits, now=st.floats(min_value=0, max_value=4e9))
def test_showing_a_circuit_never_raises(info: CircuitInfo, now: float) -> None:
    """Table, block and JSON hold for any stored times and rates; the JSON is strict JSON."""
    assert views.table([info], now)
    assert views.block(info, now)
    json.loads(json.dumps(views.to_json(info), allow_nan=False))
