"""The ``fleetbreaker`` command (also ``python -m fleetbreaker``): see ``fleetbreaker --help``.

``list``, ``show`` and ``watch`` look at the circuits of any store; ``open``, ``close``,
``clear`` and ``reset`` operate them; ``demo`` runs the README's simulated fleet; ``simulate``
sizes a fleet's circuit through an outage in simulated time. The exit
codes (``Exit``) are a contract: scripts and health checks rely on them.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence

from fleetbreaker._cli import parser as _parser
from fleetbreaker._cli.common import CommandError, Exit
from fleetbreaker.errors import ConfigError, StoreError

__all__ = ["Exit", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    parser = _parser.build()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error argparse has reported
        return exc.code if isinstance(exc.code, int) else Exit.USAGE
    command: Callable[[argparse.Namespace], int] = args.command
    prefix = f"fleetbreaker {args.command_name}"
    logs = _warnings_to_stderr(prefix) if args.command_name != "demo" else None
    try:
        return int(command(args))
    except CommandError as exc:
        _error(prefix, str(exc))
        return int(exc.code)
    except ConfigError as exc:  # a bad store URL, duration or reason: the message says which
        _error(prefix, str(exc))
        return int(Exit.USAGE)
    except StoreError as exc:
        _error(prefix, f"store error: {exc}")
        return int(Exit.STORE)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`... | head`): say nothing more, as a command killed by
        # SIGPIPE would, and let the interpreter's final flush of stdout go nowhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + 13
    finally:
        if logs is not None:
            logging.getLogger("fleetbreaker").removeHandler(logs)


def _warnings_to_stderr(prefix: str) -> logging.Handler:
    """Show the library's warnings (a record a store holds that it cannot read, say) on stderr,
    but not the log line of the operator's own write, which the command reports itself."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter(f"{prefix}: %(levelname)s: %(message)s"))
    handler.addFilter(lambda record: not hasattr(record, "actor"))
    logging.getLogger("fleetbreaker").addHandler(handler)
    return handler


def _error(prefix: str, message: str) -> None:
    print(f"{prefix}: {message}", file=sys.stderr)
