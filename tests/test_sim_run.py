"""The fleet simulation runs end to end (quick mode); its figures are not asserted here."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "sim_fleet.py"

ROWS = [
    "store writes, total",
    "store writes/s, peak (1 s buckets)",
    "  conditional writes lost",
    "trips persisted (trip writes)",
    "store reads/s, steady state (mean)",
    "leaked calls (failing, after 1st trip)",
    "max probes in flight, fleet-wide",
    "heal -> record CLOSED",
    "heal -> every env admitted a call",
]
CHECKS = [
    "no lost conditional writes",
    "at most one probe in flight",
    "at most one trip persisted per outage",
]


@pytest.fixture(scope="module")
def quick_run() -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )


def test_quick_run_prints_a_row_per_figure_for_both_protocols(
    quick_run: subprocess.CompletedProcess[str],
) -> None:
    """A quick run prints every result row, with a figure for each protocol, and each check."""
    assert quick_run.returncode in {0, 1}, quick_run.stderr
    out = quick_run.stdout
    assert re.search(r"^\s+fleetbreaker\s+powertools model\s+ratio$", out, re.MULTILINE), out
    for label in ROWS:
        lines = [line for line in out.splitlines() if line.startswith(label)]
        assert len(lines) == 1, (label, out)
        figures = lines[0][len(label) :].split()
        assert len(figures) >= 2, (label, lines[0])
    for check in CHECKS:
        assert re.search(rf"^(PASS|FAIL)  fleetbreaker: {check}", out, re.MULTILINE), (check, out)


def test_quick_run_passes_its_fleet_checks(quick_run: subprocess.CompletedProcess[str]) -> None:
    """fleetbreaker loses no conditional write, runs one probe at a time and trips once."""
    assert quick_run.returncode == 0, quick_run.stdout + quick_run.stderr
