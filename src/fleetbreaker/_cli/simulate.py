"""``fleetbreaker simulate``: the fleet simulator as a command (``fleetbreaker._sim``)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import textwrap
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from fleetbreaker._cli.common import CommandError, Exit
from fleetbreaker._sim import options
from fleetbreaker._sim.checks import MAX_QUORUM_LOST, MAX_QUORUM_WRITES, checks
from fleetbreaker._sim.cost import PRICE_READ_PER_MILLION, PRICE_WRITE_PER_MILLION, Prices
from fleetbreaker._sim.fleet import POLICIES
from fleetbreaker._sim.model import RATIO, SLOW, Params, Shape

if TYPE_CHECKING:
    from fleetbreaker._sim.engine import Result

# The engine, the report and the figures are imported by `run` alone, so that declaring the
# command line costs the other commands (list, show, ...) next to nothing.
FLEETBREAKER = "fleetbreaker"
POWERTOOLS = "powertools"

__all__ = ["add_command", "run"]

T = TypeVar("T")

_DEFAULT_JOBS = os.cpu_count() or 1

_DESCRIPTION = (
    "Simulate a fleet of environments (Lambda-style: one request at a time each) sharing one "
    "circuit through one store, in simulated time: every environment runs the real "
    "CircuitBreaker. An outage hits the downstream; the report gives what an operator sizes "
    "for: store reads and writes per second, lost conditional writes, calls that reached the "
    "failing downstream, time to trip and to recover, and the store's DynamoDB on-demand bill "
    "and load on one item. The model and what it leaves out: docs/simulate.md."
)
_EPILOG = f"""\
durations: {options.DURATION_FORMS} (seconds when no unit is given).
outage shapes: down (every call fails), ratio:0.3 (a seeded 30 % fail), slow:5s (every call
  takes 5 s and succeeds), sick (environment 0's calls all fail, the others' succeed).
--config FIELD=VALUE sets any fleetbreaker.Config field on top of --policy's preset: numbers,
  durations for seconds (recovery_timeout=30s), None, exception names for handled_exceptions
  and ignored_exceptions (DownstreamError, the simulated failure, is a ConnectionError).

exit codes: 0 done (and --check passed), 1 a --check failed, 2 usage error (a bad option,
  Config field or value; a missing matplotlib for --plot).
"""


def _typed(parse: Callable[[str], T]) -> Callable[[str], T]:
    """An argparse type from a parser raising ``ValueError`` with the user's message."""

    def typed(text: str) -> T:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    typed.__name__ = getattr(parse, "__name__", "value")
    return typed


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise ValueError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"expected a number, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise ValueError(f"must be a number > 0, got {text!r}")
    return value


def _price(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"expected US dollars, got {text!r}") from None
    if not 0 <= value < float("inf"):
        raise ValueError(f"must be a price >= 0, got {text!r}")
    return value


def add_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Declare ``simulate`` and its options."""
    command = sub.add_parser(
        "simulate",
        help="simulate a fleet through an outage: store load, leaked calls, recovery, cost",
        description=textwrap.fill(_DESCRIPTION, 92),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = command.add_argument
    duration = _typed(options.parse_duration)
    add(
        "--envs",
        type=_typed(_positive_int),
        default=1000,
        metavar="N",
        help="environments sharing the circuit (default 1000)",
    )
    add(
        "--rps",
        type=_typed(_positive_float),
        default=5.0,
        metavar="R",
        help="requests per second per environment, Poisson arrivals (default 5)",
    )
    add(
        "--duration",
        type=duration,
        default=90.0,
        metavar="DURATION",
        help="simulated time (default 90s)",
    )
    add(
        "--outage",
        type=_typed(options.parse_outage),
        default=(20.0, 50.0),
        metavar="START:END",
        help="when the downstream is out (default 20s:50s)",
    )
    add(
        "--outage-shape",
        type=_typed(options.parse_shape),
        default=Shape(),
        metavar="SHAPE",
        help=f"what goes wrong: {options.SHAPE_FORMS} (default down)",
    )
    add(
        "--store-rtt",
        type=duration,
        default=0.005,
        metavar="DURATION",
        help="store round trip (default 5ms)",
    )
    add(
        "--latency",
        type=duration,
        default=0.02,
        metavar="DURATION",
        help="a healthy downstream call (default 20ms)",
    )
    add("--seed", type=int, default=1, help="random seed (default 1): same seed, same run")
    add(
        "--policy",
        choices=POLICIES,
        default=POLICIES[0],
        help="trip-policy preset that --config refines (default consecutive: Config's defaults)",
    )
    add(
        "--config",
        type=_typed(options.parse_config_item),
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="set a fleetbreaker.Config field (repeatable)",
    )
    add(
        "--compare",
        choices=[POWERTOOLS],
        default=None,
        help="also run a model of the Powertools circuit breaker on the same arrivals",
    )
    add(
        "--price-write-per-million",
        type=_typed(_price),
        default=PRICE_WRITE_PER_MILLION,
        metavar="USD",
        help=f"DynamoDB on-demand, per million write units "
        f"(default {PRICE_WRITE_PER_MILLION:g}: us-east-1, since 1 Nov 2024)",
    )
    add(
        "--price-read-per-million",
        type=_typed(_price),
        default=PRICE_READ_PER_MILLION,
        metavar="USD",
        help=f"per million read units (default {PRICE_READ_PER_MILLION:g})",
    )
    add(
        "--item-bytes",
        type=_typed(_positive_int),
        default=1024,
        metavar="BYTES",
        help="the circuit's item size: 1 write unit per started 1 KB, 1 read unit per "
        "started 4 KB (half for an eventually consistent read); default 1024",
    )
    add("--json", action="store_true", help="print one JSON document (docs/simulate.md)")
    add(
        "--plot",
        type=Path,
        default=None,
        metavar="FILE.png",
        help="draw the timeline into a PNG (needs the plot extra: fleetbreaker[plot])",
    )
    add(
        "--check",
        action="store_true",
        help="exit 1 if fleetbreaker loses a conditional write (quorum or more than 1,000 "
        f"environments: more than {MAX_QUORUM_LOST}; quorum: more than {MAX_QUORUM_WRITES} "
        "writes), runs two probes at once, persists more than one trip, or (sick shape with a "
        "quorum) lets one sick environment trip the fleet",
    )
    add(
        "--matrix",
        nargs="?",
        const="all",
        type=_typed(options.parse_cells),
        default=None,
        metavar="CELLS",
        help="run fleetbreaker for every outage shape x --policy preset (or "
        "the cells given, as shape:policy,...) and print one table",
    )
    add("--trace-writes", action="store_true", help="list every store write of fleetbreaker")
    add(
        "--jobs",
        type=_typed(_positive_int),
        default=_DEFAULT_JOBS,
        metavar="N",
        help="runs at once (--compare, --matrix), each in a process of its own "
        f"(default {_DEFAULT_JOBS}: this machine's processors, at most 2 for --compare)",
    )
    command.set_defaults(command=run, command_name="simulate")


@contextmanager
def _quiet_library() -> Iterator[None]:
    """The breakers' transition logs would drown the report: only errors get through."""
    logger = logging.getLogger("fleetbreaker")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _params(args: argparse.Namespace) -> Params:
    start, heal = args.outage
    if heal >= args.duration:
        raise CommandError(
            Exit.USAGE,
            f"--outage must end before the run does (--duration {args.duration:g} s), "
            f"got an end at {heal:g} s",
        )
    try:
        config = options.build_config(args.policy, args.config)
    except ValueError as exc:
        raise CommandError(Exit.USAGE, str(exc)) from None
    return Params(
        envs=args.envs,
        rps=args.rps,
        duration=args.duration,
        outage_start=start,
        heal=heal,
        rtt=args.store_rtt,
        latency=args.latency,
        seed=args.seed,
        config=config,
        shape=args.outage_shape,
        policy=args.policy,
    )


def run(args: argparse.Namespace) -> int:
    """Run the simulation the options describe; print the report; the exit code."""
    from fleetbreaker._sim.engine import simulate_each  # noqa: PLC0415 - see the imports
    from fleetbreaker._sim.figures import document  # noqa: PLC0415
    from fleetbreaker._sim.report import report, trace_writes  # noqa: PLC0415

    p = _params(args)
    prices = Prices(
        write_per_million=args.price_write_per_million,
        read_per_million=args.price_read_per_million,
        item_bytes=args.item_bytes,
    )
    if args.compare and p.config.failure_threshold is None:
        raise CommandError(
            Exit.USAGE,
            "--compare powertools models Powertools' one rule, consecutive failures: "
            "it needs failure_threshold (use --policy consecutive or set it with --config)",
        )
    if args.matrix is not None and (args.compare or args.json or args.plot):
        raise CommandError(Exit.USAGE, "--matrix runs fleetbreaker alone, as text")
    if args.plot is not None:
        _check_plot(args.plot)
    with _quiet_library():
        if args.matrix is not None:
            return _matrix(p, args)
        protocols = [FLEETBREAKER] + ([POWERTOOLS] if args.compare else [])
        results = list(simulate_each([(protocol, p) for protocol in protocols], jobs=args.jobs))
    found = checks(results[0]) if args.check else None
    if args.json:
        json.dump(document(p, prices, results, found), sys.stdout, indent=2)
        print()
    else:
        report(p, prices, results)
        if args.trace_writes:
            print()
            trace_writes(results[0])
        if found is not None:
            print()
            for passed, text in found:
                print(f"{'PASS' if passed else 'FAIL'}  fleetbreaker: {text}")
    if args.plot is not None:
        _plot(results, args.plot)
    return 0 if found is None or all(passed for passed, _ in found) else 1


def _check_plot(path: Path) -> None:
    """Refuse a ``--plot`` that cannot be drawn before spending minutes on the run."""
    if path.suffix.lower() != ".png":
        raise CommandError(Exit.USAGE, f"--plot draws a PNG: give a FILE.png, got {str(path)!r}")
    from fleetbreaker._sim import plot  # noqa: PLC0415 - keeps matplotlib out of other commands

    try:
        plot.pyplot()
    except plot.PlotUnavailableError as exc:
        raise CommandError(Exit.USAGE, str(exc)) from None


def _plot(results: list[Result], path: Path) -> None:
    from fleetbreaker._sim import plot  # noqa: PLC0415

    plot.plot(results, path)
    print(f"timeline drawn into {path}", file=sys.stderr)


def _matrix(p: Params, args: argparse.Namespace) -> int:
    from fleetbreaker._sim.engine import simulate_each  # noqa: PLC0415 - see the imports
    from fleetbreaker._sim.matrix import matrix_report, print_checks  # noqa: PLC0415
    from fleetbreaker._sim.report import trace_writes  # noqa: PLC0415

    cells = []
    for kind, policy in args.matrix:
        shape = args.outage_shape if args.outage_shape.kind == kind else _default_shape(kind)
        try:
            config = options.build_config(policy, args.config)
        except ValueError as exc:
            raise CommandError(Exit.USAGE, str(exc)) from None
        cells.append((FLEETBREAKER, replace(p, shape=shape, policy=policy, config=config)))
    results = []
    for result in simulate_each(cells, jobs=args.jobs):
        results.append(result)
        print(
            f"simulated {result.p.shape.kind} x {result.p.policy} in {result.elapsed:.1f} s",
            file=sys.stderr,
            flush=True,
        )
    matrix_report(p, results, print)
    if args.trace_writes:
        for result in results:
            print()
            trace_writes(result)
    if not args.check:
        return 0
    print()
    return 0 if print_checks(results, print) else 1


def _default_shape(kind: str) -> Shape:
    """A shape of ``kind`` with the matrix's default value (30 % failing, 5 s calls)."""
    if kind == RATIO:
        return Shape(RATIO, failure_ratio=0.3)
    if kind == SLOW:
        return Shape(SLOW, slow_latency=5.0)
    return Shape(kind)
