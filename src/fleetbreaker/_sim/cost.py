"""What a run's store traffic would cost on DynamoDB on-demand, and one item's throughput limits.

DynamoDB bills on-demand reads in read request units: a strongly consistent read of an item
up to 4 KB is 1 unit, an eventually consistent one half a unit (larger items: one unit per
started 4 KB). Writes are billed in write request units, one per started 1 KB of the item; a
conditional write whose condition fails is billed too. One partition, so one item, serves at
most 3,000 read units and 1,000 write units per second. Sources and dates: docs/simulate.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

__all__ = [
    "ITEM_READ_UNITS_PER_S",
    "ITEM_WRITE_UNITS_PER_S",
    "PRICE_READ_PER_MILLION",
    "PRICE_WRITE_PER_MILLION",
    "Prices",
]

PRICE_WRITE_PER_MILLION: Final = 0.625
"""USD per million write request units, DynamoDB on-demand, Standard table class, us-east-1,
since the price cut of 1 November 2024."""
PRICE_READ_PER_MILLION: Final = 0.125
"""USD per million read request units, same table and region."""
DEFAULT_ITEM_BYTES: Final = 1024
ITEM_READ_UNITS_PER_S: Final = 3000
ITEM_WRITE_UNITS_PER_S: Final = 1000
"""One partition's ceiling (read units/s, write units/s): all of one circuit's traffic goes to
one item, so to one partition, whatever the table's capacity."""
_READ_BLOCK: Final = 4096
_WRITE_BLOCK: Final = 1024


@dataclass(frozen=True, slots=True)
class Prices:
    """The on-demand prices and the item's size that turn operations into dollars."""

    write_per_million: float = PRICE_WRITE_PER_MILLION
    read_per_million: float = PRICE_READ_PER_MILLION
    item_bytes: int = DEFAULT_ITEM_BYTES

    @property
    def write_units(self) -> int:
        """Write request units per write (won or lost): one per started 1 KB."""
        return max(1, math.ceil(self.item_bytes / _WRITE_BLOCK))

    @property
    def consistent_read_units(self) -> float:
        """Read request units per strongly consistent read: one per started 4 KB."""
        return float(max(1, math.ceil(self.item_bytes / _READ_BLOCK)))

    @property
    def eventual_read_units(self) -> float:
        """Read request units per eventually consistent read: half a strongly consistent one."""
        return self.consistent_read_units / 2

    def read_units(self, reads: int, consistent: int) -> float:
        """Units of ``reads`` reads, ``consistent`` of them strongly consistent."""
        return (
            consistent * self.consistent_read_units
            + (reads - consistent) * self.eventual_read_units
        )

    def cost(self, read_units: float, write_units: float) -> float:
        """USD for that many read and write request units."""
        return (
            read_units * self.read_per_million + write_units * self.write_per_million
        ) / 1_000_000
