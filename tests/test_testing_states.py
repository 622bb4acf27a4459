"""The testing kit's public surface, and its helpers that put a breaker into a state."""

from __future__ import annotations

import subprocess
import sys

import pytest

import fleetbreaker.testing
from fleetbreaker import CircuitBreaker, CircuitOpenError, CircuitState, Config, MemoryStore
from fleetbreaker.testing import FakeClock, RecordingHook, TripError, forced, trip

CONFIG = Config(failure_threshold=3, recovery_timeout=10, success_threshold=1)


def make(
    store: MemoryStore, clock: FakeClock, config: Config = CONFIG, **kw: object
) -> CircuitBreaker:
    return CircuitBreaker("svc", store=store, config=config, clock=clock, **kw)  # type: ignore[arg-type]


def test_all_is_pinned() -> None:
    """fleetbreaker.testing.__all__ lists exactly its public names, sorted."""
    assert fleetbreaker.testing.__all__ == [
        "FakeClock",
        "FaultyStore",
        "RecordingHook",
        "TripError",
        "breakers_disabled",
        "forced",
        "trip",
    ]


def test_importing_the_kit_needs_neither_pytest_nor_hypothesis() -> None:
    """fleetbreaker.testing imports with the core alone: pytest and Hypothesis stay out."""
    code = (
        "import sys, fleetbreaker.testing; "
        "bad = [m for m in ('pytest', 'hypothesis') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_contract_suite_without_pytest_names_the_extra() -> None:
    """Importing store_contract where pytest is missing says which extra to install."""
    code = (
        "import sys\n"
        "sys.modules['pytest'] = None\n"  # an import of pytest now raises ImportError
        "import fleetbreaker.testing.store_contract\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    assert "pip install 'fleetbreaker[testing]'" in result.stderr


@pytest.mark.parametrize("state", ["open", CircuitState.OPEN], ids=["text", "enum"])
def test_forced_open_refuses_calls_in_the_block_only(state: str | CircuitState) -> None:
    """Inside forced(breaker, "open") every breaker on the circuit refuses; after it, they
    admit again and the override is gone."""
    store, clock = MemoryStore(), FakeClock()
    breaker, other = make(store, clock), make(store, clock)
    with forced(breaker, state) as info:
        assert info.override is not None
        assert info.override.kind == "open"
        with pytest.raises(CircuitOpenError):
            breaker.call(lambda: "no")
        assert other.info().override is not None
        with pytest.raises(CircuitOpenError):
            other.call(lambda: "no")
    assert breaker.call(lambda: "yes") == "yes"
    assert breaker.info().override is None


def test_forced_closed_admits_calls_over_an_open_circuit_and_restores_it() -> None:
    """forced(breaker, "closed") admits calls while the circuit underneath is open; after the
    block the open circuit refuses again."""
    store, clock = MemoryStore(), FakeClock()
    breaker = make(store, clock)
    trip(breaker)
    with forced(breaker, "closed"):
        assert breaker.call(lambda: "through") == "through"
    with pytest.raises(CircuitOpenError):
        breaker.call(lambda: "no")


def test_forced_ends_its_override_when_the_block_raises() -> None:
    """An exception in the block still ends the override."""
    store, clock = MemoryStore(), FakeClock()
    breaker = make(store, clock)
    with pytest.raises(KeyError), forced(breaker, "open"):
        raise KeyError
    assert breaker.info().override is None


def test_forced_refuses_half_open_and_an_override_in_force() -> None:
    """Half-open cannot be forced; forcing over an operator's override is refused."""
    store, clock = MemoryStore(), FakeClock()
    breaker = make(store, clock)
    with (
        pytest.raises(ValueError, match="half-open circuit cannot be forced"),
        forced(breaker, "half_open"),
    ):
        pass
    with (
        pytest.raises(ValueError, match="'nope' is not a valid CircuitState"),
        forced(breaker, "nope"),
    ):
        pass
    breaker.force_open(duration=60, reason="INC-1", actor="ops")
    with pytest.raises(ValueError, match="already forced open by ops"), forced(breaker, "closed"):
        pass
    assert breaker.info().override is not None  # the operator's override is untouched


def test_trip_opens_the_circuit_as_failures_do() -> None:
    """trip() opens the circuit in the store with the rule that fired, reports the
    transition, and recovery then runs on the fake clock."""
    store, clock, hook = MemoryStore(), FakeClock(), RecordingHook()
    breaker = make(store, clock, on_transition=hook)
    info = trip(breaker)
    assert (info.state, info.rule, info.failure_count) == (CircuitState.OPEN, "consecutive", 3)
    record = store.load("svc")
    assert record is not None
    assert record.state is CircuitState.OPEN
    assert hook.pairs() == [("closed", "open")]
    with pytest.raises(CircuitOpenError):
        breaker.call(lambda: "no")
    clock.advance(CONFIG.recovery_timeout + 1)
    assert breaker.call(lambda: "probe") == "probe"
    assert breaker.state is CircuitState.CLOSED


def test_trip_an_open_circuit_makes_no_call() -> None:
    """Tripping a circuit that is already open returns at once."""
    store, clock = MemoryStore(), FakeClock()
    breaker = make(store, clock)
    first = trip(breaker)
    assert trip(breaker).epoch == first.epoch


def test_trip_with_a_rate_rule_and_a_chosen_error() -> None:
    """With a failure-rate rule, trip() makes the minimum number of failing calls."""
    config = Config(
        failure_threshold=None,
        failure_rate_threshold=0.5,
        minimum_number_of_calls=4,
        sliding_window_type="count",
        sliding_window_size=10,
    )
    breaker = make(MemoryStore(), FakeClock(), config)
    assert trip(breaker, error=KeyError("down")).rule == "failure_rate"


def test_trip_says_why_it_cannot_open_a_circuit() -> None:
    """A config that does not count the error, or an override, is a clear error."""
    ignoring = Config(failure_threshold=1, handled_exceptions=(KeyError,))
    breaker = make(MemoryStore(), FakeClock(), ignoring)
    with pytest.raises(RuntimeError, match="did not open after 50 failed calls"):
        trip(breaker, max_calls=50)
    assert issubclass(TripError, Exception)
    forced_closed = make(MemoryStore(), FakeClock())
    forced_closed.force_closed(duration=60, reason="test")
    with pytest.raises(ValueError, match="is forced closed"):
        trip(forced_closed)
    with pytest.raises(ValueError, match="max_calls must be a positive integer"):
        trip(breaker, max_calls=0)


def test_trip_refuses_a_quorum_it_cannot_reach_alone() -> None:
    """With a fleet quorum of two, one process only holds itself open: trip() says so."""
    config = Config(failure_threshold=2, fleet_minimum_reporters=2)
    breaker = make(MemoryStore(), FakeClock(), config)
    with pytest.raises(RuntimeError, match="fleet_minimum_reporters"):
        trip(breaker, max_calls=20)
