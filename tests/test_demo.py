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


# --- the summary's numbers add up and its explanations match the configuration -------------

LABEL = 25  # the summary's values start in this column


def block(out: str, label: str) -> str:
    """The summary entry ``label``: its line and the continuation lines under it, joined."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"  {label:<{LABEL - 2}}"))
    end = start + 1
    while end < len(lines) and lines[end].startswith(" " * LABEL):
        end += 1
    return " ".join(line[LABEL:].strip() for line in lines[start:end])


def number(text: str) -> int:
    return int(text.replace(",", ""))


def store_items(out: str) -> tuple[re.Match[str], dict[str, int], str]:
    """The store line, its itemised writes (label -> count) and the lost writes' explanation."""
    header = re.search(
        r"^  store +([\d,]+) reads; ([\d,]+) conditional writes \(([\d,]+) won, ([\d,]+) lost\), "
        r"([\d,]+) while healthy$",
        out,
        re.MULTILINE,
    )
    assert header is not None, out
    items = re.findall(r"^    ([\d,]+) ([a-z ]+?)  +(.*)$", out, re.MULTILINE)
    lost_why = next(why for _, label, why in items if label == "lost")
    return header, {label: number(count) for count, label, _ in items}, lost_why


def test_demo_totals_add_up(small_run: Run) -> None:
    """Every total in the summary is the sum of its parts, and of the timeline's rows."""
    out = small_run.output
    rows = re.findall(r"^ +\d+\.\d s  \S+ +\S+ +(\d+) +(\d+) +(\d+) +\d+", out, re.MULTILINE)
    calls, failed, refused = (sum(int(row[i]) for row in rows) for i in range(3))
    assert block(out, "calls") == (
        f"{calls:,} reached the downstream ({failed:,} failed), {refused:,} short-circuited"
    )

    spared = re.fullmatch(
        r"([\d,]+) short-circuited during the outage; the downstream got ([\d,]+): ([\d,]+) "
        r"before the trip, ([\d,]+) from processes yet to read it, ([\d,]+) probes?",
        block(out, "calls spared"),
    )
    assert spared is not None, out
    made, before, late, probes = (number(spared[i]) for i in (2, 3, 4, 5))
    assert made == before + late + probes

    after = re.match(r"([\d,]+) calls short-circuited(?:: ([\d,]+) before the close, ([\d,]+))?",
                     block(out, "after the heal"))  # fmt: skip
    assert after is not None, out
    if after[2] is not None:
        assert number(after[1]) == number(after[2]) + number(after[3])
    assert number(spared[1]) + number(after[1]) <= refused


def test_demo_store_writes_are_itemised(small_run: Run) -> None:
    """The store's writes are itemised by kind, the kinds add up and match the transitions."""
    out = small_run.output
    header, items, lost_why = store_items(out)
    total, won, lost = (number(header[i]) for i in (2, 3, 4))
    assert total == won + lost + items.get("failed", 0) == sum(items.values()), out
    assert won == sum(n for label, n in items.items() if label not in {"lost", "failed"})
    lost_kinds = re.findall(r"([\d,]+) [a-z]+", lost_why.partition("(")[2])
    assert sum(number(n) for n in lost_kinds) == lost, out
    assert header[5] == "0", "the healthy path writes nothing"

    persisted = block(out, "transitions persisted")
    transitions = {label: int(n) for label, n in re.findall(r"(\S+->\S+) (\d+)", persisted)}
    assert items.get("trip", 0) + items.get("trips", 0) == transitions["closed->open"]
    failures = items.get("probe failure", 0) + items.get("probe failures", 0)
    assert failures == transitions.get("half_open->open", 0)
    claims = items.get("probe claim", 0) + items.get("probe claims", 0)
    assert claims >= transitions.get("open->half_open", 0)


def test_demo_explains_the_close_with_its_configuration(small_run: Run) -> None:
    """The heal -> closed entry states the measured probes and the configuration's values."""
    out = small_run.output
    assert "a probe every recovery_timeout" not in out
    assert "3 in a row succeed" not in out
    heal = block(out, "heal -> closed")
    if heal.startswith("not closed"):  # a very slow machine: the demo says so, nothing else
        return
    check_close_explanation(heal)


def check_close_explanation(heal: str) -> None:
    config = demo.CONFIG
    found = re.fullmatch(
        r"(\d+\.\d\d) s: (\d+) probes? in a row succeeded \(success_threshold=(\d+)\), claimed at "
        r"(.*?) s after the heal\. The first came (\d+\.\d\d) s after retry_at \(([-+]\d+\.\d\d) "
        r"s\): (?:the trip|a failed probe) at ([-+]\d+\.\d\d) s had opened the circuit for "
        r"recovery_timeout=(\S+) s\.(.*)",
        heal,
    )
    assert found is not None, heal
    close, wait, retry_at, opened = (float(found[i]) for i in (1, 5, 6, 7))
    claims = [float(t) for t in found[4].split(", ")]
    assert int(found[2]) == int(found[3]) == config.success_threshold == len(claims)
    assert found[8] == f"{config.recovery_timeout:g}"
    assert retry_at == pytest.approx(opened + config.recovery_timeout, abs=0.011)
    assert claims[0] == pytest.approx(retry_at + wait, abs=0.011)
    assert claims == sorted(claims)
    assert 0 <= claims[0] <= claims[-1] <= close
    if len(claims) > 1:
        assert "back to back: a success frees the slot at once" in found[9]


def write(  # the fields a worker reports for one compare-and-set
    expected: int | None,
    state: str,
    at: float,
    result: str = demo.WON,
    *,
    owned: bool = False,
    successes: int = 0,
    retry_at: float | None = None,
) -> demo._Write:
    epoch = 1 if expected is None else expected + 1
    return demo._Write(1, expected, epoch, state, owned, successes, retry_at, at, result)


def test_summary_itemises_each_kind_of_write_and_the_close(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Trips, claims, probe results and lost writes are told apart; the close is explained."""
    options = demo.Options(processes=2, threads=1, healthy=1, outage=3, after=3)
    fleet = demo._Fleet(options, tmp_path / "unused.db")
    plan = demo._Plan.of(1000.0, options)  # outage at 1001, heal at 1004
    fleet.done = {1: (0.0, ""), 2: (0.0, "")}
    fleet.writes = [
        write(None, "open", 1001.1, retry_at=1002.1),  # the trip
        write(None, "open", 1001.1, demo.LOST, retry_at=1002.1),  # another process's trip
        write(1, "half_open", 1002.2, owned=True),  # a claim ...
        write(1, "half_open", 1002.2, demo.LOST, owned=True),  # ... raced
        write(2, "open", 1002.3, retry_at=1003.3),  # the probe failed
        write(3, "half_open", 1003.9, demo.ERROR, owned=True),  # a store error
        write(3, "half_open", 1004.3, owned=True),
        write(4, "half_open", 1004.31, successes=1),
        write(5, "half_open", 1004.33, owned=True, successes=1),
        write(6, "half_open", 1004.34, successes=2),
        write(6, "half_open", 1004.34, demo.LOST, successes=2),  # a fenced late result
        write(7, "half_open", 1004.36, owned=True, successes=2),
        write(8, "closed", 1004.37),
    ]
    demo._summary(fleet, plan)
    out = capsys.readouterr().out
    _, items, lost_why = store_items(out)
    assert items == {
        "trip": 1,
        "probe claims": 4,
        "probe successes": 3,
        "probe failure": 1,
        "lost": 3,
        "failed": 1,
    }
    assert lost_why.endswith("nothing written (1 trip, 1 claim, 1 success)"), lost_why
    assert has_line(r"^  store .* 13 conditional writes \(9 won, 3 lost\), 0 while healthy$", out)
    heal = block(out, "heal -> closed")
    check_close_explanation(heal)
    assert heal.startswith("0.37 s: 3 probes in a row succeeded"), heal
    assert "claimed at +0.30, +0.33, +0.36 s after the heal" in heal
    assert "came 1.00 s after retry_at (-0.70 s): a failed probe at -1.70 s" in heal
