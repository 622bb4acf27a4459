"""Helpers for testing code that uses fleetbreaker, and stores written for it.

* ``FakeClock`` and ``RecordingHook``: time that moves when told to, transitions kept.
* ``breakers_disabled``, ``forced`` and ``trip``: bypass every breaker, force a circuit open or
  closed for a block, or open it the way failures do.
* ``FaultyStore``: any store made slow, failing, forgetful or partitioned, for chaos tests.
* ``fleetbreaker.testing.store_contract`` (needs the ``testing`` extra): the store contract
  suite, for a store of your own. It is not imported here, so this package needs only the core.
"""

from __future__ import annotations

from fleetbreaker.testing._fakes import FakeClock, RecordingHook
from fleetbreaker.testing._faulty import FaultyStore
from fleetbreaker.testing._states import TripError, breakers_disabled, forced, trip

__all__ = [
    "FakeClock",
    "FaultyStore",
    "RecordingHook",
    "TripError",
    "breakers_disabled",
    "forced",
    "trip",
]
