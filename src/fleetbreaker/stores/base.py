"""The store interface, defined once. A store guarantees atomicity, never policy.

A store keeps one value per circuit name: an **epoch** (the compare-and-set token), an
**expiry** and a **payload** (the text :func:`encode_payload` makes). The contract, checked
for every store by ``tests/stores/test_contract.py``:

* What a stored value reads as is decided once, by :func:`decode_record`:

  - **absent** (``None``): no value, an expired one, or one whose epoch is not an integer in
    ``[0, MAX_EPOCH)`` held in the store's own encoding (someone else's data, or an epoch that
    could not be incremented). A present value of that kind is logged.
  - **closed at its epoch**: a readable epoch beside a payload that is not a valid record (not
    text, larger than ``MAX_PAYLOAD_BYTES``, not JSON, nested too deep, a field out of its
    bounds). It is logged; the next write at that epoch replaces it.
  - the **record** otherwise; any record that reads as valid can be written back.

* ``load(name)`` returns what the live value reads as. It never raises anything but
  :class:`~fleetbreaker.errors.StoreError`, whatever is stored.
* ``compare_and_set(name, expected_epoch, record)`` writes ``record`` only if the live stored
  epoch equals ``expected_epoch``; with ``None`` only if ``load`` would return ``None``: the
  very value ``load`` reads as absent is what gets replaced, and nothing ``load`` reads as live
  can be. It returns whether it wrote, and is atomic against every other writer, in any
  thread, process or host.
* A written record lives :func:`record_ttl` seconds (``expires_at - updated_at``, two readings
  of one writer's clock, so its skew cancels) counted on the store's own clock from the write.
* ``names()`` lists the circuits with a stored value (an operator tool, not a hot path).
* Any failure of the backend raises ``StoreError``.

The built-in stores get all of this from :class:`KeyValueStore`: an adapter only reads a raw
value and makes two kinds of conditional write, and maps nothing but its own canonical epoch
encoding to an ``int``, so that every store's ``load`` and ``compare_and_set`` agree with the
rules above by construction.
"""

from __future__ import annotations

import abc
import asyncio
import json
import logging
from dataclasses import dataclass

from fleetbreaker._limits import MAX_EPOCH, MAX_PAYLOAD_BYTES
from fleetbreaker._protocol import ABSENT, Record
from fleetbreaker.errors import StoreError

__all__ = [
    "KeyValueStore",
    "Record",
    "Store",
    "Stored",
    "Write",
    "decode_record",
    "encode_payload",
    "reads_absent",
    "record_ttl",
    "store_error",
    "valid_epoch",
]

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

    def check_name(self, name: str) -> None:  # noqa: B027 - optional hook, most stores take any
        """Raise :class:`~fleetbreaker.errors.ConfigError` if this store cannot keep a circuit
        called ``name`` (default: every name fits).

        Called whenever a breaker is built, by a ``BreakerFamily`` under its lock at a key's
        first use: a local check of the name, never I/O.
        """

    def close(self) -> None:  # noqa: B027 - optional hook, most stores hold nothing to close
        """Release connections. The store must not be used afterwards."""


@dataclass(frozen=True, slots=True)
class Stored:
    """A live stored value as the backend holds it, before any judgement.

    ``epoch`` is an ``int`` only if the backend holds it in the store's canonical encoding
    (whatever its size); anything else is passed as held, and reads as someone else's value.
    ``payload`` is as held. ``held`` is whatever the adapter needs to recognise this exact
    value again in :meth:`KeyValueStore._write_over`.
    """

    epoch: object
    payload: object
    held: object = None


@dataclass(frozen=True, slots=True)
class Write:
    """A record as an adapter writes it: its epoch, payload text and time to live (seconds
    from the write on the store's clock; ``<= 0``: born expired)."""

    epoch: int
    payload: str
    ttl: float

    @classmethod
    def of(cls, record: Record) -> Write:
        return cls(record.epoch, encode_payload(record), record_ttl(record))


def encode_payload(record: Record) -> str:
    """The payload text a store keeps beside the epoch."""
    return json.dumps(record.to_payload(), separators=(",", ":"), allow_nan=False)


def record_ttl(record: Record) -> float:
    """Seconds ``record`` lives from its write: ``expires_at - updated_at``.

    Both times come from one writer's clock, so its skew (or an injected clock) cancels; each
    store counts the difference on its own clock, from the moment it writes.
    """
    return record.expires_at - record.updated_at


def valid_epoch(epoch: object) -> int | None:
    """``epoch`` if a record may hold it (an ``int`` in ``[0, MAX_EPOCH)``), else ``None``."""
    if type(epoch) is int and 0 <= epoch < MAX_EPOCH:
        return epoch
    return None


def reads_absent(stored: Stored | None) -> bool:
    """Whether a live value reads as no record: the rule ``load`` and a create share."""
    return stored is None or valid_epoch(stored.epoch) is None


def _parse(payload: object) -> dict[str, object]:
    """The fields of a payload; never parses more than ``MAX_PAYLOAD_BYTES``."""
    if isinstance(payload, bytes | bytearray | memoryview):
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise ValueError(f"payload is larger than {MAX_PAYLOAD_BYTES} bytes")
        payload = bytes(payload).decode("utf-8")
    if not isinstance(payload, str):
        raise TypeError(f"payload is {type(payload).__name__}, not text")
    if (
        len(payload) > MAX_PAYLOAD_BYTES
        or len(payload.encode("utf-8", "surrogatepass")) > MAX_PAYLOAD_BYTES
    ):
        raise ValueError(f"payload is larger than {MAX_PAYLOAD_BYTES} bytes")
    fields = json.loads(payload)
    if not isinstance(fields, dict):
        raise TypeError("payload is not a JSON object")
    return fields


def decode_record(store: str, name: str, stored: Stored | None) -> Record | None:
    """What a live stored value reads as, by the contract's rules (module docstring)."""
    if stored is None:
        return None
    epoch = valid_epoch(stored.epoch)
    if epoch is None:
        logger.warning(
            "%s: circuit %r holds a value that is not a fleetbreaker record (epoch %.80r); "
            "treating it as absent",
            store,
            name,
            stored.epoch,
        )
        return None
    try:
        return Record.from_payload(epoch, _parse(stored.payload))
    except (ValueError, TypeError, RecursionError) as exc:
        logger.warning(
            "%s: circuit %r has an unreadable record at epoch %d (%.200s); reading it as closed",
            store,
            name,
            epoch,
            exc,
        )
        return Record(state=ABSENT.state, epoch=epoch)


class KeyValueStore(Store):
    """A store built from three primitives that move raw values atomically.

    The rules of what a value reads as, and so what a create may replace, live here once; an
    adapter implements :meth:`_read`, :meth:`_write_at` and :meth:`_write_over` (and their
    ``_a*`` twins if it has a native asyncio client) and maps only its own canonical epoch
    encoding to an ``int``.
    """

    _label: str = "store"  # names the store in log messages

    @abc.abstractmethod
    def _read(self, name: str, *, consistent: bool, operation: str = "load") -> Stored | None:
        """The live value of ``name`` as held; ``None`` if there is none or it has expired.

        ``operation`` is the public operation a failure is reported as."""

    @abc.abstractmethod
    def _write_at(self, name: str, epoch: int, new: Write) -> bool:
        """Write ``new`` if the live value's epoch is ``epoch``, in the canonical encoding."""

    @abc.abstractmethod
    def _write_over(self, name: str, replacing: Stored | None, new: Write) -> bool:
        """Write ``new`` if there is no live value, or if the live value is still
        ``replacing`` (a value :func:`reads_absent`), as told by its ``held``."""

    async def _aread(
        self, name: str, *, consistent: bool, operation: str = "load"
    ) -> Stored | None:
        return await asyncio.to_thread(self._read, name, consistent=consistent, operation=operation)

    async def _awrite_at(self, name: str, epoch: int, new: Write) -> bool:
        return await asyncio.to_thread(self._write_at, name, epoch, new)

    async def _awrite_over(self, name: str, replacing: Stored | None, new: Write) -> bool:
        return await asyncio.to_thread(self._write_over, name, replacing, new)

    def load(self, name: str, *, consistent: bool = False) -> Record | None:
        return decode_record(self._label, name, self._read(name, consistent=consistent))

    def compare_and_set(self, name: str, expected_epoch: int | None, record: Record) -> bool:
        new = Write.of(record)
        if expected_epoch is not None:
            # No live value holds an invalid epoch: load never returns one to expect.
            return valid_epoch(expected_epoch) is not None and self._write_at(
                name, expected_epoch, new
            )
        # A create reads first (rare: once per circuit's life or expiry), so that exactly the
        # value load reads as absent is the one replaced.
        stored = self._read(name, consistent=True, operation="compare_and_set")
        return reads_absent(stored) and self._write_over(name, stored, new)

    async def aload(self, name: str, *, consistent: bool = False) -> Record | None:
        return decode_record(self._label, name, await self._aread(name, consistent=consistent))

    async def acompare_and_set(self, name: str, expected_epoch: int | None, record: Record) -> bool:
        new = Write.of(record)
        if expected_epoch is not None:
            return valid_epoch(expected_epoch) is not None and await self._awrite_at(
                name, expected_epoch, new
            )
        stored = await self._aread(name, consistent=True, operation="compare_and_set")
        return reads_absent(stored) and await self._awrite_over(name, stored, new)


def store_error(store: str, operation: str, name: str, exc: BaseException) -> StoreError:
    """A ``StoreError`` that says which store, operation and circuit failed, and why."""
    return StoreError(f"{store}: {operation} of circuit {name!r} failed: {exc}")
