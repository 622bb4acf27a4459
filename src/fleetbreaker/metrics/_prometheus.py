"""The Prometheus backend: one collector that reads the tallies when scraped.

Imported only by ``fleetbreaker.metrics.prometheus()``: importing it needs ``prometheus_client``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from fleetbreaker import _tally
from fleetbreaker.metrics._sources import OVERRIDES, STATES, Sample, count_calls, samples

__all__ = ["FleetbreakerCollector", "register"]

_lock = threading.Lock()
_registered: list[tuple[CollectorRegistry, FleetbreakerCollector]] = []

_OPERATION_LABELS = ["circuit", "operation", "result"]


def register(registry: CollectorRegistry | None) -> None:
    """Register fleetbreaker's collector in ``registry`` (``prometheus_client.REGISTRY`` if
    ``None``), once per registry, and switch counting on."""
    registry = REGISTRY if registry is None else registry
    with _lock:
        if any(known is registry for known, _ in _registered):
            return  # idempotent: a second collector would repeat every series
        collector = FleetbreakerCollector()
        registry.register(collector)
        _registered.append((registry, collector))
    count_calls(on=True)


def forget() -> None:
    """Unregister the collector from every registry it was registered in (tests)."""
    with _lock:
        for registry, collector in _registered:
            registry.unregister(collector)
        _registered.clear()


class FleetbreakerCollector(Collector):
    """Every live breaker of the process, as Prometheus metric families, read on each scrape."""

    def describe(self) -> list[Metric]:
        # The names alone, so that registering never reads the breakers.
        return _Families().all()

    def collect(self) -> Iterator[Metric]:
        families = _Families()
        for sample in samples():
            families.add(sample)
        yield from families.all()


class _Families:
    """One scrape's metric families."""

    def __init__(self) -> None:
        self.calls = CounterMetricFamily(
            "fleetbreaker_calls",
            "Calls through the circuit breaker, by outcome (success, failure, ignored, "
            "rejected), slowness and, for an exception, its type.",
            labels=["circuit", "outcome", "slow", "error_type"],
        )
        self.state = GaugeMetricFamily(
            "fleetbreaker_state",
            "1 for the circuit's state in this process's view, 0 for the other states.",
            labels=["circuit", "state"],
        )
        self.override = GaugeMetricFamily(
            "fleetbreaker_override",
            "1 for the operator override (forced_open, forced_closed) in force in this "
            "process's view, 0 for the other kinds.",
            labels=["circuit", "override"],
        )
        self.transitions = CounterMetricFamily(
            "fleetbreaker_transitions",
            "State transitions this process wrote (written_by_this_process=true) or read "
            "from the store.",
            labels=["circuit", "from_state", "to_state", "written_by_this_process"],
        )
        self.probes = CounterMetricFamily(
            "fleetbreaker_probes",
            "Half-open probe calls, by outcome (success, failure, released).",
            labels=["circuit", "outcome"],
        )
        self.operations = CounterMetricFamily(
            "fleetbreaker_store_operations",
            "Store operations, by operation (load, compare_and_set) and result (ok, error, lost).",
            labels=_OPERATION_LABELS,
        )
        self.durations = HistogramMetricFamily(
            "fleetbreaker_store_operation_duration_seconds",
            "Duration of store operations, by operation and result.",
            labels=_OPERATION_LABELS,
        )
        self.failure_rate = GaugeMetricFamily(
            "fleetbreaker_failure_rate",
            "Share of failed calls in this process's window (rate rules only).",
            labels=["circuit"],
        )
        self.slow_call_rate = GaugeMetricFamily(
            "fleetbreaker_slow_call_rate",
            "Share of slow calls in this process's window (rate rules only).",
            labels=["circuit"],
        )

    def all(self) -> list[Metric]:
        return [
            self.calls,
            self.state,
            self.override,
            self.transitions,
            self.probes,
            self.operations,
            self.durations,
            self.failure_rate,
            self.slow_call_rate,
        ]

    def add(self, sample: Sample) -> None:
        name, counts = sample.name, sample.counts
        for (outcome, slow, error), count in counts.calls.items():
            self.calls.add_metric([name, outcome, _bool(slow), error], count)
        for state in STATES:
            self.state.add_metric([name, state.value], int(state is sample.state))
        for kind in OVERRIDES:
            self.override.add_metric([name, kind], int(kind == sample.override))
        for (from_state, to_state, written), count in counts.transitions.items():
            self.transitions.add_metric([name, from_state, to_state, _bool(written)], count)
        for outcome, count in counts.probes.items():
            self.probes.add_metric([name, outcome], count)
        for (operation, result), times in counts.operations.items():
            labels = [name, operation, result]
            self.operations.add_metric(labels, times.count)
            self.durations.add_metric(labels, _cumulative(times), times.total)
        if sample.rates is not None:
            self.failure_rate.add_metric([name], sample.rates.failure_rate)
            self.slow_call_rate.add_metric([name], sample.rates.slow_call_rate)


def _cumulative(times: _tally.Durations) -> list[tuple[str, float]]:
    """Prometheus buckets: how many took at most each bound, then all of them (+Inf)."""
    buckets, total = [], 0
    for bound, count in zip(_tally.DURATION_BOUNDS, times.buckets, strict=False):
        total += count
        buckets.append((str(bound), float(total)))
    buckets.append(("+Inf", float(times.count)))
    return buckets


def _bool(value: bool) -> str:
    return "true" if value else "false"
