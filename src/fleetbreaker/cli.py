"""The ``fleetbreaker`` command: ``demo`` (the README's main command) and ``status``."""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from fleetbreaker import CircuitInfo, CircuitState, SQLiteStore, StoreError, demo

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error argparse has already reported
        return exc.code if isinstance(exc.code, int) else 2
    command: Callable[[argparse.Namespace], int] = args.command
    try:
        return command(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fleetbreaker",
        description="A circuit breaker whose state is shared by a whole fleet of processes.",
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    demo_command = commands.add_parser(
        "demo",
        help="watch a simulated fleet ride out an outage through one shared circuit",
        description=(
            "Worker processes x threads share one circuit in an SQLite store and call a "
            "simulated downstream that is healthy, then fails, then heals. Prints a timeline "
            "and checks the guarantees: exit 0 when they held, 1 when not."
        ),
    )
    demo_command.add_argument(
        "--processes", type=_count, metavar="N", default=4, help="worker processes (default 4)"
    )
    demo_command.add_argument(
        "--threads", type=_count, metavar="N", default=8, help="threads per process (default 8)"
    )
    demo_command.add_argument(
        "--healthy",
        type=_seconds(allow_zero=True),
        default=1.5,
        metavar="SECONDS",
        help="how long the downstream is healthy first (default 1.5)",
    )
    demo_command.add_argument(
        "--outage",
        type=_seconds(allow_zero=False),
        default=3.5,
        metavar="SECONDS",
        help="how long it then fails (default 3.5)",
    )
    demo_command.add_argument(
        "--after",
        type=_seconds(allow_zero=False),
        default=3.5,
        metavar="SECONDS",
        help="how long the demo runs after it heals (default 3.5)",
    )
    demo_command.add_argument(
        "--store-dir",
        type=Path,
        metavar="DIR",
        help=f"keep the SQLite store in DIR/{demo.DB_NAME} (default: a temporary directory)",
    )
    demo_command.set_defaults(command=_demo)

    status = commands.add_parser(
        "status",
        help="print the state of the circuits in a store",
        description="Print each circuit's state as the store holds it.",
    )
    status.add_argument(
        "--sqlite", type=Path, required=True, metavar="PATH", help="the SQLite database file"
    )
    status.add_argument("names", nargs="*", metavar="NAME", help="circuits to show (default: all)")
    status.set_defaults(command=_status)
    return parser


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _seconds(*, allow_zero: bool) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
        if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
            bound = ">= 0" if allow_zero else "> 0"
            raise argparse.ArgumentTypeError(f"must be a number of seconds {bound}, got {text}")
        return value

    return parse


def _demo(args: argparse.Namespace) -> int:
    options = demo.Options(
        processes=args.processes,
        threads=args.threads,
        healthy=args.healthy,
        outage=args.outage,
        after=args.after,
        store_dir=args.store_dir,
    )
    return demo.run(options)


def _status(args: argparse.Namespace) -> int:
    path: Path = args.sqlite
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
