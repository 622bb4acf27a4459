"""The store interface, defined once. A store guarantees atomicity, never policy.

A store keeps one record per circuit name as three values: the **epoch** (an integer, the
compare-and-set token), the **expiry** (``record.expires_at``, wall-clock seconds; an expired
record is absent, whether or not the backend has deleted it yet) and the **payload** (the text
:func:`encode_payload` makes). The contract, checked for every store by
``tests/stores/test_contract.py``:

* ``load(name)`` returns the live record, or ``None`` if there is none. A stored value whose
  epoch is readable but whose payload is not is logged and read as a closed circuit at that
  epoch (so the next write replaces it); a value with no readable epoch at all (someone else's
  data) is logged and read as ``None``.
* ``compare_and_set(name, expected_epoch, record)`` writes ``record`` (epoch, payload, expiry)
  only if the live stored epoch equals ``expected_epoch``; with ``None`` only if ``load`` would
  return ``None`` (absent, expired, or without a readable epoch). It returns whether it wrote.
  It is atomic against every other writer, in any thread, process or host.
* ``names()`` lists the circuits with a stored value (an operator tool, not a hot path).
* Any failure of the backend raises :class:`~fleetbreaker.errors.StoreError`.
"""

from __future__ import annotations

import abc
import asyncio
import json
import logging
from decimal import Decimal

from fleetbreaker._protocol import ABSENT, Record
from fleetbreaker.errors import StoreError

__all__ = ["Record", "Store", "decode_record", "encode_payload", "read_epoch", "store_error"]

logger = logging.getLogger("fleetbreaker.store")


class Store(abc.ABC):
    """Where a fleet keeps its circuits' shared records."""

    @abc.abstractmethod
    def load(self, name: str, *, consistent: bool = False) -> Record | None:
        """The live record of circuit ``name``, or ``None``.

        ``consistent=True`` asks for a read that reflects every completed write (the breaker
        uses it after losing a compare-and-set); stores that always read consistently ignore it.
        """

    @abc.abstractmethod
    def compare_and_set(self, name: str, expected_epoch: int | None, record: Record) -> bool:
        """Write ``record`` only if the stored epoch is ``expected_epoch`` (``None``: absent)."""

    @abc.abstractmethod
    def names(self) -> list[str]:
        """Names of the circuits that have a stored value, in no particular order."""

    async def aload(self, name: str, *, consistent: bool = False) -> Record | None:
        """``load`` without blocking the event loop (default: in a worker thread)."""
        return await asyncio.to_thread(self.load, name, consistent=consistent)

    async def acompare_and_set(self, name: str, expected_epoch: int | None, record: Record) -> bool:
        """``compare_and_set`` without blocking the event loop (default: in a worker thread)."""
        return await asyncio.to_thread(self.compare_and_set, name, expected_epoch, record)

    def close(self) -> None:  # noqa: B027 - optional hook, most stores hold nothing to close
        """Release connections. The store must not be used afterwards."""


def encode_payload(record: Record) -> str:
    """The payload text a store keeps beside the epoch."""
    return json.dumps(record.to_payload(), separators=(",", ":"), allow_nan=False)


def read_epoch(raw: object) -> int | None:
    """An epoch as a store returned it (int, Decimal, digits as str/bytes), or ``None``."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw if raw >= 0 else None
    if isinstance(raw, Decimal):
        return int(raw) if raw == raw.to_integral_value() and raw >= 0 else None
    if isinstance(raw, bytes):
        raw = raw.decode("ascii", "replace")
    if isinstance(raw, str) and raw.isascii() and raw.isdigit():
        return int(raw)
    return None


def decode_record(store: str, name: str, epoch: object, payload: object) -> Record | None:
    """Rebuild a stored record, applying the contract's rules for unreadable values."""
    number = read_epoch(epoch)
    if number is None:
        logger.warning(
            "%s: circuit %r holds a value that is not a fleetbreaker record (epoch %r); "
            "treating it as absent",
            store,
            name,
            epoch,
        )
        return None
    try:
        text = payload.decode() if isinstance(payload, bytes) else payload
        if not isinstance(text, str):
            raise TypeError(f"payload is {type(payload).__name__}, not text")
        fields = json.loads(text)
        if not isinstance(fields, dict):
            raise TypeError("payload is not a JSON object")
        return Record.from_payload(number, fields)
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        logger.warning(
            "%s: circuit %r has an unreadable record at epoch %d (%s); reading it as closed",
            store,
            name,
            number,
            exc,
        )
        return Record(state=ABSENT.state, epoch=number)


def store_error(store: str, operation: str, name: str, exc: BaseException) -> StoreError:
    """A ``StoreError`` that says which store, operation and circuit failed, and why."""
    return StoreError(f"{store}: {operation} of circuit {name!r} failed: {exc}")
