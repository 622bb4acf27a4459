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


SCENARIOS = ["outage", "partial", "slow", "sick"]
POLICIES = ["consecutive", "rate", "quorum"]


@pytest.fixture(scope="module")
def quick_matrix() -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--matrix", "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )


def test_quick_matrix_prints_each_cell_in_both_tables(
    quick_matrix: subprocess.CompletedProcess[str],
) -> None:
    """A quick matrix run prints every scenario x policy once per table, and its checks."""
    assert quick_matrix.returncode in {0, 1}, quick_matrix.stderr
    out = quick_matrix.stdout
    for scenario in SCENARIOS:
        for policy in POLICIES:
            rows = re.findall(rf"^{scenario}\s+{policy}\s+\S", out, re.MULTILINE)
            assert len(rows) == 2, (scenario, policy, out)
            assert re.search(rf"^(PASS|FAIL)  {scenario} x {policy}: ", out, re.MULTILINE), out
    sick = r"^PASS  sick x quorum: one sick environment does not trip"
    assert re.search(sick, out, re.MULTILINE), out


def test_quick_matrix_passes_its_checks(quick_matrix: subprocess.CompletedProcess[str]) -> None:
    """Every policy keeps its fleet guarantees, and a quorum ignores one sick environment."""
    assert quick_matrix.returncode == 0, quick_matrix.stdout + quick_matrix.stderr
    sick_quorum = re.search(r"^sick\s+quorum\s+never\s+no\s", quick_matrix.stdout, re.MULTILINE)
    assert sick_quorum, quick_matrix.stdout


def test_matrix_refuses_an_unknown_cell() -> None:
    """A matrix cell names a known scenario and policy, or the run stops with a usage error."""
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--matrix", "outage:fastest"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert run.returncode == 2
    assert "a cell is scenario:policy" in run.stderr
