"""MemoryStore: circuits shared by the threads of one process."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from fleetbreaker._fork import reset_after_fork
from fleetbreaker._protocol import Record
from fleetbreaker.stores.base import Store, decode_record, encode_payload, read_epoch

__all__ = ["MemoryStore"]


class MemoryStore(Store):
    """A store in this process's memory: a plain in-process breaker, and the reference store.

    Values are kept exactly as a remote store keeps them (epoch, payload text, expiry), so the
    contract suite exercises the same decoding rules here as everywhere.
    """

    def __init__(self, *, wall_clock: Callable[[], float] = time.time) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, tuple[object, object, float]] = {}
        self._wall = wall_clock
        reset_after_fork(self)

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()

    def _live(self, name: str) -> tuple[object, object, float] | None:
        value = self._values.get(name)
        if value is None or value[2] <= self._wall():
            return None
        return value

    def load(self, name: str, *, consistent: bool = False) -> Record | None:  # noqa: ARG002
        with self._lock:
            value = self._live(name)
        return None if value is None else decode_record("MemoryStore", name, value[0], value[1])

    def compare_and_set(self, name: str, expected_epoch: int | None, record: Record) -> bool:
        payload = encode_payload(record)
        with self._lock:
            value = self._live(name)
            stored = None if value is None else read_epoch(value[0])
            if stored != expected_epoch:
                return False
            self._values[name] = (record.epoch, payload, record.expires_at)
            return True

    def names(self) -> list[str]:
        with self._lock:
            return list(self._values)

    def _put_raw(self, name: str, epoch: object, payload: object, expires_at: float) -> None:
        """Store any value as-is (tests use it to plant corrupt and foreign values)."""
        with self._lock:
            self._values[name] = (epoch, payload, expires_at)
