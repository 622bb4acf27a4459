"""``list`` and ``show``: read the store, print, exit 0 only if every circuit shown is closed."""

from __future__ import annotations

import argparse
import time

from fleetbreaker._cli import views
from fleetbreaker._cli.common import Exit, emit, emit_json, no_record, open_store, read_listed
from fleetbreaker._cli.times import json_time
from fleetbreaker._info import CircuitInfo
from fleetbreaker.operations import read

__all__ = ["list_circuits", "show_circuit"]


def list_circuits(args: argparse.Namespace) -> int:
    """Every circuit in the store, one row each; exit 1 if any is not closed or is overridden."""
    with open_store(args.store) as (store, label):
        infos: list[CircuitInfo] = []
        warned: set[str] = set()
        for name in sorted(store.names()):
            info = read_listed(store, name, warned=warned)
            if info is not None:  # (its record may have expired since names() listed it)
                infos.append(info)
    now = time.time()
    code = Exit.OK if all(views.healthy(info) for info in infos) else Exit.NOT_CLOSED
    if args.json:
        emit_json(
            {
                "store": label,
                **json_time("now", now),
                "circuits": [views.to_json(info) for info in infos],
            }
        )
    elif not infos:
        emit(f"no circuits in {label}")
    else:
        for line in views.table(infos, now):
            emit(line)
    return code


def show_circuit(args: argparse.Namespace) -> int:
    """One circuit with its history; exit 4 (naming close matches) if it has no record."""
    name: str = args.name
    with open_store(args.store) as (store, label):
        info = read(store, name)
        if info is None:
            raise no_record(store, label, name)
    now = time.time()
    if args.json:
        emit_json({"store": label, **json_time("now", now), "circuit": views.to_json(info)})
    else:
        for line in views.block(info, now):
            emit(line)
    return Exit.OK if views.healthy(info) else Exit.NOT_CLOSED
