"""Circuits as the CLI shows them: a table row, a ``show`` block, a JSON object, a change line.

Everything here is a pure function of a ``CircuitInfo`` and ``now`` (the CLI's wall clock), so
it is tested without a store; nothing raises on strange stored values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from fleetbreaker._cli.times import human, json_time
from fleetbreaker._history import HistoryEntry
from fleetbreaker._info import CircuitInfo
from fleetbreaker._protocol import CircuitState

__all__ = [
    "block",
    "columns",
    "effective_state",
    "entry_json",
    "healthy",
    "state_text",
    "table",
    "to_json",
]

_HEADERS = ("CIRCUIT", "STATE", "SINCE", "FAILURES", "OVERRIDE", "PROBE", "NEXT PROBE")


def effective_state(info: CircuitInfo) -> str:
    """What callers get now: ``forced_open``/``forced_closed`` under an override, else the state.

    The same words as the history's ``to_state``.
    """
    override = info.override
    if override is not None:
        return f"forced_{override.kind}"
    return str(info.state.value)


def state_text(info: CircuitInfo) -> str:
    """The state callers get, the circuit's own state after it under an override:
    ``forced_open (closed)``. A forced circuit never reads as a plain ``closed``."""
    shown, own = effective_state(info), info.state.value
    return shown if shown == own else f"{shown} ({own})"


def healthy(info: CircuitInfo) -> bool:
    """Closed and not overridden: what exit code 0 promises of every circuit shown."""
    return info.state is CircuitState.CLOSED and info.override is None


def since(info: CircuitInfo) -> float | None:
    """When the circuit entered the state callers get now, as far as the record tells: its
    last history entry when that entry led to this state, else when it opened."""
    if info.history and info.history[-1].to_state == effective_state(info):
        return info.history[-1].at
    if info.state is not CircuitState.CLOSED and info.override is None:
        return info.opened_at
    return None


def next_probe(info: CircuitInfo) -> float | None:
    """When the first probe may be claimed: only an open circuit has such a time."""
    return info.retry_at if info.state is CircuitState.OPEN else None


def _percent(rate: float) -> str:
    return f"{rate:.0%}" if math.isfinite(rate) else repr(rate)


def failures(info: CircuitInfo) -> str:
    """The figures of the trip and the rule that fired: ``5 failures (consecutive)``; ``-``."""
    if info.state is CircuitState.CLOSED:
        return "-"
    count = info.failure_count
    parts = [f"{count} failure{'' if count == 1 else 's'}"]
    if info.failure_rate is not None:
        parts.append(f"{_percent(info.failure_rate)} failed")
    if info.slow_call_rate is not None:
        parts.append(f"{_percent(info.slow_call_rate)} slow")
    text = ", ".join(parts)
    return text if info.rule is None else f"{text} ({info.rule})"


def override_text(info: CircuitInfo, now: float, *, full: bool = False) -> str:
    """``until <time> by <actor>``; with ``full`` also the kind, when it was set and why.
    ``-`` (``none`` with ``full``) when no override is in force."""
    override = info.override
    if override is None:
        return "-" if not full else "none"
    if not full:
        return f"until {human(override.until, now)} by {override.actor}"
    return (
        f"{override.kind} until {human(override.until, now)}, set by {override.actor} at "
        f"{human(override.at, now)}: {override.reason!r}"
    )


def probe_text(info: CircuitInfo, now: float) -> str:
    """``<owner> until <claim expiry>`` while a probe is in flight; ``-`` otherwise."""
    owner = info.probe_owner
    if owner is None:
        return "in flight" if info.probe_in_flight else "-"
    return f"{owner} until {human(info.probe_expires_at, now)}"


def table(infos: Sequence[CircuitInfo], now: float, marks: Sequence[str] = ()) -> list[str]:
    """A table of circuits, one row each; ``marks`` (one per row) prefix the rows when given."""
    rows = [
        [
            info.name,
            state_text(info),
            human(since(info), now),
            failures(info),
            override_text(info, now),
            probe_text(info, now),
            human(next_probe(info), now),
        ]
        for info in infos
    ]
    headers = list(_HEADERS)
    if marks:
        headers.insert(0, " ")
        rows = [[mark, *row] for mark, row in zip(marks, rows, strict=True)]
    return columns([headers, *rows])


def columns(rows: Sequence[Sequence[str]], indent: str = "") -> list[str]:
    """``rows`` of cells as aligned text lines, two spaces between columns."""
    if not rows:
        return []
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return [
        indent
        + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def block(info: CircuitInfo, now: float) -> list[str]:
    """``show``: every field of one circuit, then its history, oldest first."""
    lines = [
        ("circuit", info.name),
        ("state", state_text(info)),
        ("since", human(since(info), now)),
        ("override", override_text(info, now, full=True)),
        ("failures", failures(info)),
        ("opened at", human(info.opened_at, now)),
        ("next probe", human(next_probe(info), now)),
        ("probe", probe_text(info, now)),
        ("recoveries", f"{info.open_count} failed in a row"),
        ("probes ok", f"{info.half_open_successes} in this half-open episode"),
        ("epoch", str(info.epoch)),
        ("updated", human(info.updated_at, now)),
    ]
    if info.state is CircuitState.CLOSED:
        drop = {"opened at", "next probe", "probes ok"}
        lines = [line for line in lines if line[0] not in drop]
    elif info.state is CircuitState.OPEN:
        lines = [line for line in lines if line[0] != "probes ok"]
    out = columns([[f"{label}:", value] for label, value in lines])
    history = info.history
    out.append("")
    if not history:
        out.append("history: none recorded")
        return out
    out.append("history (oldest first):")
    rows = [
        [human(entry.at, now), f"{entry.from_state} -> {entry.to_state}", entry.by, entry.reason]
        for entry in history
    ]
    out.extend(columns(rows, indent="  "))
    return out


def to_json(info: CircuitInfo) -> dict[str, Any]:
    """The circuit as a JSON object with a fixed set of keys (``None`` where a field has no
    value); each time as epoch seconds and, beside it, ``<key>_iso``."""
    override = info.override
    return {
        "name": info.name,
        "state": info.state.value,
        "effective_state": effective_state(info),
        "healthy": healthy(info),
        **json_time("since", since(info)),
        "override": None
        if override is None
        else {
            "kind": override.kind,
            **json_time("until", override.until),
            "reason": override.reason,
            "actor": override.actor,
            **json_time("at", override.at),
        },
        "failure_count": info.failure_count,
        "rule": info.rule,
        "failure_rate": _finite(info.failure_rate),
        "slow_call_rate": _finite(info.slow_call_rate),
        "open_count": info.open_count,
        **json_time("opened_at", info.opened_at),
        **json_time("next_probe_at", next_probe(info)),
        **json_time("retry_at", info.retry_at),
        "probe_in_flight": info.probe_in_flight,
        "probe_owner": info.probe_owner,
        **json_time("probe_expires_at", info.probe_expires_at),
        "half_open_successes": info.half_open_successes,
        "epoch": info.epoch,
        **json_time("updated_at", info.updated_at),
        "history": [entry_json(entry) for entry in info.history],
    }


def entry_json(entry: HistoryEntry) -> dict[str, Any]:
    """One history entry as JSON."""
    return {
        **json_time("at", entry.at),
        "from_state": entry.from_state,
        "to_state": entry.to_state,
        "by": entry.by,
        "reason": entry.reason,
    }


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None
