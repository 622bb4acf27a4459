"""The overhead benchmark runs end to end (quick mode); its figures are not asserted here."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "bench_overhead.py"
DYNALITE_CLI = ROOT / "node_modules" / "dynalite" / "cli.js"

ROWS = [
    "bare call",
    "fleetbreaker MemoryStore @breaker",
    "fleetbreaker (metrics on) MemoryStore @breaker",
    "fleetbreaker SQLiteStore @breaker",
    "fleetbreaker MemoryStore .call()",
    "fleetbreaker MemoryStore guard()",
    "pybreaker CircuitBreaker()",
    "circuitbreaker @circuit",
    "powertools (DynamoDB/dynalite)",
    "powertools (dict persistence)",
]
CHECKS = [
    "must  fleetbreaker closed-path cost <= 1/5 of powertools'",
    "must  below pybreaker's",
    "goal  no slower than circuitbreaker",
    "goal  8 threads >= single-thread throughput",
    "must  metrics on: the default rule's healthy call <= 1.3x its cost with metrics off",
]


def _bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
        cwd=ROOT,
    )


def test_quick_run_reports_every_subject_and_check() -> None:
    """A quick run prints a timing and a memory row per subject, and every check."""
    # No skip: `make test` installs dynalite, and a missing one must fail the run.
    assert shutil.which("node") is not None, "node is missing (apt-get install nodejs)"
    assert DYNALITE_CLI.is_file(), "dynalite is missing (make system-deps)"
    result = _bench("--quick")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for label in ROWS:
        lines = [line for line in out.splitlines() if line.startswith(label)]
        expected = 1 if label == "bare call" else 2  # timing row, and memory row
        assert len(lines) == expected, (label, out)
    for check in CHECKS:
        assert any(
            line.strip().startswith(("PASS", "FAIL")) and check in line for line in out.splitlines()
        ), (check, out)


def test_missing_dynalite_fails_with_how_to_install(tmp_path: Path) -> None:
    """Without dynalite the benchmark stops at once and says how to install it."""
    result = _bench("--quick", "--dynalite", str(tmp_path / "cli.js"))
    assert result.returncode != 0
    assert "make system-deps" in result.stderr
    assert "dynalite" in result.stderr
    assert result.stdout == ""
