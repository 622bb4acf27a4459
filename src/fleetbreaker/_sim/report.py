"""The text report: what an operator sizes for, one row per figure, a column per protocol."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Final

from fleetbreaker._sim.cost import ITEM_READ_UNITS_PER_S, ITEM_WRITE_UNITS_PER_S, Prices
from fleetbreaker._sim.engine import POWERTOOLS, Result
from fleetbreaker._sim.figures import Number, run_figures, steady_window
from fleetbreaker._sim.model import DOWN, Params
from fleetbreaker._sim.store import WRITE_KINDS

__all__ = ["ROWS", "report", "trace_writes"]

Emit = Callable[[str], None]

ROWS: Final[tuple[tuple[str, str, str], ...]] = (
    # (figure key, label, format: d count, f rate, s seconds, $ dollars, % share)
    ("store_reads_per_s_peak", "store reads/s, peak (1 s buckets)", "d"),
    ("store_reads_per_s_steady", "store reads/s, steady state (mean)", "f"),
    ("store_reads_total", "store reads, total", "d"),
    ("store_reads_consistent_total", "  of them strongly consistent", "d"),
    ("store_writes_per_s_peak", "store writes/s, peak (1 s buckets)", "d"),
    ("store_writes_total", "store writes, total", "d"),
    ("conditional_writes_won", "  conditional writes won", "d"),
    ("conditional_writes_lost", "  conditional writes lost", "d"),
    ("probe_claims_lost", "    of them probe claims", "d"),
    ("unconditional_writes", "  unconditional writes", "d"),
    ("conditional_writes_lost_per_s_peak", "lost conditional writes/s, peak", "d"),
    ("trips_persisted", "trips persisted (trip writes)", "d"),
    ("calls_total", "calls", "d"),
    ("calls_refused", "calls refused", "d"),
    ("calls_reached_downstream", "calls that reached the downstream", "d"),
    ("calls_reached_failing_downstream", "calls that reached the failing downstream", "d"),
    ("calls_leaked_after_trip", "  of them after the first trip (leaked)", "d"),
    ("probes_total", "probes, total", "d"),
    ("probes_in_flight_max", "max probes in flight, fleet-wide", "d"),
    ("outage_start_to_trip_s", "outage start -> first trip persisted", "s"),
    ("heal_to_closed_s", "heal -> record CLOSED", "s"),
    ("heal_to_last_refusal_s", "heal -> last refused call", "s"),
    ("heal_to_fleet_resumed_s", "heal -> every env admitted a call", "s"),
    ("calls_refused_after_heal", "calls refused after the heal", "d"),
    ("cost_outage_usd", "DynamoDB cost, outage start -> fleet resumed", "$"),
    ("cost_run_usd", "DynamoDB cost, whole run", "$"),
    ("cost_per_million_calls_usd", "DynamoDB cost per million invocations", "$"),
    ("read_units_per_s_peak", "read units/s, peak", "f"),
    ("item_read_limit_share_peak", f"  of one item's {ITEM_READ_UNITS_PER_S:,} RCU/s", "%"),
    ("write_units_per_s_peak", "write units/s, peak", "f"),
    ("item_write_limit_share_peak", f"  of one item's {ITEM_WRITE_UNITS_PER_S:,} WCU/s", "%"),
)
SHAPE_ROWS: Final[tuple[tuple[str, str, str], ...]] = (
    ("calls_failed_or_slow", "calls that failed or were slow", "d"),
    ("calls_refused_during_outage", "calls refused during the outage", "d"),
    ("calls_refused_healthy_envs", "calls refused in healthy environments", "d"),
    ("calls_refused_by_own_hold", "calls refused by an env's own hold", "d"),
    ("outage_start_to_first_hold_s", "outage start -> first env's own hold", "s"),
    ("envs_held_open", "environments that held themselves", "d"),
    ("probes_during_outage", "probes during the outage", "d"),
)
"""Added when the shape is not ``down`` or a quorum is configured."""
_LABEL = 46
_CELL = 18


def fmt(value: Number, kind: str) -> str:
    """A figure as the report prints it."""
    if value is None:
        return "never" if kind == "s" else "n/a"
    if kind == "d":
        return f"{int(value):,}"
    if kind == "f":
        return f"{value:,.1f}"
    if kind == "$":
        if value >= 100:
            return f"${value:,.0f}"
        return f"${value:,.2f}" if value >= 1 else f"${value:.6f}"
    if kind == "%":
        return f"{value:,.1%}"
    return f"{value:.3f} s"


def _ratio(ours: Number, theirs: Number) -> str:
    if ours is None or theirs is None:
        return ""
    if ours == theirs:
        return "1x"
    if ours == 0:
        return "inf"
    return f"{theirs / ours:,.1f}x"


def _writes(r: Result, kind: str, *, won: bool) -> int:
    return sum(1 for w in r.tally.log if w.kind == kind and w.won is won)


def report(p: Params, prices: Prices, results: list[Result], emit: Emit = print) -> None:
    """Print the run's parameters, then a row per figure and a column per protocol."""
    config = p.config
    emit("fleetbreaker simulate: a fleet sharing one circuit, in simulated time")
    emit(
        f"  {p.envs:,} environments x {p.rps:g} requests/s, {p.duration:g} s run; outage "
        f"t={p.outage_start:g}..{p.heal:g} s ({p.outage:g} s), {p.shape.describe()}"
    )
    emit(
        f"  store round trip {p.rtt * 1000:g} ms (a read sees the record as of one round trip "
        f"ago), downstream call {p.latency * 1000:g} ms; seed {p.seed}"
    )
    emit(f"  policy {p.policy}: {_config_text(p)}")
    emit(
        f"  environments start cold in the first {p.warmup:g} s; DynamoDB on-demand "
        f"${prices.write_per_million:g}/M write units, ${prices.read_per_million:g}/M read "
        f"units, {prices.item_bytes:,} B item"
    )
    first, end = steady_window(p)
    if end > first and config.local_cache_max_age > 0:
        emit(
            f"  steady state t={first}..{end} s; sizing rule envs / local_cache_max_age = "
            f"{p.envs / config.local_cache_max_age:,.1f} reads/s"
        )
    emit("")
    figures = [run_figures(r, prices) for r in results]
    compare = len(results) == 2
    header = f"{'':{_LABEL}}" + "".join(f"{r.protocol:>{_CELL}}" for r in results)
    emit(header + (f"{'ratio':>12}" if compare else ""))
    rows = ROWS
    if p.shape.kind != DOWN or config.fleet_minimum_reporters > 1:
        rows = (*ROWS, *SHAPE_ROWS)
    for key, label, kind in rows:
        values = [f[key] for f in figures]
        line = f"{label:{_LABEL}}" + "".join(f"{fmt(v, kind):>{_CELL}}" for v in values)
        if compare:
            line += f"{_ratio(values[0], values[1]):>12}"
        emit(line)
    if p.shape.kind != DOWN or config.fleet_minimum_reporters > 1:
        for result in results[:1]:
            for kind in WRITE_KINDS:
                won, lost = _writes(result, kind, won=True), _writes(result, kind, won=False)
                emit(f"{f'{kind} writes won/lost (fleetbreaker)':{_LABEL}}{won:>{_CELL}}/{lost}")
    emit(
        f"{'real time to simulate':{_LABEL}}"
        + "".join(f"{fmt(r.elapsed, 's'):>{_CELL}}" for r in results)
    )
    emit("")
    emit(
        "'every env admitted a call' includes each environment's wait for its next request "
        f"after the close (about ln(envs)/rps = {math.log(p.envs) / p.rps:.1f} s here)."
    )
    if any(r.protocol == POWERTOOLS for r in results):
        emit(
            "ratio = powertools / fleetbreaker. The Powertools model is written from the source "
            "of aws-lambda-powertools 3.37.0 (docs/simulate.md)."
        )
    emit("Not modelled: store throttling and errors, queueing at the store, scale-out.")


def _config_text(p: Params) -> str:
    c = p.config
    text = (
        f"failure_threshold={c.failure_threshold} recovery_timeout={c.recovery_timeout:g} "
        f"success_threshold={c.success_threshold} local_cache_max_age={c.local_cache_max_age:g} "
        f"half_open_refresh={c.half_open_refresh:g}"
    )
    if c.uses_window:
        text += (
            f" failure_rate_threshold={c.failure_rate_threshold} "
            f"slow_call_duration_threshold={c.slow_call_duration_threshold} "
            f"slow_call_rate_threshold={c.slow_call_rate_threshold} "
            f"minimum_number_of_calls={c.minimum_number_of_calls} "
            f"{c.sliding_window_type} window {c.sliding_window_size:g}"
        )
    if c.fleet_minimum_reporters > 1:
        text += f" fleet_minimum_reporters={c.fleet_minimum_reporters}"
    return text


def trace_writes(result: Result, limit: int = 80, emit: Emit = print) -> None:
    """Print the run's writes, in order: who wrote what, when, and what a lost write lost to."""
    p, log = result.p, result.tally.log
    emit(f"writes of {p.shape.text} x {p.policy} (t relative to the outage start):")
    for w in log[:limit]:
        basis = "none" if w.basis_age is None else f"written {w.basis_age * 1000:.1f} ms before"
        line = (
            f"  t{w.at - p.outage_start:+9.4f} s  env {w.env:>6}  {w.kind:6} "
            f"{'won ' if w.won else 'LOST'}  basis {basis}"
        )
        if w.beaten_by is not None:
            kind, env, at = w.beaten_by
            line += f"; lost to {kind} by env {env} {(w.at - at) * 1000:.1f} ms before"
        emit(line)
    if len(log) > limit:
        emit(f"  ... {len(log) - limit} more")
