"""Stores: where a fleet's circuits keep their shared records.

``MemoryStore`` and ``SQLiteStore`` need nothing beyond the standard library. Stores with a
client library live in their own modules and are imported from there, so that importing
fleetbreaker never imports boto3 or redis. :func:`from_url` (and :func:`from_env`, which reads
``FLEETBREAKER_STORE``) builds any of them from one URL, importing a store's module only when
its scheme is asked for.
"""

from fleetbreaker.stores._urls import from_env, from_url
from fleetbreaker.stores.base import Store
from fleetbreaker.stores.memory import MemoryStore
from fleetbreaker.stores.sqlite import SQLiteStore

__all__ = ["MemoryStore", "SQLiteStore", "Store", "from_env", "from_url"]
