"""The store contract suite: the checks every fleetbreaker store passes, for your store too.

Subclass the classes below in a test module (named ``Test...`` so pytest collects them) and
override the fixtures they ask for; each check then runs against your store::

    class TestMyStore(StoreContract, PlantedValuesContract):
        @pytest.fixture
        def make_store(self, tmp_path):
            return functools.partial(MyStore, tmp_path / "circuits")

        @pytest.fixture
        def planter(self, tmp_path):
            return MyRawValues(tmp_path / "circuits")

* :class:`StoreContract` (every store): ``make_store`` returns a zero-argument callable that
  opens a client of the store; every client it opens during one test shares one namespace (as
  the processes of a fleet do), empty when the test starts. The fixture owns their clean-up.
* :class:`PlantedValuesContract` (opt in): what a store does with values no fleetbreaker
  writer wrote: corrupt, foreign, out of range. Needs ``planter``, an object with the three
  methods of :class:`Planter` writing straight to the backend.
* :class:`SharedAcrossProcessesContract` (opt in): clients in several processes race on one
  circuit. Needs ``store_factory``: a picklable zero-argument callable (a
  ``functools.partial`` of the store's class, say) opening a client on the test's namespace.

A check that needs a fixture you did not provide is not collected (you did not subclass its
class) or errors (you subclassed it without the fixture): it never passes silently.

Stores built on :class:`~fleetbreaker.stores.base.KeyValueStore` get the decoding rules (and
the log lines checked here) by construction; a store implementing ``Store`` directly should
decode with :func:`~fleetbreaker.stores.base.decode_record`.

This module needs pytest and Hypothesis: ``pip install 'fleetbreaker[testing]'``.
"""

from __future__ import annotations

try:
    import pytest
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
except ImportError as exc:  # pragma: no cover - exercised in a bare environment only
    raise ImportError(
        "fleetbreaker.testing.store_contract needs pytest and hypothesis: "
        "pip install 'fleetbreaker[testing]'"
    ) from exc

import asyncio
import json
import logging
import math
import multiprocessing
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol

from fleetbreaker._breaker import CircuitBreaker
from fleetbreaker._history import HistoryEntry
from fleetbreaker._limits import MAX_EPOCH, MAX_PAYLOAD_BYTES, MAX_TIME
from fleetbreaker._protocol import CircuitState, Override, Record
from fleetbreaker.config import Config
from fleetbreaker.stores.base import Store, encode_payload
from fleetbreaker.stores.memory import MemoryStore
from fleetbreaker.testing._fakes import FakeClock
from fleetbreaker.testing._states import trip

__all__ = [
    "PlantedValuesContract",
    "Planter",
    "SharedAcrossProcessesContract",
    "StoreContract",
    "rec",
]

NOW = time.time()
YEAR = 365 * 24 * 3600.0


def rec(epoch: int, state: CircuitState = CircuitState.OPEN, **fields: Any) -> Record:
    """A valid record at ``epoch``, alive for an hour from now; ``fields`` override any field."""
    values: dict[str, Any] = {
        "opened_at": NOW + 0.123456789,
        "retry_at": NOW + 30.000001,
        "failure_count": 5,
        "updated_at": NOW + 0.000001,
        "expires_at": NOW + 3600,
    }
    values.update(fields)
    return Record(state, epoch, **values)


class Planter(Protocol):
    """Writes values straight to the backend, under the namespace ``make_store`` clients use,
    alive for hours: what no fleetbreaker writer would write."""

    def plant(self, name: str, epoch: int, payload: str | bytes) -> None:
        """A value as-is: an ``int`` epoch in the store's own encoding for integers (however
        large), a ``str`` or ``bytes`` payload as text or binary."""

    def plant_corrupt_payload(self, name: str, epoch: int) -> None:
        """A valid epoch beside a payload that is not a record (``"{not json"``, say)."""

    def plant_foreign(self, name: str) -> None:
        """Someone else's value under the circuit's key: an epoch that is not an integer, or a
        value of another type altogether."""


class _Fixtures:
    """The fixtures a store under test provides; the defaults say what is missing."""

    @pytest.fixture
    def make_store(self) -> Callable[[], Store]:
        pytest.fail(
            f"{type(self).__name__} must override the make_store fixture: a zero-argument "
            "callable opening a client of the store under test (fleetbreaker.testing."
            "store_contract's docstring shows how)"
        )

    @pytest.fixture
    def planter(self) -> Planter:
        pytest.fail(
            f"{type(self).__name__} subclasses PlantedValuesContract but does not override the "
            "planter fixture (an object with plant, plant_corrupt_payload and plant_foreign)"
        )

    @pytest.fixture
    def store_factory(self) -> Callable[[], Store]:
        pytest.fail(
            f"{type(self).__name__} subclasses SharedAcrossProcessesContract but does not "
            "override the store_factory fixture (a picklable zero-argument callable)"
        )


class StoreContract(_Fixtures):
    """What every store does: atomic compare-and-set on an epoch, exact round trips, expiry on
    the store's clock, names, async twins, and agreement with ``MemoryStore``."""

    def test_absent_circuit_loads_none(self, make_store: Callable[[], Store]) -> None:
        """A circuit never written reads as None."""
        assert make_store().load("never-written") is None

    def test_create_only_if_absent(self, make_store: Callable[[], Store]) -> None:
        """compare_and_set(None) creates once; the second create loses."""
        store = make_store()
        assert store.compare_and_set("c", None, rec(1)) is True
        assert store.compare_and_set("c", None, rec(1)) is False
        assert store.load("c") == rec(1)

    def test_write_only_at_expected_epoch(self, make_store: Callable[[], Store]) -> None:
        """A write lands only on the epoch it expects, and bumps nothing by itself."""
        store = make_store()
        store.compare_and_set("c", None, rec(1))
        assert store.compare_and_set("c", 2, rec(3)) is False
        assert store.compare_and_set("c", 0, rec(3)) is False
        assert store.load("c") == rec(1)
        assert store.compare_and_set("c", 1, rec(2, CircuitState.CLOSED, retry_at=None)) is True
        assert store.load("c") == rec(2, CircuitState.CLOSED, retry_at=None)

    def test_write_to_absent_with_epoch_loses(self, make_store: Callable[[], Store]) -> None:
        """Expecting an epoch where nothing is stored never writes."""
        store = make_store()
        assert store.compare_and_set("c", 1, rec(2)) is False
        assert store.load("c") is None

    def test_other_clients_see_writes(self, make_store: Callable[[], Store]) -> None:
        """A write by one client is what another client reads, consistent or not."""
        a, b = make_store(), make_store()
        a.compare_and_set("c", None, rec(1))
        assert b.load("c", consistent=True) == rec(1)
        assert b.compare_and_set("c", 1, rec(2)) is True
        assert a.load("c", consistent=True) == rec(2)

    @pytest.mark.parametrize(
        "record",
        [
            rec(
                7,
                CircuitState.HALF_OPEN,
                retry_at=None,
                probe_owner="host:1:ab",
                probe_expires_at=NOW + 1.5,
                successes=2,
            ),
            rec(1, opened_at=1700000000.123456, retry_at=1700000030.654321, updated_at=0.1 + 0.2),
            rec(MAX_EPOCH - 1, CircuitState.CLOSED, retry_at=None, opened_at=None, failure_count=0),
            rec(
                9,
                override=Override("open", NOW + 900, "ü INC-1 \u2028 \U0001f525", "alice@h", NOW),
                history=tuple(
                    HistoryEntry(NOW + i, "open", "forced_open", "ü" * 40, "\U0001f525" * 10)
                    for i in range(20)
                ),
            ),
        ],
        ids=["half-open-claim", "sub-microsecond-times", "huge-epoch", "override-and-history"],
    )
    def test_records_round_trip_exactly(
        self, make_store: Callable[[], Store], record: Record
    ) -> None:
        """Every field, including sub-second times and huge epochs, reads back exactly."""
        store = make_store()
        assert store.compare_and_set("round-trip", None, record)
        assert store.load("round-trip", consistent=True) == record

    @pytest.mark.parametrize(
        "name",
        ["payments", "x" * 200, "ünïcödé • 支払い", "a:b/c?d=e&f g%20'\"", "-"],
        ids=["plain", "200-chars", "unicode", "punctuation", "dash"],
    )
    def test_any_valid_circuit_name(self, make_store: Callable[[], Store], name: str) -> None:
        """Circuit names are opaque keys: any printable name up to 200 characters works."""
        store = make_store()
        store.check_name(name)
        assert store.compare_and_set(name, None, rec(1))
        assert store.load(name) == rec(1)
        assert name in store.names()

    def test_names_lists_written_circuits(self, make_store: Callable[[], Store]) -> None:
        """names() lists every written circuit and nothing else."""
        store = make_store()
        written = {f"circuit-{i}" for i in range(25)}
        for name in written:
            store.compare_and_set(name, None, rec(1))
        assert set(store.names()) == written

    def test_expired_record_is_absent(self, make_store: Callable[[], Store]) -> None:
        """A record past its expiry reads as None and can be created afresh."""
        store = make_store()
        assert store.compare_and_set("c", None, rec(4, expires_at=NOW - 5))
        assert store.load("c") is None
        assert store.compare_and_set("c", 4, rec(5)) is False
        assert store.compare_and_set("c", None, rec(1)) is True
        assert store.load("c") == rec(1)

    @pytest.mark.parametrize(
        "skew", [-10 * YEAR, 10 * YEAR], ids=["10-years-behind", "10-years-ahead"]
    )
    def test_record_lives_its_ttl_on_the_stores_clock(
        self, make_store: Callable[[], Store], skew: float
    ) -> None:
        """A record lives expires_at - updated_at from its write, whatever the writer's clock
        says."""
        store = make_store()
        at = time.time() + skew
        times: dict[str, Any] = {"opened_at": at, "retry_at": at + 30, "updated_at": at}
        live = rec(1, CircuitState.OPEN, **times, expires_at=at + 3600)
        assert store.compare_and_set("live", None, live) is True
        assert store.load("live", consistent=True) == live
        assert store.compare_and_set("live", 1, replace(live, epoch=2)) is True
        dead = rec(1, CircuitState.OPEN, **times, expires_at=at - 1)
        assert store.compare_and_set("dead", None, dead) is True
        assert store.load("dead", consistent=True) is None
        assert store.compare_and_set("dead", None, live) is True

    @pytest.mark.parametrize("writers", [2, 8, 16])
    def test_racing_writers_exactly_one_wins(
        self, make_store: Callable[[], Store], writers: int
    ) -> None:
        """Writers released together on one expected epoch: exactly one wins each round."""
        clients = [make_store() for _ in range(writers)]
        for expected in (None, 1, 2):
            barrier = threading.Barrier(writers)
            wins: list[int] = []
            lock = threading.Lock()

            def write(
                i: int,
                expected: int | None = expected,
                barrier: threading.Barrier = barrier,
                wins: list[int] = wins,
                lock: threading.Lock = lock,
            ) -> None:
                barrier.wait()
                epoch = 1 if expected is None else expected + 1
                if clients[i].compare_and_set("race", expected, rec(epoch, failure_count=i)):
                    with lock:
                        wins.append(i)

            threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert len(wins) == 1, f"expected one winner at epoch {expected}, got {wins}"
            loaded = clients[0].load("race", consistent=True)
            assert loaded is not None
            assert loaded.failure_count == wins[0]

    def test_async_methods_follow_the_contract(self, make_store: Callable[[], Store]) -> None:
        """aload and acompare_and_set have the same semantics as their sync twins."""
        store = make_store()

        async def scenario() -> None:
            assert await store.aload("a") is None
            assert await store.acompare_and_set("a", None, rec(1)) is True
            assert await store.acompare_and_set("a", None, rec(1)) is False
            assert await store.acompare_and_set("a", 1, rec(2)) is True
            assert await store.aload("a", consistent=True) == rec(2)

        asyncio.run(scenario())

    def test_differential_against_memory_store(self, make_store: Callable[[], Store]) -> None:
        """A random sequence of operations gives the same answers as MemoryStore."""
        store, reference = make_store(), MemoryStore()
        rng = random.Random(1234)
        names = ["a", "b", "c"]
        for step in range(150):
            name = rng.choice(names)
            if rng.random() < 0.4:
                assert store.load(name) == reference.load(name), f"step {step}"
                continue
            current = reference.load(name)
            expected = rng.choice(
                [
                    None,
                    0,
                    1,
                    2,
                    current.epoch if current else None,
                    current.epoch + 1 if current else 3,
                ]
            )
            new = replace(rec(rng.randint(1, 50)), successes=step)
            got = store.compare_and_set(name, expected, new)
            assert got == reference.compare_and_set(name, expected, new), f"step {step}"
        assert sorted(store.names()) == sorted(reference.names())

    def test_largest_valid_epoch_round_trips(self, make_store: Callable[[], Store]) -> None:
        """The largest valid epoch reads back and can be written over."""
        store = make_store()
        top = rec(MAX_EPOCH - 1)
        assert store.compare_and_set("c", None, top)
        assert store.load("c", consistent=True) == top
        assert store.compare_and_set("c", MAX_EPOCH - 1, rec(1)) is True

    def test_breakers_on_two_clients_share_one_circuit(
        self, make_store: Callable[[], Store]
    ) -> None:
        """A trip through one client is obeyed through another; the probe that closes the
        circuit there closes it for the first."""
        clock = FakeClock()
        config = Config(failure_threshold=2, recovery_timeout=10, success_threshold=1)
        tripper = CircuitBreaker("shared", store=make_store(), config=config, clock=clock)
        other = CircuitBreaker("shared", store=make_store(), config=config, clock=clock)
        assert trip(tripper).state is CircuitState.OPEN
        assert other.info().state is CircuitState.OPEN
        clock.advance(10 + 1 + config.local_cache_max_age)  # past the opener's reservation
        assert other.call(lambda: "probed") == "probed"
        assert other.state is CircuitState.CLOSED
        assert tripper.info().state is CircuitState.CLOSED


# --- Values no fleetbreaker writer wrote: whatever is stored, a read is safe. ------------------

VALID_FIELDS = rec(3).to_payload()


def payload_with(**changes: object) -> str:
    """A stored payload: a valid record's fields with ``changes`` (JSON's NaN/Infinity allowed)."""
    return json.dumps({**VALID_FIELDS, **changes})


_VALID_TIMES = st.floats(0, MAX_TIME) | st.integers(0, int(MAX_TIME))
_ANY = st.one_of(
    st.sampled_from([math.inf, -math.inf, math.nan, 1e20, MAX_TIME + 1, 2**31, -1, True, "12"]),
    st.floats(),
    st.integers(-(2**70), 2**70),
    st.booleans(),
    st.none(),
    st.text(max_size=3),
    st.text(min_size=250, max_size=300),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
        max_leaves=8,
    ),
)
_VALID_PAYLOADS = st.builds(
    lambda *fields: dict(zip(list(VALID_FIELDS)[1:], fields, strict=True)),
    st.sampled_from(["open", "half_open"]),
    _VALID_TIMES,
    _VALID_TIMES,
    st.sampled_from(["host:1:ab", "", "ü" * 256]),
    _VALID_TIMES,
    st.integers(0, 2**31 - 1),
    st.integers(0, 2**31 - 1),
    _VALID_TIMES,
    _VALID_TIMES,
    st.none() | st.text(max_size=256),
    _VALID_TIMES,
)
# A valid record's fields with one of them (or an unknown one) set to anything.
PAYLOADS = st.builds(
    lambda fields, changes: {"v": 1, **fields, **changes},
    _VALID_PAYLOADS,
    st.dictionaries(
        st.sampled_from([*VALID_FIELDS, "override", "history", "extra"]), _ANY, max_size=1
    ),
)


class PlantedValuesContract(_Fixtures):
    """What a store does with values no fleetbreaker writer wrote: it never raises on a read,
    logs the value, reads it as closed or absent, and lets a write replace it."""

    def test_corrupt_payload_reads_closed_and_is_replaceable(
        self,
        make_store: Callable[[], Store],
        planter: Planter,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """An unreadable payload is logged, read as closed at its epoch, and overwritten."""
        store = make_store()
        planter.plant_corrupt_payload("c", 9)
        with caplog.at_level(logging.WARNING, logger="fleetbreaker"):
            loaded = store.load("c")
        assert loaded == Record(CircuitState.CLOSED, 9)
        assert "unreadable record" in caplog.text
        assert store.compare_and_set("c", 9, rec(10)) is True
        assert store.load("c") == rec(10)

    def test_foreign_value_reads_absent_and_is_replaceable(
        self,
        make_store: Callable[[], Store],
        planter: Planter,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """Someone else's value under a circuit's key is logged, read as None, and
        overwritten."""
        store = make_store()
        planter.plant_foreign("c")
        with caplog.at_level(logging.WARNING, logger="fleetbreaker"):
            assert store.load("c") is None
        assert "not a fleetbreaker record" in caplog.text
        assert store.compare_and_set("c", 1, rec(2)) is False
        assert store.compare_and_set("c", None, rec(1)) is True
        assert store.load("c") == rec(1)

    @pytest.mark.parametrize(
        "changes",
        [
            {"opened_at": math.inf},
            {"retry_at": -math.inf},
            {"updated_at": math.nan},
            {"expires_at": 1e20},
            {"retry_at": 10**400},
            {"opened_at": -1.0},
            {"failure_count": 2**31},
            {"successes": -1},
            {"failure_count": 5.0},
            {"failure_count": True},
            {"retry_at": True},
            {"failure_count": "5"},
            {"retry_at": "12"},
            {"probe_owner": 12, "probe_expires_at": NOW},
            {"reserved_for": "x" * 257, "reserved_until": NOW},
            {"state": ["open"]},
            {"v": 1.0},
        ],
        ids=[
            "infinite-time",
            "minus-infinite-time",
            "nan-time",
            "time-1e20",
            "time-10e400",
            "negative-time",
            "count-2e31",
            "negative-count",
            "float-count",
            "bool-count",
            "bool-time",
            "text-count",
            "text-time",
            "number-owner",
            "long-text",
            "list-state",
            "float-version",
        ],
    )
    def test_out_of_range_or_mistyped_fields_read_closed(
        self, make_store: Callable[[], Store], planter: Planter, changes: dict[str, object]
    ) -> None:
        """A field non-finite, out of range or mistyped reads as closed; a write replaces it."""
        store = make_store()
        planter.plant("c", 3, payload_with(**changes))
        assert store.load("c") == Record(CircuitState.CLOSED, 3)
        assert store.compare_and_set("c", None, rec(1)) is False
        assert store.compare_and_set("c", 3, rec(4)) is True
        assert store.load("c") == rec(4)

    @pytest.mark.parametrize(
        "payload",
        [
            "[" * 100_000 + "]" * 100_000,
            "[" * 8_000 + "]" * 8_000,
            '{"a":' * 5_000 + "1" + "}" * 5_000,
            payload_with(padding="x" * MAX_PAYLOAD_BYTES),
            payload_with(retry_at=0).replace('"retry_at": 0', '"retry_at": ' + "9" * 5_000),
            b"\xff\xfe{",
            b"",
        ],
        ids=[
            "nested-100000",
            "nested-8000",
            "nested-objects",
            "too-large",
            "5000-digit-number",
            "not-utf8",
            "empty",
        ],
    )
    def test_payloads_that_cannot_be_parsed_safely_read_closed(
        self, make_store: Callable[[], Store], planter: Planter, payload: str | bytes
    ) -> None:
        """Deep nesting, huge or undecodable payloads read as closed at their epoch, never
        raise."""
        store = make_store()
        planter.plant("c", 3, payload)
        assert store.load("c") == Record(CircuitState.CLOSED, 3)
        assert store.compare_and_set("c", 3, rec(4)) is True
        assert store.load("c") == rec(4)

    @pytest.mark.parametrize(
        "epoch", [MAX_EPOCH, 2**63 - 1, 10**40], ids=["max-epoch", "2e63-minus-1", "10e40"]
    )
    def test_epoch_out_of_range_reads_absent_and_is_replaceable(
        self,
        make_store: Callable[[], Store],
        planter: Planter,
        epoch: int,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """An epoch that could not be incremented reads as a foreign value, which a create
        replaces."""
        store = make_store()
        planter.plant("c", epoch, encode_payload(rec(5)))
        with caplog.at_level(logging.WARNING, logger="fleetbreaker"):
            assert store.load("c") is None
        assert "not a fleetbreaker record" in caplog.text
        assert store.compare_and_set("c", None, rec(1)) is True
        assert store.load("c") == rec(1)
        assert store.compare_and_set("c", 1, rec(2)) is True

    @settings(
        max_examples=60,
        deadline=None,
        # The fixtures give each example a fresh name, not a fresh store; and the method is
        # inherited on purpose, so several store classes of one session run it.
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.differing_executors,
        ],
        derandomize=True,
    )
    @given(fields=PAYLOADS, epoch=st.integers(0, 1000))
    def test_random_payloads_read_safely_and_write_back(
        self,
        make_store: Callable[[], Store],
        planter: Planter,
        fields: dict[str, object],
        epoch: int,
    ) -> None:
        """Any stored JSON reads without raising, and a record that reads can be written back."""
        store, name = make_store(), f"h-{uuid.uuid4().hex}"
        planter.plant(name, epoch, json.dumps(fields))
        loaded = store.load(name)
        assert loaded is not None
        assert loaded.epoch == epoch
        encode_payload(loaded)
        again = replace(loaded, epoch=epoch + 1, updated_at=NOW, expires_at=NOW + 60)
        assert store.compare_and_set(name, epoch, again) is True
        assert store.load(name, consistent=True) == again


# --- Clients in several processes. -------------------------------------------------------------


def _race_in_a_process(
    factory: Callable[[], Store], index: int, barrier: Any, expected: int | None, wins: Any
) -> None:
    """One process of the race: open a client, wait for the others, write once."""
    store = factory()
    try:
        barrier.wait(timeout=60)
        epoch = 1 if expected is None else expected + 1
        if store.compare_and_set("race", expected, rec(epoch, failure_count=index)):
            with wins.get_lock():
                wins[index] = 1
    finally:
        store.close()


class SharedAcrossProcessesContract(_Fixtures):
    """What a store shared by a fleet does: clients in separate processes see one circuit."""

    PROCESSES = 4

    def test_racing_writers_across_real_processes_exactly_one_wins(
        self, store_factory: Callable[[], Store]
    ) -> None:
        """Processes released together on one expected epoch: exactly one wins each round,
        and the winner's record is what every process then reads."""
        ctx = multiprocessing.get_context("spawn")
        here = store_factory()
        try:
            for expected in (None, 1):
                barrier, wins = ctx.Barrier(self.PROCESSES), ctx.Array("i", self.PROCESSES)
                workers = [
                    ctx.Process(
                        target=_race_in_a_process,
                        args=(store_factory, i, barrier, expected, wins),
                    )
                    for i in range(self.PROCESSES)
                ]
                for worker in workers:
                    worker.start()
                for worker in workers:
                    worker.join(timeout=120)
                    assert worker.exitcode == 0, f"a racing process failed ({worker.exitcode})"
                winners = [i for i in range(self.PROCESSES) if wins[i]]
                assert len(winners) == 1, f"expected one winner at {expected}, got {winners}"
                loaded = here.load("race", consistent=True)
                assert loaded is not None
                assert loaded.failure_count == winners[0]
        finally:
            here.close()
