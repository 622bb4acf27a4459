"""SQLiteStore: circuits shared by every process and thread on one host, stdlib only."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import weakref
from pathlib import Path

from fleetbreaker._fork import reset_after_fork
from fleetbreaker.errors import StoreError
from fleetbreaker.stores.base import KeyValueStore, Stored, Write, store_error

__all__ = ["SQLiteStore"]

MAX_TIMEOUT_S = 60.0  # the longest lock wait a store may be given
_SCHEMA_VERSION = "1"
_TABLE = "fleetbreaker_circuits"

# Each write is one statement in autocommit mode, so it takes the write lock for itself: no
# read-then-write transaction that SQLite would refuse to upgrade ("database is locked"). The
# canonical epoch is an INTEGER; any other storage class reads as someone else's value.
_SELECT = f"SELECT epoch, payload, expires_at FROM {_TABLE} WHERE name = ?"  # noqa: S608
_UPDATE_AT_EPOCH = f"""
UPDATE {_TABLE} SET epoch = :epoch, payload = :payload, expires_at = :expires_at
WHERE name = :name AND typeof(epoch) = 'integer' AND epoch = :expected AND expires_at > :now
"""  # noqa: S608 - constant table name, values are bound
# A non-numeric expiry never compares <= :now (text sorts after numbers): such a row is live,
# as _read reads it. The held epoch is matched with its storage class.
_CREATE_OVER = f"""
INSERT INTO {_TABLE} (name, epoch, payload, expires_at)
VALUES (:name, :epoch, :payload, :expires_at)
ON CONFLICT (name) DO UPDATE SET
    epoch = excluded.epoch, payload = excluded.payload, expires_at = excluded.expires_at
WHERE {_TABLE}.expires_at <= :now
    OR (:replacing AND typeof({_TABLE}.epoch) = typeof(:held) AND {_TABLE}.epoch IS :held)
"""  # noqa: S608


# Connections a forked child inherited: never closed there (closing could disturb the parent's
# file locks and WAL), never garbage collected either (that would close them).
_inherited: list[sqlite3.Connection] = []


class _Connections:
    """This process's connections of one store, one per thread, closed when their thread ends
    or the store goes away (an unclosed connection would be a ResourceWarning on 3.13+).

    Never closed at interpreter exit: daemon threads (a threading HTTP server, a worker pool)
    may still be inside a call on them then, and closing a connection under a running call
    crashes the process (SIGSEGV, and the application's own atexit handlers never run). The
    OS reclaims them when the process ends.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_thread: dict[int, sqlite3.Connection] = {}

    def add(self, conn: sqlite3.Connection) -> None:
        key = id(conn)
        with self.lock:
            self.by_thread[key] = conn
        _not_at_exit(weakref.finalize(threading.current_thread(), self.close, key))

    def close(self, key: int) -> None:
        with self.lock:
            conn = self.by_thread.pop(key, None)
        if conn is not None:
            conn.close()

    def close_all(self) -> None:
        with self.lock:
            conns, self.by_thread = list(self.by_thread.values()), {}
        for conn in conns:
            conn.close()

    def abandon(self) -> None:
        with self.lock:
            _inherited.extend(self.by_thread.values())
            self.by_thread = {}


def _identity(path: Path) -> tuple[int, int] | None:
    """Which file is at ``path`` now (``None``: none, or it cannot be told)."""
    try:
        found = path.stat()
    except OSError:
        return None
    return found.st_dev, found.st_ino


def _not_at_exit(finalizer: weakref.finalize) -> weakref.finalize:  # type: ignore[type-arg]
    finalizer.atexit = False
    return finalizer


class SQLiteStore(KeyValueStore):
    """A store in one SQLite file, safe across the processes and threads of one host.

    ``timeout`` bounds how long a call waits for another writer's lock before it fails with
    ``StoreError`` (the breaker then fails open), so a wedged database never hangs a caller.
    The file runs in WAL mode with ``synchronous=NORMAL``: a circuit's state need not survive
    a power loss, and a commit never waits for an fsync.
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 1.0) -> None:
        text = os.fspath(path)
        if text == ":memory:" or text.startswith("file::memory:") or not text:
            raise StoreError(
                f"SQLiteStore needs a file path shared by the processes, got {text!r}; "
                "for one process use MemoryStore"
            )
        if not (isinstance(timeout, int | float) and 0 < timeout <= MAX_TIMEOUT_S):
            raise StoreError(
                f"SQLiteStore timeout must be seconds in (0, {MAX_TIMEOUT_S:g}], got {timeout!r}"
            )
        self.path = Path(text)
        self._label = "SQLiteStore"
        self._timeout = float(timeout)
        if not self.path.parent.is_dir():
            raise StoreError(f"SQLiteStore: directory {str(self.path.parent)!r} does not exist")
        if self.path.is_dir():
            raise StoreError(f"SQLiteStore: {text!r} is a directory, not a database file")
        self._local = threading.local()
        # The file (st_dev, st_ino) whose schema is known to be in place.
        self._prepared: tuple[int, int] | None = None
        self._conns = _Connections()
        self._finalizer = _not_at_exit(weakref.finalize(self, self._conns.close_all))
        self._pid = os.getpid()
        reset_after_fork(self)
        try:
            self._conn()
        except sqlite3.Error as exc:
            raise StoreError(
                f"SQLiteStore: cannot use {text!r} as a fleetbreaker database: {exc}"
            ) from exc

    def _after_fork_in_child(self) -> None:
        # The parent's connections must never be touched by a child: abandon them unclosed.
        self._conns.abandon()
        self._local = threading.local()
        self._pid = os.getpid()

    def _connect(self) -> sqlite3.Connection:
        # One connection per thread; check_same_thread=False only so that a connection can
        # be closed from another thread once its own thread has ended.
        conn = sqlite3.connect(
            self.path, timeout=self._timeout, isolation_level=None, check_same_thread=False
        )
        self._conns.add(conn)
        conn.execute(f"PRAGMA busy_timeout = {int(self._timeout * 1000)}")
        conn.execute("PRAGMA synchronous = NORMAL")
        return conn

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection to the file now at ``path``.

        A file deleted or replaced under a running fleet (a cleanup, a restore) would split it:
        new processes on the new file, old ones on the unlinked one, and their new threads on
        an empty new file without tables. So each call (at most one per cache period and
        circuit) stats the path, and a thread whose connection is to another file reconnects,
        creating the schema if the file lacks it; other threads notice on their own next call.
        """
        if self._pid != os.getpid():  # forked without the at-fork hook (e.g. os.fork in C)
            self._after_fork_in_child()
        current = _identity(self.path)
        held: tuple[sqlite3.Connection, tuple[int, int] | None] | None = getattr(
            self._local, "held", None
        )
        if held is not None:
            if current is not None and held[1] == current:
                return held[0]
            self._local.held = None
            self._conns.close(id(held[0]))
        conn = self._connect()
        try:
            # Known before connecting if the file existed: if it is replaced in between, the
            # next call sees a mismatch and reconnects, never the other way round.
            identity = current or _identity(self.path)
            if identity is None or identity != self._prepared:
                self._prepare(conn)
                self._prepared = identity
        except BaseException:
            self._conns.close(id(conn))
            raise
        self._local.held = (conn, identity)
        return conn

    def _prepare(self, conn: sqlite3.Connection) -> None:
        tables = {
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
        if tables and "fleetbreaker_meta" not in tables:
            raise StoreError(
                f"SQLiteStore: {str(self.path)!r} is an SQLite database of something else "
                f"(tables: {', '.join(sorted(tables)[:5])}); give fleetbreaker a file of its own"
            )
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchall()[0][0]
        if str(mode).lower() != "wal":
            raise StoreError(f"SQLiteStore: {str(self.path)!r} cannot use WAL mode (got {mode!r})")
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS fleetbreaker_meta (key TEXT PRIMARY KEY, value TEXT)"
            )
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {_TABLE} (name TEXT PRIMARY KEY, "
                "epoch INTEGER NOT NULL, payload TEXT NOT NULL, expires_at REAL NOT NULL)"
            )
            conn.execute(
                "INSERT OR IGNORE INTO fleetbreaker_meta (key, value) VALUES ('schema', ?)",
                (_SCHEMA_VERSION,),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        schema = conn.execute("SELECT value FROM fleetbreaker_meta WHERE key = 'schema'").fetchall()
        if schema != [(_SCHEMA_VERSION,)]:
            raise StoreError(
                f"SQLiteStore: {str(self.path)!r} has fleetbreaker schema {schema!r}, "
                f"this version reads {_SCHEMA_VERSION!r}"
            )

    def _read(
        self,
        name: str,
        *,
        consistent: bool,  # noqa: ARG002 - SQLite reads are always consistent
        operation: str = "load",
    ) -> Stored | None:
        try:
            # fetchall: a half-read cursor would hold a read transaction open.
            rows = self._conn().execute(_SELECT, (name,)).fetchall()
        except sqlite3.Error as exc:
            raise store_error("SQLiteStore", operation, name, exc) from exc
        if not rows:
            return None
        epoch, payload, expires_at = rows[0]
        if isinstance(expires_at, int | float) and expires_at <= time.time():
            return None
        return Stored(epoch, payload, held=epoch)

    def _write_at(self, name: str, epoch: int, new: Write) -> bool:
        return self._execute(name, _UPDATE_AT_EPOCH, new, expected=epoch)

    def _write_over(self, name: str, replacing: Stored | None, new: Write) -> bool:
        held = None if replacing is None else replacing.held
        return self._execute(name, _CREATE_OVER, new, replacing=replacing is not None, held=held)

    def _execute(self, name: str, sql: str, new: Write, **condition: object) -> bool:
        now = time.time()
        values = {"name": name, "epoch": new.epoch, "payload": new.payload, "now": now}
        try:
            cursor = self._conn().execute(sql, {**values, "expires_at": now + new.ttl, **condition})
        except sqlite3.Error as exc:
            raise store_error("SQLiteStore", "compare_and_set", name, exc) from exc
        return cursor.rowcount == 1

    def names(self) -> list[str]:
        try:
            rows = self._conn().execute(f"SELECT name FROM {_TABLE}").fetchall()  # noqa: S608
        except sqlite3.Error as exc:
            raise store_error("SQLiteStore", "names", "*", exc) from exc
        return [row[0] for row in rows]

    def close(self) -> None:
        """Close the connections of every thread (the store must not be in use elsewhere)."""
        self._conns.close_all()
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"
