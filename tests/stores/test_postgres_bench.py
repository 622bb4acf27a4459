"""The PostgreSQL benchmark runs end to end (quick mode); its figures are not asserted here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "bench_postgres.py"


def test_quick_run_reports_every_section() -> None:
    """A quick run prints the healthy path, round trips and probe sections; a probe's claim and
    release is three statements, as with Redis."""
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for line in [
        "fleetbreaker PostgresStore @breaker",
        "fleetbreaker PostgresStore async @breaker",
        "healthy, back to back",
        "healthy, spread over 60 s",
        "downstream down (trip, then refusals)",
        "one psycopg SELECT 1 round trip, median",
    ]:
        assert line in out, (line, out)
    probe = next(row for row in out.splitlines() if row.strip().startswith("fleetbreaker median"))
    assert probe.endswith("round trips 3"), probe
