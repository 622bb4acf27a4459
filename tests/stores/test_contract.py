"""The store contract for every built-in store: the published suite
(``fleetbreaker.testing.store_contract``) run against each kind of ``STORE_KINDS``, so the
project's stores and third-party stores pass the very same checks."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from fleetbreaker import CircuitState, MemoryStore, Store
from fleetbreaker._protocol import Record
from fleetbreaker.testing.store_contract import (
    PlantedValuesContract,
    Planter,
    SharedAcrossProcessesContract,
    StoreContract,
)
from tests.stores.conftest import Harness


class TestEveryStore(StoreContract, PlantedValuesContract):
    """Every kind of ``STORE_KINDS`` (the ``harness`` fixture's parameters)."""

    @pytest.fixture
    def make_store(self, harness: Harness) -> Callable[[], Store]:
        return harness.client

    @pytest.fixture
    def planter(self, harness: Harness) -> Planter:
        return harness


class TestSharedStores(SharedAcrossProcessesContract):
    """Every kind of ``FLEET_STORE_KINDS``: the stores processes can share."""

    @pytest.fixture
    def store_factory(self, fleet_harness: Harness) -> Callable[[], Store]:
        assert fleet_harness.factory is not None
        return fleet_harness.factory


def test_a_payload_with_a_lone_surrogate_reads_closed() -> None:
    """Text no encoder can write (only MemoryStore can hold it) reads as closed, never raises."""
    store = MemoryStore()
    store._put_raw("c", 3, "\ud800", 4e9)
    assert store.load("c") == Record(CircuitState.CLOSED, 3)
