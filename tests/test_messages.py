"""Messages are total: showing a refusal or a circuit never raises, whatever times it holds."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetbreaker import CircuitInfo, CircuitOpenError, CircuitState
from fleetbreaker._cli import status

times = st.none() | st.floats(allow_nan=True, allow_infinity=True)


@given(
    state=st.sampled_from(CircuitState),
    opened_at=times,
    retry_at=times,
    probe_in_flight=st.booleans(),
)
def test_showing_a_circuit_never_raises(
    state: CircuitState, opened_at: float | None, retry_at: float | None, probe_in_flight: bool
) -> None:
    """str/repr of CircuitOpenError and the CLI's detail line hold for any stored times."""
    info = CircuitInfo(
        name="svc",
        state=state,
        failure_count=3,
        opened_at=opened_at,
        retry_at=retry_at,
        probe_in_flight=probe_in_flight,
    )
    error = CircuitOpenError(info)
    assert "svc" in str(error)
    assert repr(error)
    assert repr(info)
    status._detail(info)


@pytest.mark.parametrize(
    "retry_at",
    [1e20, -1e20, math.inf, -math.inf, math.nan, 5e12],
    ids=["1e20", "-1e20", "inf", "-inf", "nan", "year-160000"],
)
def test_refusal_message_shows_an_impossible_time_raw(retry_at: float) -> None:
    """A retry time that is not a datetime is shown as the raw number."""
    info = CircuitInfo("svc", CircuitState.OPEN, failure_count=3, opened_at=0.0, retry_at=retry_at)
    text = str(CircuitOpenError(info))
    assert f"next probe after {retry_at!r} (Unix time)" in text


def test_refusal_message_shows_a_real_time_in_iso_format() -> None:
    """A normal retry time is shown as an ISO 8601 UTC time."""
    info = CircuitInfo("svc", CircuitState.OPEN, failure_count=3, opened_at=0.0, retry_at=1.5)
    error = CircuitOpenError(info)
    assert "next probe after 1970-01-01T00:00:01.500+00:00" in str(error)


@pytest.mark.parametrize(
    "wall", [1e20, math.inf, math.nan, -1e20], ids=["1e20", "inf", "nan", "-1e20"]
)
def test_cli_clock_time_falls_back_to_the_raw_number(wall: float) -> None:
    """The CLI shows a time it cannot format as the raw number."""
    assert status._clock_time(wall) == repr(wall)
