"""Stores: where a fleet's circuits keep their shared records.

``MemoryStore`` and ``SQLiteStore`` need nothing beyond the standard library. Stores with a
client library live in their own modules and are imported from there, so that importing
fleetbreaker never imports boto3 or redis.
"""

from fleetbreaker.stores.base import Store
from fleetbreaker.stores.memory import MemoryStore
from fleetbreaker.stores.sqlite import SQLiteStore

__all__ = ["MemoryStore", "SQLiteStore", "Store"]
