"""fleetbreaker.metrics.otel(): the instruments, read through the OpenTelemetry SDK's
in-memory reader, show the calls, states, transitions, probes and store operations made."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader

import fleetbreaker.metrics
from fleetbreaker import CircuitBreaker, CircuitOpenError, Config, ConfigError
from fleetbreaker import _tally as tally
from fleetbreaker.metrics import _otel, _sources
from fleetbreaker.testing import FakeClock

NAME = "circuitbreaker.name"


class Boom(Exception):
    """The downstream's failure."""


class Ignored(Exception):
    """An exception the config does not count."""


def ok() -> str:
    return "ok"


def boom() -> None:
    raise Boom


def ignored() -> None:
    raise Ignored


@pytest.fixture
def provider() -> Iterator[tuple[MeterProvider, InMemoryMetricReader]]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    try:
        yield provider, reader
    finally:
        _otel.forget()
        _sources.count_calls(on=False)
        provider.shutdown()


@pytest.fixture
def reader(provider: tuple[MeterProvider, InMemoryMetricReader]) -> InMemoryMetricReader:
    fleetbreaker.metrics.otel(provider[0])
    return provider[1]


Points = dict[str, list[Any]]


def collect(reader: InMemoryMetricReader, circuit: str) -> Points:
    """Every data point of ``circuit``, by instrument name."""
    data = reader.get_metrics_data()
    assert data is not None
    found: Points = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            assert scope.scope.name == "fleetbreaker"
            for metric in scope.metrics:
                points = [
                    p for p in metric.data.data_points if (p.attributes or {}).get(NAME) == circuit
                ]
                found.setdefault(metric.name, []).extend(points)
    return found


def values(points: list[Any], *keys: str) -> dict[tuple[Any, ...], Any]:
    """``{attribute values: value}`` of number data points (zero counts left out)."""
    return {
        tuple(p.attributes.get(key) for key in keys): p.value
        for p in points
        if not isinstance(p, HistogramDataPoint) and p.value
    }


def test_calls_by_outcome_slowness_and_error_type(reader: InMemoryMetricReader) -> None:
    """Successes, failures, ignored exceptions and refusals are the calls made."""
    config = Config(failure_threshold=3, ignored_exceptions=(Ignored,))
    breaker = CircuitBreaker("otel-calls", config=config, clock=FakeClock())
    wrapped = breaker(ok)
    for _ in range(7):
        wrapped()
    with pytest.raises(Ignored):
        breaker.call(ignored)
    for _ in range(3):
        with pytest.raises(Boom):
            breaker.call(boom)
    for _ in range(4):
        with pytest.raises(CircuitOpenError):
            wrapped()
    points = collect(reader, "otel-calls")
    keys = ("circuitbreaker.outcome", "circuitbreaker.slow", "error.type")
    assert values(points["fleetbreaker.calls"], *keys) == {
        ("success", False, None): 7,
        ("ignored", False, "Ignored"): 1,
        ("failure", False, "Boom"): 3,
        ("rejected", False, None): 4,
    }


def test_state_is_one_series_per_state(reader: InMemoryMetricReader) -> None:
    """The state gauge reports every state, 1 for the current one, while closed too."""
    breaker = CircuitBreaker("otel-state", config=Config(failure_threshold=1), clock=FakeClock())
    breaker.call(ok)
    state = collect(reader, "otel-state")["fleetbreaker.state"]
    assert {p.attributes["circuitbreaker.state"]: p.value for p in state} == {
        "closed": 1,
        "open": 0,
        "half_open": 0,
    }
    with pytest.raises(Boom):
        breaker.call(boom)
    state = collect(reader, "otel-state")["fleetbreaker.state"]
    assert {p.attributes["circuitbreaker.state"]: p.value for p in state} == {
        "closed": 0,
        "open": 1,
        "half_open": 0,
    }


def test_transitions_and_probes_of_a_recovery(reader: InMemoryMetricReader) -> None:
    """A trip and a one-probe recovery: three transitions written here, one probe."""
    clock = FakeClock()
    config = Config(failure_threshold=1, recovery_timeout=10.0, success_threshold=1)
    breaker = CircuitBreaker("otel-recovery", config=config, clock=clock)
    with pytest.raises(Boom):
        breaker.call(boom)
    clock.advance(10.0)
    breaker.call(ok)
    points = collect(reader, "otel-recovery")
    keys = (
        "circuitbreaker.from_state",
        "circuitbreaker.to_state",
        "circuitbreaker.written_by_this_process",
    )
    assert values(points["fleetbreaker.transitions"], *keys) == {
        ("closed", "open", True): 1,
        ("open", "half_open", True): 1,
        ("half_open", "closed", True): 1,
    }
    assert values(points["fleetbreaker.probes"], "circuitbreaker.outcome") == {("success",): 1}


def test_store_operations_counted_and_timed(reader: InMemoryMetricReader) -> None:
    """Each store operation is counted, and its duration recorded in the histogram."""
    breaker = CircuitBreaker("otel-store", config=Config(failure_threshold=1), clock=FakeClock())
    breaker.call(ok)  # one load
    with pytest.raises(Boom):
        breaker.call(boom)  # one compare-and-set
    points = collect(reader, "otel-store")
    keys = ("circuitbreaker.store.operation", "circuitbreaker.store.result")
    assert values(points["fleetbreaker.store.operations"], *keys) == {
        ("load", "ok"): 1,
        ("compare_and_set", "ok"): 1,
    }
    histogram = points["fleetbreaker.store.operation.duration"]
    assert {tuple(p.attributes.get(k) for k in keys): p.count for p in histogram} == {
        ("load", "ok"): 1,
        ("compare_and_set", "ok"): 1,
    }
    for point in histogram:
        assert tuple(point.explicit_bounds) == tally.DURATION_BOUNDS
        assert point.bucket_counts[0] == 1  # no time passed on the fake clock


def test_window_rates(reader: InMemoryMetricReader) -> None:
    """The rate gauges show this process's window; a breaker without one reports none."""
    clock = FakeClock()
    config = Config(
        failure_rate_threshold=0.9,
        slow_call_duration_threshold=1.0,
        slow_call_rate_threshold=0.9,
        minimum_number_of_calls=100,
    )
    breaker = CircuitBreaker("otel-rates", config=config, clock=clock)

    def slow() -> None:
        clock.advance(1.0)

    for _ in range(6):
        breaker.call(ok)
    breaker.call(slow)
    for _ in range(3):
        with pytest.raises(Boom):
            breaker.call(boom)
    CircuitBreaker("otel-no-rates", clock=clock).call(ok)
    points = collect(reader, "otel-rates")
    assert [p.value for p in points["fleetbreaker.failure_rate"]] == [pytest.approx(0.3)]
    assert [p.value for p in points["fleetbreaker.slow_call_rate"]] == [pytest.approx(0.1)]
    no_rates = collect(reader, "otel-no-rates")
    assert no_rates["fleetbreaker.failure_rate"] == []
    assert no_rates["fleetbreaker.slow_call_rate"] == []


def test_breakers_before_and_after_are_instrumented(
    provider: tuple[MeterProvider, InMemoryMetricReader],
) -> None:
    """A breaker created before otel() and one created after both report their calls."""
    before = CircuitBreaker("otel-before", clock=FakeClock())
    before.call(ok)  # not counted: metrics were off
    fleetbreaker.metrics.otel(provider[0])
    after = CircuitBreaker("otel-after", clock=FakeClock())
    for breaker in (before, after):
        for _ in range(2):
            breaker(ok)()
    for name in ("otel-before", "otel-after"):
        calls = collect(provider[1], name)["fleetbreaker.calls"]
        assert values(calls, "circuitbreaker.outcome") == {("success",): 2}


def test_calling_twice_counts_once(provider: tuple[MeterProvider, InMemoryMetricReader]) -> None:
    """otel() again with the same provider adds no second set of instruments."""
    fleetbreaker.metrics.otel(provider[0])
    fleetbreaker.metrics.otel(provider[0])
    breaker = CircuitBreaker("otel-twice", config=Config(failure_threshold=1), clock=FakeClock())
    breaker.call(ok)
    points = collect(provider[1], "otel-twice")
    assert len(points["fleetbreaker.calls"]) == 2  # success, and the rejected series at 0
    assert values(points["fleetbreaker.calls"], "circuitbreaker.outcome") == {("success",): 1}
    assert [p.count for p in points["fleetbreaker.store.operation.duration"]] == [1]


def test_the_global_meter_provider_is_the_default(
    provider: tuple[MeterProvider, InMemoryMetricReader], monkeypatch: pytest.MonkeyPatch
) -> None:
    """otel() without a provider instruments opentelemetry.metrics.get_meter_provider()'s."""
    monkeypatch.setattr("opentelemetry.metrics.get_meter_provider", lambda: provider[0])
    fleetbreaker.metrics.otel()
    CircuitBreaker("otel-global", clock=FakeClock()).call(ok)
    calls = collect(provider[1], "otel-global")["fleetbreaker.calls"]
    assert values(calls, "circuitbreaker.outcome") == {("success",): 1}


def test_missing_opentelemetry_says_which_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without opentelemetry-api, otel() raises ConfigError naming the extra to install."""
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    monkeypatch.delitem(sys.modules, "fleetbreaker.metrics._otel")
    monkeypatch.delattr(fleetbreaker.metrics, "_otel")
    with pytest.raises(ConfigError, match=r"pip install 'fleetbreaker\[otel\]'"):
        fleetbreaker.metrics.otel()
    assert tally.SWITCH.on is False


class _MeterWithoutAdvice:
    """A meter of an opentelemetry-api before 1.30: create_histogram takes no advice."""

    def __init__(self, meter: Any) -> None:
        self._meter = meter

    def __getattr__(self, name: str) -> Any:
        return getattr(self._meter, name)

    def create_histogram(self, name: str, unit: str = "", description: str = "") -> Any:
        return self._meter.create_histogram(name, unit=unit, description=description)


def test_an_api_without_bucket_advice_still_records_durations(
    provider: tuple[MeterProvider, InMemoryMetricReader], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before opentelemetry-api 1.30 the duration histogram is made with the SDK's buckets."""
    real_provider, reader = provider
    get_meter = real_provider.get_meter
    monkeypatch.setattr(
        real_provider, "get_meter", lambda *a, **k: _MeterWithoutAdvice(get_meter(*a, **k))
    )
    fleetbreaker.metrics.otel(real_provider)
    CircuitBreaker("otel-no-advice", clock=FakeClock()).call(ok)
    (point,) = collect(reader, "otel-no-advice")["fleetbreaker.store.operation.duration"]
    assert point.count == 1
    assert tuple(point.explicit_bounds) != tally.DURATION_BOUNDS


def test_importing_the_module_imports_no_backend() -> None:
    """fleetbreaker.metrics exports otel and prometheus, and imports neither library."""
    assert fleetbreaker.metrics.__all__ == ["otel", "prometheus"]
    code = (
        "import sys, fleetbreaker, fleetbreaker.metrics; "
        "print(sorted(m for m in sys.modules "
        "if m.split('.')[0] in ('opentelemetry', 'prometheus_client')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"


def test_an_override_in_force(reader: InMemoryMetricReader) -> None:
    """fleetbreaker.override is 1 for the override in force in this process's view."""
    breaker = CircuitBreaker("otel-forced", clock=FakeClock())
    breaker.force_closed(duration=30.0, reason="ride it out", actor="ops")
    points = collect(reader, "otel-forced")["fleetbreaker.override"]
    assert {p.attributes["circuitbreaker.override"]: p.value for p in points} == {
        "forced_open": 0,
        "forced_closed": 1,
    }
