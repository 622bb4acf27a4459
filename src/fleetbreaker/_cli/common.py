"""What every store command shares: exit codes, failures, opening the store, reading, printing."""

from __future__ import annotations

import difflib
import enum
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from fleetbreaker import operations
from fleetbreaker._info import CircuitInfo
from fleetbreaker.errors import ConfigError, StoreError
from fleetbreaker.stores import Store, from_url
from fleetbreaker.stores._urls import ENV_VARIABLE, _redact

__all__ = ["CommandError", "Exit", "emit", "emit_json", "no_record", "open_store", "read_listed"]


class Exit(enum.IntEnum):
    """The exit codes, which a script or a health check may rely on."""

    OK = 0
    """Every circuit shown is closed and not overridden, or the command was carried out."""
    NOT_CLOSED = 1
    """A circuit shown is open, half-open or overridden; or another operator's override won."""
    USAGE = 2
    """The command line (or the store URL) is wrong."""
    STORE = 3
    """The store could not be reached, or answered with an error."""
    NO_CIRCUIT = 4
    """The store holds no record for the circuit named."""


class CommandError(Exception):
    """A command ends with ``code``; its message goes to stderr."""

    def __init__(self, code: Exit, message: str) -> None:
        super().__init__(message)
        self.code = code


@contextmanager
def open_store(url: str | None, *, must_exist: bool = True) -> Iterator[tuple[Store, str]]:
    """The store ``url`` (``--store``) or ``FLEETBREAKER_STORE`` names, and a label for it
    (the URL with any password hidden); closed on leaving.

    With ``must_exist`` an SQLite URL whose file does not exist is a ``CommandError`` (exit 3):
    ``SQLiteStore`` would create the file, and a command that only looks must not, nor should
    a write land in a file no process of the fleet reads. A PostgreSQL table likewise: a
    missing one is a store error (exit 3) unless the URL says ``create_table=true`` itself.
    """
    if not url:
        url = os.environ.get(ENV_VARIABLE) or None
    if url is None:
        raise CommandError(
            Exit.USAGE,
            f"no store given: pass --store URL or set {ENV_VARIABLE} (such as "
            "sqlite:///var/lib/app/breakers.db, redis://cache:6379/0 or "
            "dynamodb://breakers?region=us-east-1)",
        )
    label = _redact(url)
    if must_exist:
        path = _sqlite_path(url)
        if path is not None and not path.is_file():
            raise CommandError(
                Exit.STORE,
                f"no SQLite database at {str(path)!r} ({label}); check the path "
                "(sqlite:///... is absolute, sqlite://... relative to the current directory)",
            )
    options: dict[str, object] = {}
    if must_exist and _wants_table_made_for_it(url):
        options["create_table"] = False
    store = from_url(url, **options)
    try:
        yield store, label
    finally:
        try:
            store.close()
        except StoreError:
            pass  # the command's answer stands; closing a client is not worth an error


def _wants_table_made_for_it(url: str) -> bool:
    """Whether ``url`` is a PostgreSQL URL that leaves ``create_table`` to its default."""
    scheme, separator, _ = url.partition("://")
    if not separator or scheme.lower() not in {"postgresql", "postgres"}:
        return False
    try:
        query = urlsplit(url).query
    except ValueError:
        return False  # from_url says what is wrong with it
    return "create_table" not in {key for key, _ in parse_qsl(query, keep_blank_values=True)}


def _sqlite_path(url: str) -> Path | None:
    """The file an ``sqlite://`` URL names (``from_url``'s reading of it); ``None`` for any
    other URL, or one ``from_url`` will refuse anyway."""
    scheme, separator, _ = url.partition("://")
    if not separator or scheme.lower() != "sqlite":
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    path = unquote(parts.netloc + parts.path)
    return Path(path) if path else None


def read_listed(store: Store, name: str, *, warned: set[str]) -> CircuitInfo | None:
    """``operations.read`` for a name the store's ``names()`` listed. A key no fleetbreaker
    writer could have written (a name ``read`` refuses) is skipped, with a warning on stderr
    once per name (``warned`` keeps them): it must not make the whole listing fail."""
    try:
        return operations.read(store, name)
    except ConfigError as exc:
        if name not in warned:
            warned.add(name)
            print(f"fleetbreaker: skipped {name!r:.80}: {exc}", file=sys.stderr, flush=True)
        return None


def no_record(store: Store, label: str, name: str) -> CommandError:
    """Exit 4 for a name with no record, naming the circuits with names close to it."""
    message = f"no record for circuit {name!r} in {label}"
    try:
        known = store.names()
    except StoreError:  # the answer stands without the suggestions
        known = []
    matches = difflib.get_close_matches(name, known, n=5, cutoff=0.6)
    if matches:
        message += f"; close matches: {', '.join(repr(match) for match in matches)}"
    elif known:
        message += f" (it holds {len(known)}: `fleetbreaker list` shows them)"
    else:
        message += " (it holds no circuits)"
    return CommandError(Exit.NO_CIRCUIT, message)


def emit(text: str = "") -> None:
    """Print ``text`` now (flushed: a pipe reader sees each line at once). A reader that has
    gone away (``| head``) is not an error: the rest of the output is dropped."""
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        _drop_stdout()


def emit_json(value: Any, *, indent: int | None = 2) -> None:
    """Print ``value`` as strict JSON (no NaN or infinity)."""
    emit(json.dumps(value, indent=indent, allow_nan=False))


def _drop_stdout() -> None:
    # Python would otherwise complain again when it flushes stdout at exit.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def note(text: str) -> None:
    """Tell the operator something beside the command's output (on stderr)."""
    print(f"fleetbreaker: {text}", file=sys.stderr, flush=True)
