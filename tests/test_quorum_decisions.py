"""Fleet quorum decisions: which reports are live, and what a process's report writes.

``live_reports`` and ``report`` are pure: a record and plain numbers in, a record (or ``None``)
out. Every time of a record is on its one writer's clock, so a report's age is
``(updated_at - at) + elapsed`` and no two processes' clocks are ever compared.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetbreaker import Config
from fleetbreaker._limits import MAX_EPOCH, MAX_PAYLOAD_BYTES, MAX_REPORTS, MAX_TEXT, MAX_WALL
from fleetbreaker._protocol import (
    CONSECUTIVE,
    FAILURE_RATE,
    QUORUM,
    SLOW_CALL_RATE,
    Cause,
    CircuitState,
    Record,
    trip,
)
from fleetbreaker._quorum import live_reports, report
from fleetbreaker.stores.base import encode_payload

T0 = 1_700_000_000.0
YEAR = 365 * 24 * 3600
WEEK = 7 * 24 * 3600.0
WINDOW = 60.0
PERIOD = 30.0
CAUSE = Cause(rule=FAILURE_RATE, failure_rate=0.75)
CLOSED = Record(CircuitState.CLOSED, 7, updated_at=T0, expires_at=T0 + WEEK)


def quorum(reporters: int, window: float = WINDOW) -> Config:
    """A config that opens fleet-wide once ``reporters`` processes report within ``window``."""
    return Config(fleet_minimum_reporters=reporters, fleet_report_window=window)


def file(
    record: Record,
    owner: str,
    *,
    now: float,
    elapsed: float = 0.0,
    config: Config | None = None,
    cause: Cause = CAUSE,
) -> Record | None:
    """``owner``'s report on ``record`` (quorum of 3 by default), 5 failures, 30 s period."""
    return report(
        record,
        owner=owner,
        now=now,
        elapsed=elapsed,
        config=quorum(3) if config is None else config,
        failures=5,
        period=PERIOD,
        cause=cause,
    )


def closed_with(*reports: tuple[str, float], updated_at: float = T0) -> Record:
    """A closed record written at ``updated_at`` holding ``reports``."""
    return replace(CLOSED, updated_at=updated_at, reports=reports)


def ages(record: Record) -> dict[str, float]:
    """Each report's age as the record's writer dated it (``updated_at - at``)."""
    return {owner: record.updated_at - at for owner, at in record.reports}


@pytest.mark.parametrize(
    "cause",
    [Cause(), CAUSE, Cause(rule=SLOW_CALL_RATE, failure_rate=0.1, slow_call_rate=0.9)],
    ids=["consecutive", "failure-rate", "slow-call-rate"],
)
def test_a_quorum_of_one_trips_at_once_keeping_the_cause(cause: Cause) -> None:
    """K=1: the report is the trip itself, its rule and rates as the process saw them."""
    config = quorum(1)
    new = file(CLOSED, "a", now=T0 + 5, config=config, cause=cause)
    assert new == trip(
        CLOSED, now=T0 + 5, failures=5, config=config, owner="a", period=PERIOD, cause=cause
    )
    assert new is not None
    assert (new.rule, new.failure_rate, new.slow_call_rate) == (
        cause.rule,
        cause.failure_rate,
        cause.slow_call_rate,
    )
    assert new.rule != QUORUM


def test_a_quorum_of_three_builds_two_reports_then_trips() -> None:
    """K=3: two reports keep the record closed at epoch+1 each; the third writes the trip."""
    first = file(CLOSED, "a", now=T0 + 1)
    assert first == replace(
        CLOSED,
        epoch=8,
        episode=7,
        reports=(("a", T0 + 1),),
        updated_at=T0 + 1,
        expires_at=T0 + 1 + WEEK,
    )
    # b's clock runs 1000 s behind and it read the record 4 s after a wrote it.
    second = file(first, "b", now=T0 - 995, elapsed=4)
    assert second == replace(
        first,
        epoch=9,
        reports=(("a", T0 - 999), ("b", T0 - 995)),
        updated_at=T0 - 995,
        expires_at=T0 - 995 + WEEK,
    )
    assert second.episode_id == 7  # the closed episode that began at epoch 7 goes on
    third = file(second, "c", now=T0 - 990, elapsed=5)
    assert third == trip(
        second,
        now=T0 - 990,
        failures=5,
        config=quorum(3),
        owner="c",
        period=PERIOD,
        cause=replace(CAUSE, rule=QUORUM),
    )
    assert third is not None
    assert (third.state, third.epoch, third.rule, third.failure_rate) == (
        CircuitState.OPEN,
        10,
        QUORUM,
        0.75,
    )
    assert (third.reports, third.episode, third.retry_at) == ((), None, T0 - 990 + PERIOD)


def test_a_reader_whose_clock_says_the_record_is_old_counts_no_report_in_it() -> None:
    """A reader that held the record for no time, but whose clock says it was written long ago
    (a process that just started, after an hour with no writes), counts none of its reports."""
    first = file(CLOSED, "a", now=T0)
    assert first is not None
    second = file(first, "b", now=T0 + 1, elapsed=1)
    assert second is not None
    assert len(second.reports) == 2
    late = file(second, "c", now=T0 + 3600, elapsed=0)
    assert late is not None
    assert late.state is CircuitState.CLOSED  # no quorum on hour-old reports
    assert late.reports == (("c", T0 + 3600),)


def test_a_clock_ahead_can_only_age_reports() -> None:
    """A writer whose clock runs ahead of the record's writer drops reports its clock calls
    old; one whose clock runs behind still counts them by its own monotonic clock."""
    first = file(CLOSED, "a", now=T0)
    assert first is not None
    ahead = file(first, "b", now=T0 + 1000, elapsed=4)
    assert ahead is not None
    assert ahead.reports == (("b", T0 + 1000),)
    behind = file(first, "b", now=T0 - 1000, elapsed=4)
    assert behind is not None
    assert behind.reports == (("a", T0 - 1004), ("b", T0 - 1000))


def test_the_first_report_keeps_the_records_other_fields() -> None:
    """A report changes only epoch, episode, reports and the write's times."""
    record = replace(CLOSED, failure_count=3, rule=CONSECUTIVE, open_count=0)
    new = file(record, "a", now=T0 + 2)
    assert new is not None
    assert replace(new, epoch=7, episode=None, reports=(), updated_at=T0, expires_at=T0 + WEEK) == (
        record
    )


def test_the_same_owner_reporting_twice_counts_once() -> None:
    """A second report of one process replaces its first: no quorum of one process."""
    config = quorum(2)
    first = file(CLOSED, "a", now=T0 + 1, config=config)
    assert first is not None
    again = file(first, "a", now=T0 + 20, elapsed=19, config=config)
    assert again is not None
    assert again.state is CircuitState.CLOSED
    assert again.reports == (("a", T0 + 20),)
    assert again.episode == 7
    tripped = file(again, "b", now=T0 + 21, elapsed=1, config=config)
    assert tripped is not None
    assert tripped.state is CircuitState.OPEN


def test_duplicate_reports_of_one_owner_count_once_at_the_youngest_age() -> None:
    """A record holding one owner twice (a foreign writer) yields that owner once, youngest."""
    record = closed_with(("a", T0 - 30), ("a", T0 - 10), ("a", T0 - 50))
    assert live_reports(record, elapsed=2, window=WINDOW) == {"a": 12}
    new = file(record, "b", now=T0 + 2, elapsed=2)
    assert new is not None
    assert new.state is CircuitState.CLOSED  # a and b: two of three


def test_a_reports_age_is_the_records_difference_plus_the_readers_elapsed() -> None:
    """Age = (updated_at - at) + elapsed, whatever the absolute times say."""
    record = closed_with(("a", T0 - 10), ("b", T0 - 40), updated_at=T0)
    assert live_reports(record, elapsed=5, window=WINDOW) == {"a": 15, "b": 45}


@pytest.mark.parametrize(
    ("age", "live"),
    [(0.0, True), (59.0, True), (WINDOW - 1e-6, True), (WINDOW, False), (WINDOW + 1, False)],
    ids=["fresh", "old", "just-inside", "at-the-window", "past"],
)
def test_a_report_as_old_as_the_window_is_dropped(age: float, live: bool) -> None:
    """A report counts while its age is below the window; at the window it has expired."""
    record = closed_with(("a", T0 - age + 4), updated_at=T0)
    assert ("a" in live_reports(record, elapsed=4, window=WINDOW)) is live


def test_an_expired_report_does_not_count_towards_the_quorum_nor_is_kept() -> None:
    """The report a expired: b's report is the first of a fresh count, c's the second."""
    record = closed_with(("a", T0 - WINDOW), ("b", T0 - 1))
    second = file(record, "c", now=T0 + 10)
    assert second is not None
    assert second.state is CircuitState.CLOSED
    assert {owner for owner, _ in second.reports} == {"b", "c"}


def test_a_report_dated_after_its_record_is_as_young_as_the_record() -> None:
    """A report at > updated_at (a foreign writer) counts as age 0 plus elapsed, not negative."""
    record = closed_with(("a", T0 + 500), updated_at=T0)
    assert live_reports(record, elapsed=0, window=WINDOW) == {"a": 0.0}
    assert live_reports(record, elapsed=7, window=WINDOW) == {"a": 7.0}
    new = file(record, "b", now=T0 + 7, elapsed=7)
    assert new is not None
    assert ages(new) == {"a": 7.0, "b": 0.0}


def test_a_negative_elapsed_counts_as_none() -> None:
    """A reader's elapsed below 0 (never measured so, but not trusted) adds nothing."""
    record = closed_with(("a", T0 - 10))
    assert live_reports(record, elapsed=-100, window=WINDOW) == {"a": 10.0}


@pytest.mark.parametrize(
    "state", [CircuitState.OPEN, CircuitState.HALF_OPEN], ids=["open", "half-open"]
)
def test_only_a_closed_record_has_live_reports_or_takes_one(state: CircuitState) -> None:
    """An open or half-open record has no live reports, and a report on it writes nothing."""
    record = replace(closed_with(("a", T0)), state=state, retry_at=T0 + 30)
    assert live_reports(record, elapsed=0, window=WINDOW) == {}
    assert file(record, "b", now=T0 + 1) is None
    assert file(record, "b", now=T0 + 1, config=quorum(1)) is None


@given(
    reporters=st.integers(min_value=2, max_value=MAX_REPORTS),
    others=st.dictionaries(
        st.text(min_size=1, max_size=8),
        st.integers(min_value=0, max_value=int(WINDOW) - 4),  # still live 3 s later
        max_size=MAX_REPORTS,
    ),
    owner=st.text(min_size=1, max_size=8),
)
def test_a_report_keeps_every_live_report_below_the_quorum_and_trips_at_it(
    reporters: int, others: dict[str, int], owner: str
) -> None:
    """With K-2 or fewer live others the record keeps them all plus ours; else it trips."""
    record = closed_with(*((other, T0 - age) for other, age in others.items()))
    new = file(record, owner, now=T0 + 3, elapsed=3, config=quorum(reporters))
    assert new is not None
    distinct = len(others.keys() - {owner}) + 1
    if distinct >= reporters:
        assert new.state is CircuitState.OPEN
        assert new.rule == QUORUM
        return
    assert new.state is CircuitState.CLOSED
    assert len(new.reports) <= reporters - 1
    expected = {other: age + 3.0 for other, age in others.items() if other != owner}
    assert ages(new) == {**expected, owner: 0.0}
    assert new.reports[-1] == (owner, T0 + 3)


@dataclass(frozen=True)
class Event:
    """Writer ``writer`` reports ``after`` seconds (true time) after the previous event, having
    first seen the current record ``lag`` seconds before (but not before it was written)."""

    writer: int
    after: int
    lag: int


EVENTS = st.lists(
    st.builds(
        Event,
        writer=st.integers(min_value=0, max_value=5),
        after=st.integers(min_value=0, max_value=90),
        lag=st.integers(min_value=0, max_value=90),
    ),
    min_size=1,
    max_size=25,
)


def run_fleet(events: list[Event], skews: list[int], reporters: int) -> list[tuple[object, ...]]:
    """Apply ``events`` to a closed record, each writer on its own skewed clock, and return
    what each step decided (state, epoch, episode, rule, and each report's owner and age)."""
    config = quorum(reporters)
    true_time, written = T0, T0
    record = CLOSED
    decisions: list[tuple[object, ...]] = []
    for event in events:
        true_time += event.after
        elapsed = min(event.lag, true_time - written)
        new = file(
            record,
            f"p{event.writer}",
            now=true_time + skews[event.writer],
            elapsed=elapsed,
            config=config,
        )
        if new is None:
            decisions.append(("none",))
            continue
        record, written = new, true_time
        decisions.append(
            (new.state, new.epoch, new.episode_id, new.rule, sorted(ages(new).items()))
        )
    return decisions


@given(
    events=EVENTS,
    offset=st.integers(min_value=-YEAR, max_value=YEAR),
    reporters=st.integers(min_value=1, max_value=6),
)
def test_a_clock_offset_shared_by_the_fleet_changes_no_decision(
    events: list[Event], offset: int, reporters: int
) -> None:
    """Every clock off by the same amount (up to +/- 1 year): the same trips, reports, ages."""
    assert run_fleet(events, [offset] * 6, reporters) == run_fleet(events, [0] * 6, reporters)


@given(
    events=EVENTS,
    skews=st.lists(st.integers(min_value=-YEAR, max_value=YEAR), min_size=6, max_size=6),
    reporters=st.integers(min_value=2, max_value=6),
)
def test_no_clock_skew_opens_the_circuit_on_expired_reports(
    events: list[Event], skews: list[int], reporters: int
) -> None:
    """Each writer's clock off by up to +/- 1 year: a trip still needs that many processes to
    have truly reported within the window, give or take how far a reader's clock runs behind
    a writer's (a reader's clock can age a report, and only a clock that lags can miss that a
    record it just read is old)."""
    config = quorum(reporters)
    window = config.effective_report_window + max(skews) - min(skews)
    true_time, written = T0, T0
    record = CLOSED
    reported: dict[str, float] = {}  # owner -> true time of its last report
    for event in events:
        true_time += event.after
        owner = f"p{event.writer}"
        new = file(
            record,
            owner,
            now=true_time + skews[event.writer],
            elapsed=min(event.lag, true_time - written),
            config=config,
        )
        if new is None:
            continue
        if new.state is CircuitState.OPEN:
            live = {o for o, _ in record.reports if true_time - reported[o] < window}
            assert len(live | {owner}) >= reporters
            return
        reported[owner] = true_time
        record, written = new, true_time


# Any text, and long text of characters JSON escapes to 2, 6 or 12 bytes.
OWNERS = st.text(max_size=MAX_TEXT) | st.text(
    alphabet='"\\\x00\u00e9\U0001f600', min_size=MAX_TEXT - 8, max_size=MAX_TEXT
)
TIMES = st.floats(min_value=0, max_value=MAX_WALL)
RATES = st.none() | st.floats(min_value=0, max_value=1)


@st.composite
def closed_records(draw: st.DrawFn) -> Record:
    """A valid closed record a store can hand over: its payload fits ``MAX_PAYLOAD_BYTES``.

    Epochs stop two short of the limit so that the next write's epoch is valid too.
    """
    updated_at = draw(TIMES)
    reports = draw(st.lists(st.tuples(OWNERS, TIMES), max_size=MAX_REPORTS))
    record = Record(
        CircuitState.CLOSED,
        draw(st.integers(min_value=0, max_value=MAX_EPOCH - 2)),
        updated_at=updated_at,
        expires_at=draw(TIMES),
        failure_count=draw(st.integers(min_value=0, max_value=2**31 - 1)),
        rule=draw(st.none() | OWNERS),
        failure_rate=draw(RATES),
        slow_call_rate=draw(RATES),
        reserved_for=draw(st.none() | OWNERS),
        reserved_until=updated_at,
        reports=tuple(reports),
        episode=draw(st.none() | st.integers(min_value=0, max_value=MAX_EPOCH - 1)),
    )
    # Only what fits reads from a store: drop reports until it does.
    while len(encode_payload(record)) > MAX_PAYLOAD_BYTES:
        record = replace(record, reports=record.reports[:-1])
    return record


def round_trips(record: Record) -> None:
    """``record`` survives JSON both ways unchanged and fits what a store reads."""
    text = json.dumps(record.to_payload(), allow_nan=False)
    assert Record.from_payload(record.epoch, json.loads(text)) == record
    stored = encode_payload(record)
    assert len(stored.encode("utf-8")) <= MAX_PAYLOAD_BYTES
    assert Record.from_payload(record.epoch, json.loads(stored)) == record


@given(
    record=closed_records(),
    owner=OWNERS,
    now=TIMES,
    elapsed=st.floats(min_value=0, max_value=2 * WINDOW),
    reporters=st.integers(min_value=1, max_value=MAX_REPORTS),
    window=st.floats(min_value=1, max_value=10 * WINDOW),
    rule=st.sampled_from([CONSECUTIVE, FAILURE_RATE, SLOW_CALL_RATE]),
    rates=st.tuples(RATES, RATES),
)
def test_every_record_a_report_builds_round_trips_and_fits_a_store(
    *,
    record: Record,
    owner: str,
    now: float,
    elapsed: float,
    reporters: int,
    window: float,
    rule: str,
    rates: tuple[float | None, float | None],
) -> None:
    """Whatever it is given, report writes a record that reads back as itself within the
    store's size limit, with no time negative or non-finite, and at most K-1 reports."""
    new = report(
        record,
        owner=owner,
        now=now,
        elapsed=elapsed,
        config=quorum(reporters, window),
        failures=2**40,
        period=PERIOD,
        cause=Cause(rule, *rates),
    )
    assert new is not None
    round_trips(new)
    assert new.epoch == record.epoch + 1
    assert len(new.reports) <= reporters - 1
    if new.state is CircuitState.CLOSED:
        assert new.reports[-1] == (owner, now)
        assert new.episode == record.episode_id


@given(
    now=st.floats(min_value=0, max_value=WINDOW),
    ages_=st.lists(st.floats(min_value=0, max_value=WINDOW), min_size=1, max_size=6),
)
def test_a_writer_whose_clock_reads_near_zero_writes_no_negative_time(
    now: float, ages_: list[float]
) -> None:
    """A clock near the Unix epoch (a broken host, clamped to 0) cannot date an older report
    at a negative time: every report it keeps has its true age, and the record reads back."""
    record = closed_with(*((f"o{i}", T0 - age) for i, age in enumerate(ages_)))
    new = file(record, "me", now=now, config=quorum(MAX_REPORTS, 2 * WINDOW))
    assert new is not None
    round_trips(new)
    assert all(at >= 0 for _, at in new.reports)
    true_ages = {f"o{i}": age for i, age in enumerate(ages_)}
    for other, age in ages(new).items():
        assert age == (0.0 if other == "me" else pytest.approx(true_ages[other], abs=1e-6))


# An owner as large as a record lets it be once escaped: 256 characters outside the BMP are
# 12 bytes of JSON each (two \uXXXX escapes).
FAT = "\U0001f600" * MAX_TEXT


def test_a_report_on_a_record_filled_to_the_size_limit_still_fits_a_store() -> None:
    """Reports that would push the payload past what a store reads are dropped, oldest first;
    the reporter's own report is always kept."""
    record = closed_with(*((f"{i}{FAT}"[:MAX_TEXT], T0 - i) for i in range(5)))
    assert len(encode_payload(record)) <= MAX_PAYLOAD_BYTES  # a store hands it over
    new = file(record, FAT, now=T0, config=quorum(MAX_REPORTS))
    assert new is not None
    round_trips(new)
    kept = [owner for owner, _ in new.reports]
    assert kept[-1] == FAT
    assert kept[:-1] == [owner for owner, _ in record.reports][: len(kept) - 1]  # the youngest
    assert len(kept) >= 2
