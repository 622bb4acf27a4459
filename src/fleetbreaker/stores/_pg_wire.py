"""Conversations with PostgreSQL in which the client keeps every deadline itself.

psycopg's connections wait for the server without a deadline of their own, and when a waiting
coroutine is cancelled they send a cancel request and wait again. A server that is stopped
(SIGSTOP, a frozen VM, a hung host whose kernel still accepts connections) answers neither, so
a caller would hang. ``statement_timeout`` cannot help either: the server enforces it.

So this module speaks through libpq's non-blocking API (``psycopg.pq``): each conversation is
a generator that yields what it waits for, ``(socket, READ | WRITE)``, and one shell per I/O
style waits for that with a deadline: :func:`drive` with ``poll``, :func:`adrive` with the
event loop's reader callbacks, so the loop never blocks. Abandoning a conversation at its
deadline closes its generator; the caller then discards the connection, whose state is
unknown. The one wait not bounded here is a host name lookup in a synchronous connect, which
libpq makes itself (the system resolver's own timeouts bound it).
"""

from __future__ import annotations

import asyncio
import select
import time
from collections.abc import Generator, Sequence
from typing import TypeVar

import psycopg
from psycopg import pq
from psycopg.pq.abc import PGconn, PGresult

__all__ = [
    "READ",
    "WRITE",
    "Conversation",
    "Result",
    "ServerError",
    "TimedOutError",
    "WireError",
    "adrive",
    "connecting",
    "drive",
    "readable_now",
    "running",
]

READ = 1
WRITE = 2
T = TypeVar("T")
Conversation = Generator[tuple[int, int], None, T]
"""Yields ``(socket, READ | WRITE)`` to wait for; returns its outcome."""


class WireError(Exception):
    """The connection failed (refused, closed, reset): it must be discarded."""


class TimedOutError(WireError):
    """No answer before the deadline: the connection's state is unknown, it must be discarded."""


class ServerError(Exception):
    """The server refused the statement; the connection is still usable."""

    def __init__(self, sqlstate: str, message: str) -> None:
        super().__init__(f"{message} (SQLSTATE {sqlstate})")
        self.sqlstate = sqlstate


class Result:
    """The rows (text values) and the affected-row count of one statement."""

    __slots__ = ("affected", "rows", "types")

    def __init__(
        self, rows: list[tuple[bytes | None, ...]], affected: int, types: tuple[int, ...]
    ) -> None:
        self.rows = rows
        self.affected = affected
        self.types = types  # the columns' type OIDs


def _message(conn: PGconn, fallback: str) -> str:
    text = conn.get_error_message().strip()
    return text or fallback


def connecting(conninfo: str) -> Conversation[PGconn]:
    """Open a connection; the caller owns it (``finish()``) once returned."""
    conn = pq.PGconn.connect_start(conninfo.encode())
    try:
        if conn.status == pq.ConnStatus.BAD:
            raise WireError(_message(conn, "cannot connect"))
        while True:
            status = conn.connect_poll()
            if status == pq.PollingStatus.OK:
                break
            if status == pq.PollingStatus.FAILED:
                raise WireError(_message(conn, "cannot connect"))
            # The socket may change between polls: libpq tries the next address.
            yield conn.socket, READ if status == pq.PollingStatus.READING else WRITE
        conn.nonblocking = 1
    except BaseException:
        conn.finish()
        raise
    return conn


def running(conn: PGconn, sql: bytes, params: Sequence[bytes | None]) -> Conversation[Result]:
    """Run one statement (parameters and results in text format) and read its result."""
    try:
        fd = conn.socket
        conn.send_query_params(sql, params)
        # In non-blocking mode a large query may not be sent at once: wait until it is, reading
        # meanwhile (libpq's rule: the server may be waiting for us to read).
        while conn.flush():
            yield fd, READ | WRITE
            conn.consume_input()
        result: PGresult | None = None
        while True:
            conn.consume_input()
            while conn.is_busy():
                yield fd, READ
                conn.consume_input()
            got = conn.get_result()
            if got is None:
                break
            if result is None or got.status == pq.ExecStatus.FATAL_ERROR:
                result = got
    except psycopg.Error as exc:
        raise WireError(str(exc).strip() or type(exc).__name__) from exc
    if result is None:  # pragma: no cover - libpq always answers a query with a result
        raise WireError("no result")
    if result.status == pq.ExecStatus.FATAL_ERROR:
        sqlstate = (result.error_field(pq.DiagnosticField.SQLSTATE) or b"?????").decode()
        text = (result.error_message or b"").decode("utf-8", "replace").strip()
        raise ServerError(sqlstate, text)
    if result.status not in (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK):
        raise WireError(f"unexpected result {pq.ExecStatus(result.status).name}")
    width = result.nfields
    rows = [
        tuple(result.get_value(row, col) for col in range(width)) for row in range(result.ntuples)
    ]
    types = tuple(result.ftype(col) for col in range(width))
    return Result(rows, int(result.command_tuples or 0), types)


def drive(conversation: Conversation[T], deadline: float) -> T:
    """Run ``conversation`` in this thread, waiting at most until ``deadline`` (monotonic)."""
    try:
        wait = next(conversation)
        while True:
            _ready(*wait, deadline)
            wait = conversation.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    finally:
        conversation.close()


def _ready(fd: int, want: int, deadline: float) -> None:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimedOutError("no answer within the timeout")
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(
            fd, (select.POLLIN if want & READ else 0) | (select.POLLOUT if want & WRITE else 0)
        )
        # Rounded up: a wait never ends before the deadline and then looks like a timeout.
        if not poller.poll(max(1, int(remaining * 1000) + 1)):
            raise TimedOutError("no answer within the timeout")
        return
    readable, writable, _ = select.select(  # pragma: no cover - Windows
        [fd] if want & READ else [], [fd] if want & WRITE else [], [], remaining
    )
    if not (readable or writable):  # pragma: no cover - Windows
        raise TimedOutError("no answer within the timeout")


def readable_now(fd: int) -> bool:
    """Whether ``fd`` has input (or end of file) waiting, without waiting."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(0))
    readable, _, _ = select.select([fd], [], [], 0)  # pragma: no cover - Windows
    return bool(readable)  # pragma: no cover - Windows


async def adrive(conversation: Conversation[T], deadline: float) -> T:
    """Run ``conversation`` on the running event loop, never blocking it, until ``deadline``."""
    loop = asyncio.get_running_loop()
    try:
        wait = next(conversation)
        while True:
            await _aready(loop, *wait, deadline)
            wait = conversation.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    finally:
        conversation.close()


async def _aready(loop: asyncio.AbstractEventLoop, fd: int, want: int, deadline: float) -> None:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimedOutError("no answer within the timeout")
    ready: asyncio.Future[bool] = loop.create_future()

    def settle(answered: bool) -> None:
        if not ready.done():
            ready.set_result(answered)

    if want & READ:
        loop.add_reader(fd, settle, True)  # noqa: FBT003
    if want & WRITE:
        loop.add_writer(fd, settle, True)  # noqa: FBT003
    timer = loop.call_later(remaining, settle, False)  # noqa: FBT003
    try:
        if not await ready:
            raise TimedOutError("no answer within the timeout")
    finally:
        timer.cancel()
        if want & READ:
            loop.remove_reader(fd)
        if want & WRITE:
            loop.remove_writer(fd)
