"""The command line's declaration: commands, options, help and the checks of option values."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import fleetbreaker
from fleetbreaker import demo
from fleetbreaker._cli import commands, operate, simulate, watch
from fleetbreaker._cli.status import status
from fleetbreaker._cli.times import DURATION_FORMS, parse_duration

__all__ = ["build"]

MIN_INTERVAL_S = 0.1  # a shorter poll would hammer the store (a DynamoDB bill, a Redis CPU)

_EPILOG = f"""\
store:
  --store URL, or the FLEETBREAKER_STORE environment variable (--store wins), for example
    sqlite:///var/lib/app/breakers.db     redis://cache:6379/0?prefix=shop:
    valkey://cache:6379/0                 dynamodb://breakers?region=us-east-1
    postgresql://ops@db:5432/app?table=fleetbreaker_circuits
  memory:// works but is always empty (its circuits live in one process). The commands that
  read (list, show, watch) and those that write never create an SQLite file or a PostgreSQL
  table: a path with no database, or a missing table, is exit 3.

times print in UTC as ISO 8601 with a relative time ("2026-11-29T13:05:00Z (3 min ago)");
--json prints each time as epoch seconds and, beside it, an ISO string (KEY and KEY_iso).
durations: {DURATION_FORMS} (seconds when no unit is given).

exit codes:
  0  every circuit shown is closed and not overridden, or the command was carried out
  1  a circuit shown is open, half-open or overridden; or another operator changed the
     override first (nothing was written)
  2  usage error: a bad command, option, duration or store URL
  3  the store is unreachable or failed (the message says how)
  4  the store holds no record for the circuit named (close matches are listed)
"""


class _Version(argparse.Action):
    """``--version``, reading the version only when asked (it costs an import otherwise)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,  # noqa: ARG002 - argparse's signature
        values: object,  # noqa: ARG002
        option_string: str | None = None,  # noqa: ARG002
    ) -> None:
        print(f"fleetbreaker {fleetbreaker.__version__}")
        parser.exit()


def build() -> argparse.ArgumentParser:
    """The ``fleetbreaker`` parser; a command sets ``command`` (its handler), ``command_name``."""
    parser = argparse.ArgumentParser(
        prog="fleetbreaker",
        description=(
            "Look at and operate the circuits of a fleetbreaker store, run the demo, or "
            "simulate a fleet through an outage. "
            "A circuit breaker whose state is shared by a whole fleet of processes."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action=_Version, help="print the version and exit")
    parser.add_argument("--store", metavar="URL", default=None, help=_STORE_HELP)
    # Also accepted after the command (`fleetbreaker list --store URL`); SUPPRESS keeps a
    # subcommand without it from overwriting the top-level value.
    store = argparse.ArgumentParser(add_help=False)
    store.add_argument("--store", metavar="URL", default=argparse.SUPPRESS, help=_STORE_HELP)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    def command(
        name: str, handler: Callable[[argparse.Namespace], int], summary: str, text: str
    ) -> argparse.ArgumentParser:
        found = sub.add_parser(
            name,
            parents=[store],
            help=summary,
            description=text,
            epilog="exit codes and store URLs: fleetbreaker --help",
        )
        found.set_defaults(command=handler, command_name=name)
        return found

    listing = command(
        "list",
        commands.list_circuits,
        "every circuit: state, override, why it opened, probe, next probe",
        "Every circuit in the store, one row each: its state and since when, an operator's "
        "override and until when, the failure figures and the rule that tripped it, the probe "
        "owner and its claim's expiry, and the next probe time. STATE is what callers get: "
        "under an override forced_open or forced_closed, the circuit's own state in "
        "parentheses. Exit 0 if every circuit is closed and not overridden (or there are "
        "none), 1 if any is not.",
    )
    _json_option(listing)

    show = command(
        "show",
        commands.show_circuit,
        "one circuit in full, with its history",
        "One circuit in full, with its recent history (oldest first). A name with no record "
        "is exit 4, with the names close to it: never a healthy-looking 'closed'. Exit 0 if "
        "it is closed and not overridden, 1 otherwise.",
    )
    show.add_argument("name", metavar="NAME", help="the circuit")
    _json_option(show)

    watching = command(
        "watch",
        watch.watch,
        "a live view that marks each change as it happens",
        "Poll the store every --interval and show each change as it is seen. On a terminal "
        "the table is redrawn, changed rows marked '*'; piped, one line per circuit to begin "
        "with ('<time> <name> is <state> ...'), then one line per change ('<time> <name> <old> "
        "-> <new> ...'). Ctrl-C (or SIGTERM) leaves with exit 0. A store error after the "
        "first poll is reported and the watch goes on; on the first poll it is exit 3.",
    )
    watching.add_argument(
        "names", nargs="*", metavar="NAME", help="circuits to watch (default: every circuit)"
    )
    watching.add_argument(
        "--interval",
        type=_interval,
        default=1.0,
        metavar="DURATION",
        help=f"time between polls (default 1 s, at least {MIN_INTERVAL_S:g} s)",
    )
    watching.add_argument(
        "--plain", action="store_true", help="one line per change even on a terminal"
    )
    watching.add_argument(
        "--json", action="store_true", help="one JSON object per line for each change"
    )

    for verb, kind in (("open", "refuse"), ("close", "admit")):
        forcing = command(
            verb,
            operate.force,
            f"force a circuit {verb} for a while, fleet-wide",
            f"Force the circuit {'open' if verb == 'open' else 'closed'} for --for: every "
            f"process of the fleet will {kind} every call (within its local_cache_max_age) "
            "until the override ends or is cleared. The reason and the actor go into the "
            "record and its history. A name with no record pre-empts that circuit, unless it is "
            "close to a name the store holds (a likely typo): then exit 4 unless --create.",
        )
        forcing.add_argument("name", metavar="NAME", help="the circuit")
        forcing.add_argument(
            "--for",
            dest="duration",
            type=duration,
            required=True,
            metavar="DURATION",
            help=f"how long: {DURATION_FORMS} (at most the record_ttl, 7 days by default)",
        )
        _reason_option(forcing, required=True)
        forcing.add_argument(
            "--create",
            action="store_true",
            help="set it even though its name is close to another circuit's (not a typo)",
        )
        _actor_option(forcing)
        _json_option(forcing)

    clearing = command(
        "clear",
        operate.clear,
        "end a circuit's override now",
        "End the circuit's override now: the fleet goes back to the circuit's own state. "
        "Nothing is written when no override is in force.",
    )
    clearing.add_argument("name", metavar="NAME", help="the circuit")
    _reason_option(clearing, required=False)
    _actor_option(clearing)
    _json_option(clearing)

    resetting = command(
        "reset",
        operate.reset,
        "close a circuit afresh: counts, backoff and override cleared",
        "Close the circuit afresh: its failure counts, its open-time backoff, the fleet's "
        "reports and any override are cleared.",
    )
    resetting.add_argument("name", metavar="NAME", help="the circuit")
    _reason_option(resetting, required=True)
    _actor_option(resetting)
    _json_option(resetting)

    _demo_command(sub)
    simulate.add_command(sub)

    # Deprecated: no `help=`, so it is left out of the command list.
    legacy = sub.add_parser("status", description="Deprecated: use `fleetbreaker list`.")
    legacy.add_argument("--sqlite", type=Path, required=True, metavar="PATH")
    legacy.add_argument("names", nargs="*", metavar="NAME")
    legacy.set_defaults(command=status, command_name="status")
    return parser


_STORE_HELP = "the store, as a URL (default: $FLEETBREAKER_STORE)"


def _json_option(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--json",
        action="store_true",
        help="print JSON: fixed keys, each time as epoch seconds and KEY_iso",
    )


def _reason_option(command: argparse.ArgumentParser, *, required: bool) -> None:
    command.add_argument(
        "--reason",
        required=required,
        default="",
        metavar="TEXT",
        help="why: an incident id, a ticket, a sentence (kept in the record and its history)"
        + ("" if required else "; optional"),
    )


def _actor_option(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--actor",
        default=None,
        metavar="WHO",
        help="who acts, as the record and its history show it (default: user@host)",
    )


def duration(text: str) -> float:
    """An argparse type: a duration (``90``, ``15m``, ...) in seconds, more than 0."""
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _interval(text: str) -> float:
    seconds = duration(text)
    if seconds < MIN_INTERVAL_S:
        raise argparse.ArgumentTypeError(f"must be at least {MIN_INTERVAL_S:g} s, got {text!r}")
    return seconds


def _demo_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo_command = sub.add_parser(
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
    demo_command.set_defaults(command=_demo, command_name="demo")


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
