"""Decoding stored values: anything a backend can hold reads safely (MemoryStore holds anything)."""

from __future__ import annotations

import json
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from fleetbreaker import CircuitState, MemoryStore
from fleetbreaker._protocol import Record
from fleetbreaker.stores.base import Stored, encode_payload, reads_absent
from fleetbreaker.testing.store_contract import PAYLOADS

ANYTHING = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(),
    st.binary(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=3),
    PAYLOADS,
    PAYLOADS.map(json.dumps),
    PAYLOADS.map(lambda fields: json.dumps(fields).encode()),
)
FRESH = Record(CircuitState.CLOSED, 1, updated_at=1.0, expires_at=61.0)


@settings(max_examples=500)
@given(epoch=ANYTHING | st.integers(0, 2**60), payload=ANYTHING)
def test_any_stored_value_reads_safely_and_writes_back(epoch: object, payload: object) -> None:
    """Whatever a store holds, load returns None or a record that can be written back."""
    store = MemoryStore()
    store._put_raw("c", epoch, payload, 4e9)
    loaded = store.load("c")
    assert (loaded is None) == reads_absent(Stored(epoch, payload))
    # A create replaces exactly what reads as absent.
    assert store.compare_and_set("c", None, FRESH) is (loaded is None)
    if loaded is not None:
        encode_payload(loaded)
        again = replace(loaded, epoch=loaded.epoch + 1, updated_at=1.0, expires_at=61.0)
        assert store.compare_and_set("c", loaded.epoch, again) is True
        assert store.load("c") == again
