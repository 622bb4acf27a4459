"""What a run measured, as plain numbers with their units in their names: the JSON schema.

``run_figures`` gives one protocol's figures (``RUN_KEYS``, in the order an operator sizes
for); ``document`` the whole ``--json`` document. Times are seconds; ``None`` (JSON ``null``)
means the event never happened in the run.
"""

from __future__ import annotations

import math
from dataclasses import fields
from typing import Any, Final

from fleetbreaker._sim.cost import ITEM_READ_UNITS_PER_S, ITEM_WRITE_UNITS_PER_S, Prices
from fleetbreaker._sim.engine import Result
from fleetbreaker._sim.model import Params
from fleetbreaker.config import Config

__all__ = ["RUN_KEYS", "SCHEMA_VERSION", "document", "run_figures", "steady_window"]

SCHEMA_VERSION: Final = 1

Number = int | float | None


def steady_window(p: Params) -> tuple[int, int]:
    """Whole seconds after every environment's first cache period, before the outage."""
    return math.ceil(p.warmup + p.config.local_cache_max_age), math.floor(p.outage_start)


def _since(start: float, at: float | None) -> float | None:
    return None if at is None else at - start


def run_figures(r: Result, prices: Prices) -> dict[str, Number]:
    """One protocol's figures, keyed as ``RUN_KEYS``."""
    t, p = r.tally, r.p
    reads, writes = sum(t.reads), sum(t.writes)
    first, end = steady_window(p)
    steady = sum(t.reads[first:end]) / (end - first) if end > first else None
    read_units = prices.read_units(reads, t.consistent_reads)
    write_units = writes * prices.write_units
    read_units_by_second = [
        prices.read_units(n, c) for n, c in zip(t.reads, t.consistent_by_second, strict=True)
    ]
    peak_read_units = max(read_units_by_second)
    peak_write_units = max(t.writes) * prices.write_units
    # The outage's bill: from its start until every environment admits calls again (the end
    # of the run if that never happens).
    outage_end = r.fleet_admits_at if r.fleet_admits_at is not None else p.duration
    first_second, last_second = int(p.outage_start), min(math.ceil(outage_end), t.seconds)
    outage_read_units = sum(read_units_by_second[first_second:last_second])
    outage_write_units = sum(t.writes[first_second:last_second]) * prices.write_units
    run_cost = prices.cost(read_units, write_units)
    return {
        "store_reads_per_s_peak": max(t.reads),
        "store_reads_per_s_steady": steady,
        "store_reads_total": reads,
        "store_reads_consistent_total": t.consistent_reads,
        "store_writes_per_s_peak": max(t.writes),
        "store_writes_total": writes,
        "conditional_writes_won": t.cond_won,
        "conditional_writes_lost": t.cond_lost,
        "conditional_writes_lost_per_s_peak": max(t.lost_by_second),
        "probe_claims_lost": t.lost_claims,
        "unconditional_writes": t.uncond,
        "trips_persisted": len(t.trips),
        "calls_total": r.calls,
        "calls_refused": r.refused,
        "calls_reached_downstream": r.downstream_calls,
        "calls_reached_failing_downstream": r.bad_calls,
        "calls_failed_or_slow": r.bad_failed,
        "calls_leaked_after_trip": r.leaked,
        "calls_refused_during_outage": r.refused_in_outage,
        "calls_refused_healthy_envs": r.refused_healthy,
        "calls_refused_by_own_hold": r.held,
        "envs_held_open": len(r.held_envs),
        "calls_refused_after_heal": r.refused_after_heal,
        "probes_total": r.probes,
        "probes_during_outage": r.outage_probes,
        "probes_in_flight_max": r.max_probes_in_flight,
        "outage_start_to_trip_s": _since(p.outage_start, r.first_trip),
        "outage_start_to_first_hold_s": _since(p.outage_start, r.first_hold),
        "heal_to_closed_s": _since(p.heal, r.closed_at),
        "heal_to_last_refusal_s": _since(p.heal, r.last_refusal),
        "heal_to_fleet_resumed_s": _since(p.heal, r.fleet_admits_at),
        "read_units_total": read_units,
        "write_units_total": write_units,
        "cost_outage_usd": prices.cost(outage_read_units, outage_write_units),
        "cost_run_usd": run_cost,
        "cost_per_million_calls_usd": run_cost / r.calls * 1_000_000 if r.calls else None,
        "read_units_per_s_peak": peak_read_units,
        "write_units_per_s_peak": peak_write_units,
        "item_read_limit_share_peak": peak_read_units / ITEM_READ_UNITS_PER_S,
        "item_write_limit_share_peak": peak_write_units / ITEM_WRITE_UNITS_PER_S,
        "simulation_wall_s": r.elapsed,
    }


RUN_KEYS: Final = (
    "store_reads_per_s_peak",
    "store_reads_per_s_steady",
    "store_reads_total",
    "store_reads_consistent_total",
    "store_writes_per_s_peak",
    "store_writes_total",
    "conditional_writes_won",
    "conditional_writes_lost",
    "conditional_writes_lost_per_s_peak",
    "probe_claims_lost",
    "unconditional_writes",
    "trips_persisted",
    "calls_total",
    "calls_refused",
    "calls_reached_downstream",
    "calls_reached_failing_downstream",
    "calls_failed_or_slow",
    "calls_leaked_after_trip",
    "calls_refused_during_outage",
    "calls_refused_healthy_envs",
    "calls_refused_by_own_hold",
    "envs_held_open",
    "calls_refused_after_heal",
    "probes_total",
    "probes_during_outage",
    "probes_in_flight_max",
    "outage_start_to_trip_s",
    "outage_start_to_first_hold_s",
    "heal_to_closed_s",
    "heal_to_last_refusal_s",
    "heal_to_fleet_resumed_s",
    "read_units_total",
    "write_units_total",
    "cost_outage_usd",
    "cost_run_usd",
    "cost_per_million_calls_usd",
    "read_units_per_s_peak",
    "write_units_per_s_peak",
    "item_read_limit_share_peak",
    "item_write_limit_share_peak",
    "simulation_wall_s",
)
"""Every run's keys, in order (docs/simulate.md says what each means)."""


def timeline(r: Result) -> dict[str, list[int]]:
    """Per simulated second: calls admitted and refused, store reads and writes."""
    return {
        "calls_admitted": r.admitted_by_second,
        "calls_refused": r.refused_by_second,
        "store_reads": r.tally.reads,
        "store_writes": r.tally.writes,
    }


def transitions(r: Result) -> list[dict[str, Any]]:
    """Each persisted state change: when (simulated seconds) and from which state to which."""
    return [
        {"at_s": at, "from": old.value, "to": new.value} for at, old, new in r.tally.transitions
    ]


def config_values(config: Config) -> dict[str, Any]:
    """The run's ``Config``, field by field, as JSON values."""
    values: dict[str, Any] = {}
    for item in fields(config):
        if item.name.startswith("_"):
            continue
        value = getattr(config, item.name)
        if isinstance(value, tuple):
            value = [kind.__name__ for kind in value]
        elif callable(value):
            value = getattr(value, "__qualname__", repr(value))
        values[item.name] = value
    return values


def document(
    p: Params,
    prices: Prices,
    results: list[Result],
    checks: list[tuple[bool, str]] | None,
) -> dict[str, Any]:
    """The ``--json`` document (schema: docs/simulate.md)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "params": {
            "envs": p.envs,
            "rps_per_env": p.rps,
            "duration_s": p.duration,
            "outage_start_s": p.outage_start,
            "outage_end_s": p.heal,
            "outage_shape": p.shape.text,
            "store_rtt_s": p.rtt,
            "latency_s": p.latency,
            "seed": p.seed,
            "policy": p.policy,
            "warmup_s": p.warmup,
            "config": config_values(p.config),
        },
        "dynamodb": {
            "price_write_per_million_usd": prices.write_per_million,
            "price_read_per_million_usd": prices.read_per_million,
            "item_bytes": prices.item_bytes,
            "write_units_per_write": prices.write_units,
            "read_units_per_consistent_read": prices.consistent_read_units,
            "read_units_per_eventual_read": prices.eventual_read_units,
            "item_read_units_per_s_limit": ITEM_READ_UNITS_PER_S,
            "item_write_units_per_s_limit": ITEM_WRITE_UNITS_PER_S,
        },
        "runs": {
            r.protocol: {
                **run_figures(r, prices),
                "transitions": transitions(r),
                "per_second": timeline(r),
            }
            for r in results
        },
        "checks": None
        if checks is None
        else [{"passed": passed, "text": text} for passed, text in checks],
    }
