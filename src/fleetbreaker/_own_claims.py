"""The probe claims one breaker wrote in this process, so that none holds the fleet's slot for
a ``probe_timeout`` while this process knows about it.

Two kinds need the store's help later: a claim no call is probing on (its caller was cancelled
while the write was in flight, or its event loop shut down first), which is released; and a
probe's outcome the store did not take (it was down), which is written. Both are acted on at
the first read that still finds the claim.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from fleetbreaker._protocol import Record

__all__ = ["OwnClaims", "Unsettled"]


@dataclass(frozen=True, slots=True)
class Unsettled:
    """A probe outcome decided locally that the store has not taken yet."""

    claim: Record
    outcome: str


class OwnClaims:
    """The epochs of this breaker's claims a call is probing on, and one unsettled outcome."""

    __slots__ = ("_lock", "_probing", "_unsettled")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._probing: set[int] = set()
        self._unsettled: Unsettled | None = None

    def probing(self, epoch: int) -> None:
        """A call probes on the claim at ``epoch`` (said before its write can land)."""
        with self._lock:
            self._probing.add(epoch)

    def done(self, epoch: int) -> None:
        """No call probes on the claim at ``epoch`` any more."""
        with self._lock:
            self._probing.discard(epoch)

    def defer(self, claim: Record, outcome: str) -> None:
        """Keep ``outcome`` of ``claim`` to write when a read finds the claim again."""
        with self._lock:
            self._unsettled = Unsettled(claim, outcome)

    def take_unsettled(self, record: Record) -> Unsettled | None:
        """The outcome still to be written, if ``record`` is still its claim (it is forgotten
        either way: a claim taken over is a newer episode that it must not touch)."""
        with self._lock:
            unsettled, self._unsettled = self._unsettled, None
        if unsettled is None:
            return None
        claim = unsettled.claim
        if record.epoch != claim.epoch or record.probe_owner != claim.probe_owner:
            return None
        return unsettled

    def orphaned(self, record: Record, owner: str) -> bool:
        """Whether ``record`` is a claim of ``owner`` (this breaker) that no call probes on."""
        if record.probe_owner != owner:
            return False
        with self._lock:
            return record.epoch not in self._probing
