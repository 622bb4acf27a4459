"""``--matrix``: fleetbreaker alone through trip-policy presets x outage shapes, in one table."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Final

from fleetbreaker._sim.checks import checks
from fleetbreaker._sim.engine import Result
from fleetbreaker._sim.model import Params
from fleetbreaker._sim.report import Emit, fmt

__all__ = ["matrix_report", "print_checks"]

Column = tuple[str, Callable[[Result], str], int]
"""Heading, the cell's text, and its width."""


def _count(value: int) -> str:
    return f"{value:,}"


def _trip_after(r: Result) -> float | None:
    return None if r.first_trip is None else r.first_trip - r.p.outage_start


def _won_lost(kind: str) -> Callable[[Result], str]:
    def cell(r: Result) -> str:
        won = sum(1 for w in r.tally.log if w.kind == kind and w.won)
        lost = sum(1 for w in r.tally.log if w.kind == kind and not w.won)
        return f"{won}/{lost}"

    return cell


def _in_outage(r: Result) -> int:
    return len(r.tally.writes_between(r.p.outage_start, r.p.heal))


def _lost_in_outage(r: Result) -> int:
    return sum(not w.won for w in r.tally.writes_between(r.p.outage_start, r.p.heal))


OUTCOME_COLUMNS: Final[list[Column]] = [
    ("start->trip", lambda r: fmt(_trip_after(r), "s"), 12),
    ("tripped", lambda r: "yes" if r.tally.trips else "no", 8),
    ("trips", lambda r: _count(len(r.tally.trips)), 6),
    ("bad calls", lambda r: _count(r.bad_calls), 11),
    ("failed/slow", lambda r: _count(r.bad_failed), 12),
    ("after trip", lambda r: _count(r.leaked), 11),
    ("refused", lambda r: _count(r.refused_in_outage), 10),
    ("healthy refused", lambda r: _count(r.refused_healthy), 16),
    ("held envs", lambda r: _count(len(r.held_envs)), 10),
    ("max probes", lambda r: _count(r.max_probes_in_flight), 11),
]
WRITE_COLUMNS: Final[list[Column]] = [
    ("writes", lambda r: _count(len(r.tally.log)), 8),
    ("lost", lambda r: _count(r.tally.cond_lost), 6),
    ("outage writes", lambda r: _count(_in_outage(r)), 15),
    ("outage lost", lambda r: _count(_lost_in_outage(r)), 13),
    *((f"{kind} w/l", _won_lost(kind), 12) for kind in ("report", "trip", "claim", "settle")),
    ("sim time", lambda r: f"{r.elapsed:.1f} s", 10),
]


def _table(results: Sequence[Result], columns: Sequence[Column], emit: Emit) -> None:
    emit(f"{'shape':9}{'policy':13}" + "".join(f"{h:>{w}}" for h, _, w in columns))
    for r in results:
        cells = "".join(f"{cell(r):>{w}}" for _, cell, w in columns)
        emit(f"{r.p.shape.kind:9}{r.p.policy:13}{cells}")


def matrix_report(p: Params, results: Sequence[Result], emit: Emit) -> None:
    """One table of what reached the downstream, one of the store writes, a row per cell."""
    emit("fleetbreaker trip policies x outage shapes (simulated time; docs/simulate.md)")
    emit(
        f"  {p.envs:,} environments x {p.rps:g} requests/s, {p.duration:g} s run, outage from "
        f"t={p.outage_start:g} s to t={p.heal:g} s; store round trip {p.rtt * 1000:g} ms, "
        f"downstream call {p.latency * 1000:g} ms; seed {p.seed}"
    )
    for shape in dict.fromkeys(r.p.shape for r in results):
        emit(f"  shape {shape.describe()}")
    for result in {r.p.policy: r for r in results}.values():
        emit(f"  policy {result.p.policy}: {_policy_text(replace(p, config=result.p.config))}")
    emit("")
    emit("What reached the downstream, during the outage:")
    _table(results, OUTCOME_COLUMNS, emit)
    emit("")
    emit("Store writes (conditional), whole run = one outage and its recovery; won/lost by kind:")
    _table(results, WRITE_COLUMNS, emit)
    emit("")
    emit(
        "start->trip: outage start to the first persisted trip. bad calls: calls that reached "
        "an affected\ndownstream during the outage (sick: the sick environment's); failed/slow: "
        "of them those that\nfailed or were slow; after trip: closed-path bad calls after the "
        "first trip. refused: calls refused\nduring the outage; healthy refused: in environments "
        "the shape leaves healthy (sick); held envs:\nenvironments that refused calls on their "
        "own hold (their rules fired, no quorum yet). Writes by\nkind: report (quorum report), "
        "trip, claim (probe claim), settle (a probe's outcome)."
    )


def _policy_text(p: Params) -> str:
    c = p.config
    if not c.uses_window:
        return f"failure_threshold={c.failure_threshold}"
    return (
        f"failure_threshold={c.failure_threshold} "
        f"failure_rate_threshold={c.failure_rate_threshold} "
        f"slow_call_duration_threshold={c.slow_call_duration_threshold} "
        f"slow_call_rate_threshold={c.slow_call_rate_threshold} "
        f"minimum_number_of_calls={c.minimum_number_of_calls} "
        f"{c.sliding_window_type} window {c.sliding_window_size:g}, "
        f"fleet_minimum_reporters={c.fleet_minimum_reporters}"
    )


def print_checks(results: Sequence[Result], emit: Emit, *, label: str = "") -> bool:
    """Print each check as ``PASS``/``FAIL  <name>: <what>``; whether all passed."""
    ok = True
    for result in results:
        name = label or f"{result.p.shape.kind} x {result.p.policy}"
        for passed, text in checks(result):
            ok &= passed
            emit(f"{'PASS' if passed else 'FAIL'}  {name}: {text}")
    return ok
