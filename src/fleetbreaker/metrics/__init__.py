"""Metrics for every circuit breaker of the process: OpenTelemetry or Prometheus.

Call one of these once at start-up, beside the rest of your metrics set-up::

    fleetbreaker.metrics.otel()          # pip install 'fleetbreaker[otel]'
    fleetbreaker.metrics.prometheus()    # pip install 'fleetbreaker[prometheus]'

Every breaker of the process is instrumented, those created before the call and after it;
a breaker that is garbage collected leaves the metrics with its counts. Calling a function
again with the same meter provider or registry does nothing (it never registers twice, so it
never counts twice); with another one, that one is instrumented too. Counting cannot be
switched off again in a process.

**Cost.** A call never calls into a metrics library: each breaker counts in plain
per-process counters (a healthy call adds one lock-free ``next()`` on an ``itertools.count``),
and the instruments or the collector read them when the metrics are collected or scraped.
Store-operation durations go to OpenTelemetry as each operation ends (it has no observable
histogram); a healthy call makes no store operation.

**What is measured** (OpenTelemetry name / Prometheus name, labels):

* ``fleetbreaker.calls`` / ``fleetbreaker_calls_total``: calls by ``outcome`` (``success``,
  ``failure``, ``ignored`` -- an exception the config does not count --, ``rejected``) and
  ``slow`` (timed only with a slow-call rule); a failure or an ignored exception carries its
  ``error.type`` (``error_type``): the exception class's qualified name, ``record_result`` for a
  returned value judged a failure, ``slow_call`` for a probe that answered too slowly, and
  ``_OTHER`` beyond 20 distinct types per circuit. Probes count here too.
* ``fleetbreaker.state`` / ``fleetbreaker_state``: one series per ``state`` (``closed``,
  ``open``, ``half_open``), 1 for the circuit's state in this process's view, 0 for the others
  (OPEN while this process holds itself open under a fleet quorum).
* ``fleetbreaker.override`` / ``fleetbreaker_override``: one series per ``override``
  (``forced_open``, ``forced_closed``), 1 for the operator override in force in this process's
  view (the state gauge keeps showing the state machine underneath).
* ``fleetbreaker.transitions`` / ``fleetbreaker_transitions_total``: ``from_state``,
  ``to_state``, and ``written_by_this_process``: ``true`` for a transition this process wrote,
  ``false`` for one it learned of by reading the store (counted once per process that saw it).
* ``fleetbreaker.probes`` / ``fleetbreaker_probes_total``: half-open probes by ``outcome``
  (``success``, ``failure``, ``released``: an ignored exception, or a cancelled caller).
* ``fleetbreaker.store.operations`` / ``fleetbreaker_store_operations_total`` and the
  histogram ``fleetbreaker.store.operation.duration`` (seconds) /
  ``fleetbreaker_store_operation_duration_seconds``: by ``operation`` (``load``,
  ``compare_and_set``) and ``result`` (``ok``, ``error``, ``lost``: a compare-and-set another
  writer fenced off).
* ``fleetbreaker.failure_rate`` and ``fleetbreaker.slow_call_rate`` / ``fleetbreaker_failure_rate``
  and ``fleetbreaker_slow_call_rate``: the rates of this process's window, 0 to 1 (breakers
  with a rate rule only).

OpenTelemetry attributes are ``circuitbreaker.name``, ``circuitbreaker.state``,
``circuitbreaker.override``, ``circuitbreaker.outcome``, ``circuitbreaker.slow`` (bool),
``circuitbreaker.from_state``, ``circuitbreaker.to_state``,
``circuitbreaker.written_by_this_process`` (bool), ``circuitbreaker.store.operation``,
``circuitbreaker.store.result`` and ``error.type`` (there is no OpenTelemetry convention for
circuit breakers yet). Prometheus labels are ``circuit``, ``state``, ``override``,
``outcome``, ``slow``, ``error_type`` (empty for an outcome without an error), ``from_state``,
``to_state``, ``written_by_this_process``, ``operation`` and ``result``.

Counts are this process's: sum them across the fleet in your metrics backend. Two breakers
of one name in one process are summed into one circuit. A shadow breaker
(``Config(mode="shadow")``) counts a call it would have refused as ``rejected`` (the call is
made; its outcome is not counted), and its state and transitions are its private store's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NoReturn

from fleetbreaker.errors import ConfigError

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from prometheus_client import CollectorRegistry

__all__ = ["otel", "prometheus"]


def otel(meter_provider: MeterProvider | None = None) -> None:
    """Instrument every circuit breaker of the process with OpenTelemetry instruments on
    ``meter_provider`` (default: the global one, ``opentelemetry.metrics.get_meter_provider()``).

    Idempotent per meter provider. Needs ``opentelemetry-api``: ``pip install
    'fleetbreaker[otel]'`` (``ConfigError`` otherwise).
    """
    try:
        from fleetbreaker.metrics import _otel  # noqa: PLC0415 - the optional dependency
    except ModuleNotFoundError as exc:
        _missing(exc, "opentelemetry", "otel", "opentelemetry-api")
    _otel.instrument(meter_provider)


def prometheus(registry: CollectorRegistry | None = None) -> None:
    """Register a collector of every circuit breaker of the process in ``registry`` (default:
    ``prometheus_client.REGISTRY``), read on each scrape.

    Idempotent per registry. Needs ``prometheus_client``: ``pip install
    'fleetbreaker[prometheus]'`` (``ConfigError`` otherwise).
    """
    try:
        from fleetbreaker.metrics import _prometheus  # noqa: PLC0415 - the optional dependency
    except ModuleNotFoundError as exc:
        _missing(exc, "prometheus_client", "prometheus", "prometheus_client")
    _prometheus.register(registry)


def _missing(exc: ModuleNotFoundError, package: str, extra: str, distribution: str) -> NoReturn:
    """Raise ``ConfigError`` saying how to install a missing optional dependency (re-raise
    ``exc`` if something else is missing)."""
    if (exc.name or "").partition(".")[0] != package:
        raise exc
    raise ConfigError(
        f"fleetbreaker.metrics.{extra}() needs {distribution}: pip install 'fleetbreaker[{extra}]'"
    ) from None
