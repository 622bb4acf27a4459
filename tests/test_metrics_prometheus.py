"""fleetbreaker.metrics.prometheus(): scraped over HTTP from prometheus_client's own server and
parsed with its parser, the metrics show the calls, states, transitions, probes and store
operations made."""

from __future__ import annotations

import json
import re
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, start_http_server
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

import fleetbreaker.metrics
from fleetbreaker import CircuitBreaker, CircuitOpenError, Config, ConfigError
from fleetbreaker import _tally as tally
from fleetbreaker.metrics import _prometheus, _sources
from fleetbreaker.testing import FakeClock

Scrape = Callable[[str], dict[str, list[Sample]]]
"""``scrape(circuit)``: that circuit's samples, by sample name."""


class Boom(Exception):
    """The downstream's failure."""


class Ignored(Exception):
    """An exception the config does not count."""


def ok() -> str:
    return "ok"


def boom() -> None:
    raise Boom


@pytest.fixture(autouse=True)
def _forget() -> Iterator[None]:
    try:
        yield
    finally:
        _prometheus.forget()
        _sources.count_calls(on=False)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def scrape(registry: CollectorRegistry) -> Iterator[Scrape]:
    """Serve ``registry`` on a free port of 127.0.0.1 and scrape it like Prometheus."""
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    url = f"http://127.0.0.1:{server.server_port}/metrics"

    def scrape_(circuit: str) -> dict[str, list[Sample]]:
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
        found: dict[str, list[Sample]] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.labels.get("circuit") == circuit:
                    found.setdefault(sample.name, []).append(sample)
        return found

    try:
        yield scrape_
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def by(samples: list[Sample], *labels: str) -> dict[tuple[str, ...], float]:
    """``{label values: value}``, zero values left out."""
    return {tuple(s.labels[label] for label in labels): s.value for s in samples if s.value}


def test_calls_total(registry: CollectorRegistry, scrape: Scrape) -> None:
    """fleetbreaker_calls_total{circuit,outcome,slow,error_type} counts the calls made."""
    fleetbreaker.metrics.prometheus(registry)
    config = Config(failure_threshold=2, ignored_exceptions=(Ignored,))
    breaker = CircuitBreaker("prom-calls", config=config, clock=FakeClock())
    wrapped = breaker(ok)
    for _ in range(5):
        wrapped()

    def ignored() -> None:
        raise Ignored

    for fn, times in ((ignored, 2), (boom, 2)):
        for _ in range(times):
            with pytest.raises((Ignored, Boom)):
                breaker.call(fn)
    for _ in range(3):
        with pytest.raises(CircuitOpenError):
            wrapped()
    samples = scrape("prom-calls")
    assert by(samples["fleetbreaker_calls_total"], "outcome", "slow", "error_type") == {
        ("success", "false", ""): 5,
        ("ignored", "false", "Ignored"): 2,
        ("failure", "false", "Boom"): 2,
        ("rejected", "false", ""): 3,
    }


def test_state_per_circuit(registry: CollectorRegistry, scrape: Scrape) -> None:
    """fleetbreaker_state{circuit,state} is 1 for the current state, 0 for the others."""
    fleetbreaker.metrics.prometheus(registry)
    clock = FakeClock()
    config = Config(failure_threshold=1)
    CircuitBreaker("prom-closed", clock=clock).call(ok)
    tripped = CircuitBreaker("prom-open", config=config, clock=clock)
    with pytest.raises(Boom):
        tripped.call(boom)
    for circuit, current in (("prom-closed", "closed"), ("prom-open", "open")):
        state = scrape(circuit)["fleetbreaker_state"]
        assert {s.labels["state"]: s.value for s in state} == {
            "closed": float(current == "closed"),
            "open": float(current == "open"),
            "half_open": 0.0,
        }


def test_transitions_and_probes(registry: CollectorRegistry, scrape: Scrape) -> None:
    """A trip, a failed probe and a successful one: the transitions and probes made."""
    fleetbreaker.metrics.prometheus(registry)
    clock = FakeClock()
    config = Config(failure_threshold=1, recovery_timeout=10.0, success_threshold=1)
    breaker = CircuitBreaker("prom-recovery", config=config, clock=clock)
    with pytest.raises(Boom):
        breaker.call(boom)
    clock.advance(10.0)
    with pytest.raises(Boom):
        breaker.call(boom)
    clock.advance(10.0)
    breaker.call(ok)
    samples = scrape("prom-recovery")
    transitions = samples["fleetbreaker_transitions_total"]
    assert by(transitions, "from_state", "to_state", "written_by_this_process") == {
        ("closed", "open", "true"): 1,
        ("open", "half_open", "true"): 2,
        ("half_open", "open", "true"): 1,
        ("half_open", "closed", "true"): 1,
    }
    assert {s.labels["outcome"]: s.value for s in samples["fleetbreaker_probes_total"]} == {
        "success": 1,
        "failure": 1,
        "released": 0,
    }


def test_store_operations_and_their_durations(registry: CollectorRegistry, scrape: Scrape) -> None:
    """fleetbreaker_store_operations_total and the duration histogram count each operation."""
    fleetbreaker.metrics.prometheus(registry)
    breaker = CircuitBreaker("prom-store", config=Config(failure_threshold=1), clock=FakeClock())
    breaker.call(ok)
    with pytest.raises(Boom):
        breaker.call(boom)
    samples = scrape("prom-store")
    assert by(samples["fleetbreaker_store_operations_total"], "operation", "result") == {
        ("load", "ok"): 1,
        ("compare_and_set", "ok"): 1,
    }
    name = "fleetbreaker_store_operation_duration_seconds"
    assert by(samples[f"{name}_count"], "operation", "result") == {
        ("load", "ok"): 1,
        ("compare_and_set", "ok"): 1,
    }
    buckets = [s for s in samples[f"{name}_bucket"] if s.labels["operation"] == "load"]
    assert [float(s.labels["le"]) for s in buckets] == [*tally.DURATION_BOUNDS, float("inf")]
    assert all(s.value == 1 for s in buckets)  # no time passed on the fake clock: all cumulative
    assert all(s.value == 0 for s in samples[f"{name}_sum"])


def test_window_rates(registry: CollectorRegistry, scrape: Scrape) -> None:
    """fleetbreaker_failure_rate is the share of failures in this process's window; a breaker
    without a rate rule has none."""
    fleetbreaker.metrics.prometheus(registry)
    config = Config(failure_rate_threshold=0.9, minimum_number_of_calls=100)
    breaker = CircuitBreaker("prom-rates", config=config, clock=FakeClock())
    for _ in range(3):
        breaker.call(ok)
    with pytest.raises(Boom):
        breaker.call(boom)
    without_window = CircuitBreaker("prom-no-rates", clock=FakeClock())
    without_window.call(ok)
    samples = scrape("prom-rates")
    assert [s.value for s in samples["fleetbreaker_failure_rate"]] == [0.25]
    assert [s.value for s in samples["fleetbreaker_slow_call_rate"]] == [0.0]
    samples = scrape("prom-no-rates")
    assert "fleetbreaker_calls_total" in samples
    assert "fleetbreaker_failure_rate" not in samples


def test_registering_twice_counts_once(registry: CollectorRegistry, scrape: Scrape) -> None:
    """prometheus() again with the same registry neither fails nor repeats a series."""
    fleetbreaker.metrics.prometheus(registry)
    fleetbreaker.metrics.prometheus(registry)
    CircuitBreaker("prom-twice", clock=FakeClock()).call(ok)
    calls = scrape("prom-twice")["fleetbreaker_calls_total"]
    assert by(calls, "outcome") == {("success",): 1}
    assert len(calls) == 2  # success, and the rejected series at 0


def test_breakers_created_before_are_collected(registry: CollectorRegistry, scrape: Scrape) -> None:
    """A breaker created (and called) before prometheus() counts its calls from then on."""
    breaker = CircuitBreaker("prom-before", clock=FakeClock())
    wrapped = breaker(ok)
    wrapped()
    fleetbreaker.metrics.prometheus(registry)
    wrapped()
    wrapped()
    assert by(scrape("prom-before")["fleetbreaker_calls_total"], "outcome") == {("success",): 2}


def test_the_default_registry() -> None:
    """prometheus() without a registry registers in prometheus_client.REGISTRY."""
    fleetbreaker.metrics.prometheus()
    CircuitBreaker("prom-default", clock=FakeClock()).call(ok)
    text = generate_latest(REGISTRY).decode()
    assert 'fleetbreaker_calls_total{circuit="prom-default"' in text
    _prometheus.forget()
    assert "fleetbreaker_calls_total" not in generate_latest(REGISTRY).decode()


def test_missing_prometheus_client_says_which_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without prometheus_client, prometheus() raises ConfigError naming the extra to install."""
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    monkeypatch.delitem(sys.modules, "fleetbreaker.metrics._prometheus")
    monkeypatch.delattr(fleetbreaker.metrics, "_prometheus")
    with pytest.raises(ConfigError, match=r"pip install 'fleetbreaker\[prometheus\]'"):
        fleetbreaker.metrics.prometheus()
    assert tally.SWITCH.on is False


DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_the_dashboard_and_alert_rules_name_real_metrics(
    registry: CollectorRegistry, scrape: Scrape
) -> None:
    """Every metric the Grafana dashboard and the documented alert rules query is exposed."""
    fleetbreaker.metrics.prometheus(registry)
    clock = FakeClock()
    config = Config(failure_threshold=1, failure_rate_threshold=0.9, minimum_number_of_calls=100)
    breaker = CircuitBreaker("prom-docs", config=config, clock=clock)
    with pytest.raises(Boom):
        breaker.call(boom)
    exposed = set(scrape("prom-docs"))
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text(encoding="utf-8"))
    titles = [panel["title"] for panel in dashboard["panels"]]
    assert titles == [
        "State per circuit (worst view in the fleet)",
        "Calls by outcome",
        "Rejected calls",
        "Transitions",
        "Store operation latency (p99)",
    ]
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    section = (DOCS / "operations.md").read_text(encoding="utf-8")
    alerts = section.split("### Alert rules", 1)[1].split("### Grafana", 1)[0]
    for text in [*queries, alerts]:
        named = set(re.findall(r"\bfleetbreaker_\w+", text))
        assert named
        assert named <= exposed, (named - exposed, text)


def test_an_override_in_force(registry: CollectorRegistry, scrape: Scrape) -> None:
    """fleetbreaker_override{circuit,override} is 1 for the override in force, else 0."""
    fleetbreaker.metrics.prometheus(registry)
    clock = FakeClock()
    breaker = CircuitBreaker("prom-forced", clock=clock)
    breaker.call(ok)
    assert by(scrape("prom-forced")["fleetbreaker_override"], "override") == {}
    breaker.force_open(duration=30.0, reason="maintenance", actor="ops")
    samples = scrape("prom-forced")
    assert {s.labels["override"]: s.value for s in samples["fleetbreaker_override"]} == {
        "forced_open": 1.0,
        "forced_closed": 0.0,
    }
    # The state machine underneath keeps its state: closed.
    assert by(samples["fleetbreaker_state"], "state") == {("closed",): 1.0}
