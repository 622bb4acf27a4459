"""The pure override and history functions (``_overrides``, ``_history``) and their record
fields: periods measured like every period of a record, deadlines re-dated by each writer,
the history bounded and ordered, and every record one a store reads back."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetbreaker import CircuitState, Config, HistoryEntry, Override
from fleetbreaker import _overrides as overrides
from fleetbreaker._limits import MAX_HISTORY, MAX_HISTORY_TEXT, MAX_PAYLOAD_BYTES, MAX_TEXT
from fleetbreaker._protocol import ABSENT, Cause, Record, probe_failed, trip
from fleetbreaker._quorum import report
from fleetbreaker.stores.base import encode_payload

T0 = 1_800_000_000.0
WEEK = 7 * 24 * 3600.0
CONFIG = Config(recovery_timeout=30)


def closed(**fields: object) -> Record:
    return replace(ABSENT, epoch=4, updated_at=T0, expires_at=T0 + WEEK, **fields)  # type: ignore[arg-type]


def forced(record: Record, kind: str = "open", *, now: float = T0, duration: float = 900) -> Record:
    return overrides.forced(
        record,
        kind=kind,
        now=now,
        elapsed=0.0,
        duration=duration,
        reason="INC-1",
        actor="alice",
        ttl=WEEK,
    )


def forced_again(
    record: Record, times: int, *, reason: str, actor: str, duration: float = 1
) -> Record:
    """``record`` forced open ``times`` times, a second apart (one history entry each)."""
    for i in range(times):
        record = overrides.forced(
            record,
            kind="open",
            now=T0 + i,
            elapsed=0,
            duration=duration,
            reason=reason,
            actor=actor,
            ttl=WEEK,
        )
    return record


def read_back(record: Record) -> Record:
    """The record as a store would read it back."""
    return Record.from_payload(record.epoch, json.loads(encode_payload(record)))


def test_force_on_no_record_writes_epoch_one_with_the_override_and_an_entry() -> None:
    """An operator can pre-empt a circuit no process has used: the record is created."""
    new = forced(ABSENT)
    assert new.epoch == 1
    assert new.state is CircuitState.CLOSED
    assert new.override == Override("open", T0 + 900, "INC-1", "alice", T0)
    assert new.history == (HistoryEntry(T0, "closed", "forced_open", "alice", "INC-1"),)
    assert new.expires_at == T0 + WEEK
    assert read_back(new) == new


def test_override_lasts_its_duration_from_first_sight() -> None:
    """A reader counts the override's period from when it first saw the record."""
    new = forced(closed())
    assert overrides.remaining(new, elapsed=0.0, now=T0) == 900
    assert overrides.remaining(new, elapsed=899.0, now=T0) == pytest.approx(1.0)
    assert overrides.active(new, elapsed=899.0, now=T0) == new.override
    assert overrides.active(new, elapsed=900.0, now=T0) is None


@pytest.mark.parametrize(
    ("reader_clock", "left"),
    [
        (T0 + 600, 300.0),  # started late: the record is already 10 minutes old
        (T0 - 3600, 900.0),  # a clock an hour behind never lengthens it
        (T0 + 10 * 365 * 24 * 3600.0, 900.0),  # years ahead: implausible, not consulted
    ],
    ids=["late-starter", "clock-behind", "clock-years-ahead"],
)
def test_a_readers_wall_clock_may_only_age_the_override_and_only_plausibly(
    reader_clock: float, left: float
) -> None:
    """A process that just started does not extend a 15-minute override by its own age."""
    new = forced(closed())
    assert overrides.remaining(new, elapsed=0.0, now=reader_clock) == pytest.approx(left)


def test_an_override_never_outlasts_its_record() -> None:
    """A record whose until lies past its own expiry (a foreign writer) ends with it."""
    new = replace(forced(closed()), expires_at=T0 + 100)
    assert overrides.remaining(new, elapsed=0.0, now=T0) == 100


def test_forcing_an_open_record_re_dates_its_deadlines_keeping_their_periods() -> None:
    """The open period keeps running underneath: a writer re-dates it on its own clock."""
    opened = trip(closed(), now=T0, failures=5, config=CONFIG, owner="p1")
    assert opened is not None
    later = T0 + 1000.0  # the operator's clock is 990 s ahead of where the record says
    new = overrides.forced(
        opened,
        kind="closed",
        now=later,
        elapsed=10.0,
        duration=60,
        reason="false alarm",
        actor="bob",
        ttl=WEEK,
    )
    assert new.state is CircuitState.OPEN
    assert new.retry_at is not None
    assert new.retry_at - new.updated_at == pytest.approx(20.0)  # 30 s, 10 s of them gone
    assert new.override is not None
    assert new.override.until - new.updated_at == 60
    assert new.history[-1] == HistoryEntry(later, "open", "forced_closed", "bob", "false alarm")


def test_clear_ends_the_override_and_says_so_in_the_history() -> None:
    """Clearing returns the record to its own state, with a history entry."""
    new = forced(closed())
    cleared = overrides.cleared(
        new, now=T0 + 5, elapsed=5.0, reason="done", actor="alice", ttl=WEEK
    )
    assert cleared is not None
    assert cleared.override is None
    assert cleared.epoch == new.epoch + 1
    assert cleared.history[-1] == HistoryEntry(T0 + 5, "forced_open", "closed", "alice", "done")


def test_clear_without_an_override_in_force_writes_nothing() -> None:
    """Nothing to clear: no write (and no history entry)."""
    new = forced(closed())
    assert overrides.cleared(closed(), now=T0, elapsed=0, reason="", actor="a", ttl=WEEK) is None
    assert overrides.cleared(new, now=T0, elapsed=900, reason="", actor="a", ttl=WEEK) is None


def test_reset_closes_afresh_and_keeps_the_history() -> None:
    """Reset: closed, a new episode, no backoff, no reports, no override; history goes on."""
    opened = trip(closed(), now=T0, failures=5, config=CONFIG, owner="p1")
    assert opened is not None
    opened = replace(forced(opened), open_count=4, reports=(("p2", T0),))
    new = overrides.reset(opened, now=T0 + 1, elapsed=0, reason="fresh", actor="ops", ttl=WEEK)
    assert new == Record(
        state=CircuitState.CLOSED,
        epoch=opened.epoch + 1,
        updated_at=T0 + 1,
        expires_at=T0 + 1 + WEEK,
        history=(
            *opened.history,
            HistoryEntry(T0 + 1, "forced_open", "closed", "ops", "fresh"),
        ),
    )


def test_a_protocol_write_carries_the_override_re_dated() -> None:
    """A transition written under an override keeps it, with the period it had left."""
    old = forced(closed())
    for now, left in ((T0 + 100.0, 800.0), (T0 + 150.0, 750.0), (T0 - 3600, 800.0)):
        # The writer held the record 100 s; a clock 50 s ahead ages it 50 s more, one behind
        # changes nothing.
        new = replace(old, epoch=old.epoch + 1, updated_at=now, override=None)
        carried = overrides.carry(old, new, now=now, elapsed=100.0)
        assert carried.override is not None
        assert carried.override.until - carried.updated_at == pytest.approx(left)
        assert carried.expires_at >= carried.override.until


def test_a_protocol_write_drops_an_ended_override() -> None:
    """Once the override has ended for the writer, its write drops it."""
    old = forced(closed())
    new = replace(old, epoch=old.epoch + 1, updated_at=T0 + 1000)
    assert overrides.carry(old, new, now=T0 + 1000, elapsed=1000).override is None


def test_history_keeps_the_last_twenty_in_order() -> None:
    """Twenty-five changes: the last twenty remain, oldest first."""
    record = closed()
    for i in range(25):
        record = forced(record, now=T0 + i, duration=1 + i)
    assert len(record.history) == MAX_HISTORY
    assert [entry.at for entry in record.history] == [T0 + i for i in range(5, 25)]
    assert read_back(record) == record


def test_protocol_transitions_append_state_changes_only() -> None:
    """A trip and a failed probe append entries; the claim between them does not."""
    opened = trip(closed(), now=T0, failures=5, config=CONFIG, owner="p1", cause=Cause())
    assert opened is not None
    held = replace(opened, state=CircuitState.HALF_OPEN, epoch=6, probe_owner="p2")
    held = replace(held, probe_expires_at=T0 + 60)
    reopened = probe_failed(held, token=6, now=T0 + 40, config=CONFIG)
    assert reopened is not None
    assert [(e.from_state, e.to_state, e.by, e.reason) for e in reopened.history] == [
        ("closed", "open", "p1", "consecutive"),
        ("half_open", "open", "p2", "probe failed"),
    ]


huge_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")),
    min_size=MAX_TEXT,
    max_size=MAX_TEXT,
)


@given(reason=huge_text, actor=huge_text)
def test_any_override_makes_a_record_a_store_reads_back(reason: str, actor: str) -> None:
    """However long and however escaped the texts, the record fits and reads back."""
    record = closed(reports=tuple((f"p{i}" * 60, T0) for i in range(30)))
    record = forced_again(record, MAX_HISTORY + 2, reason=reason, actor=actor, duration=60)
    assert len(encode_payload(record).encode()) <= MAX_PAYLOAD_BYTES
    assert read_back(record) == record
    assert record.override is not None
    assert record.override.reason == reason  # the override keeps the whole reason
    assert all(len(entry.reason) <= MAX_HISTORY_TEXT for entry in record.history)


def test_reports_are_kept_before_history_when_space_runs_out() -> None:
    """A report fits by dropping history, not the fleet's other reports."""
    record = forced_again(closed(), MAX_HISTORY, reason="\U0001f525" * MAX_TEXT, actor="a")
    record = replace(record, override=None, reports=(("p1", T0 + 30),))
    config = Config(fleet_minimum_reporters=3)
    new = report(
        record,
        owner="p2",
        now=T0 + 31,
        elapsed=0,
        config=config,
        failures=5,
        period=30,
        cause=Cause(),
    )
    assert new is not None
    assert [owner for owner, _ in new.reports] == ["p1", "p2"]
    fitted = overrides.fitted(new)
    assert [owner for owner, _ in fitted.reports] == ["p1", "p2"]
    assert len(encode_payload(fitted).encode()) <= MAX_PAYLOAD_BYTES


def test_no_report_and_no_trip_under_an_override() -> None:
    """Forced either way, a rule that fires writes nothing to the record."""
    for kind in ("open", "closed"):
        record = forced(closed(), kind)
        assert (
            report(
                record,
                owner="p",
                now=T0,
                elapsed=1,
                config=CONFIG,
                failures=5,
                period=30,
                cause=Cause(),
            )
            is None
        )


BAD_OVERRIDES = {
    "not-an-object": [1],
    "unknown-kind": {"kind": "sideways", "until": T0, "reason": "r", "actor": "a", "at": T0},
    "until-text": {"kind": "open", "until": "soon", "reason": "r", "actor": "a", "at": T0},
    "until-bool": {"kind": "open", "until": True, "reason": "r", "actor": "a", "at": T0},
    "reason-missing": {"kind": "open", "until": T0, "actor": "a", "at": T0},
    "reason-long": {"kind": "open", "until": T0, "reason": "r" * 300, "actor": "a", "at": T0},
    "actor-number": {"kind": "open", "until": T0, "reason": "r", "actor": 7, "at": T0},
    "at-negative": {"kind": "open", "until": T0, "reason": "r", "actor": "a", "at": -1},
}

BAD_HISTORIES = {
    "not-a-list": {"at": 1},
    "too-long": [[T0, "closed", "open", "p", "r"]] * (MAX_HISTORY + 1),
    "short-entry": [[T0, "closed", "open"]],
    "unknown-state": [[T0, "closed", "exploded", "p", "r"]],
    "time-text": [["noon", "closed", "open", "p", "r"]],
    "by-null": [[T0, "closed", "open", None, "r"]],
}


@pytest.mark.parametrize("value", BAD_OVERRIDES.values(), ids=BAD_OVERRIDES.keys())
def test_a_malformed_override_makes_the_record_unreadable(value: object) -> None:
    """A stored override out of its bounds is refused like any bad field (read as corrupt)."""
    payload = json.loads(encode_payload(closed()))
    payload["override"] = value
    with pytest.raises(ValueError, match="override"):
        Record.from_payload(4, payload)


@pytest.mark.parametrize("value", BAD_HISTORIES.values(), ids=BAD_HISTORIES.keys())
def test_a_malformed_history_makes_the_record_unreadable(value: object) -> None:
    """A stored history out of its bounds is refused like any bad field (read as corrupt)."""
    payload = json.loads(encode_payload(closed()))
    payload["history"] = value
    with pytest.raises(ValueError, match="history"):
        Record.from_payload(4, payload)


def test_forcing_re_dates_every_deadline_of_the_record_by_the_writers_shift() -> None:
    """Over a held probe claim with a reservation, reports and an override already in force,
    every time moves by the writer's shift (its clock's offset less what it held)."""
    held = Record(
        state=CircuitState.HALF_OPEN,
        epoch=8,
        opened_at=T0 - 100,
        probe_owner="p1",
        probe_expires_at=T0 + 20,
        updated_at=T0,
        expires_at=T0 + WEEK,
        reserved_for="p2",
        reserved_until=T0 + 1,
        reports=(("p3", T0 - 5),),
        override=Override("closed", T0 + 600, "earlier", "bob", T0 - 50),
    )
    shift = 250.0  # the writer's clock is 260 s ahead of the record's, and it held it 10 s
    new = overrides.forced(
        held,
        kind="open",
        now=T0 + 260,
        elapsed=10.0,
        duration=60,
        reason="now",
        actor="alice",
        ttl=60.0,
    )
    assert new.opened_at == T0 - 100 + shift
    assert new.probe_expires_at == T0 + 20 + shift
    assert new.reserved_until == T0 + 1 + shift
    assert new.reports == (("p3", T0 - 5 + shift),)
    assert new.expires_at == T0 + WEEK + shift  # longer than ttl and duration: kept
    assert new.history[-1].from_state == "forced_closed"
    assert new.episode is None  # not a closed record: no episode to keep


def test_carry_re_dates_the_overrides_start_too() -> None:
    """A carried override keeps its start where the writer's clock puts it."""
    old = forced(closed())
    new = replace(old, epoch=old.epoch + 1, updated_at=T0 + 150.0, override=None)
    carried = overrides.carry(old, new, now=T0 + 150.0, elapsed=100.0)
    assert carried.override is not None
    assert carried.override.at == T0 + 50.0


def test_an_override_keeps_the_record_alive_at_least_ttl_and_its_duration() -> None:
    """The record lives at least ttl, and at least as long as the override."""
    long = overrides.forced(
        ABSENT, kind="open", now=T0, elapsed=0, duration=100, reason="r", actor="a", ttl=60
    )
    assert long.expires_at == T0 + 100
    short = overrides.forced(
        ABSENT, kind="open", now=T0, elapsed=0, duration=10, reason="r", actor="a", ttl=60
    )
    assert short.expires_at == T0 + 60


def test_overrides_and_clears_keep_the_closed_episode() -> None:
    """Processes keep their counts across an override and its clear (reset starts afresh)."""
    record = closed(episode=2)
    new = forced(record)
    assert new.episode_id == 2
    cleared = overrides.cleared(new, now=T0 + 1, elapsed=1, reason="", actor="a", ttl=60)
    assert cleared is not None
    assert cleared.episode_id == 2
    assert cleared.expires_at >= T0 + 1 + 60
    assert cleared.history[-1].reason == "override cleared"  # the default reason
    assert forced(closed()).episode_id == 4  # the epoch that began it
    assert forced(ABSENT).episode is None


@pytest.mark.parametrize(
    ("reader_clock", "active"),
    [(T0 + 0.5, True), (T0 + 900.0, False), (T0 + 1000.0, False)],
    ids=["half-a-second", "at-its-end", "at-the-records-end"],
)
def test_a_plausible_wall_age_counts_to_the_last_second(reader_clock: float, active: bool) -> None:
    """Half a second of wall age counts; an age equal to the record's lifetime still does."""
    record = replace(forced(closed()), expires_at=T0 + 1000)
    left = overrides.remaining(record, elapsed=0.0, now=reader_clock)
    assert (left > 0) is active
    if active:
        assert left == pytest.approx(899.5)


def test_fitting_drops_only_the_oldest_entries_needed() -> None:
    """A record one entry over the bound loses exactly that one; a fitting one is unchanged."""
    record = forced_again(
        closed(), MAX_HISTORY, reason="\U0001f525" * MAX_HISTORY_TEXT, actor="a" * MAX_HISTORY_TEXT
    )
    kept = len(record.history)
    assert kept < MAX_HISTORY
    size = len(encode_payload(record).encode())
    assert size <= MAX_PAYLOAD_BYTES
    one_more = replace(record, history=(record.history[0], *record.history))
    assert len(encode_payload(one_more).encode()) > MAX_PAYLOAD_BYTES
    assert overrides.fitted(one_more).history == record.history
    assert overrides.fitted(record) is record
