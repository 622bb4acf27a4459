"""PostgresStore: circuits shared through one PostgreSQL table, with psycopg 3 (sync and asyncio).

Install with ``pip install 'fleetbreaker[postgres]'``. Importing ``fleetbreaker`` never imports
this module (nor psycopg); import it from here, or use ``from_url("postgresql://...")``.

One row per circuit: ``name text PRIMARY KEY, epoch bigint, payload text, expires_at
timestamptz``. Every operation is one statement in autocommit, so no transaction or lock
outlives it: a read selects one row that is live on the server's clock (``clock_timestamp()``),
a write at an epoch is ``UPDATE ... WHERE epoch = $n``, a create is ``INSERT ... ON CONFLICT DO
UPDATE ... WHERE`` the row has expired or is the very foreign value the create read. PostgreSQL
makes each of them atomic against concurrent writers at READ COMMITTED: a conflicting writer
waits for the row and re-checks the condition on the committed version.

Every wait has a client-side deadline (``_pg_wire``): a stopped server costs a call ``timeout``
seconds, never a hang.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import threading
import time
from collections.abc import Sequence
from typing import Any, Final

from fleetbreaker._fork import reset_after_fork
from fleetbreaker.errors import ConfigError, StoreError
from fleetbreaker.stores.base import KeyValueStore, Stored, Write

try:
    import psycopg
    from psycopg import pq
    from psycopg.conninfo import conninfo_to_dict, make_conninfo
    from psycopg.pq.abc import PGconn
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "PostgresStore needs psycopg 3: pip install 'fleetbreaker[postgres]'"
    ) from exc

from fleetbreaker.stores._pg_wire import (
    Conversation,
    Result,
    ServerError,
    TimedOutError,
    WireError,
    adrive,
    connecting,
    drive,
    readable_now,
    running,
)

__all__ = ["DEFAULT_TABLE", "MAX_TIMEOUT_S", "PostgresStore"]

DEFAULT_TABLE: Final = "fleetbreaker_circuits"
MAX_TIMEOUT_S: Final = 60.0
_DEFAULT_TIMEOUT_S = 0.25
_MAX_IDLE = 8  # connections a store keeps open between calls; more are closed after use
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,62}\Z")
# What the columns must be (type OIDs): text, int8, text, timestamptz.
_COLUMN_TYPES = (25, 20, 25, 1184)
_UNDEFINED_TABLE = "42P01"
# A concurrent CREATE TABLE won: duplicate table, its row type, or a catalog row.
_ALREADY_MADE = {"42P07", "42710", "23505"}

# SQLSTATEs whose meaning a caller needs in the message.
_HINTS = {
    _UNDEFINED_TABLE: "the table does not exist: create it (docs/stores.md) or let the store "
    "create it (create_table=True)",
    "42501": "the role lacks a privilege on the table (docs/stores.md lists the grants)",
    "42703": "the table is not fleetbreaker's (a column is missing)",
    "57014": "the statement ran past statement_timeout",
    "25006": "the server is read-only (a standby?): point the DSN at the primary",
    "53300": "the server has too many connections",
    "57P01": "the server is shutting down",
    "57P03": "the server is starting up or shutting down",
    "55P03": "a lock could not be taken within lock_timeout",
}

_inherited: list[object] = []
"""Connections a forked child inherited: never used there and never closed either (closing
sends the server a Terminate message on the parent's socket, ending the parent's session),
and kept referenced so that no garbage collection closes them."""


def _quoted_table(table: object) -> str:
    if not isinstance(table, str):
        raise ConfigError(
            f"PostgresStore table must be text such as {DEFAULT_TABLE!r}, got {table!r}"
        )
    parts = table.split(".")
    if len(parts) > 2 or not all(_IDENTIFIER.match(part) for part in parts):
        raise ConfigError(
            "PostgresStore table must be an SQL identifier, optionally schema-qualified "
            "(letters, digits, _ and $, at most 63 each, not starting with a digit), such as "
            f"{DEFAULT_TABLE!r} or 'ops.breakers', got {table!r:.80}"
        )
    # Validated above, so quoting cannot be escaped; quoted, the name is case-sensitive.
    return ".".join(f'"{part}"' for part in parts)


def _check_timeout(timeout: object) -> float:
    if (
        not isinstance(timeout, int | float)
        or isinstance(timeout, bool)
        or not 0 < timeout <= MAX_TIMEOUT_S
    ):
        raise ConfigError(
            f"PostgresStore timeout must be seconds in (0, {MAX_TIMEOUT_S:g}], such as 0.25, "
            f"got {timeout!r}"
        )
    return float(timeout)


def _own_conninfo(dsn: object, timeout: float) -> tuple[str, dict[str, Any]]:
    """The conninfo the store connects with, and the DSN's parameters (for its label)."""
    if not isinstance(dsn, str) or not dsn.strip():
        raise ConfigError(
            "PostgresStore needs a DSN such as 'postgresql://app@db:5432/app' or "
            f"'host=db dbname=app', got {dsn!r:.80}"
        )
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.Error as exc:
        raise ConfigError(f"PostgresStore: cannot use DSN {_redact(dsn)!r}: {exc}") from None
    # The server bounds a statement too (lock waits, a slow plan), so that it stops working
    # for a caller who has given up; an option of the DSN's own comes later and wins.
    options = f"-c statement_timeout={max(1, round(timeout * 1000))}"
    if params.get("options"):
        options += f" {params['options']}"
    extra = {"options": options, "client_encoding": "UTF8"}
    if "application_name" not in params:
        extra["fallback_application_name"] = "fleetbreaker"
    return make_conninfo(dsn, **extra), params


def _where(params: dict[str, Any]) -> str:
    host = str(params.get("host") or params.get("hostaddr") or "localhost")
    port = str(params.get("port") or 5432)
    db = str(params.get("dbname") or params.get("user") or "")
    return f"{host}:{port}/{db}"


def _redact(dsn: str) -> str:
    """``dsn`` with any password hidden (URL or key=value form)."""
    dsn = re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1***", dsn)
    return re.sub(r"(://[^:/@?]*:)[^@/?]*@", r"\1***@", dsn)


class PostgresStore(KeyValueStore):
    """A store in one PostgreSQL table: shared by every process and host that reaches it.

    ``PostgresStore(dsn)`` opens its own connections (a few, kept between calls; the server's
    ``statement_timeout`` is set to ``timeout`` on them). ``PostgresStore(pool=...)`` borrows
    from the application's ``psycopg_pool.ConnectionPool`` and ``async_pool=`` from an
    ``AsyncConnectionPool``; the store never closes a pool. With a sync pool alone, ``aload``
    and ``acompare_and_set`` run in a worker thread; with an async pool alone, the sync
    methods raise ``StoreError``.

    Each operation (one statement) waits at most ``timeout`` seconds in all, connecting (or
    waiting for the pool), first-use schema check and statement included; then it fails with
    ``StoreError`` and the breaker fails open. Nothing connects at construction. With
    ``create_table`` the table is created at first use if it is missing (docs/stores.md has
    the DDL and the grants for a role that may not create it).
    """

    def __init__(
        self,
        dsn: str | None = None,
        *,
        pool: Any = None,
        async_pool: Any = None,
        table: str = DEFAULT_TABLE,
        timeout: float = _DEFAULT_TIMEOUT_S,
        create_table: bool = True,
    ) -> None:
        self._table = _quoted_table(table)
        self.table = table
        self._timeout = _check_timeout(timeout)
        if not isinstance(create_table, bool):
            raise ConfigError(
                f"PostgresStore create_table must be True or False, got {create_table!r}"
            )
        self._create_table = create_table
        self._pool, self._async_pool = _check_pools(pool, async_pool)
        if dsn is not None and (pool is not None or async_pool is not None):
            raise ConfigError(
                "PostgresStore: give a DSN or pool=/async_pool=, not both (a pool has its own "
                "connection settings)"
            )
        if dsn is None and pool is None and async_pool is None:
            raise ConfigError(
                "PostgresStore needs a DSN (PostgresStore('postgresql://...')) or pool= / "
                "async_pool= (a psycopg_pool pool of the application's)"
            )
        self._conninfo: str | None = None
        if dsn is not None:
            self._conninfo, params = _own_conninfo(dsn, self._timeout)
            where = _where(params)
        else:
            where = "pool"
        self._label = f"PostgresStore({where}, table {table!r})"
        self._sql = _Statements(self._table)
        self._idle: list[PGconn] = []
        self._lock = threading.Lock()
        self._prepared = False  # the table is known to be in place, with the right columns
        self._pid = os.getpid()
        self._forked_from_pool = False
        reset_after_fork(self)

    def _after_fork_in_child(self) -> None:
        # The parent's connections share their sockets with the parent: never use them here.
        _inherited.extend(self._idle)
        self._idle = []
        self._lock = threading.Lock()
        self._pid = os.getpid()
        if self._conninfo is None:
            self._forked_from_pool = True

    def _check_process(self) -> None:
        if self._pid != os.getpid():  # forked without the at-fork hook (e.g. os.fork in C)
            self._after_fork_in_child()
        if self._forked_from_pool:
            raise StoreError(
                f"{self._label}: this process was forked from the one that made the pool; its "
                "connections belong to the parent. Make the pool and the store in the child "
                "(a post-fork hook), or build the store from a DSN"
            )

    # --- connections ---------------------------------------------------------------------

    def _take_idle(self) -> PGconn | None:
        while True:
            with self._lock:
                if not self._idle:
                    return None
                conn = self._idle.pop()
            if _usable(conn):
                return conn
            conn.finish()

    def _give_back(self, conn: PGconn) -> None:
        if conn.transaction_status == pq.TransactionStatus.IDLE:
            with self._lock:
                if len(self._idle) < _MAX_IDLE and self._pid == os.getpid():
                    self._idle.append(conn)
                    return
        conn.finish()

    def _run(self, operation: str, name: str, sql: bytes, params: Sequence[bytes | None]) -> Result:
        self._check_process()
        deadline = time.monotonic() + self._timeout
        try:
            if self._pool is not None:
                return self._run_pooled(sql, params, deadline)
            if self._conninfo is None:
                raise StoreError(
                    f"{self._label} has only an async pool: use aload/acompare_and_set"
                )
            conn = self._take_idle()
            if conn is None:
                conn = drive(connecting(self._conninfo), deadline)
            try:
                result = drive(self._statement(conn, sql, params), deadline)
            except ServerError:
                self._give_back(conn)
                raise
            except BaseException:
                conn.finish()
                raise
            self._give_back(conn)
        except (ServerError, WireError, psycopg.Error, OSError) as exc:
            raise self._error(operation, name, exc) from exc
        return result

    def _run_pooled(self, sql: bytes, params: Sequence[bytes | None], deadline: float) -> Result:
        import psycopg_pool  # noqa: PLC0415 - only a pooled store needs it

        try:
            held = self._pool.getconn(timeout=max(deadline - time.monotonic(), 0.001))
        except psycopg_pool.PoolTimeout as exc:
            raise TimedOutError("no pool connection within the timeout") from exc
        try:
            result = drive(self._statement(_pool_pgconn(held), sql, params), deadline)
        except ServerError:
            self._pool.putconn(held)
            raise
        except BaseException:
            held.close()  # its state is unknown: the pool replaces a closed connection
            self._pool.putconn(held)
            raise
        self._pool.putconn(held)
        return result

    async def _arun(
        self, operation: str, name: str, sql: bytes, params: Sequence[bytes | None]
    ) -> Result:
        self._check_process()
        deadline = time.monotonic() + self._timeout
        try:
            if self._async_pool is not None:
                return await self._arun_pooled(sql, params, deadline)
            assert self._conninfo is not None
            conn = self._take_idle()
            if conn is None:
                conninfo = await _resolved(self._conninfo, deadline)
                conn = await adrive(connecting(conninfo), deadline)
            try:
                result = await adrive(self._statement(conn, sql, params), deadline)
            except ServerError:
                self._give_back(conn)
                raise
            except BaseException:
                conn.finish()
                raise
            self._give_back(conn)
        except (ServerError, WireError, psycopg.Error, OSError) as exc:
            raise self._error(operation, name, exc) from exc
        return result

    async def _arun_pooled(
        self, sql: bytes, params: Sequence[bytes | None], deadline: float
    ) -> Result:
        import psycopg_pool  # noqa: PLC0415 - only a pooled store needs it

        try:
            held = await self._async_pool.getconn(timeout=max(deadline - time.monotonic(), 0.001))
        except psycopg_pool.PoolTimeout as exc:
            raise TimedOutError("no pool connection within the timeout") from exc
        try:
            result = await adrive(self._statement(_pool_pgconn(held), sql, params), deadline)
        except ServerError:
            await self._async_pool.putconn(held)
            raise
        except BaseException:
            await held.close()
            await self._async_pool.putconn(held)
            raise
        await self._async_pool.putconn(held)
        return result

    def _uses_thread_for_async(self) -> bool:
        return self._conninfo is None and self._async_pool is None

    def _statement(
        self, conn: PGconn, sql: bytes, params: Sequence[bytes | None]
    ) -> Conversation[Result]:
        """The statement, after checking (and if need be creating) the table at first use."""
        if not self._prepared:
            yield from self._preparing(conn)
        try:
            return (yield from running(conn, sql, params))
        except ServerError as exc:
            if exc.sqlstate == _UNDEFINED_TABLE:
                self._prepared = False  # dropped under us: the next call checks again
            raise

    def _preparing(self, conn: PGconn) -> Conversation[None]:
        try:
            found = yield from running(conn, self._sql.probe, ())
        except ServerError as exc:
            if exc.sqlstate != _UNDEFINED_TABLE or not self._create_table:
                raise
            try:
                yield from running(conn, self._sql.create, ())
            except ServerError as lost:
                # Many processes at first use: one CREATE wins, the others may trip over its
                # catalog rows half-way (IF NOT EXISTS checks before it inserts them).
                if lost.sqlstate not in _ALREADY_MADE:
                    raise
            found = yield from running(conn, self._sql.probe, ())
        if found.types != _COLUMN_TYPES:
            raise StoreError(
                f"{self._label}: table {self.table!r} is not fleetbreaker's: its columns (name, "
                "epoch, payload, expires_at) must be text, bigint, text, timestamptz "
                "(docs/stores.md); give fleetbreaker a table of its own"
            )
        self._prepared = True

    # --- the adapter's primitives --------------------------------------------------------

    def _read(
        self,
        name: str,
        *,
        consistent: bool,  # noqa: ARG002 - one primary: reads are consistent
        operation: str = "load",
    ) -> Stored | None:
        return _stored(self._run(operation, name, self._sql.read, (_text(name),)))

    def _write_at(self, name: str, epoch: int, new: Write) -> bool:
        params = (*_new(name, new), str(epoch).encode())
        return self._run("compare_and_set", name, self._sql.write_at, params).affected == 1

    def _write_over(self, name: str, replacing: Stored | None, new: Write) -> bool:
        params = (*_new(name, new), _held(replacing))
        return self._run("compare_and_set", name, self._sql.create_over, params).affected == 1

    async def _aread(
        self, name: str, *, consistent: bool, operation: str = "load"
    ) -> Stored | None:
        if self._uses_thread_for_async():
            return await super()._aread(name, consistent=consistent, operation=operation)
        return _stored(await self._arun(operation, name, self._sql.read, (_text(name),)))

    async def _awrite_at(self, name: str, epoch: int, new: Write) -> bool:
        if self._uses_thread_for_async():
            return await super()._awrite_at(name, epoch, new)
        params = (*_new(name, new), str(epoch).encode())
        result = await self._arun("compare_and_set", name, self._sql.write_at, params)
        return result.affected == 1

    async def _awrite_over(self, name: str, replacing: Stored | None, new: Write) -> bool:
        if self._uses_thread_for_async():
            return await super()._awrite_over(name, replacing, new)
        params = (*_new(name, new), _held(replacing))
        result = await self._arun("compare_and_set", name, self._sql.create_over, params)
        return result.affected == 1

    def names(self) -> list[str]:
        """The circuits with a live row (an operator tool: one scan of the table)."""
        result = self._run("names", "*", self._sql.names, ())
        return [bytes(row[0] or b"").decode("utf-8") for row in result.rows]

    def _error(self, operation: str, name: str, exc: BaseException) -> StoreError:
        if isinstance(exc, StoreError):
            return exc
        if isinstance(exc, TimedOutError):
            hint = f"no answer within the timeout ({self._timeout:g} s)"
        elif isinstance(exc, ServerError):
            hint = _HINTS.get(exc.sqlstate, "the server refused the statement")
        elif isinstance(exc, WireError | OSError):
            hint = "cannot reach the server"
        else:
            hint = "unexpected error"
        return StoreError(
            f"{self._label}: {operation} of circuit {name!r} failed: {hint} "
            f"({type(exc).__name__}: {str(exc).strip()})"
        )

    def close(self) -> None:
        """Close the connections the store opened (never a pool's: the application owns it)."""
        with self._lock:
            conns, self._idle = self._idle, []
        for conn in conns:
            conn.finish()

    def __repr__(self) -> str:
        return f"{self._label[:-1]}, timeout={self._timeout:g})"


class _Statements:
    """The store's SQL for one table: parameters ``$1`` name, ``$2`` epoch, ``$3`` payload,
    ``$4`` seconds to live (from the write, on the server's clock), ``$5`` the condition."""

    __slots__ = ("create", "create_over", "names", "probe", "read", "write_at")

    def __init__(self, table: str) -> None:
        expiry = "clock_timestamp() + make_interval(secs => $4::float8)"
        self.read = (
            f"SELECT epoch, payload FROM {table} "  # noqa: S608 - a validated, quoted identifier
            "WHERE name = $1 AND expires_at > clock_timestamp()"
        ).encode()
        self.write_at = (
            f"UPDATE {table} SET epoch = $2::bigint, payload = $3, expires_at = {expiry} "  # noqa: S608
            "WHERE name = $1 AND epoch = $5::bigint AND expires_at > clock_timestamp()"
        ).encode()
        # $5 is the epoch of the foreign value the create read (NULL: none), never a valid
        # epoch: a value that reads as live is never replaced.
        self.create_over = (
            f"INSERT INTO {table} AS c (name, epoch, payload, expires_at) "  # noqa: S608
            f"VALUES ($1, $2::bigint, $3, {expiry}) "
            "ON CONFLICT (name) DO UPDATE SET epoch = excluded.epoch, "
            "payload = excluded.payload, expires_at = excluded.expires_at "
            "WHERE c.expires_at <= clock_timestamp() OR c.epoch = $5::bigint"
        ).encode()
        self.names = (
            f"SELECT name FROM {table} WHERE expires_at > clock_timestamp()"  # noqa: S608
        ).encode()
        self.probe = (
            f"SELECT name, epoch, payload, expires_at FROM {table} WHERE false"  # noqa: S608
        ).encode()
        self.create = (
            f"CREATE TABLE IF NOT EXISTS {table} (name text PRIMARY KEY, epoch bigint NOT NULL, "
            "payload text NOT NULL, expires_at timestamptz NOT NULL)"
        ).encode()


def _text(value: str) -> bytes:
    return value.encode("utf-8")


def _new(name: str, new: Write) -> tuple[bytes, bytes, bytes, bytes]:
    return _text(name), str(new.epoch).encode(), _text(new.payload), repr(float(new.ttl)).encode()


def _held(replacing: Stored | None) -> bytes | None:
    if replacing is None or not isinstance(replacing.held, int):
        return None
    return str(replacing.held).encode()


def _stored(result: Result) -> Stored | None:
    if not result.rows:
        return None
    epoch_text, payload = result.rows[0]
    # bigint NOT NULL: always an integer's digits; out of range reads as foreign in the base.
    epoch = int(epoch_text) if epoch_text is not None else None
    return Stored(epoch, payload, held=epoch)


def _usable(conn: PGconn) -> bool:
    """Whether an idle connection may be used. A server that restarted, or ended the session,
    has made its socket readable (a goodbye message, then end of file, perhaps not both yet);
    the server sends an idle session next to nothing else, so any input means: discard it."""
    try:
        return conn.status == pq.ConnStatus.OK and not readable_now(conn.socket)
    except (psycopg.Error, OSError, ValueError):
        return False


def _pool_pgconn(held: Any) -> PGconn:
    pgconn: PGconn = held.pgconn
    pgconn.nonblocking = 1
    return pgconn


def _check_pools(pool: Any, async_pool: Any) -> tuple[Any, Any]:
    if pool is None and async_pool is None:
        return None, None
    try:
        import psycopg_pool  # noqa: PLC0415 - only a pooled store needs it
    except ImportError:  # pragma: no cover - depends on the installed extras
        raise ConfigError(
            "PostgresStore pool= needs psycopg_pool: pip install 'fleetbreaker[postgres]'"
        ) from None
    if pool is not None and not isinstance(pool, psycopg_pool.ConnectionPool):
        raise ConfigError(
            "PostgresStore pool= takes a psycopg_pool.ConnectionPool, got "
            f"{type(pool).__name__}; pass an AsyncConnectionPool as async_pool="
        )
    if async_pool is not None and not isinstance(async_pool, psycopg_pool.AsyncConnectionPool):
        raise ConfigError(
            "PostgresStore async_pool= takes a psycopg_pool.AsyncConnectionPool, got "
            f"{type(async_pool).__name__}"
        )
    return pool, async_pool


async def _resolved(conninfo: str, deadline: float) -> str:
    """``conninfo`` with its host names looked up without blocking the loop (libpq would look
    them up itself, blocking), as ``hostaddr``: one host entry per address found, in order,
    so libpq tries each as it would have. The names stay for TLS and error messages."""
    params = conninfo_to_dict(conninfo)
    hosts = str(params.get("host") or "").split(",")
    if hosts == [""] or params.get("hostaddr"):
        return conninfo
    ports = str(params.get("port") or "").split(",")
    per_host = len(ports) == len(hosts) > 1
    loop = asyncio.get_running_loop()
    host_list: list[str] = []
    addresses: list[str] = []
    port_list: list[str] = []
    for i, host in enumerate(hosts):
        found = [""]  # a socket directory or an address: libpq needs no lookup
        if host and not host.startswith(("/", "@")) and not _is_ip(host):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimedOutError(f"no answer within the timeout (looking up {host!r})")
            try:
                infos = await asyncio.wait_for(
                    loop.getaddrinfo(host, None, type=socket.SOCK_STREAM), remaining
                )
            except asyncio.TimeoutError as exc:
                raise TimedOutError(f"no answer within the timeout (looking up {host!r})") from exc
            found = list(dict.fromkeys(str(info[4][0]) for info in infos))
        host_list += [host] * len(found)
        addresses += found
        if per_host:
            port_list += [ports[i]] * len(found)
    if not any(addresses):
        return conninfo
    extra = {"host": ",".join(host_list), "hostaddr": ",".join(addresses)}
    if per_host:
        extra["port"] = ",".join(port_list)
    return make_conninfo(conninfo, **extra)


def _is_ip(host: str) -> bool:
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except OSError:
            continue
        return True
    return False
