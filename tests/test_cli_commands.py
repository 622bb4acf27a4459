"""The `fleetbreaker` commands in process, on SQLite: what the subprocess tests cannot force
(a concurrent operator), the watch's lines and screen, and the shape of the JSON."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from fleetbreaker import (
    CircuitInfo,
    CircuitState,
    HistoryEntry,
    Override,
    SQLiteStore,
    Store,
    cli,
    operations,
)
from fleetbreaker._cli import views
from fleetbreaker._cli import watch as watching
from fleetbreaker._protocol import Record

NOW = 1_795_957_500.0  # 2026-11-29T13:05:00Z


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "breakers.db"
    SQLiteStore(path).close()
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


class Interloper(Store):
    """A store where another operator forces ``name`` open just before this one's first write."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.interfered = False

    def load(self, name: str, *, consistent: bool = False) -> Record | None:
        return self.inner.load(name, consistent=consistent)

    def compare_and_set(self, name: str, expected_epoch: int | None, record: Record) -> bool:
        if not self.interfered:
            self.interfered = True
            operations.force_open(self.inner, name, duration=600, reason="INC-1", actor="bob")
        return self.inner.compare_and_set(name, expected_epoch, record)

    def names(self) -> list[str]:
        return self.inner.names()

    def close(self) -> None:
        self.inner.close()


@pytest.mark.parametrize("verb", ["open", "close", "clear"])
def test_another_operators_override_meanwhile_exits_1(
    db: Path, verb: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An override written between the command's read and its write wins: exit 1, nothing
    written, and the message says who forced what and until when."""
    store = SQLiteStore(db)
    operations.force_closed(store, "payments", duration=60, reason="first", actor="carol")
    interloper = Interloper(SQLiteStore(db))
    monkeypatch.setattr("fleetbreaker._cli.common.from_url", lambda _url: interloper)
    options = ["--for", "5m", "--reason", "mine"] if verb != "clear" else []
    code, out, err = run(capsys, verb, "payments", *options, "--store", f"sqlite://{db}")
    assert (code, out) == (1, "")
    assert err.startswith(f"fleetbreaker {verb}: circuit 'payments': bob forced it open meanwhile")
    assert "(INC-1); nothing written" in err
    assert "(in force until 2026-" in err
    info = operations.read(store, "payments")
    assert info is not None
    assert info.override is not None
    assert (info.override.actor, info.override.kind) == ("bob", "open")
    store.close()


def test_store_before_or_after_the_command(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--store is taken before the command or after it."""
    store = SQLiteStore(db)
    operations.force_closed(store, "payments", duration=60, reason="r", actor="a")
    store.close()
    before = run(capsys, "--store", f"sqlite://{db}", "list")
    after = run(capsys, "list", "--store", f"sqlite://{db}")
    assert before == after
    assert before[0] == 1  # forced closed is overridden: not healthy
    assert "forced_closed (closed)" in before[1]


def test_an_unreadable_record_is_a_warning_on_stderr(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A record the store cannot read shows as closed, with the library's warning on stderr."""
    import sqlite3

    conn = sqlite3.connect(db)
    with conn:
        conn.execute(
            "INSERT INTO fleetbreaker_circuits (name, epoch, payload, expires_at) "
            'VALUES (\'payments\', 3, \'{"v": 1, "state": "sideways"}\', 4e9)'
        )
    conn.close()
    code, out, err = run(capsys, "list", "--store", f"sqlite://{db}")
    assert code == 0
    assert out.splitlines()[1].split()[:2] == ["payments", "closed"]
    assert err.startswith("fleetbreaker list: WARNING: SQLiteStore: circuit 'payments' has an")


def test_memory_store_is_empty(capsys: pytest.CaptureFixture[str]) -> None:
    """memory:// works from the CLI, and is always empty."""
    assert run(capsys, "list", "--store", "memory://") == (0, "no circuits in memory://\n", "")
    code, _, err = run(capsys, "show", "payments", "--store", "memory://")
    assert code == 4
    assert err == (
        "fleetbreaker show: no record for circuit 'payments' in memory:// (it holds no circuits)\n"
    )


def test_the_json_keys_are_fixed(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every circuit object has the same keys, in the same order, whatever it holds."""
    store = SQLiteStore(db)
    operations.force_open(store, "payments", duration=60, reason="r", actor="a")
    store.close()
    code, out, _ = run(capsys, "list", "--json", "--store", f"sqlite://{db}")
    assert code == 1
    document = json.loads(out)
    assert list(document) == ["store", "now", "now_iso", "circuits"]
    (circuit,) = document["circuits"]
    assert list(circuit) == KEYS
    bare = CircuitInfo("x", CircuitState.CLOSED, failure_count=0, opened_at=None)
    assert list(views.to_json(bare)) == KEYS
    assert list(circuit["override"]) == [
        "kind",
        "until",
        "until_iso",
        "reason",
        "actor",
        "at",
        "at_iso",
    ]
    assert list(circuit["history"][0]) == ["at", "at_iso", "from_state", "to_state", "by", "reason"]


KEYS = [
    "name",
    "state",
    "effective_state",
    "healthy",
    "since",
    "since_iso",
    "override",
    "failure_count",
    "rule",
    "failure_rate",
    "slow_call_rate",
    "open_count",
    "opened_at",
    "opened_at_iso",
    "next_probe_at",
    "next_probe_at_iso",
    "retry_at",
    "retry_at_iso",
    "probe_in_flight",
    "probe_owner",
    "probe_expires_at",
    "probe_expires_at_iso",
    "half_open_successes",
    "epoch",
    "updated_at",
    "updated_at_iso",
    "history",
]


# ---- watch's lines and screen ---------------------------------------------------------------


def entry(at: float, old: str, new: str, by: str = "web-1:42:ab", reason: str = "") -> HistoryEntry:
    return HistoryEntry(at=at, from_state=old, to_state=new, by=by, reason=reason)


def circuit(
    state: CircuitState, *history: HistoryEntry, name: str = "payments", **fields: Any
) -> CircuitInfo:
    info = CircuitInfo(name, state, failure_count=0, opened_at=None, history=history)
    return replace(info, **fields)


def test_a_change_line_shows_the_states_passed_through() -> None:
    """States the history shows between two polls appear on the way (a probe claim has no entry
    of its own: the closing entry's from_state shows it), with the last writer and reason."""
    trip = entry(NOW - 60, "closed", "open", reason="consecutive")
    before = {"payments": circuit(CircuitState.OPEN, trip, opened_at=NOW - 60, retry_at=NOW)}
    healed = entry(NOW - 1, "half_open", "closed", by="web-2:7:cd", reason="probe succeeded")
    after = {"payments": circuit(CircuitState.CLOSED, trip, healed)}
    (event,) = watching.changes(before, after, NOW)
    assert watching.line(event, NOW) == (
        "2026-11-29T13:05:00Z payments open -> half_open -> closed [by web-2:7:cd: probe succeeded]"
    )
    failed = entry(NOW - 1, "half_open", "open", by="web-2:7:cd", reason="probe failed")
    reopened = circuit(CircuitState.OPEN, trip, failed, opened_at=NOW - 1, retry_at=NOW + 59)
    (event,) = watching.changes(before, {"payments": reopened}, NOW)
    assert watching.line(event, NOW).startswith(
        "2026-11-29T13:05:00Z payments open -> half_open -> open "
    )


def test_a_change_line_for_an_override() -> None:
    """An override shows its kind, until when, who set it and why."""
    before = {"payments": circuit(CircuitState.CLOSED)}
    override = Override(kind="open", until=NOW + 1800, reason="INC-42", actor="al", at=NOW - 1)
    forced = entry(NOW - 1, "closed", "forced_open", by="al", reason="INC-42")
    after = {"payments": circuit(CircuitState.CLOSED, forced, override=override)}
    (event,) = watching.changes(before, after, NOW)
    assert watching.line(event, NOW) == (
        "2026-11-29T13:05:00Z payments closed -> forced_open [until 2026-11-29T13:35:00Z "
        "(in 30 min), set by al at 2026-11-29T13:04:59Z (1 s ago): 'INC-42']"
    )


def test_no_line_when_nothing_changed_and_records_that_come_and_go() -> None:
    """The same snapshot is no event; a record that appears or expires is one."""
    closed = {"payments": circuit(CircuitState.CLOSED)}
    assert watching.changes(closed, dict(closed), NOW) == []
    (gone,) = watching.changes(closed, {}, NOW)
    assert watching.line(gone, NOW) == "2026-11-29T13:05:00Z payments closed -> none [no record]"
    (back,) = watching.changes({}, closed, NOW)
    assert watching.line(back, NOW) == "2026-11-29T13:05:00Z payments none -> closed"


def test_the_terminal_screen_marks_the_rows_that_changed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """On a terminal the screen is cleared and redrawn: the table, '*' on changed rows, and
    the latest changes under it."""
    screen = watching._Screen("sqlite:///b.db", 1.0)
    first = {
        "payments": circuit(CircuitState.CLOSED),
        "search": circuit(CircuitState.CLOSED, name="search"),
    }
    screen.draw(first, watching.changes(None, first, NOW), NOW)
    drawn = capsys.readouterr().out
    assert drawn.startswith("\x1b[H\x1b[2Jfleetbreaker watch  sqlite:///b.db  every 1 s  ")
    assert drawn.endswith("changes: none seen yet\n")

    trip = entry(NOW, "closed", "open", reason="consecutive")
    opened = circuit(CircuitState.OPEN, trip, opened_at=NOW, retry_at=NOW + 30)
    second = {**first, "payments": opened}
    screen.draw(second, watching.changes(first, second, NOW + 1), NOW + 1)
    lines = capsys.readouterr().out.splitlines()
    assert lines[3].startswith("*  payments  open ")
    assert lines[4].startswith("   search    closed ")
    assert lines[-1].startswith("2026-11-29T13:05:01Z payments closed -> open ")


def test_time_is_written_in_utc_whatever_the_time_zone(
    db: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`show` prints UTC with TZ set far from it (in process: the e2e tests do it by env)."""
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        store = SQLiteStore(db)
        info = operations.force_open(store, "payments", duration=60, reason="r", actor="a")
        store.close()
        assert info.override is not None
        code, out, _ = run(capsys, "show", "payments", "--store", f"sqlite://{db}")
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert code == 1
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(info.override.until)))
    assert f"until {stamp} (in " in out


def test_a_key_that_names_no_circuit_is_skipped(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A stored key no circuit could have (a control character in it) is skipped with a
    warning: it does not make `list` fail."""
    store = SQLiteStore(db)
    operations.force_open(store, "payments", duration=60, reason="r", actor="a")
    record = store.load("payments")
    assert record is not None
    assert store.compare_and_set("bad\nname", None, record)
    store.close()
    code, out, err = run(capsys, "list", "--store", f"sqlite://{db}")
    assert code == 1
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["payments"]
    assert err.startswith("fleetbreaker: skipped 'bad\\nname': circuit name must be printable")
