"""The OpenTelemetry backend: observable instruments whose callbacks read the tallies.

Imported only by ``fleetbreaker.metrics.otel()``: importing it needs ``opentelemetry-api``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Final

from opentelemetry import metrics as otel_metrics
from opentelemetry.metrics import CallbackOptions, Histogram, MeterProvider, Observation

from fleetbreaker import _tally
from fleetbreaker.metrics._sources import OVERRIDES, STATES, count_calls, samples

__all__ = ["instrument"]

# Attributes. There is no OpenTelemetry convention for circuit breakers yet: the circuit's own
# attributes live under "circuitbreaker."; error.type is the general convention's.
NAME: Final = "circuitbreaker.name"
STATE: Final = "circuitbreaker.state"
OVERRIDE: Final = "circuitbreaker.override"
OUTCOME: Final = "circuitbreaker.outcome"
SLOW: Final = "circuitbreaker.slow"
FROM_STATE: Final = "circuitbreaker.from_state"
TO_STATE: Final = "circuitbreaker.to_state"
WRITTEN: Final = "circuitbreaker.written_by_this_process"
OPERATION: Final = "circuitbreaker.store.operation"
RESULT: Final = "circuitbreaker.store.result"
ERROR_TYPE: Final = "error.type"

_lock = threading.Lock()
_instrumented: list[tuple[MeterProvider, _tally.DurationSink]] = []


def instrument(meter_provider: MeterProvider | None) -> None:
    """Create fleetbreaker's instruments on ``meter_provider`` (the global one if ``None``),
    once per provider, and switch counting on."""
    provider = otel_metrics.get_meter_provider() if meter_provider is None else meter_provider
    with _lock:
        if any(known is provider for known, _ in _instrumented):
            return  # idempotent: the instruments exist, and a second set would double count
        sink = _create_instruments(provider)
        _instrumented.append((provider, sink))
    count_calls(on=True)


def forget() -> None:
    """Stop recording store-operation durations into every provider instrumented so far, and
    forget them (tests; observable instruments cannot be removed from a provider)."""
    with _lock:
        for _, sink in _instrumented:
            _tally.remove_duration_sink(sink)
        _instrumented.clear()


def _create_instruments(provider: MeterProvider) -> _tally.DurationSink:
    import fleetbreaker  # noqa: PLC0415 - __version__ is looked up on first use

    meter = provider.get_meter("fleetbreaker", fleetbreaker.__version__)
    meter.create_observable_counter(
        "fleetbreaker.calls",
        [_calls],
        unit="{call}",
        description="Calls through the circuit breaker, by outcome "
        "(success, failure, ignored, rejected) and slowness.",
    )
    meter.create_observable_gauge(
        "fleetbreaker.state",
        [_state],
        unit="1",
        description="1 for the circuit's state in this process's view, 0 for the other states.",
    )
    meter.create_observable_gauge(
        "fleetbreaker.override",
        [_override],
        unit="1",
        description="1 for the operator override (forced_open, forced_closed) in force in this "
        "process's view, 0 for the other kinds.",
    )
    meter.create_observable_counter(
        "fleetbreaker.transitions",
        [_transitions],
        unit="{transition}",
        description="State transitions this process wrote, or read from the store.",
    )
    meter.create_observable_counter(
        "fleetbreaker.probes",
        [_probes],
        unit="{probe}",
        description="Half-open probe calls, by outcome (success, failure, released).",
    )
    meter.create_observable_counter(
        "fleetbreaker.store.operations",
        [_operations],
        unit="{operation}",
        description="Store operations, by operation (load, compare_and_set) and result "
        "(ok, error, lost).",
    )
    meter.create_observable_gauge(
        "fleetbreaker.failure_rate",
        [_rate("failure_rate")],
        unit="1",
        description="Share of failed calls in this process's window (rate rules only).",
    )
    meter.create_observable_gauge(
        "fleetbreaker.slow_call_rate",
        [_rate("slow_call_rate")],
        unit="1",
        description="Share of slow calls in this process's window (rate rules only).",
    )
    name, description = (
        "fleetbreaker.store.operation.duration",
        "Duration of store operations, by operation and result.",
    )
    try:
        durations = meter.create_histogram(
            name,
            unit="s",
            description=description,
            explicit_bucket_boundaries_advisory=_tally.DURATION_BOUNDS,
        )
    except TypeError:  # opentelemetry-api before 1.30: the SDK's default buckets (or a View)
        durations = meter.create_histogram(name, unit="s", description=description)
    sink = _recorder(durations)
    _tally.add_duration_sink(sink)
    return sink


def _recorder(durations: Histogram) -> _tally.DurationSink:
    # Recorded as each store operation ends, not buffered: OpenTelemetry has no observable
    # histogram, and a store round trip (a network call, or at least a SQLite transaction)
    # dwarfs a record() beside it. Healthy calls never reach this path.
    def record(circuit: str, operation: str, result: str, seconds: float) -> None:
        durations.record(seconds, {NAME: circuit, OPERATION: operation, RESULT: result})

    return record


def _calls(_options: CallbackOptions) -> Iterator[Observation]:
    for sample in samples():
        for (outcome, slow, error), count in sample.counts.calls.items():
            attributes: dict[str, str | bool] = {NAME: sample.name, OUTCOME: outcome, SLOW: slow}
            if error:
                attributes[ERROR_TYPE] = error
            yield Observation(count, attributes)


def _state(_options: CallbackOptions) -> Iterator[Observation]:
    for sample in samples():
        for state in STATES:
            yield Observation(int(state is sample.state), {NAME: sample.name, STATE: state.value})


def _override(_options: CallbackOptions) -> Iterator[Observation]:
    for sample in samples():
        for kind in OVERRIDES:
            yield Observation(int(kind == sample.override), {NAME: sample.name, OVERRIDE: kind})


def _transitions(_options: CallbackOptions) -> Iterator[Observation]:
    for sample in samples():
        for (from_state, to_state, written), count in sample.counts.transitions.items():
            yield Observation(
                count,
                {NAME: sample.name, FROM_STATE: from_state, TO_STATE: to_state, WRITTEN: written},
            )


def _probes(_options: CallbackOptions) -> Iterator[Observation]:
    for sample in samples():
        for outcome, count in sample.counts.probes.items():
            yield Observation(count, {NAME: sample.name, OUTCOME: outcome})


def _operations(_options: CallbackOptions) -> Iterator[Observation]:
    for sample in samples():
        for (operation, result), durations in sample.counts.operations.items():
            yield Observation(
                durations.count, {NAME: sample.name, OPERATION: operation, RESULT: result}
            )


def _rate(which: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
    def observe(_options: CallbackOptions) -> Iterator[Observation]:
        for sample in samples():
            if sample.rates is not None:
                yield Observation(getattr(sample.rates, which), {NAME: sample.name})

    return observe
