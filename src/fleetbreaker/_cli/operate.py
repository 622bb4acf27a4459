"""``open``, ``close``, ``clear`` and ``reset``: an operator's writes, through
``fleetbreaker.operations`` (the same records ``CircuitBreaker.force_open`` & co. write).

A name with no record is exit 4 with the close matches, so that a typo never creates a
circuit nobody uses; ``open``/``close`` on a name with no record and no close match pre-empt
that circuit (an operator can force a circuit no process has used yet), and ``--create``
forces one whose name is close to another's. Another operator's override written between
this command's read and its write is exit 1: nothing is written, and the message says what is
in force.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from fleetbreaker import operations
from fleetbreaker._cli import views
from fleetbreaker._cli.common import (
    CommandError,
    Exit,
    emit,
    emit_json,
    no_record,
    note,
    open_store,
)
from fleetbreaker._cli.times import duration_text, human, json_time
from fleetbreaker._info import CircuitInfo
from fleetbreaker.errors import OverrideConflictError
from fleetbreaker.stores import Store

__all__ = ["clear", "force", "reset"]


def force(args: argparse.Namespace) -> int:
    """``open`` or ``close``: force the circuit so for ``--for``, fleet-wide."""
    name: str = args.name
    action = operations.force_open if args.command_name == "open" else operations.force_closed
    with open_store(args.store) as (store, label):
        if not args.create:
            _new_or_existing(store, label, name)
        info = _conflicts(
            lambda: action(
                store, name, duration=args.duration, reason=args.reason, actor=args.actor
            )
        )
    now = time.time()
    override = info.override
    if override is None:  # a duration shorter than the write took: written, and over already
        kind = "open" if args.command_name == "open" else "closed"
        text = f"forced {name!r} {kind} for {duration_text(args.duration)}: over already"
        return _report(args, label, info, now, text)
    return _report(
        args,
        label,
        info,
        now,
        f"forced {name!r} {override.kind} for {duration_text(args.duration)}, until "
        f"{human(override.until, now)}, by {override.actor}: {override.reason!r}",
    )


def clear(args: argparse.Namespace) -> int:
    """``clear``: end the circuit's override now (nothing written when it has none)."""
    name: str = args.name
    with open_store(args.store) as (store, label):
        before = _existing(store, label, name)
        if before.override is None:
            # Not even a write that finds nothing: it could clear an override set meanwhile.
            return _report(
                args, label, before, time.time(), f"{name!r} has no override in force: nothing done"
            )
        info = _conflicts(
            lambda: operations.clear_override(
                store, name, reason=args.reason, actor=args.actor, expected=before.override
            )
        )
    return _report(
        args,
        label,
        info,
        time.time(),
        f"cleared the override of {name!r} (forced {before.override.kind} by "
        f"{before.override.actor}); it is {views.effective_state(info)}",
    )


def reset(args: argparse.Namespace) -> int:
    """``reset``: close the circuit afresh, its counts, backoff and any override cleared."""
    name: str = args.name
    with open_store(args.store) as (store, label):
        before = _existing(store, label, name)
        info = _conflicts(
            lambda: operations.reset(store, name, reason=args.reason, actor=args.actor)
        )
    return _report(
        args,
        label,
        info,
        time.time(),
        f"reset {name!r}: {views.effective_state(before)} -> {views.effective_state(info)}, "
        "failure counts and open-time backoff cleared",
    )


def _new_or_existing(store: Store, label: str, name: str) -> None:
    """Forcing a circuit with no record pre-empts it (said on stderr), unless its name is
    close to one the store holds: then it is likely a typo, exit 4 unless ``--create``."""
    if operations.read(store, name) is not None:
        return
    error = no_record(store, label, name)
    if "close matches" in str(error):
        raise CommandError(
            error.code,
            f"{error}; if {name!r} is right (a circuit not used yet, or idle until its "
            "record expired), add --create",
        )
    note(f"note: {error}: the override pre-empts it (no process has used it yet)")


def _existing(store: Store, label: str, name: str, *, hint: bool = False) -> CircuitInfo:
    info = operations.read(store, name)
    if info is None:
        error = no_record(store, label, name)
        if hint:
            error = CommandError(
                error.code,
                f"{error}; if {name!r} is right (a circuit not used yet, or idle until its "
                "record expired), add --create",
            )
        raise error
    return info


def _conflicts(write: Callable[[], CircuitInfo]) -> CircuitInfo:
    """``write()``; another operator's concurrent override is exit 1, with what is in force."""
    try:
        info = write()
    except OverrideConflictError as exc:
        message = str(exc)
        if exc.current is not None:
            message += f" (in force until {human(exc.current.until, time.time())})"
        raise CommandError(Exit.NOT_CLOSED, message) from None
    return info


def _report(args: argparse.Namespace, label: str, info: CircuitInfo, now: float, text: str) -> int:
    if args.json:
        emit_json({"store": label, **json_time("now", now), "circuit": views.to_json(info)})
    else:
        emit(text)
    return Exit.OK
