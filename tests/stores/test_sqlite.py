"""SQLiteStore specifics: construction errors, file settings, locks, connections."""

from __future__ import annotations

import concurrent.futures
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from fleetbreaker import CircuitBreaker, CircuitState, Config, SQLiteStore, StoreError
from fleetbreaker._protocol import Record
from fleetbreaker.stores.base import encode_payload
from fleetbreaker.testing import FakeClock

RECORD = Record(CircuitState.OPEN, 1, opened_at=1.0, retry_at=2.0, expires_at=time.time() + 3600)


def test_missing_directory(tmp_path: Path) -> None:
    """A path in a directory that does not exist is refused at construction."""
    with pytest.raises(StoreError, match=r"directory '.*nowhere' does not exist"):
        SQLiteStore(tmp_path / "nowhere" / "breakers.db")


def test_directory_instead_of_file(tmp_path: Path) -> None:
    """A directory is not a database file."""
    with pytest.raises(StoreError, match="is a directory"):
        SQLiteStore(tmp_path)


@pytest.mark.parametrize("path", [":memory:", "", "file::memory:?cache=shared"])
def test_in_memory_databases_are_refused(path: str) -> None:
    """An in-memory database cannot be shared by processes: MemoryStore is the answer."""
    with pytest.raises(StoreError, match="use MemoryStore"):
        SQLiteStore(path)


def test_file_that_is_not_a_database(tmp_path: Path) -> None:
    """A text file is reported as not usable, naming the file."""
    path = tmp_path / "notes.db"
    path.write_text("these are my notes, not a database\n" * 100)
    with pytest.raises(StoreError, match=r"cannot use .*notes\.db.* as a fleetbreaker database"):
        SQLiteStore(path)


def test_database_of_another_application(tmp_path: Path) -> None:
    """An SQLite file with someone else's tables is not taken over."""
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY)")
    conn.close()
    with pytest.raises(StoreError, match=r"database of something else \(tables: users\)"):
        SQLiteStore(path)


def test_unwritable_location() -> None:
    """A location the process cannot create a file in fails at construction."""
    with pytest.raises(StoreError, match="cannot use"):
        SQLiteStore("/proc/fleetbreaker.db")


@pytest.mark.parametrize("timeout", [0, -1, 61, "1"])
def test_bad_timeout(tmp_path: Path, timeout: object) -> None:
    """The lock timeout must be a bounded positive number of seconds."""
    with pytest.raises(StoreError, match="timeout must be seconds in"):
        SQLiteStore(tmp_path / "b.db", timeout=timeout)  # type: ignore[arg-type]


def test_reopening_an_existing_store(tmp_path: Path) -> None:
    """A second store on the same file sees what the first wrote."""
    path = tmp_path / "b.db"
    SQLiteStore(path).compare_and_set("c", None, RECORD)
    assert SQLiteStore(path).load("c") == RECORD


def test_wal_and_relaxed_sync(tmp_path: Path) -> None:
    """The file runs in WAL mode with synchronous=NORMAL (no fsync stall per commit)."""
    store = SQLiteStore(tmp_path / "b.db")
    conn = store._conn()
    assert conn.execute("PRAGMA journal_mode").fetchall() == [("wal",)]
    assert conn.execute("PRAGMA synchronous").fetchall() == [(1,)]


def test_one_connection_per_thread(tmp_path: Path) -> None:
    """Each thread gets its own connection (sqlite3 connections are not shared)."""
    store = SQLiteStore(tmp_path / "b.db")
    conns: list[sqlite3.Connection] = []
    worker = threading.Thread(target=lambda: conns.append(store._conn()))
    worker.start()
    worker.join()
    assert conns[0] is not store._conn()


def test_wedged_database_is_a_bounded_store_error(tmp_path: Path) -> None:
    """A writer holding the lock turns our write into a StoreError after the timeout."""
    path = tmp_path / "b.db"
    store = SQLiteStore(path, timeout=0.2)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        started = time.monotonic()
        with pytest.raises(
            StoreError, match="compare_and_set of circuit 'c' failed: database is locked"
        ):
            store.compare_and_set("c", None, RECORD)
        assert time.monotonic() - started < 5  # bounded: not a hang
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()


def test_breaker_on_a_wedged_database_fails_open(tmp_path: Path) -> None:
    """A locked database never reaches the caller; a trip still protects locally."""
    path = tmp_path / "b.db"
    store = SQLiteStore(path, timeout=0.1)
    breaker = CircuitBreaker(
        "c", store=store, config=Config(failure_threshold=2), clock=FakeClock()
    )
    assert breaker.call(lambda: "ok") == "ok"
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        for _ in range(2):
            with pytest.raises(ZeroDivisionError):
                breaker.call(lambda: 1 / 0)
        assert breaker.state is CircuitState.OPEN
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert store.load("c") is None  # the trip could not be persisted


def test_close_then_reuse_opens_a_new_connection(tmp_path: Path) -> None:
    """close() drops this thread's connection; later use reconnects."""
    store = SQLiteStore(tmp_path / "b.db")
    store.compare_and_set("c", None, RECORD)
    store.close()
    assert store.load("c") == RECORD


@pytest.mark.parametrize(
    "epoch",
    [b"5", "five", 5.5, 2**63 - 1, -1],
    ids=["blob", "text", "real", "int64-max", "negative"],
)
def test_epoch_not_held_as_a_valid_integer_reads_absent_and_is_replaced(
    tmp_path: Path, epoch: object
) -> None:
    """An epoch held as a BLOB, TEXT or REAL, or an integer out of range, reads as absent and
    only a create replaces it."""
    path = tmp_path / "b.db"
    store = SQLiteStore(path)
    payload = encode_payload(replace(RECORD, epoch=5))
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO fleetbreaker_circuits (name, epoch, payload, expires_at) "
            "VALUES ('c', ?, ?, 4e9)",
            (epoch, payload),
        )
    conn.close()
    assert store.load("c") is None
    assert store.compare_and_set("c", 5, replace(RECORD, epoch=6)) is False
    assert store.compare_and_set("c", None, RECORD) is True
    assert store.load("c") == RECORD
    assert store.compare_and_set("c", None, RECORD) is False


def test_expiry_is_kept_on_this_hosts_clock(tmp_path: Path) -> None:
    """The stored expiry is the write time plus the record's own time to live."""
    path = tmp_path / "b.db"
    at = time.time() + 10 * 365 * 24 * 3600  # a writer 10 years ahead
    record = replace(RECORD, updated_at=at, expires_at=at + 60, opened_at=at, retry_at=at + 1)
    before = time.time()
    assert SQLiteStore(path).compare_and_set("c", None, record)
    after = time.time()
    with sqlite3.connect(path) as conn:
        [(expires_at,)] = conn.execute("SELECT expires_at FROM fleetbreaker_circuits").fetchall()
    conn.close()
    assert before + 60 <= expires_at <= after + 60


_EXIT_WHILE_IN_USE = """
import atexit, sys, threading
atexit.register(lambda: print("atexit handler ran", flush=True))
from fleetbreaker import CircuitState, SQLiteStore
from fleetbreaker._protocol import Record

store = SQLiteStore(sys.argv[1])
busy = threading.Barrier(9)

def work(i):
    name, rounds = f"c{i}", 0
    while True:
        held = store.load(name)
        epoch = 0 if held is None else held.epoch
        store.compare_and_set(
            name, held and epoch, Record(CircuitState.CLOSED, epoch + 1, expires_at=3600.0)
        )
        rounds += 1
        if rounds == 20:
            busy.wait()

for i in range(8):
    threading.Thread(target=work, args=(i,), daemon=True).start()
busy.wait()  # every thread is mid-loop: the main thread exits under them
"""


def test_exit_while_daemon_threads_use_the_store_never_crashes(tmp_path: Path) -> None:
    """Exiting while daemon threads use the store ends with status 0 and runs atexit handlers."""
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", _EXIT_WHILE_IN_USE, str(tmp_path / f"exit-{i}.db")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(20)
    ]
    results = [(run.wait(timeout=60), *run.communicate()) for run in runs]
    crashed = [(status, err[-300:]) for status, out, err in results if status != 0]
    assert crashed == []
    assert all("atexit handler ran" in out for _, out, _ in results)


def _delete_database(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


_WRITE_IN_A_NEW_PROCESS = """
import sys
from fleetbreaker import CircuitState, SQLiteStore
from fleetbreaker._protocol import Record
record = Record(CircuitState.OPEN, 7, opened_at=1.0, retry_at=2.0, expires_at=4e9)
assert SQLiteStore(sys.argv[1]).compare_and_set("c", None, record)
"""


def test_deleted_file_is_noticed_by_every_thread(tmp_path: Path) -> None:
    """After the file is deleted, a new process and every thread of an old one share a new file."""
    path = tmp_path / "b.db"
    old = SQLiteStore(path)
    fresh = Record(CircuitState.OPEN, 7, opened_at=1.0, retry_at=2.0, expires_at=4e9)
    with concurrent.futures.ThreadPoolExecutor(1) as worker:  # a connection of its own, kept
        assert worker.submit(old.compare_and_set, "c", None, RECORD).result()
        _delete_database(path)
        subprocess.run([sys.executable, "-c", _WRITE_IN_A_NEW_PROCESS, str(path)], check=True)
        assert old.load("c") == fresh
        assert worker.submit(old.load, "c").result() == fresh
        assert worker.submit(old.compare_and_set, "c", 7, replace(fresh, epoch=8)).result()
    assert SQLiteStore(path).load("c") == replace(fresh, epoch=8)


def test_new_thread_after_the_file_is_deleted_recreates_it(tmp_path: Path) -> None:
    """A thread that first connects after the file is gone gets a working database, not
    "no such table"; a store opened later agrees with it."""
    path = tmp_path / "b.db"
    old = SQLiteStore(path)
    assert old.compare_and_set("c", None, RECORD)
    _delete_database(path)
    with concurrent.futures.ThreadPoolExecutor(1) as worker:
        assert worker.submit(old.load, "c").result() is None
        assert worker.submit(old.compare_and_set, "c", None, RECORD).result() is True
    other = SQLiteStore(path)
    assert other.load("c") == RECORD
    assert other.compare_and_set("c", 1, replace(RECORD, epoch=2)) is True
    assert old.load("c") == replace(RECORD, epoch=2)


def test_file_replaced_by_another_database_is_reopened(tmp_path: Path) -> None:
    """A restore (the file and its -wal/-shm removed, a backup moved in) is what the next
    call reads. (Moving a file over the database alone would pair it with the old WAL.)"""
    path, restored = tmp_path / "b.db", tmp_path / "restore.db"
    store = SQLiteStore(path)
    assert store.compare_and_set("c", None, RECORD)
    backup = SQLiteStore(restored)
    assert backup.compare_and_set("c", None, replace(RECORD, epoch=5))
    backup.close()  # the last connection checkpoints the WAL into the file
    _delete_database(path)
    restored.replace(path)
    assert store.load("c") == replace(RECORD, epoch=5)
