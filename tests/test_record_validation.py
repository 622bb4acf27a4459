"""Record.from_payload: a stored record is untrusted input, and only a valid record reads.

Every field is held to its kind (a count, a time, a text) and its bounds, never coerced: JSON's
``true`` is not 1, ``1.5`` is not a count, ``"12"`` is not a time. Anything else raises
``ValueError`` (never ``TypeError`` or ``OverflowError``), which a store reads as closed.
"""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetbreaker._limits import MAX_COUNT, MAX_EPOCH, MAX_TEXT, MAX_TIME
from fleetbreaker._protocol import CircuitState, Record

COUNTS = ["successes", "failure_count"]
TIMES = ["opened_at", "retry_at", "probe_expires_at", "updated_at", "expires_at", "reserved_until"]
REQUIRED_TIMES = ["updated_at", "expires_at"]
TEXTS = ["probe_owner", "reserved_for"]
# The text field whose deadline each of these times is: no owner without a deadline.
OWNERS = {"probe_expires_at": "probe_owner", "reserved_until": "reserved_for"}

# A valid half-open record with every field set, so that each can be changed alone.
FULL = Record(
    state=CircuitState.HALF_OPEN,
    epoch=9,
    opened_at=1000.5,
    retry_at=1010.5,
    probe_owner="host:1:ab",
    probe_expires_at=1020.5,
    successes=2,
    failure_count=5,
    updated_at=1001.5,
    expires_at=2001.5,
    reserved_for="host:2:cd",
    reserved_until=1002.5,
).to_payload()


def read(**changes: object) -> Record:
    """``FULL`` with ``changes`` (a value of ``...`` drops the field), read at epoch 9."""
    payload = {**FULL, **changes}
    return Record.from_payload(9, {k: v for k, v in payload.items() if v is not ...})


def test_minimal_payload_reads_as_a_closed_record_with_zero_counts_and_times() -> None:
    """Counts and times a payload leaves out read as 0: the record ABSENT would write."""
    record = Record.from_payload(7, {"v": 1, "state": "closed"})
    assert record == Record(CircuitState.CLOSED, 7)
    assert (record.successes, record.failure_count) == (0, 0)
    assert (record.updated_at, record.expires_at) == (0.0, 0.0)


@pytest.mark.parametrize("field", [*COUNTS, *REQUIRED_TIMES])
def test_each_defaulted_field_alone_reads_as_zero(field: str) -> None:
    """Leaving out one count or required time reads it as 0, keeping every other field."""
    assert getattr(read(**{field: ...}), field) == 0


def test_a_full_record_reads_back_field_for_field() -> None:
    """Every field of a valid payload is read from its own key."""
    assert read().to_payload() == FULL


@pytest.mark.parametrize("field", TIMES)
def test_times_read_as_floats_even_when_stored_as_integers(field: str) -> None:
    """A time stored as a JSON integer reads as a float of the same value."""
    value = getattr(read(**{field: 1234}), field)
    assert type(value) is float
    assert value == 1234.0


@pytest.mark.parametrize(
    "value",
    [True, False, 1.5, 5.0, "12", "", -1, MAX_COUNT + 1, None, [1], {"n": 1}],
    ids=[
        "true",
        "false",
        "1.5",
        "5.0",
        "digits",
        "empty-text",
        "minus-1",
        "over",
        "null",
        "list",
        "object",
    ],
)
@pytest.mark.parametrize("field", COUNTS)
def test_counts_are_integers_in_range_never_coerced(field: str, value: object) -> None:
    """A count that is a bool, a float, text, null or out of [0, MAX_COUNT] raises ValueError."""
    with pytest.raises(ValueError, match=field):
        read(**{field: value})


@pytest.mark.parametrize("value", [0, 1, MAX_COUNT], ids=["zero", "one", "max"])
@pytest.mark.parametrize("field", COUNTS)
def test_counts_accept_their_whole_range(field: str, value: int) -> None:
    """Every integer in [0, MAX_COUNT] is a count."""
    assert getattr(read(**{field: value}), field) == value


@pytest.mark.parametrize(
    "value",
    [
        True,
        False,
        "12",
        "",
        -1,
        -0.5,
        MAX_TIME + 1,
        int(MAX_TIME) + 1,
        10**400,
        -(10**400),
        math.inf,
        -math.inf,
        math.nan,
        [1],
        {"t": 1},
    ],
    ids=[
        "true",
        "false",
        "digits",
        "empty-text",
        "minus-1",
        "minus-half",
        "past-max-float",
        "past-max-int",
        "10e400",
        "minus-10e400",
        "inf",
        "minus-inf",
        "nan",
        "list",
        "object",
    ],
)
@pytest.mark.parametrize("field", TIMES)
def test_times_are_numbers_in_range_never_coerced(field: str, value: object) -> None:
    """A time that is a bool, text, non-finite or out of [0, MAX_TIME] raises ValueError."""
    with pytest.raises(ValueError, match=field):
        read(**{field: value})


@pytest.mark.parametrize("field", REQUIRED_TIMES)
def test_required_times_are_never_null(field: str) -> None:
    """updated_at and expires_at may be left out (0), but not null."""
    with pytest.raises(ValueError, match=field):
        read(**{field: None})


@pytest.mark.parametrize(
    "value", [0, 0.0, 1e-9, MAX_TIME, int(MAX_TIME)], ids=["0", "0.0", "tiny", "max", "max-int"]
)
@pytest.mark.parametrize("field", TIMES)
def test_times_accept_their_whole_range(field: str, value: float) -> None:
    """Every number in [0, MAX_TIME] is a time."""
    assert getattr(read(**{field: value}), field) == value


@pytest.mark.parametrize(
    "value",
    [12, True, 1.5, "x" * (MAX_TEXT + 1), ["a"], {"a": 1}],
    ids=["number", "true", "float", "too-long", "list", "object"],
)
@pytest.mark.parametrize("field", TEXTS)
def test_texts_are_short_strings_or_null(field: str, value: object) -> None:
    """A text field that is not a string of at most MAX_TEXT characters raises ValueError."""
    with pytest.raises(ValueError, match=field):
        read(**{field: value})


@pytest.mark.parametrize("value", ["", "ü" * MAX_TEXT, None], ids=["empty", "max", "null"])
@pytest.mark.parametrize("field", TEXTS)
def test_texts_accept_up_to_max_text_characters(field: str, value: str | None) -> None:
    """Any string of at most MAX_TEXT characters (not bytes), or null, is a text field."""
    assert getattr(read(**{field: value}), field) == value


@pytest.mark.parametrize("field", ["opened_at", "retry_at", "probe_expires_at", "reserved_until"])
def test_optional_times_may_be_null_or_left_out(field: str) -> None:
    """An optional time reads as None whether it is null or missing (its owner gone too)."""
    extra = {OWNERS[field]: None} if field in OWNERS else {}
    assert getattr(read(**{field: None}, **extra), field) is None
    assert getattr(read(**{field: ...}, **extra), field) is None


@pytest.mark.parametrize(
    "epoch", [-1, MAX_EPOCH, True, 1.5], ids=["minus-1", "max-epoch", "true", "float"]
)
def test_epoch_must_be_an_integer_below_max_epoch(epoch: int) -> None:
    """An epoch that could not be incremented and still be valid raises ValueError."""
    with pytest.raises(ValueError, match="epoch"):
        Record.from_payload(epoch, dict(FULL))


@pytest.mark.parametrize("epoch", [0, 1, MAX_EPOCH - 1], ids=["zero", "one", "largest"])
def test_epoch_accepts_zero_to_max_epoch_minus_one(epoch: int) -> None:
    """Epoch 0 (never written) and the largest incrementable epoch are both valid."""
    assert Record.from_payload(epoch, dict(FULL)).epoch == epoch


@pytest.mark.parametrize(
    "changes",
    [
        {"v": ...},
        {"v": None},
        {"v": 0},
        {"v": 2},
        {"v": True},
        {"v": 1.0},
        {"v": "1"},
        {"state": ...},
        {"state": 1},
        {"state": "ajar"},
        {"state": ["open"]},
        {"state": "open", "retry_at": None},
        {"probe_expires_at": None},
        {"reserved_until": None},
    ],
    ids=[
        "no-version",
        "null-version",
        "version-0",
        "version-2",
        "bool-version",
        "float-version",
        "text-version",
        "no-state",
        "number-state",
        "unknown-state",
        "list-state",
        "open-without-retry",
        "claim-without-expiry",
        "reservation-without-expiry",
    ],
)
def test_records_that_do_not_hold_together_are_refused(changes: dict[str, object]) -> None:
    """Unknown versions and states, and an open or claim or reservation without its deadline."""
    with pytest.raises(ValueError):
        read(**changes)


@pytest.mark.parametrize(
    "changes",
    [
        {"state": "open", "probe_owner": None, "probe_expires_at": None},
        {"state": "closed", "retry_at": None},
        {"state": "half_open", "retry_at": None},
        {"probe_owner": None},
        {"reserved_for": None},
        {"unknown": [1, {"x": None}]},
    ],
    ids=[
        "open",
        "closed-without-retry",
        "half-open-without-retry",
        "expiry-without-claim",
        "expiry-without-reservation",
        "unknown-field",
    ],
)
def test_records_that_hold_together_are_read(changes: dict[str, object]) -> None:
    """Only OPEN needs retry_at; a deadline may outlive its owner; unknown fields are ignored."""
    record = read(**changes)
    assert record.to_payload() == {**FULL, **{k: v for k, v in changes.items() if k in FULL}}


def _is_count(value: object) -> bool:
    return type(value) is int and 0 <= value <= MAX_COUNT


def _is_time(value: object) -> bool:
    return type(value) in (int, float) and 0 <= value <= MAX_TIME  # type: ignore[operator]


def _is_text(value: object) -> bool:
    return value is None or (type(value) is str and len(value) <= MAX_TEXT)


ORACLE = {
    **dict.fromkeys(COUNTS, _is_count),
    **dict.fromkeys(REQUIRED_TIMES, _is_time),
    **dict.fromkeys(set(TIMES) - set(REQUIRED_TIMES), lambda v: v is None or _is_time(v)),
    **dict.fromkeys(TEXTS, _is_text),
}
JSON_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.integers(MAX_COUNT - 2, MAX_COUNT + 2),
    st.floats(),
    st.floats(MAX_TIME - 2, MAX_TIME + 2),
    st.text(max_size=3),
    st.text(min_size=MAX_TEXT - 1, max_size=MAX_TEXT + 1),
    st.lists(st.integers(), max_size=2),
)


@settings(max_examples=300)
@given(field=st.sampled_from(sorted(ORACLE)), value=JSON_VALUES)
def test_a_field_reads_exactly_when_it_is_of_its_kind(field: str, value: object) -> None:
    """One field set to any JSON value: read iff it is of its kind, and then written back."""
    extra = {OWNERS[field]: None} if field in OWNERS and value is None else {}
    try:
        record = read(**{field: value}, **extra)
    except ValueError:
        assert not ORACLE[field](value)
    else:
        assert ORACLE[field](value)
        assert getattr(record, field) == value
        payload = json.loads(json.dumps(record.to_payload(), allow_nan=False))
        assert Record.from_payload(record.epoch, payload) == record
