"""The DynamoDB fleet benchmark runs end to end (quick mode) and meets its goal."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.servers.dynamodb_servers import DYNALITE, ROOT

SCRIPT = ROOT / "benchmarks" / "bench_dynamodb.py"
ROWS = [
    "healthy: reads per 10,000 calls",
    "healthy: writes per 10,000 calls",
    "outage: trip writes (won/attempted)",
    "claim writes per window per process: max",
    "recovery: heal -> written closed (s)",
]


def _bench(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(SCRIPT), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=110, check=False)


def test_quick_run_compares_both_libraries_and_meets_the_goal(aws_sandbox: None) -> None:
    """A quick run prints every row for both libraries, no healthy writes, and PASS."""
    assert DYNALITE.is_file(), "dynalite is missing: make system-deps"
    result = _bench("--quick")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for row in ROWS:
        cells = next(line for line in lines if line.startswith(row))[len(row) :].split()
        assert len(cells) == 2, (row, result.stdout)
    writes = next(line for line in lines if line.startswith("healthy: writes per 10,000"))
    assert writes.split()[-2:] == ["0.00", "0.00"], result.stdout
    assert any(line.startswith("PASS  goal") for line in lines), result.stdout


def test_missing_dynalite_says_how_to_install(tmp_path: Path) -> None:
    """Without dynalite the benchmark stops at once and names the install command."""
    result = _bench("--quick", "--dynalite", str(tmp_path / "cli.js"))
    assert result.returncode != 0
    assert "make system-deps" in result.stderr
    assert result.stdout == ""
