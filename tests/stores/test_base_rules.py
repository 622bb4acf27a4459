"""The rules KeyValueStore decides once for every adapter, pinned without a server.

A tiny adapter over a dict (``DictStore``) holds anything a backend could hand back (a Decimal or
bytes epoch, a bytearray payload, ...) and records how the base calls it, so these tests show
the base's own decisions: what reads as absent, closed or a record, what a create may replace,
which writes never reach the backend. The same rules are checked end to end on MemoryStore and
SQLiteStore, the stores that need no server.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from dataclasses import dataclass, replace
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetbreaker import CircuitState, MemoryStore, StoreError
from fleetbreaker._limits import MAX_EPOCH, MAX_PAYLOAD_BYTES
from fleetbreaker._protocol import Record
from fleetbreaker.stores.base import (
    KeyValueStore,
    Store,
    Stored,
    Write,
    decode_record,
    encode_payload,
    reads_absent,
    record_ttl,
    store_error,
    valid_epoch,
)
from tests.stores.conftest import Harness

RECORD = Record(
    CircuitState.OPEN,
    4,
    opened_at=100.0,
    retry_at=130.0,
    failure_count=5,
    updated_at=100.0,
    expires_at=4e9,
)
NEXT = replace(RECORD, epoch=5)
CLOSED_AT_3 = Record(CircuitState.CLOSED, 3)


class DictStore(KeyValueStore):
    """A KeyValueStore over a dict of raw values; it logs every primitive the base calls."""

    _label = "DictStore"

    def __init__(self) -> None:
        self.values: dict[str, Stored] = {}
        self.calls: list[tuple[object, ...]] = []
        self.down = False

    def _read(self, name: str, *, consistent: bool, operation: str = "load") -> Stored | None:
        self.calls.append(("read", name, consistent, operation))
        if self.down:
            raise store_error(self._label, operation, name, ConnectionError("backend down"))
        return self.values.get(name)

    def _write_at(self, name: str, epoch: int, new: Write) -> bool:
        self.calls.append(("at", name, epoch, new))
        live = self.values.get(name)
        if live is None or type(live.epoch) is not int or live.epoch != epoch:
            return False
        self.values[name] = Stored(new.epoch, new.payload, held=object())
        return True

    def _write_over(self, name: str, replacing: Stored | None, new: Write) -> bool:
        self.calls.append(("over", name, replacing, new))
        live = self.values.get(name)
        if live is not None and (replacing is None or live.held is not replacing.held):
            return False
        self.values[name] = Stored(new.epoch, new.payload, held=object())
        return True

    def names(self) -> list[str]:
        return list(self.values)

    def plant(self, name: str, epoch: object, payload: object) -> Stored:
        self.values[name] = stored = Stored(epoch, payload, held=object())
        return stored

    def writes(self) -> list[tuple[object, ...]]:
        return [call for call in self.calls if call[0] != "read"]


MODES = ["sync", "async"]


def load(store: Store, mode: str, name: str, **kw: bool) -> Record | None:
    """``store.load`` or ``store.aload``, as ``mode`` says."""
    if mode == "sync":
        return store.load(name, **kw)
    return asyncio.run(store.aload(name, **kw))


def cas(store: Store, mode: str, name: str, expected: int | None, record: Record) -> bool:
    """``store.compare_and_set`` or ``store.acompare_and_set``, as ``mode`` says."""
    if mode == "sync":
        return store.compare_and_set(name, expected, record)
    return asyncio.run(store.acompare_and_set(name, expected, record))


@pytest.fixture(params=["memory", "sqlite"])
def local(request: pytest.FixtureRequest) -> Harness:
    """The stores that need no server."""
    value: Harness = request.getfixturevalue(f"{request.param}_harness")
    return value


# --- What a stored value reads as -----------------------------------------------------------


@pytest.mark.parametrize("epoch", [0, 1, MAX_EPOCH - 1], ids=["zero", "one", "largest"])
def test_valid_epochs(epoch: int) -> None:
    """Integers in [0, MAX_EPOCH) are epochs, 0 included."""
    assert valid_epoch(epoch) == epoch
    assert reads_absent(Stored(epoch, "anything")) is False


class _Int(int):
    pass


FOREIGN_EPOCHS = [
    -1,
    MAX_EPOCH,
    2**64,
    True,
    False,
    1.0,
    "1",
    b"1",
    bytearray(b"1"),
    Decimal(1),
    _Int(1),
    None,
]
FOREIGN_IDS = [
    "minus-1",
    "max-epoch",
    "2e64",
    "true",
    "false",
    "float",
    "text",
    "bytes",
    "bytearray",
    "decimal",
    "int-subclass",
    "none",
]


@pytest.mark.parametrize("epoch", FOREIGN_EPOCHS, ids=FOREIGN_IDS)
def test_anything_but_an_int_in_range_is_a_foreign_epoch(epoch: object) -> None:
    """A held epoch not mapped to an int in [0, MAX_EPOCH) is someone else's value."""
    assert valid_epoch(epoch) is None
    assert reads_absent(Stored(epoch, encode_payload(RECORD))) is True


def test_no_value_reads_absent() -> None:
    """No live value reads as absent."""
    assert reads_absent(None) is True
    assert decode_record("S", "c", None) is None


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("epoch", FOREIGN_EPOCHS, ids=FOREIGN_IDS)
def test_foreign_value_is_logged_read_absent_and_replaced_exactly(
    epoch: object, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A foreign value loads as None, only a create writes over it, and over that very value."""
    store = DictStore()
    foreign = store.plant("c", epoch, encode_payload(RECORD))
    with caplog.at_level(logging.WARNING, logger="fleetbreaker"):
        assert load(store, mode, "c") is None
    assert "not a fleetbreaker record" in caplog.text
    store.calls.clear()
    assert cas(store, mode, "c", None, NEXT) is True
    assert store.calls == [
        ("read", "c", True, "compare_and_set"),
        ("over", "c", foreign, Write.of(NEXT)),
    ]
    assert load(store, mode, "c") == NEXT


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "epoch", [-1, MAX_EPOCH, 2**64, True], ids=["minus-1", "max", "2e64", "true"]
)
def test_an_invalid_expected_epoch_never_reaches_the_backend(epoch: int, mode: str) -> None:
    """No live value holds an invalid epoch: expecting one loses unwritten, whatever is held."""
    store = DictStore()
    store.plant("c", epoch, encode_payload(RECORD))
    assert cas(store, mode, "c", epoch, NEXT) is False
    assert store.writes() == []


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("epoch", [-1, MAX_EPOCH, True], ids=["minus-1", "max", "true"])
def test_memory_store_refuses_a_write_at_an_invalid_epoch_it_holds(epoch: int, mode: str) -> None:
    """Even where MemoryStore holds that very epoch, only a create replaces the value."""
    store = MemoryStore()
    store._put_raw("c", epoch, encode_payload(RECORD), 4e9)
    assert cas(store, mode, "c", epoch, NEXT) is False
    assert load(store, mode, "c") is None
    assert cas(store, mode, "c", None, NEXT) is True
    assert load(store, mode, "c") == NEXT


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("epoch", "payload", "reads"),
    [
        (0, encode_payload(replace(RECORD, epoch=0)), replace(RECORD, epoch=0)),
        (4, encode_payload(RECORD), RECORD),
        (3, "{not json", CLOSED_AT_3),
        (3, 12, CLOSED_AT_3),
    ],
    ids=["epoch-0", "record", "corrupt", "not-text"],
)
def test_a_live_value_is_never_replaced_by_a_create(
    epoch: int, payload: object, reads: Record, mode: str
) -> None:
    """A readable epoch, 0 included, is live whatever its payload: only a write at it lands."""
    store = DictStore()
    store.plant("c", epoch, payload)
    assert load(store, mode, "c") == reads
    store.calls.clear()
    assert cas(store, mode, "c", None, NEXT) is False
    assert store.calls == [("read", "c", True, "compare_and_set")]
    assert cas(store, mode, "c", epoch, NEXT) is True
    assert load(store, mode, "c") == NEXT


@pytest.mark.parametrize("mode", MODES)
def test_create_on_nothing_writes_over_nothing(mode: str) -> None:
    """A create where nothing is stored reads consistently, then writes over no value."""
    store = DictStore()
    assert cas(store, mode, "c", None, RECORD) is True
    assert store.calls == [
        ("read", "c", True, "compare_and_set"),
        ("over", "c", None, Write.of(RECORD)),
    ]


@pytest.mark.parametrize("mode", MODES)
def test_a_write_at_an_epoch_goes_straight_to_the_backend(mode: str) -> None:
    """Expecting a valid epoch writes at it without reading first; a lost write says so."""
    store = DictStore()
    store.plant("c", 4, encode_payload(RECORD))
    assert cas(store, mode, "c", 3, NEXT) is False
    assert cas(store, mode, "c", 4, NEXT) is True
    assert store.calls == [("at", "c", 3, Write.of(NEXT)), ("at", "c", 4, Write.of(NEXT))]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("consistent", [True, False], ids=["consistent", "eventual"])
def test_load_asks_for_the_consistency_it_was_given(mode: str, consistent: bool) -> None:
    """``consistent`` reaches the adapter's read as given; the default is an eventual read."""
    store = DictStore()
    load(store, mode, "c", consistent=consistent)
    load(store, mode, "c")
    assert store.calls == [("read", "c", consistent, "load"), ("read", "c", False, "load")]


@pytest.mark.parametrize("mode", MODES)
def test_a_failed_create_reports_compare_and_set(mode: str) -> None:
    """A backend failure during a create's read is a StoreError of compare_and_set."""
    store = DictStore()
    store.down = True
    with pytest.raises(StoreError, match="compare_and_set of circuit 'c' failed"):
        cas(store, mode, "c", None, RECORD)


@pytest.mark.parametrize("mode", MODES)
def test_epoch_zero_is_a_record_in_every_local_store(local: Harness, mode: str) -> None:
    """A value at epoch 0 is live: it reads as its record and only a write at 0 replaces it."""
    store = local.client()
    zero = replace(RECORD, epoch=0)
    local.plant("c", 0, encode_payload(zero))
    assert load(store, mode, "c") == zero
    assert cas(store, mode, "c", None, NEXT) is False
    assert cas(store, mode, "c", 0, NEXT) is True
    assert load(store, mode, "c") == NEXT


@pytest.mark.parametrize("mode", MODES)
def test_a_foreign_value_is_replaced_by_an_async_create_too(local: Harness, mode: str) -> None:
    """Someone else's value under the key is replaced by a create, sync or async."""
    store = local.client()
    local.plant_foreign("c")
    assert cas(store, mode, "c", None, NEXT) is True
    assert load(store, mode, "c") == NEXT


# --- Payloads ---------------------------------------------------------------------------------


def sized(size: int, pad: str = "x") -> str:
    """RECORD's payload padded with an unknown field to exactly ``size`` UTF-8 bytes."""
    head = encode_payload(RECORD)[:-1] + ',"pad":"'
    room = size - len((head + '"}').encode())
    width = len(pad.encode())
    text = head + pad * (room // width) + "x" * (room % width) + '"}'
    assert len(text.encode()) == size
    return text


def as_kind(text: str, kind: str) -> object:
    """``text`` as a backend might hand it back."""
    raw = text.encode()
    return {"str": text, "bytes": raw, "bytearray": bytearray(raw), "memoryview": memoryview(raw)}[
        kind
    ]


KINDS = ["str", "bytes", "bytearray", "memoryview"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("pad", ["x", "é"], ids=["ascii", "two-byte"])
def test_a_payload_of_exactly_max_bytes_reads(kind: str, pad: str) -> None:
    """A payload of MAX_PAYLOAD_BYTES bytes, as text or binary, reads as its record."""
    store = DictStore()
    store.plant("c", 4, as_kind(sized(MAX_PAYLOAD_BYTES, pad), kind))
    assert store.load("c") == RECORD


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("pad", ["x", "é"], ids=["ascii", "two-byte"])
def test_a_payload_one_byte_too_large_reads_closed(kind: str, pad: str) -> None:
    """One byte over MAX_PAYLOAD_BYTES, counted in UTF-8 even for text, reads as closed."""
    store = DictStore()
    store.plant("c", 3, as_kind(sized(MAX_PAYLOAD_BYTES + 1, pad), kind))
    assert store.load("c") == CLOSED_AT_3


def test_text_of_few_characters_but_too_many_bytes_reads_closed() -> None:
    """Text is measured in bytes: under the limit in characters is not enough."""
    text = sized(MAX_PAYLOAD_BYTES + 2000, "é")
    assert len(text) < MAX_PAYLOAD_BYTES
    store = DictStore()
    store.plant("c", 3, text)
    assert store.load("c") == CLOSED_AT_3


def test_a_binary_payload_reads_in_sqlite(sqlite_harness: Harness) -> None:
    """A payload SQLite holds as a BLOB reads as its record."""
    store = sqlite_harness.client()
    sqlite_harness.plant("c", 4, encode_payload(RECORD).encode())
    assert store.load("c") == RECORD


@pytest.mark.parametrize(
    "payload",
    ["[1]", "1", "null", '"text"', "true", "", 12, None, {"v": 1, "state": "closed"}, ["x"]],
    ids=[
        "json-list",
        "json-number",
        "json-null",
        "json-text",
        "json-true",
        "empty",
        "int",
        "none",
        "dict-object",
        "list-object",
    ],
)
def test_a_payload_that_is_not_a_json_object_text_reads_closed(
    payload: object, caplog: pytest.LogCaptureFixture
) -> None:
    """Only text (or UTF-8 bytes) holding a JSON object is a record; the rest reads closed."""
    store = DictStore()
    store.plant("c", 3, payload)
    with caplog.at_level(logging.WARNING, logger="fleetbreaker"):
        assert store.load("c") == CLOSED_AT_3
    assert "unreadable record at epoch 3" in caplog.text


# --- What a write holds -------------------------------------------------------------------------


def test_the_payload_is_compact_json_of_the_record() -> None:
    """The payload decodes to the record's fields and holds no optional whitespace."""
    text = encode_payload(RECORD)
    assert json.loads(text) == RECORD.to_payload()
    assert text == text.replace(", ", ",").replace(": ", ":")
    assert " " not in text


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "minus-inf"])
def test_a_record_that_could_not_be_read_back_is_never_written(value: float) -> None:
    """A non-finite time has no JSON: encoding refuses it, so it never reaches the backend."""
    bad = replace(RECORD, retry_at=value)
    with pytest.raises(ValueError, match="JSON"):
        encode_payload(bad)
    store = DictStore()
    with pytest.raises(ValueError, match="JSON"):
        store.compare_and_set("c", None, bad)
    assert store.writes() == []


@pytest.mark.parametrize(
    ("updated_at", "expires_at", "ttl"),
    [(100.0, 160.0, 60.0), (0.0, 60.0, 60.0), (100.0, 90.0, -10.0), (5e9, 5e9 + 1, 1.0)],
    ids=["minute", "from-zero", "born-expired", "far-future-writer"],
)
def test_a_write_lives_expires_at_minus_updated_at(
    updated_at: float, expires_at: float, ttl: float
) -> None:
    """The time to live handed to the adapter is the record's own period, not a wall time."""
    record = replace(RECORD, updated_at=updated_at, expires_at=expires_at)
    assert record_ttl(record) == ttl
    assert Write.of(record) == Write(record.epoch, encode_payload(record), ttl)


# --- The Store interface's defaults -------------------------------------------------------------


@dataclass
class PlainStore(Store):
    """A Store with only the synchronous methods: the async ones are the base's defaults."""

    calls: list[tuple[object, ...]]

    def load(self, name: str, *, consistent: bool = False) -> Record | None:
        self.calls.append(("load", name, consistent))
        return RECORD

    def compare_and_set(self, name: str, expected_epoch: int | None, record: Record) -> bool:
        self.calls.append(("cas", name, expected_epoch, record))
        return expected_epoch == 4

    def names(self) -> list[str]:
        return []


@pytest.mark.parametrize("consistent", [True, False], ids=["consistent", "eventual"])
def test_store_async_defaults_call_the_sync_methods(consistent: bool) -> None:
    """A store without native async gets aload and acompare_and_set that call its sync twins."""
    store = PlainStore([])

    async def scenario() -> None:
        assert await store.aload("c", consistent=consistent) == RECORD
        assert await store.aload("d") == RECORD
        assert await store.acompare_and_set("c", 4, NEXT) is True
        assert await store.acompare_and_set("c", None, NEXT) is False

    asyncio.run(scenario())
    assert store.calls == [
        ("load", "c", consistent),
        ("load", "d", False),
        ("cas", "c", 4, NEXT),
        ("cas", "c", None, NEXT),
    ]


# --- Anything held ------------------------------------------------------------------------------

HELD = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.integers(MAX_EPOCH - 2, MAX_EPOCH + 2),
    st.floats(),
    st.decimals(allow_nan=False),
    st.binary(max_size=4),
    st.text(max_size=4),
)


@settings(max_examples=200)
@given(epoch=HELD, payload=HELD | st.just(encode_payload(RECORD)))
def test_what_reads_absent_is_exactly_what_a_create_replaces(
    epoch: object, payload: object
) -> None:
    """Anything held: load is None exactly when reads_absent, and then a create replaces it."""
    store = DictStore()
    store.plant("c", epoch, payload)
    loaded = store.load("c")
    valid = type(epoch) is int and 0 <= epoch < MAX_EPOCH
    assert (loaded is None) is not valid
    assert reads_absent(store.values["c"]) is (loaded is None)
    assert store.compare_and_set("c", None, NEXT) is (loaded is None)
    if loaded is not None:
        assert loaded.epoch == epoch
