"""The Redis benchmark runs end to end (quick mode); its figures are not asserted here."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "bench_redis.py"


def _bench(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
        env=env,
    )


def test_quick_run_reports_every_section() -> None:
    """A quick run prints the healthy path, round trips and probe sections with their ratios."""
    result = _bench("--quick")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for line in [
        "fleetbreaker RedisStore @breaker",
        "fleetbreaker RedisStore async @breaker",
        "pybreaker CircuitRedisStorage",
        "ratio pybreaker / fleetbreaker overhead",
        "healthy, back to back",
        "healthy, spread over 60 s",
        "downstream down (trip, then refusals)",
        "ratio pybreaker / fleetbreaker (median)",
    ]:
        assert line in out, (line, out)
    probe = next(row for row in out.splitlines() if row.strip().startswith("fleetbreaker median"))
    assert probe.endswith("round trips 3"), probe


def test_missing_redis_server_says_how_to_install() -> None:
    """Without redis-server on PATH the benchmark stops at once and says how to install it."""
    result = _bench("--quick", env={**os.environ, "PATH": "/nonexistent"})
    assert result.returncode != 0
    assert "make system-deps" in result.stderr
    assert result.stdout == ""
