"""DynamoDB's bill for a run: request units per operation by item size, and units x price."""

from __future__ import annotations

import pytest

from fleetbreaker._sim.cost import Prices


@pytest.mark.parametrize(
    ("item_bytes", "write_units", "consistent_units"),
    [(1, 1, 1.0), (1024, 1, 1.0), (1025, 2, 1.0), (4096, 4, 1.0), (4097, 5, 2.0)],
)
def test_units_per_operation_follow_the_item_size(
    item_bytes: int, write_units: int, consistent_units: float
) -> None:
    """A write costs a unit per started 1 KB; a strongly consistent read a unit per started
    4 KB, an eventually consistent one half of that."""
    prices = Prices(item_bytes=item_bytes)
    assert prices.write_units == write_units
    assert prices.consistent_read_units == consistent_units
    assert prices.eventual_read_units == consistent_units / 2


def test_read_units_mix_consistent_and_eventual_reads() -> None:
    """1,000 reads of which 100 strongly consistent: 100 + 900 / 2 units for a small item."""
    assert Prices().read_units(1000, 100) == 550.0
    assert Prices(item_bytes=8192).read_units(1000, 100) == 1100.0


def test_cost_is_units_times_price_per_million() -> None:
    """Two million write units and four million read units at the defaults: 1.25 + 0.5 USD."""
    prices = Prices()
    assert prices.write_per_million == 0.625
    assert prices.read_per_million == 0.125
    assert prices.cost(4_000_000, 2_000_000) == pytest.approx(1.75)
    custom = Prices(write_per_million=1.25, read_per_million=0.25)
    assert custom.cost(4_000_000, 2_000_000) == pytest.approx(3.5)
    assert prices.cost(0, 0) == 0
