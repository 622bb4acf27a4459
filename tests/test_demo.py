"""The demo: a small real fleet through `cli.main`, and the verdict it gives."""

from __future__ import annotations

import contextlib
import io
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from fleetbreaker import cli, demo

# 2 processes x 2 threads, 3 s in all: the circuit trips once and (on a calm machine) closes.
SMALL = [
    "--processes",
    "2",
    "--threads",
    "2",
    "--healthy",
    "0.5",
    "--outage",
    "1.2",
    "--after",
    "1.3",
]


def has_line(pattern: str, text: str) -> bool:
    return re.search(pattern, text, re.MULTILINE) is not None


@dataclass(frozen=True)
class Run:
    code: int
    output: str
    store_dir: Path


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    store_dir = tmp_path_factory.mktemp("demo")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(["demo", *SMALL, "--store-dir", str(store_dir)])
    return Run(code, out.getvalue(), store_dir)


def test_demo_passes_and_says_so(small_run: Run) -> None:
    """A small fleet keeps the guarantees: exit 0 and a PASS verdict."""
    assert small_run.code == 0, small_run.output
    assert "\nPASS: one trip persisted for the outage" in small_run.output
    assert "FAIL" not in small_run.output


def test_demo_summary_shows_the_guarantees(small_run: Run) -> None:
    """The summary reports one trip, at most one probe in flight and each transition once."""
    out = small_run.output
    assert has_line(r"^  trips +1 for 1 outage, persisted by worker [12],", out), out
    assert has_line(r"^  max probes in flight +[01] at once, fleet-wide: ok$", out), out
    assert has_line(r"^  transitions persisted +closed->open 1\b", out), out
    assert "each reported once, by the process that wrote it: ok" in out
    for label in ("heal -> closed", "calls spared", "after the heal", "store"):
        assert has_line(rf"^  {label} ", out), label
    assert has_line(r"\b0 while healthy$", out), out


def test_demo_timeline_has_one_row_per_half_second(small_run: Run) -> None:
    """The timeline has a header and a row per 0.5 s of the run, the trip among them."""
    out = small_run.output
    assert has_line(r"^ +time +downstream +circuit +calls +failed +short-circuited +probes", out)
    rows = re.findall(r"^ +(\d+\.\d) s  (\S+) .*$", out, re.MULTILINE)
    assert [t for t, _ in rows] == ["0.5", "1.0", "1.5", "2.0", "2.5", "3.0"]
    assert [phase for _, phase in rows] == [
        "healthy", "DOWN", "DOWN", "DOWN>healed", "healed", "healed"
    ]  # fmt: skip
    assert has_line(r"^ +\d+\.\d s .*closed->open", out), out
    assert len(out.splitlines()) <= 45


def test_demo_keeps_its_store_for_status(
    small_run: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    """With --store-dir the database stays, and `status` shows the demo's circuit."""
    db = small_run.store_dir / demo.DB_NAME
    assert cli.main(["status", "--sqlite", str(db)]) == 0
    assert has_line(r"^downstream +(closed|open|half_open) +\d+", capsys.readouterr().out)


def test_demo_reports_a_bad_store_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A --store-dir that cannot be a directory gives a clear message and exit 2."""
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    assert cli.main(["demo", *SMALL, "--store-dir", str(not_a_dir)]) == 2
    assert "fleetbreaker demo: cannot use" in capsys.readouterr().err


def _transition(worker: int, label: str, epoch: int, at: float) -> demo._Transition:
    from_state, to_state = label.split("->")
    return demo._Transition(worker, from_state, to_state, epoch, at)


def test_verdict_fails_on_a_second_trip_or_a_duplicate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The summary turns two trips, or a transition reported twice, into broken guarantees."""
    options = demo.Options(processes=2, threads=1, healthy=1, outage=3, after=3)
    fleet = demo._Fleet(options, tmp_path / "unused.db")
    plan = demo._Plan.of(1000.0, options)
    fleet.done = {1: (0.0, ""), 2: (0.0, "")}
    fleet.transitions = [
        _transition(1, "closed->open", 1, 1001.1),
        _transition(2, "closed->open", 1, 1001.1),
        _transition(2, "open->half_open", 2, 1002.1),
        _transition(2, "half_open->closed", 3, 1002.2),
        _transition(1, "closed->open", 4, 1002.5),
    ]
    broken = demo._summary(fleet, plan)
    out = capsys.readouterr().out
    assert any("epoch(s) [1] were reported by more than one process" in b for b in broken)
    assert any("expected exactly one closed->open for the one outage, got 3" in b for b in broken)
    assert "each reported once, by the process that wrote it: BROKEN" in out
