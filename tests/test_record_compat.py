"""The record format stays v1 across the policy fields: a fleet may mix this release and the
previous one while it rolls out.

The policy fields (``open_count``, ``rule``, the rates, ``reports``, ``episode``) are additive
and written only when set. So: a payload the previous release wrote reads here with every
policy field at its default; the previous release (``tests/compat/protocol_v1_release.py``,
its ``_protocol.py`` vendored unchanged) reads every record this release writes as the same
circuit; what it writes over one of ours reads here as valid; and a malformed policy field is
a ``ValueError``, which a store reads as closed at that epoch rather than crashing.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetbreaker import Config, HistoryEntry, MemoryStore, Override
from fleetbreaker._limits import MAX_COUNT, MAX_EPOCH, MAX_REPORTS, MAX_TEXT, MAX_TIME
from fleetbreaker._protocol import (
    CONSECUTIVE,
    FAILURE_RATE,
    SLOW_CALL_RATE,
    Cause,
    CircuitState,
    Record,
    claim,
    probe_failed,
    probe_released,
    probe_succeeded,
    trip,
)
from fleetbreaker._quorum import report
from fleetbreaker._schedule import open_period_for
from fleetbreaker.stores.base import encode_payload
from tests.compat import protocol_v1_release as v1

T0 = 1_700_000_000.0
WEEK = 7 * 24 * 3600.0
V1_KEYS = (
    "v",
    "state",
    "opened_at",
    "retry_at",
    "probe_owner",
    "probe_expires_at",
    "successes",
    "failure_count",
    "updated_at",
    "expires_at",
    "reserved_for",
    "reserved_until",
)
POLICY_DEFAULTS = {
    "open_count": 0,
    "rule": None,
    "failure_rate": None,
    "slow_call_rate": None,
    "reports": (),
    "episode": None,
}


def v1_payload(state: str, **fields: object) -> dict[str, object]:
    """A payload exactly as the previous release wrote it: its twelve keys, nothing else."""
    payload: dict[str, object] = {
        "v": 1,
        "state": state,
        "opened_at": None,
        "retry_at": None,
        "probe_owner": None,
        "probe_expires_at": None,
        "successes": 0,
        "failure_count": 0,
        "updated_at": T0,
        "expires_at": T0 + WEEK,
        "reserved_for": None,
        "reserved_until": None,
    }
    assert fields.keys() <= payload.keys()
    return {**payload, **fields}


V1_PAYLOADS = {
    "closed": v1_payload("closed"),
    "open": v1_payload(
        "open",
        opened_at=T0,
        retry_at=T0 + 30,
        failure_count=5,
        reserved_for="host:1:ab",
        reserved_until=T0 + 31,
    ),
    "half-open-claimed": v1_payload(
        "half_open",
        opened_at=T0 - 30,
        probe_owner="host:2:cd",
        probe_expires_at=T0 + 30,
        successes=1,
        failure_count=5,
    ),
    "half-open-free": v1_payload(
        "half_open",
        opened_at=T0 - 30,
        successes=2,
        failure_count=5,
        reserved_for="host:2:cd",
        reserved_until=T0 + 1,
    ),
}


def policy_fields(record: Record) -> dict[str, object]:
    return {field: getattr(record, field) for field in POLICY_DEFAULTS}


def stored(payload: dict[str, object] | str, epoch: int = 9) -> Record | None:
    """What a store reads for ``payload`` (a dict is encoded as JSON) held at ``epoch``."""
    store = MemoryStore(wall_clock=lambda: 0.0)
    text = payload if isinstance(payload, str) else json.dumps(payload)
    store._put_raw("c", epoch, text, 1e9)
    return store.load("c")


# --- (a) this release reads what the previous one wrote ----------------------------------------


@pytest.mark.parametrize("name", V1_PAYLOADS)
def test_a_previous_release_payload_reads_with_every_policy_field_at_its_default(
    name: str,
) -> None:
    """A v1 payload without policy fields: open_count 0, no rule, rates, reports or episode."""
    record = Record.from_payload(9, V1_PAYLOADS[name])
    assert policy_fields(record) == POLICY_DEFAULTS
    assert record.episode_id == record.epoch == 9
    assert stored(V1_PAYLOADS[name]) == record


@pytest.mark.parametrize("name", V1_PAYLOADS)
def test_a_plain_record_is_written_back_exactly_as_the_previous_release_wrote_it(
    name: str,
) -> None:
    """With no policy field set, the payload keeps the previous release's keys and values."""
    payload = Record.from_payload(9, V1_PAYLOADS[name]).to_payload()
    assert payload == V1_PAYLOADS[name]
    assert tuple(payload) == V1_KEYS


def test_transitions_of_a_previous_release_record_start_the_policy_fields_afresh() -> None:
    """A failed probe on a v1 record counts the first failed recovery; a report on a v1
    closed record dates its episode from that record's epoch."""
    config = Config(fleet_minimum_reporters=2)
    half_open = Record.from_payload(9, V1_PAYLOADS["half-open-claimed"])
    reopened = probe_failed(half_open, token=9, now=T0 + 1, config=config)
    assert reopened is not None
    assert (reopened.open_count, reopened.rule) == (1, None)
    closed = Record.from_payload(9, V1_PAYLOADS["closed"])
    reported = report(
        closed,
        owner="a",
        now=T0 + 1,
        elapsed=0.0,
        config=config,
        failures=5,
        period=30.0,
        cause=Cause(),
    )
    assert reported is not None
    assert (reported.epoch, reported.episode, reported.reports) == (10, 9, (("a", T0 + 1),))


# --- (b) the previous release reads what this one writes, and writes over it -------------------


def read_by_previous_release(record: Record) -> v1.Record:
    """``record`` as the previous release reads it from a store (the same payload text)."""
    return v1.Record.from_payload(record.epoch, json.loads(encode_payload(record)))


def read_here(old: v1.Record) -> Record | None:
    """A record the previous release wrote, as this release reads it from a store."""
    text = json.dumps(old.to_payload(), separators=(",", ":"), allow_nan=False)
    return stored(text, old.epoch)


def same_circuit(new: Record, old: v1.Record) -> bool:
    """Whether two records of the two releases hold the same v1 fields."""
    payload = new.to_payload()
    return old.epoch == new.epoch and old.to_payload() == {key: payload[key] for key in V1_KEYS}


OWNERS = ["host-a:1:0a", "host-b:2:0b", "host-c:3:0c", "h" * MAX_TEXT]
CAUSES = st.builds(
    Cause,
    rule=st.sampled_from([CONSECUTIVE, FAILURE_RATE, SLOW_CALL_RATE]),
    failure_rate=st.none() | st.floats(min_value=0, max_value=1),
    slow_call_rate=st.none() | st.floats(min_value=0, max_value=1),
)
CONFIGS = st.builds(
    Config,
    recovery_timeout=st.sampled_from([1.0, 10.0, 30.0]),
    recovery_backoff_multiplier=st.sampled_from([1.0, 2.0, 1000.0]),
    recovery_jitter=st.sampled_from([0.0, 0.5]),
    success_threshold=st.integers(min_value=1, max_value=3),
    fleet_minimum_reporters=st.integers(min_value=1, max_value=4),
    fleet_report_window=st.sampled_from([5.0, 60.0]),
)


@st.composite
def written_records(draw: st.DrawFn) -> list[Record]:
    """Every record a run of this release's transitions writes: reports, trips with causes,
    claims, failed probes that re-open with a growing open_count, successes and releases."""
    config = draw(CONFIGS)
    now = T0 + draw(st.integers(min_value=-(10**8), max_value=10**8))
    record = Record(CircuitState.CLOSED, draw(st.integers(min_value=0, max_value=10**6)))
    written: list[Record] = []
    for _ in range(draw(st.integers(min_value=1, max_value=40))):
        now += draw(st.integers(min_value=0, max_value=100))
        owner = draw(st.sampled_from(OWNERS))
        elapsed = float(draw(st.integers(min_value=0, max_value=200)))
        hint = draw(st.none() | st.floats(min_value=0.5, max_value=1e6))
        draw_ = draw(st.floats(min_value=0, max_value=1))
        step = draw(st.sampled_from(["report", "trip", "claim", "success", "failure", "release"]))
        new: Record | None
        if step == "report":
            new = report(
                record,
                owner=owner,
                now=now,
                elapsed=elapsed,
                config=config,
                failures=draw(st.integers(min_value=0, max_value=2**40)),
                period=open_period_for(config, 0, draw=draw_, hint=hint),
                cause=draw(CAUSES),
            )
        elif step == "trip":
            new = trip(
                record,
                now=now,
                failures=draw(st.integers(min_value=0, max_value=2**40)),
                config=config,
                owner=draw(st.none() | st.sampled_from(OWNERS)),
                period=open_period_for(config, 0, draw=draw_, hint=hint),
                cause=draw(CAUSES),
            )
        elif step == "claim":
            new = claim(record, now=now, elapsed=elapsed, owner=owner, config=config)
        elif step == "failure":
            period = open_period_for(config, record.open_count + 1, draw=draw_, hint=hint)
            new = probe_failed(record, token=record.epoch, now=now, config=config, period=period)
        elif step == "success":
            new = probe_succeeded(record, token=record.epoch, now=now, config=config)
        else:
            new = probe_released(record, token=record.epoch, now=now, config=config)
        if new is not None:
            written.append(new)
            record = new
    return written


@given(records=written_records())
def test_the_previous_release_reads_every_record_this_one_writes_as_the_same_circuit(
    records: list[Record],
) -> None:
    """Trips with causes, re-opens with open_count, reports: the previous release reads the
    same state, epoch, times, owners and counts, ignoring the fields it does not know."""
    for record in records:
        old = read_by_previous_release(record)
        assert old.state.value == record.state.value
        assert same_circuit(record, old)


def test_the_previous_release_reads_a_record_with_every_policy_field_set() -> None:
    """Each policy field at its largest, together: the previous release reads the circuit."""
    record = Record(
        CircuitState.CLOSED,
        MAX_EPOCH - 1,
        updated_at=MAX_TIME,
        expires_at=MAX_TIME,
        open_count=MAX_COUNT,
        rule="r" * MAX_TEXT,
        failure_rate=1.0,
        slow_call_rate=0.0,
        reports=tuple((f"{i:03}" + "o" * (MAX_TEXT - 3), MAX_TIME) for i in range(MAX_REPORTS)),
        episode=MAX_EPOCH - 1,
    )
    old = read_by_previous_release(record)
    assert same_circuit(record, old)
    assert old.state is v1.CircuitState.CLOSED


def test_the_previous_release_reads_a_record_with_an_override_and_history() -> None:
    """The operations fields are ignored by the previous release: it reads the circuit."""
    record = Record(
        CircuitState.OPEN,
        12,
        opened_at=T0,
        retry_at=T0 + 30,
        updated_at=T0,
        expires_at=T0 + 3600,
        override=Override("closed", T0 + 600, "false alarm", "bob@h", T0),
        history=tuple(HistoryEntry(T0, "closed", "open", "p", "consecutive") for _ in range(20)),
    )
    old = read_by_previous_release(record)
    assert same_circuit(record, old)
    assert old.state is v1.CircuitState.OPEN


V1_CONFIG = Config(recovery_timeout=10, success_threshold=1, fleet_minimum_reporters=3)


def old_steps(old: v1.Record) -> list[v1.Record]:
    """Every record the previous release may write over ``old``, from any of its processes."""
    token, now = old.epoch, old.updated_at + 1
    steps = [
        v1.trip(old, now=now, failures=5, config=V1_CONFIG, owner="old:1:aa"),
        # Long after any period: the claim is due whoever holds a reservation.
        v1.claim(old, now=now, elapsed=1e9, owner="old:1:aa", config=V1_CONFIG),
        v1.probe_succeeded(old, token=token, now=now, config=V1_CONFIG),
        v1.probe_failed(old, token=token, now=now, config=V1_CONFIG),
        v1.probe_released(old, token=token, now=now, config=V1_CONFIG),
    ]
    return [step for step in steps if step is not None]


@given(records=written_records())
def test_what_the_previous_release_writes_over_a_record_of_ours_reads_here_as_valid(
    records: list[Record],
) -> None:
    """Whatever the previous release writes over one of our records reads here as that very
    record: its v1 fields, every policy field at its default (reports gone, open_count 0)."""
    for record in records:
        for old in old_steps(read_by_previous_release(record)):
            mine = read_here(old)
            assert mine is not None
            assert same_circuit(mine, old)
            assert policy_fields(mine) == POLICY_DEFAULTS
            assert mine.episode_id == mine.epoch


def test_the_previous_release_tripping_a_closed_record_with_reports_drops_them() -> None:
    """Its trip of our closed record holding reports reads here as a plain open record."""
    reported = report(
        Record(CircuitState.CLOSED, 4, updated_at=T0, expires_at=T0 + WEEK),
        owner="new:1:aa",
        now=T0 + 1,
        elapsed=0.0,
        config=V1_CONFIG,
        failures=5,
        period=30.0,
        cause=Cause(FAILURE_RATE, failure_rate=0.5),
    )
    assert reported is not None
    assert reported.reports
    old = v1.trip(
        read_by_previous_release(reported),
        now=T0 + 2,
        failures=7,
        config=V1_CONFIG,
        owner="old:2:bb",
    )
    assert old is not None
    mine = read_here(old)
    assert mine == Record(
        CircuitState.OPEN,
        6,
        opened_at=T0 + 2,
        retry_at=T0 + 12,
        failure_count=7,
        updated_at=T0 + 2,
        expires_at=T0 + 2 + WEEK,
        reserved_for="old:2:bb",
        reserved_until=T0 + 13,
    )


def test_the_previous_release_reopening_our_probe_resets_open_count() -> None:
    """Its failed probe over our backed-off half-open record reads here with open_count 0."""
    config = Config(recovery_timeout=10, recovery_backoff_multiplier=2)
    half_open = Record(
        CircuitState.HALF_OPEN,
        20,
        opened_at=T0 - 80,
        probe_owner="old:1:aa",
        probe_expires_at=T0 + 10,
        failure_count=5,
        updated_at=T0,
        expires_at=T0 + WEEK,
        open_count=3,
        rule=SLOW_CALL_RATE,
        slow_call_rate=0.9,
    )
    old = v1.probe_failed(read_by_previous_release(half_open), token=20, now=T0 + 1, config=config)
    assert old is not None
    mine = read_here(old)
    assert mine is not None
    assert (mine.state, mine.epoch, mine.open_count, mine.rule) == (CircuitState.OPEN, 21, 0, None)
    assert mine.retry_at == T0 + 11


# --- (c) a malformed policy field is a ValueError, and a store reads it as closed -------------

VALID = Record(
    CircuitState.CLOSED,
    9,
    updated_at=T0,
    expires_at=T0 + WEEK,
    reports=(("a", T0 - 1), ("b", T0 - 2)),
    episode=7,
).to_payload()

REPORT_CASES: list[Any] = [
    ("not-a-list", "a,1"),
    ("an-object", {"a": T0}),
    ("a-number", 5),
    ("true", True),
    ("too-many", [["a", T0]] * (MAX_REPORTS + 1)),
    ("not-a-pair", ["a", T0]),
    ("one-item", [["a"]]),
    ("three-items", [["a", T0, 1]]),
    ("an-object-item", [{"owner": "a", "at": T0}]),
    ("owner-a-number", [[1, T0]]),
    ("owner-null", [[None, T0]]),
    ("owner-a-list", [[["a"], T0]]),
    ("owner-too-long", [["a" * (MAX_TEXT + 1), T0]]),
    ("time-negative", [["a", -1]]),
    ("time-nan", [["a", math.nan]]),
    ("time-inf", [["a", math.inf]]),
    ("time-past-max", [["a", MAX_TIME + 1]]),
    ("time-huge-int", [["a", 10**400]]),
    ("time-true", [["a", True]]),
    ("time-text", [["a", "1700000000"]]),
    ("time-null", [["a", None]]),
]
BAD_FIELDS: list[Any] = [
    *(pytest.param("reports", value, id=f"reports-{name}") for name, value in REPORT_CASES),
    *(
        pytest.param(field, value, id=f"{field}-{value!r}")
        for field in ("failure_rate", "slow_call_rate")
        for value in (-0.1, 1.0000001, 2, True, False, "0.5", math.nan, math.inf, [0.5])
    ),
    *(
        pytest.param("open_count", value, id=f"open_count-{value!r}")
        for value in (-1, MAX_COUNT + 1, True, 1.0, 1.5, "3", None, 10**400)
    ),
    *(
        pytest.param("episode", value, id=f"episode-{value!r}")
        for value in (-1, MAX_EPOCH, 2**64, True, 7.0, "7", [7])
    ),
    *(
        pytest.param("rule", value, id=f"rule-{value!r:.20}")
        for value in (5, True, ["consecutive"], "r" * (MAX_TEXT + 1))
    ),
]


@pytest.mark.parametrize(("field", "value"), BAD_FIELDS)
def test_a_malformed_policy_field_is_a_value_error(field: str, value: object) -> None:
    """Each policy field is held to its kind and bounds: anything else is a ValueError."""
    with pytest.raises(ValueError, match=field.replace("reports", "report")):
        Record.from_payload(9, {**VALID, field: value})


@pytest.mark.parametrize(("field", "value"), BAD_FIELDS)
def test_a_store_reads_a_malformed_policy_field_as_closed_at_its_epoch(
    field: str, value: object
) -> None:
    """A record with a bad policy field reads as closed at its epoch, never raising."""
    assert stored({**VALID, field: value}) == Record(CircuitState.CLOSED, 9)


@pytest.mark.parametrize(
    "text",
    [
        '[["a",NaN]]',
        '[["a",Infinity]]',
        '[["a",-Infinity]]',
        '[["a",1e999]]',
        '[["a",-0.5]]',
        '[["a",true]]',
    ],
    ids=["nan", "infinity", "minus-infinity", "overflowing-literal", "negative", "true"],
)
def test_a_store_reads_a_report_time_json_cannot_hold_as_closed(text: str) -> None:
    """NaN and infinity literals (which Python's json reads) in a report read as closed."""
    payload = json.dumps(VALID).replace(json.dumps(VALID["reports"]), text)
    assert text in payload
    assert stored(payload) == Record(CircuitState.CLOSED, 9)


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("reports", None, ()),
        ("reports", [], ()),
        ("reports", [["a" * MAX_TEXT, 0]], (("a" * MAX_TEXT, 0.0),)),
        ("reports", [["", MAX_TIME]], (("", MAX_TIME),)),
        ("reports", [["a", T0]] * MAX_REPORTS, (("a", T0),) * MAX_REPORTS),
        ("failure_rate", 0, 0.0),
        ("failure_rate", 1, 1.0),
        ("slow_call_rate", 0.5, 0.5),
        ("slow_call_rate", None, None),
        ("open_count", 0, 0),
        ("open_count", MAX_COUNT, MAX_COUNT),
        ("episode", 0, 0),
        ("episode", MAX_EPOCH - 1, MAX_EPOCH - 1),
        ("episode", None, None),
        ("rule", "r" * MAX_TEXT, "r" * MAX_TEXT),
        ("rule", "a rule of a later release", "a rule of a later release"),
    ],
    ids=lambda value: f"{value!r:.24}",
)
def test_policy_fields_at_their_bounds_read(field: str, value: object, expected: object) -> None:
    """The edges of each policy field read as values, through a store too."""
    record = Record.from_payload(9, {**VALID, field: value})
    assert getattr(record, field) == expected
    assert type(getattr(record, field)) is type(expected)
    assert stored({**VALID, field: value}) == record


def test_a_time_in_a_report_reads_as_a_float() -> None:
    """A report time stored as a JSON integer reads as a float of the same value."""
    record = Record.from_payload(9, {**VALID, "reports": [["a", 1234]]})
    ((_, at),) = record.reports
    assert type(at) is float
    assert at == 1234.0


UNKNOWN: dict[str, dict[str, object]] = {
    "a-later-field": {"quorum_hint": 3},
    "a-nested-later-field": {"timeline": [[1, 2], {"x": None}]},
}


@pytest.mark.parametrize("name", UNKNOWN)
def test_fields_of_a_later_release_are_ignored_here_too(name: str) -> None:
    """Like the previous release, this one ignores fields it does not know."""
    assert Record.from_payload(9, {**VALID, **UNKNOWN[name]}) == Record.from_payload(9, VALID)
