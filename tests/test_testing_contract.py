"""The published store contract catches broken stores: run in a separate pytest session
against deliberately broken stores, the checks that guard each broken rule fail; against a
sound store, every check passes."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

# A test module as a third party writes it: a store of its own (here: a MemoryStore with one
# rule broken, chosen by BROKEN) and the published suite subclassed with its fixtures.
STORE_TESTS = """
import functools, json
import pytest
from fleetbreaker import MemoryStore
from fleetbreaker.stores.base import Record, Write
from fleetbreaker.testing.store_contract import (
    PlantedValuesContract, StoreContract,
)

BROKEN = {broken!r}


class SuspectStore(MemoryStore):
    def compare_and_set(self, name, expected_epoch, record):
        if BROKEN == "cas-ignores-epoch" and expected_epoch is not None:
            # Writes over whatever is stored, as long as something is.
            if self.load(name) is None:
                return False
            self._put(name, Write.of(record))
            return True
        return super().compare_and_set(name, expected_epoch, record)

    def load(self, name, *, consistent=False):
        if BROKEN == "load-raises-on-garbage":
            stored = self._read(name, consistent=consistent)
            if stored is None or not isinstance(stored.epoch, int):
                return None
            return Record.from_payload(stored.epoch, json.loads(stored.payload))
        return super().load(name, consistent=consistent)

    def _put(self, name, new):
        if BROKEN == "ignores-ttl":
            new = Write(new.epoch, new.payload, 10 ** 9)
        super()._put(name, new)


class Planter:
    def __init__(self, store):
        self.store = store

    def plant(self, name, epoch, payload):
        self.store._put_raw(name, epoch, payload, 4e9)

    def plant_corrupt_payload(self, name, epoch):
        self.store._put_raw(name, epoch, "{{not json", 4e9)

    def plant_foreign(self, name):
        self.store._put_raw(name, "twelve", "hello", 4e9)


class TestSuspectStore(StoreContract, PlantedValuesContract):
    @pytest.fixture
    def shared(self):
        return SuspectStore()

    @pytest.fixture
    def make_store(self, shared):
        return lambda: shared

    @pytest.fixture
    def planter(self, shared):
        return Planter(shared)
"""


def run_suite(pytester: pytest.Pytester, broken: str, more: str = "") -> pytest.RunResult:
    """The published suite, run in its own pytest session against ``SuspectStore``."""
    pytester.makepyfile(test_suspect_store=STORE_TESTS.format(broken=broken) + more)
    return pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider")


def failed_tests(result: pytest.RunResult) -> set[str]:
    """The names (without parameters) of the tests that failed."""
    names = set()
    for line in result.outlines:
        if line.startswith("FAILED "):
            test = line.split("::")[-1].split(" ")[0]
            names.add(test.split("[")[0])
    return names


@pytest.mark.timeout(300)
def test_a_sound_store_passes_every_check(pytester: pytest.Pytester) -> None:
    """The control: the same module with nothing broken passes, with no test skipped, and
    so does a second store class of the same session (the suite's methods are shared)."""
    second = "\n\nclass TestSecondStore(TestSuspectStore):\n    pass\n"
    result = run_suite(pytester, "nothing", second)
    outcomes = result.parseoutcomes()
    assert set(outcomes) == {"passed"}, result.stdout.str()
    assert outcomes["passed"] >= 2 * 55


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    ("broken", "caught_by"),
    [
        (
            "cas-ignores-epoch",
            {
                "test_write_only_at_expected_epoch",
                "test_racing_writers_exactly_one_wins",
                "test_differential_against_memory_store",
            },
        ),
        (
            "load-raises-on-garbage",
            {
                "test_corrupt_payload_reads_closed_and_is_replaceable",
                "test_foreign_value_reads_absent_and_is_replaceable",
                "test_payloads_that_cannot_be_parsed_safely_read_closed",
                "test_out_of_range_or_mistyped_fields_read_closed",
                "test_random_payloads_read_safely_and_write_back",
            },
        ),
        (
            "ignores-ttl",
            {"test_expired_record_is_absent", "test_record_lives_its_ttl_on_the_stores_clock"},
        ),
    ],
)
def test_a_broken_store_fails_the_checks_of_its_broken_rule(
    pytester: pytest.Pytester, broken: str, caught_by: set[str]
) -> None:
    """Each broken rule turns the checks that guard it red (and the suite fails)."""
    result = run_suite(pytester, broken)
    assert result.ret != 0
    failed = failed_tests(result)
    assert caught_by <= failed, result.stdout.str()


def test_a_subclass_without_make_store_errors_instead_of_passing(
    pytester: pytest.Pytester,
) -> None:
    """A contract class whose fixture was never provided errors at every check: never a
    silent pass."""
    pytester.makepyfile(
        test_forgot="""
from fleetbreaker.testing.store_contract import PlantedValuesContract, StoreContract
from fleetbreaker import MemoryStore
import pytest

class TestForgotMakeStore(StoreContract):
    pass

class TestForgotPlanter(PlantedValuesContract):
    @pytest.fixture
    def make_store(self):
        return MemoryStore
"""
    )
    result = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider")
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) == 0
    assert outcomes["errors"] > 0
    result.stdout.fnmatch_lines(
        [
            "*TestForgotMakeStore must override the make_store fixture*",
            "*TestForgotPlanter subclasses PlantedValuesContract but does not override the plan*",
        ]
    )
