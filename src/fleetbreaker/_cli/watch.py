"""``watch``: poll the store every interval and show each change as it is seen.

On a terminal the screen is redrawn each poll: the table, the rows that just changed marked
``*``, and the latest changes below it. Piped (or with ``--plain``), it prints one line per
circuit to begin with (``<time> <name> is <state> ...``), then one line per change
(``<time> <name> <old> -> <new> ...``), each flushed at once; ``--json`` prints the same events
as JSON lines. Ctrl-C or SIGTERM ends it with exit 0.

A store error after the first poll does not end the watch (an incident is when a store blips):
it is reported once on stderr, and again when the store answers.
"""

from __future__ import annotations

import argparse
import collections
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fleetbreaker._cli import views
from fleetbreaker._cli.common import emit, emit_json, no_record, open_store, read_listed
from fleetbreaker._cli.times import duration_text, human, iso, json_time
from fleetbreaker._history import HistoryEntry
from fleetbreaker._info import CircuitInfo
from fleetbreaker._protocol import CircuitState
from fleetbreaker.errors import StoreError
from fleetbreaker.operations import read
from fleetbreaker.stores import Store

__all__ = ["Event", "changes", "watch"]

_CLEAR = "\x1b[H\x1b[2J"  # cursor home, clear screen
_RECENT = 10  # change lines kept under the table on a terminal
NO_RECORD = "none"


@dataclass(frozen=True, slots=True)
class Event:
    """A circuit seen for the first time (``initial``) or changed since the last poll."""

    at: float
    name: str
    old: str | None  # effective state before; None for the first sight
    new: str  # effective state now, or "none" when there is no record
    info: CircuitInfo | None
    entries: tuple[HistoryEntry, ...] = ()  # the history entries written since the last poll
    initial: bool = False


def watch(args: argparse.Namespace) -> int:
    """Run the watch until interrupted; exit 3 if the store fails on the first poll."""
    names: list[str] = args.names
    interval: float = args.interval
    terminal = sys.stdout.isatty() and not args.plain and not args.json
    previous_handler = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        with open_store(args.store) as (store, label):
            screen = _Screen(label, interval) if terminal else None
            _loop(store, label, names, interval, screen, as_json=args.json)
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM: leaving is what was asked for
        if terminal:
            emit()
    except BrokenPipeError:  # the reader went away
        pass
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
    return 0


def _loop(
    store: Store,
    label: str,
    names: Sequence[str],
    interval: float,
    screen: _Screen | None,
    *,
    as_json: bool,
    clock: Callable[[], float] = time.time,
) -> None:
    seen: dict[str, CircuitInfo | None] | None = None
    failing = False
    warned: set[str] = set()  # listed names that are no circuit's, reported once
    while True:
        now = clock()
        try:
            current = _poll(store, names, warned)
        except StoreError as exc:
            if seen is None:
                raise  # the first poll: a wrong URL or a store that is down is exit 3
            if not failing:
                _stderr(f"{iso(now)} store error: {exc}; retrying every {duration_text(interval)}")
            failing = True
            time.sleep(interval)
            continue
        if failing:
            _stderr(f"{iso(now)} the store answers again")
            failing = False
        events = changes(seen, current, now)
        if seen is None:
            _first_poll(store, label, current, now, screen, as_json=as_json)
        seen = current
        if screen is not None:
            screen.draw(current, events, now)
        else:
            for event in events:
                if as_json:
                    emit_json(_event_json(event), indent=None)
                else:
                    emit(line(event, now))
        time.sleep(interval)


def _poll(store: Store, names: Sequence[str], warned: set[str]) -> dict[str, CircuitInfo | None]:
    """Each named circuit (or every circuit in the store) as the store holds it now."""
    if names:
        return {name: read(store, name) for name in names}
    found = {name: read_listed(store, name, warned=warned) for name in sorted(store.names())}
    return {name: info for name, info in found.items() if name not in warned}


def _signature(info: CircuitInfo | None) -> tuple[object, ...]:
    """What a change is: the state callers get, the override, who holds the probe, and the
    history (every persisted change appends to it, even one undone before the next poll)."""
    if info is None:
        return (NO_RECORD,)
    override = info.override
    return (
        views.effective_state(info),
        info.state,
        # Not its times: a process that writes the record re-dates them by its clock's skew.
        None if override is None else (override.kind, override.actor, override.reason),
        info.probe_owner or info.probe_in_flight,
        info.history[-1:],
    )


def changes(
    before: Mapping[str, CircuitInfo | None] | None,
    after: Mapping[str, CircuitInfo | None],
    now: float,
) -> list[Event]:
    """The events between two polls (every circuit is an initial event after ``None``).

    A circuit that was not listed before and now is appears as ``none -> <state>``; one that
    was and is no longer listed (its record expired) as ``<state> -> none``.
    """
    if before is None:
        return [
            Event(now, name, None, _state(info), info, initial=True) for name, info in after.items()
        ]
    events = []
    for name in sorted(before.keys() | after.keys()):
        old, new = before.get(name), after.get(name)
        if _signature(old) != _signature(new):
            events.append(Event(now, name, _state(old), _state(new), new, _new_entries(old, new)))
    return events


def _new_entries(old: CircuitInfo | None, new: CircuitInfo | None) -> tuple[HistoryEntry, ...]:
    """The history entries ``new`` has that ``old`` had not: what happened between polls."""
    if new is None:
        return ()
    known = set(() if old is None else old.history)
    return tuple(entry for entry in new.history if entry not in known)


def _state(info: CircuitInfo | None) -> str:
    return NO_RECORD if info is None else views.effective_state(info)


def detail(info: CircuitInfo | None, now: float) -> str:
    """What goes with a state in a change line: the trip, the override, the probe."""
    if info is None:
        return "no record"
    parts = []
    override = info.override
    if override is not None:  # (its kind is in the state: forced_open)
        parts.append(
            f"until {human(override.until, now)}, set by {override.actor} at "
            f"{human(override.at, now)}: {override.reason!r}"
        )
    if info.state is CircuitState.OPEN:
        parts.append(views.failures(info))
        parts.append(f"next probe {human(views.next_probe(info), now)}")
    elif info.state is CircuitState.HALF_OPEN:
        parts.append(f"probe {views.probe_text(info, now)}")
    return "; ".join(parts)


def line(event: Event, now: float) -> str:
    """``<time> <name> <old> -> <new> [<detail>]``, or ``<time> <name> is <state> [<detail>]``
    (the words before the brackets split on spaces; the detail is for a reader).

    States passed through between two polls (the history says) appear on the way:
    ``open -> half_open -> closed``; the last one's writer and reason follow.
    """
    stamp = iso(event.at) or repr(event.at)
    if event.initial and event.info is None:
        return f"{stamp} {event.name} has no record"
    if event.initial:
        text = f"{stamp} {event.name} is {event.new}"
    else:
        path = [event.old or NO_RECORD]
        # An entry's from_state too: a probe claim (open -> half_open) has no entry of its own.
        passed = [state for entry in event.entries for state in (entry.from_state, entry.to_state)]
        for state in [*passed, event.new]:
            if state != path[-1]:
                path.append(state)
        if len(path) == 1:  # the same state again (an override renewed, a probe claimed)
            path.append(event.new)
        text = f"{stamp} {event.name} {' -> '.join(path)}"
    parts = [detail(event.info, now)]
    if event.entries and not event.entries[-1].to_state.startswith("forced_"):
        # (an override in force is shown whole by the detail, its actor and reason included)
        last = event.entries[-1]
        parts.append(f"by {last.by}" + (f": {last.reason}" if last.reason else ""))
    shown = "; ".join(part for part in parts if part)
    return f"{text} [{shown}]" if shown else text


def _event_json(event: Event) -> dict[str, Any]:
    return {
        **json_time("at", event.at),
        "name": event.name,
        "initial": event.initial,
        "from": event.old,
        "to": event.new,
        "history": [views.entry_json(entry) for entry in event.entries],
        "circuit": None if event.info is None else views.to_json(event.info),
    }


def _first_poll(
    store: Store,
    label: str,
    current: dict[str, CircuitInfo | None],
    now: float,
    screen: _Screen | None,
    *,
    as_json: bool,
) -> None:
    for name, info in current.items():
        if info is None:  # a typo, or a circuit not used yet: say which, and keep watching
            _stderr(f"{no_record(store, label, name)}; watching for it")
    if not current and screen is None and not as_json:
        # A line a reader can wait for before it changes anything: the first poll is done.
        emit(f"{iso(now)} no circuits in {label} yet")


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class _Screen:
    """The terminal view: redrawn whole each poll (no curses: it works on any terminal)."""

    def __init__(self, label: str, interval: float) -> None:
        self._label = label
        self._interval = interval
        self._recent: collections.deque[str] = collections.deque(maxlen=_RECENT)

    def draw(
        self, current: Mapping[str, CircuitInfo | None], events: list[Event], now: float
    ) -> None:
        changed = {event.name for event in events if not event.initial}
        self._recent.extend(line(event, now) for event in events if not event.initial)
        every = duration_text(self._interval)
        title = f"fleetbreaker watch  {self._label}  every {every}  {iso(now)}  (Ctrl-C to leave)"
        out = [title, ""]
        infos = [info for info in current.values() if info is not None]
        if infos:
            marks = ["*" if info.name in changed else " " for info in infos]
            out.extend(views.table(infos, now, marks))
        missing = [name for name, info in current.items() if info is None]
        if missing:
            out.append(f"no record: {', '.join(missing)}")
        if not current:
            out.append(f"no circuits in {self._label} yet")
        out += ["", "changes:" if self._recent else "changes: none seen yet", *self._recent]
        sys.stdout.write(_CLEAR + "\n".join(out) + "\n")
        sys.stdout.flush()
