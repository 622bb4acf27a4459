"""``status --sqlite FILE``: the previous release's command, kept (hidden) for one release.

Deprecated: ``fleetbreaker --store sqlite:///FILE list`` replaces it. Its output is unchanged,
so scripts that read it keep working until they move.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from fleetbreaker._info import CircuitInfo
from fleetbreaker._protocol import CircuitState
from fleetbreaker.errors import StoreError
from fleetbreaker.stores import SQLiteStore

__all__ = ["status"]


def status(args: argparse.Namespace) -> int:
    path: Path = args.sqlite
    print(
        "fleetbreaker status is deprecated and goes in the next release: use "
        f"fleetbreaker --store sqlite://{path.resolve()} list",
        file=sys.stderr,
    )
    # SQLiteStore creates a missing database; a status command must only look.
    if not path.is_file():
        print(f"fleetbreaker status: no database file at {str(path)!r}", file=sys.stderr)
        return 2
    try:
        store = SQLiteStore(path)
        try:
            names: list[str] = args.names or sorted(store.names())
            records = [(name, store.load(name)) for name in names]
        finally:
            store.close()
    except StoreError as exc:
        print(f"fleetbreaker status: {exc}", file=sys.stderr)
        return 2
    if not records:
        print(f"no circuits in {str(path)!r}")
        return 0
    width = max(len("circuit"), *(len(name) for name in names))
    print(f"{'circuit':<{width}}  {'state':<9}  {'epoch':>5}  detail")
    for name, record in records:
        if record is None:
            print(f"{name:<{width}}  {'closed':<9}  {'-':>5}  no stored record")
            continue
        info = CircuitInfo.from_record(name, record)
        print(f"{name:<{width}}  {info.state.value:<9}  {info.epoch:>5}  {_detail(info)}".rstrip())
    return 0


def _clock_time(wall: float | None) -> str:
    """Local time of day for a stored time; the raw number when it is not a time (never raises)."""
    if wall is None:
        return "?"
    try:
        return time.strftime("%H:%M:%S", time.localtime(wall))
    except (ValueError, OverflowError, OSError, TypeError):  # NaN, inf, out of range
        return repr(wall)


def _detail(info: CircuitInfo) -> str:
    if info.state is CircuitState.CLOSED:
        return ""
    failures = f"{info.failure_count} failure{'' if info.failure_count == 1 else 's'}"
    opened = f"opened {_clock_time(info.opened_at)} after {failures}"
    if info.state is CircuitState.OPEN:
        return f"{opened}; next probe from {_clock_time(info.retry_at)}"
    probe = "probe in flight" if info.probe_in_flight else "probe slot free"
    successes = info.half_open_successes
    return f"{opened}; {probe}, {successes} successful probe{'' if successes == 1 else 's'} so far"
