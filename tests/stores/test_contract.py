"""The store contract: every store passes every test here, unchanged."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import threading
import time
import uuid
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetbreaker import CircuitState, HistoryEntry, MemoryStore, Override
from fleetbreaker._limits import MAX_EPOCH, MAX_PAYLOAD_BYTES, MAX_TIME
from fleetbreaker._protocol import Record
from fleetbreaker.stores.base import encode_payload
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
        rec(MAX_EPOCH - 1, CircuitState.CLOSED, retry_at=None, opened_at=None, failure_count=0),
        rec(
            9,
            override=Override("open", NOW + 900, "ü INC-1 \u2028 \U0001f525", "alice@h", NOW),
            history=tuple(
                HistoryEntry(NOW + i, "open", "forced_open", "ü" * 40, "\U0001f525" * 10)
                for i in range(20)
            ),
        ),
    ],
    ids=["half-open-claim", "sub-microsecond-times", "huge-epoch", "override-and-history"],
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
    store.check_name(name)
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
    assert store.compare_and_set("c", None, rec(4, expires_at=NOW - 5))
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


YEAR = 365 * 24 * 3600.0


@pytest.mark.parametrize("skew", [-10 * YEAR, 10 * YEAR], ids=["10-years-behind", "10-years-ahead"])
def test_record_lives_its_ttl_on_the_stores_clock(harness: Harness, skew: float) -> None:
    """A record lives expires_at - updated_at from its write, whatever the writer's clock says."""
    store = harness.client()
    at = time.time() + skew
    times: dict[str, object] = {"opened_at": at, "retry_at": at + 30, "updated_at": at}
    live = rec(1, CircuitState.OPEN, **times, expires_at=at + 3600)
    assert store.compare_and_set("live", None, live) is True
    assert store.load("live", consistent=True) == live
    assert store.compare_and_set("live", 1, replace(live, epoch=2)) is True
    assert (
        store.compare_and_set("dead", None, rec(1, CircuitState.OPEN, **times, expires_at=at - 1))
        is True
    )
    assert store.load("dead", consistent=True) is None
    assert store.compare_and_set("dead", None, live) is True


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


# --- Poison values: whatever is stored, a read is safe and the circuit stays writable. ---

VALID_FIELDS = rec(3).to_payload()


def payload_with(**changes: object) -> str:
    """A stored payload: a valid record's fields with ``changes`` (JSON's NaN/Infinity allowed)."""
    return json.dumps({**VALID_FIELDS, **changes})


@pytest.mark.parametrize(
    "changes",
    [
        {"opened_at": math.inf},
        {"retry_at": -math.inf},
        {"updated_at": math.nan},
        {"expires_at": 1e20},
        {"retry_at": 10**400},
        {"opened_at": -1.0},
        {"failure_count": 2**31},
        {"successes": -1},
        {"failure_count": 5.0},
        {"failure_count": True},
        {"retry_at": True},
        {"failure_count": "5"},
        {"retry_at": "12"},
        {"probe_owner": 12, "probe_expires_at": NOW},
        {"reserved_for": "x" * 257, "reserved_until": NOW},
        {"state": ["open"]},
        {"v": 1.0},
    ],
    ids=[
        "infinite-time",
        "minus-infinite-time",
        "nan-time",
        "time-1e20",
        "time-10e400",
        "negative-time",
        "count-2e31",
        "negative-count",
        "float-count",
        "bool-count",
        "bool-time",
        "text-count",
        "text-time",
        "number-owner",
        "long-text",
        "list-state",
        "float-version",
    ],
)
def test_out_of_range_or_mistyped_fields_read_closed(
    harness: Harness, changes: dict[str, object]
) -> None:
    """A field non-finite, out of range or mistyped reads as closed; a write replaces it."""
    store = harness.client()
    harness.plant("c", 3, payload_with(**changes))
    assert store.load("c") == Record(CircuitState.CLOSED, 3)
    assert store.compare_and_set("c", None, rec(1)) is False
    assert store.compare_and_set("c", 3, rec(4)) is True
    assert store.load("c") == rec(4)


@pytest.mark.parametrize(
    "payload",
    [
        "[" * 100_000 + "]" * 100_000,
        "[" * 8_000 + "]" * 8_000,
        '{"a":' * 5_000 + "1" + "}" * 5_000,
        payload_with(padding="x" * MAX_PAYLOAD_BYTES),
        payload_with(retry_at=0).replace('"retry_at": 0', '"retry_at": ' + "9" * 5_000),
        b"\xff\xfe{",
        b"",
    ],
    ids=[
        "nested-100000",
        "nested-8000",
        "nested-objects",
        "too-large",
        "5000-digit-number",
        "not-utf8",
        "empty",
    ],
)
def test_payloads_that_cannot_be_parsed_safely_read_closed(
    harness: Harness, payload: str | bytes
) -> None:
    """Deep nesting, huge or undecodable payloads read as closed at their epoch, never raise."""
    store = harness.client()
    harness.plant("c", 3, payload)
    assert store.load("c") == Record(CircuitState.CLOSED, 3)
    assert store.compare_and_set("c", 3, rec(4)) is True
    assert store.load("c") == rec(4)


@pytest.mark.parametrize(
    "epoch", [MAX_EPOCH, 2**63 - 1, 10**40], ids=["max-epoch", "2e63-minus-1", "10e40"]
)
def test_epoch_out_of_range_reads_absent_and_is_replaceable(
    harness: Harness, epoch: int, caplog: pytest.LogCaptureFixture
) -> None:
    """An epoch that could not be incremented reads as a foreign value, which a create replaces."""
    store = harness.client()
    harness.plant("c", epoch, encode_payload(rec(5)))
    with caplog.at_level(logging.WARNING, logger="fleetbreaker"):
        assert store.load("c") is None
    assert "not a fleetbreaker record" in caplog.text
    assert store.compare_and_set("c", None, rec(1)) is True
    assert store.load("c") == rec(1)
    assert store.compare_and_set("c", 1, rec(2)) is True


def test_largest_valid_epoch_round_trips(harness: Harness) -> None:
    """The largest valid epoch reads back and can be written over."""
    store = harness.client()
    top = rec(MAX_EPOCH - 1)
    assert store.compare_and_set("c", None, top)
    assert store.load("c", consistent=True) == top
    assert store.compare_and_set("c", MAX_EPOCH - 1, rec(1)) is True


_VALID_TIMES = st.floats(0, MAX_TIME) | st.integers(0, int(MAX_TIME))
_ANY = st.one_of(
    st.sampled_from([math.inf, -math.inf, math.nan, 1e20, MAX_TIME + 1, 2**31, -1, True, "12"]),
    st.floats(),
    st.integers(-(2**70), 2**70),
    st.booleans(),
    st.none(),
    st.text(max_size=3),
    st.text(min_size=250, max_size=300),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
        max_leaves=8,
    ),
)
_VALID_PAYLOADS = st.builds(
    lambda *fields: dict(zip(list(VALID_FIELDS)[1:], fields, strict=True)),
    st.sampled_from(["open", "half_open"]),
    _VALID_TIMES,
    _VALID_TIMES,
    st.sampled_from(["host:1:ab", "", "ü" * 256]),
    _VALID_TIMES,
    st.integers(0, 2**31 - 1),
    st.integers(0, 2**31 - 1),
    _VALID_TIMES,
    _VALID_TIMES,
    st.none() | st.text(max_size=256),
    _VALID_TIMES,
)
# A valid record's fields with one of them (or an unknown one) set to anything.
PAYLOADS = st.builds(
    lambda fields, changes: {"v": 1, **fields, **changes},
    _VALID_PAYLOADS,
    st.dictionaries(
        st.sampled_from([*VALID_FIELDS, "override", "history", "extra"]), _ANY, max_size=1
    ),
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    derandomize=True,
)
@given(fields=PAYLOADS, epoch=st.integers(0, 1000))
def test_random_payloads_read_safely_and_write_back(
    harness: Harness, fields: dict[str, object], epoch: int
) -> None:
    """Any stored JSON reads without raising, and a record that reads can be written back."""
    store, name = harness.client(), f"h-{uuid.uuid4().hex}"
    harness.plant(name, epoch, json.dumps(fields))
    loaded = store.load(name)
    assert loaded is not None
    assert loaded.epoch == epoch
    encode_payload(loaded)
    again = replace(loaded, epoch=epoch + 1, updated_at=NOW, expires_at=NOW + 60)
    assert store.compare_and_set(name, epoch, again) is True
    assert store.load(name, consistent=True) == again


def test_a_payload_with_a_lone_surrogate_reads_closed() -> None:
    """Text no encoder can write (only MemoryStore can hold it) reads as closed, never raises."""
    store = MemoryStore()
    store._put_raw("c", 3, "\ud800", 4e9)
    assert store.load("c") == Record(CircuitState.CLOSED, 3)
