"""The store contract: every store passes every test here, unchanged."""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from dataclasses import replace

import pytest

from fleetbreaker import CircuitState, MemoryStore
from fleetbreaker._protocol import Record
from tests.stores.conftest import Harness

NOW = time.time()


def rec(epoch: int, state: CircuitState = CircuitState.OPEN, **kw: object) -> Record:
    fields: dict[str, object] = {
        "opened_at": NOW + 0.123456789,
        "retry_at": NOW + 30.000001,
        "failure_count": 5,
        "updated_at": NOW + 0.000001,
        "expires_at": NOW + 3600,
    }
    fields.update(kw)
    return Record(state, epoch, **fields)  # type: ignore[arg-type]


def test_absent_circuit_loads_none(harness: Harness) -> None:
    """A circuit never written reads as None."""
    assert harness.client().load("never-written") is None


def test_create_only_if_absent(harness: Harness) -> None:
    """compare_and_set(None) creates once; the second create loses."""
    store = harness.client()
    assert store.compare_and_set("c", None, rec(1)) is True
    assert store.compare_and_set("c", None, rec(1)) is False
    assert store.load("c") == rec(1)


def test_write_only_at_expected_epoch(harness: Harness) -> None:
    """A write lands only on the epoch it expects, and bumps nothing by itself."""
    store = harness.client()
    store.compare_and_set("c", None, rec(1))
    assert store.compare_and_set("c", 2, rec(3)) is False
    assert store.compare_and_set("c", 0, rec(3)) is False
    assert store.load("c") == rec(1)
    assert store.compare_and_set("c", 1, rec(2, CircuitState.CLOSED, retry_at=None)) is True
    assert store.load("c") == rec(2, CircuitState.CLOSED, retry_at=None)


def test_write_to_absent_with_epoch_loses(harness: Harness) -> None:
    """Expecting an epoch where nothing is stored never writes."""
    store = harness.client()
    assert store.compare_and_set("c", 1, rec(2)) is False
    assert store.load("c") is None


def test_other_clients_see_writes(harness: Harness) -> None:
    """A write by one client is what another client reads, consistent or not."""
    a, b = harness.client(), harness.client()
    a.compare_and_set("c", None, rec(1))
    assert b.load("c", consistent=True) == rec(1)
    assert b.compare_and_set("c", 1, rec(2)) is True
    assert a.load("c", consistent=True) == rec(2)


@pytest.mark.parametrize(
    "record",
    [
        rec(
            7,
            CircuitState.HALF_OPEN,
            retry_at=None,
            probe_owner="host:1:ab",
            probe_expires_at=NOW + 1.5,
            successes=2,
        ),
        rec(1, opened_at=1700000000.123456, retry_at=1700000030.654321, updated_at=0.1 + 0.2),
        rec(2**53 + 1, CircuitState.CLOSED, retry_at=None, opened_at=None, failure_count=0),
    ],
    ids=["half-open-claim", "sub-microsecond-times", "huge-epoch"],
)
def test_records_round_trip_exactly(harness: Harness, record: Record) -> None:
    """Every field, including sub-second times and huge epochs, reads back exactly."""
    store = harness.client()
    assert store.compare_and_set("round-trip", None, record)
    assert store.load("round-trip", consistent=True) == record


@pytest.mark.parametrize(
    "name",
    ["payments", "x" * 200, "ünïcödé • 支払い", "a:b/c?d=e&f g%20'\"", "-"],
    ids=["plain", "200-chars", "unicode", "punctuation", "dash"],
)
def test_any_valid_circuit_name(harness: Harness, name: str) -> None:
    """Circuit names are opaque keys: any printable name up to 200 characters works."""
    store = harness.client()
    assert store.compare_and_set(name, None, rec(1))
    assert store.load(name) == rec(1)
    assert name in store.names()


def test_names_lists_written_circuits(harness: Harness) -> None:
    """names() lists every written circuit and nothing else."""
    store = harness.client()
    written = {f"circuit-{i}" for i in range(25)}
    for name in written:
        store.compare_and_set(name, None, rec(1))
    assert set(store.names()) == written


def test_expired_record_is_absent(harness: Harness) -> None:
    """A record past its expiry reads as None and can be created afresh."""
    store = harness.client()
    assert store.compare_and_set("c", None, rec(4, expires_at=time.time() - 5))
    assert store.load("c") is None
    assert store.compare_and_set("c", 4, rec(5)) is False
    assert store.compare_and_set("c", None, rec(1)) is True
    assert store.load("c") == rec(1)


def test_corrupt_payload_reads_closed_and_is_replaceable(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """An unreadable payload is logged, read as closed at its epoch, and overwritten."""
    store = harness.client()
    harness.plant_corrupt_payload("c", 9)
    with caplog.at_level(logging.WARNING, logger="fleetbreaker"):
        loaded = store.load("c")
    assert loaded == Record(CircuitState.CLOSED, 9)
    assert "unreadable record" in caplog.text
    assert store.compare_and_set("c", 9, rec(10)) is True
    assert store.load("c") == rec(10)


def test_foreign_value_reads_absent_and_is_replaceable(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """Someone else's value under a circuit's key is logged, read as None, and overwritten."""
    store = harness.client()
    harness.plant_foreign("c")
    with caplog.at_level(logging.WARNING, logger="fleetbreaker"):
        assert store.load("c") is None
    assert "not a fleetbreaker record" in caplog.text
    assert store.compare_and_set("c", 1, rec(2)) is False
    assert store.compare_and_set("c", None, rec(1)) is True
    assert store.load("c") == rec(1)


@pytest.mark.parametrize("writers", [2, 8, 16])
def test_racing_writers_exactly_one_wins(harness: Harness, writers: int) -> None:
    """Writers released together on one expected epoch: exactly one wins each round."""
    clients = [harness.client() for _ in range(writers)]
    for expected in (None, 1, 2):
        barrier = threading.Barrier(writers)
        wins: list[int] = []

        def write(
            i: int,
            expected: int | None = expected,
            barrier: threading.Barrier = barrier,
            wins: list[int] = wins,
        ) -> None:
            barrier.wait()
            epoch = 1 if expected is None else expected + 1
            if clients[i].compare_and_set("race", expected, rec(epoch, failure_count=i)):
                wins.append(i)

        threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(wins) == 1, f"expected one winner at epoch {expected}, got {wins}"
        loaded = clients[0].load("race", consistent=True)
        assert loaded is not None
        assert loaded.failure_count == wins[0]


def test_async_methods_follow_the_contract(harness: Harness) -> None:
    """aload and acompare_and_set have the same semantics as their sync twins."""
    store = harness.client()

    async def scenario() -> None:
        assert await store.aload("a") is None
        assert await store.acompare_and_set("a", None, rec(1)) is True
        assert await store.acompare_and_set("a", None, rec(1)) is False
        assert await store.acompare_and_set("a", 1, rec(2)) is True
        assert await store.aload("a", consistent=True) == rec(2)

    asyncio.run(scenario())


def test_differential_against_memory_store(harness: Harness) -> None:
    """A random sequence of operations gives the same answers as MemoryStore."""
    store, reference = harness.client(), MemoryStore()
    rng = random.Random(1234)
    names = ["a", "b", "c"]
    for step in range(150):
        name = rng.choice(names)
        if rng.random() < 0.4:
            assert store.load(name) == reference.load(name), f"step {step}"
            continue
        current = reference.load(name)
        expected = rng.choice(
            [None, 0, 1, 2, current.epoch if current else None, current.epoch + 1 if current else 3]
        )
        new = replace(rec(rng.randint(1, 50)), successes=step)
        got = store.compare_and_set(name, expected, new)
        assert got == reference.compare_and_set(name, expected, new), f"step {step}"
    assert sorted(store.names()) == sorted(reference.names())
