"""MemoryStore: circuits shared by the threads of one process."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from fleetbreaker._fork import reset_after_fork
from fleetbreaker.stores.base import KeyValueStore, Stored, Write

__all__ = ["MemoryStore"]


class MemoryStore(KeyValueStore):
    """A store in this process's memory: a plain in-process breaker, and the reference store.

    Values are kept exactly as a remote store keeps them (epoch, payload text, expiry on the
    store's ``wall_clock``), so the contract suite exercises the same decoding rules here as
    everywhere. Its canonical epoch is a Python ``int``.
    """

    def __init__(self, *, wall_clock: Callable[[], float] = time.time) -> None:
        self._label = "MemoryStore"
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

    def _read(
        self,
        name: str,
        *,
        consistent: bool,  # noqa: ARG002 - one copy is always consistent
        operation: str = "load",  # noqa: ARG002 - nothing fails here
    ) -> Stored | None:
        with self._lock:
            value = self._live(name)
        return None if value is None else Stored(value[0], value[1], held=value[0])

    def _write_at(self, name: str, epoch: int, new: Write) -> bool:
        with self._lock:
            value = self._live(name)
            if value is None or not _same(value[0], epoch):
                return False
            self._put(name, new)
            return True

    def _write_over(self, name: str, replacing: Stored | None, new: Write) -> bool:
        with self._lock:
            value = self._live(name)
            if value is not None and (replacing is None or not _same(value[0], replacing.held)):
                return False
            self._put(name, new)
            return True

    def _put(self, name: str, new: Write) -> None:
        self._values[name] = (new.epoch, new.payload, self._wall() + new.ttl)

    def names(self) -> list[str]:
        with self._lock:
            return list(self._values)

    def _put_raw(self, name: str, epoch: object, payload: object, expires_at: float) -> None:
        """Store any value as-is, expiring at ``expires_at`` on the store's clock (tests use it
        to plant corrupt and foreign values)."""
        with self._lock:
            self._values[name] = (epoch, payload, expires_at)


def _same(held: object, other: object) -> bool:
    """Whether two held epochs are the same value (of the same type: ``True`` is not 1)."""
    return held is other or (type(held) is type(other) and held == other)
