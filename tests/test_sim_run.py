"""`fleetbreaker simulate` end to end, as a subprocess, on quick runs (50 environments, 20 s):
the text rows, the JSON schema and its invariants, the plot, the checks, the matrix, and the
Powertools model's known faults. Figures are checked for consistency, never for speed."""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fleetbreaker._sim.figures import RUN_KEYS, SCHEMA_VERSION

ROOT = Path(__file__).resolve().parent.parent
QUICK = ["--envs", "50", "--duration", "20s", "--outage", "4s:9s"]
QUICK_CONFIG = ["--config", "recovery_timeout=5s"]


def simulate(*argv: str, code: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    command = ["-m", "fleetbreaker", "simulate", *argv] if code is None else ["-c", code, *argv]
    return subprocess.run(
        [sys.executable, *command],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
        env=env,
    )


ROWS = [
    "store reads/s, peak (1 s buckets)",
    "store reads/s, steady state (mean)",
    "store writes/s, peak (1 s buckets)",
    "store writes, total",
    "  conditional writes lost",
    "calls that reached the failing downstream",
    "outage start -> first trip persisted",
    "heal -> record CLOSED",
    "heal -> every env admitted a call",
    "DynamoDB cost, outage start -> fleet resumed",
    "DynamoDB cost per million invocations",
    "  of one item's 3,000 RCU/s",
    "  of one item's 1,000 WCU/s",
]
CHECKS = [
    "no lost conditional writes",
    "at most one probe in flight",
    "at most one trip persisted per outage",
]


@pytest.fixture(scope="module")
def text_run() -> subprocess.CompletedProcess[str]:
    return simulate(*QUICK, *QUICK_CONFIG, "--compare", "powertools", "--check")


@pytest.fixture(scope="module")
def json_run() -> dict[str, Any]:
    run = simulate(*QUICK, *QUICK_CONFIG, "--compare", "powertools", "--check", "--json")
    assert run.returncode == 0, run.stdout + run.stderr
    document: dict[str, Any] = json.loads(run.stdout)
    return document


def test_text_report_has_a_row_per_figure_for_both_protocols(
    text_run: subprocess.CompletedProcess[str],
) -> None:
    """The report prints each sizing row once, with a figure for each protocol, and each check."""
    assert text_run.returncode == 0, text_run.stdout + text_run.stderr
    out = text_run.stdout
    assert re.search(r"^\s+fleetbreaker\s+powertools\s+ratio$", out, re.MULTILINE), out
    for label in ROWS:
        lines = [line for line in out.splitlines() if line.startswith(label)]
        assert len(lines) == 1, (label, out)
        assert len(lines[0][len(label) :].split()) >= 2, lines[0]
    for check in CHECKS:
        assert re.search(rf"^PASS  fleetbreaker: {check}", out, re.MULTILINE), (check, out)
    assert "Traceback" not in text_run.stderr


def test_json_has_the_documented_keys(json_run: dict[str, Any]) -> None:
    """--json prints the documented document: every run key, numbers (not strings)."""
    assert json_run["schema_version"] == SCHEMA_VERSION
    assert set(json_run) == {"schema_version", "params", "dynamodb", "runs", "checks"}
    assert list(json_run["runs"]) == ["fleetbreaker", "powertools"]
    for run in json_run["runs"].values():
        assert list(run)[: len(RUN_KEYS)] == list(RUN_KEYS)
        assert set(run) - set(RUN_KEYS) == {"transitions", "per_second"}
        for key in RUN_KEYS:
            assert run[key] is None or isinstance(run[key], int | float), key
            assert not isinstance(run[key], bool), key
    params = json_run["params"]
    assert (params["envs"], params["duration_s"], params["outage_start_s"]) == (50, 20.0, 4.0)
    assert params["config"]["recovery_timeout"] == 5.0
    assert all(check["passed"] for check in json_run["checks"])


def test_json_figures_are_consistent(json_run: dict[str, Any]) -> None:
    """Trips follow the outage's start, counts add up, and the bill is units x price."""
    prices = json_run["dynamodb"]
    params = json_run["params"]
    for name, run in json_run["runs"].items():
        assert run["outage_start_to_trip_s"] is not None, name
        assert 0 < run["outage_start_to_trip_s"] < params["outage_end_s"] - params["outage_start_s"]
        assert run["heal_to_closed_s"] is not None
        assert run["heal_to_closed_s"] > 0
        assert run["heal_to_fleet_resumed_s"] >= run["heal_to_closed_s"]
        assert 0 <= run["calls_leaked_after_trip"] <= run["calls_reached_failing_downstream"]
        assert run["calls_total"] == run["calls_refused"] + run["calls_reached_downstream"]
        assert run["store_writes_total"] == (
            run["conditional_writes_won"]
            + run["conditional_writes_lost"]
            + run["unconditional_writes"]
        )
        per_second = run["per_second"]
        assert sum(per_second["store_reads"]) == run["store_reads_total"]
        assert sum(per_second["store_writes"]) == run["store_writes_total"]
        assert max(per_second["store_reads"]) == run["store_reads_per_s_peak"]
        assert sum(per_second["calls_admitted"]) == run["calls_reached_downstream"]
        assert sum(per_second["calls_refused"]) == run["calls_refused"]
        assert run["write_units_total"] == run["store_writes_total"] * 1  # 1 KB item
        consistent = run["store_reads_consistent_total"]
        eventual = run["store_reads_total"] - consistent
        assert run["read_units_total"] == pytest.approx(consistent + eventual / 2)
        expected = (
            run["read_units_total"] * prices["price_read_per_million_usd"]
            + run["write_units_total"] * prices["price_write_per_million_usd"]
        ) / 1e6
        assert run["cost_run_usd"] == pytest.approx(expected)
        assert 0 < run["cost_outage_usd"] <= run["cost_run_usd"]
        assert run["cost_per_million_calls_usd"] == pytest.approx(
            run["cost_run_usd"] / run["calls_total"] * 1e6
        )
        assert run["item_write_limit_share_peak"] == pytest.approx(
            run["write_units_per_s_peak"] / 1000
        )
        assert run["transitions"][0]["to"] == "open"


def test_powertools_model_shows_its_known_faults(json_run: dict[str, Any]) -> None:
    """On the same arrivals, every Powertools environment that crosses the threshold persists
    its own trip, and its probe claims race; fleetbreaker trips once and loses no write."""
    ours, theirs = json_run["runs"]["fleetbreaker"], json_run["runs"]["powertools"]
    assert ours["trips_persisted"] == 1
    assert ours["conditional_writes_lost"] == 0
    assert theirs["trips_persisted"] > 1
    assert theirs["unconditional_writes"] >= theirs["trips_persisted"]
    assert theirs["probe_claims_lost"] > 0
    assert theirs["store_writes_total"] > 10 * ours["store_writes_total"]


def test_same_seed_same_figures(json_run: dict[str, Any]) -> None:
    """A run is a function of its options: the same seed gives the same figures."""
    run = simulate(*QUICK, *QUICK_CONFIG, "--json", "--jobs", "1")
    again = json.loads(run.stdout)["runs"]["fleetbreaker"]
    first = json_run["runs"]["fleetbreaker"]
    for key in RUN_KEYS:
        if key != "simulation_wall_s":
            assert again[key] == first[key], key


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_plot_writes_a_png_timeline(tmp_path: Path) -> None:
    """--plot FILE.png draws the timeline into a real PNG image."""
    target = tmp_path / "timeline.png"
    run = simulate(*QUICK, *QUICK_CONFIG, "--compare", "powertools", "--plot", str(target))
    assert run.returncode == 0, run.stderr
    data = target.read_bytes()
    assert _png_size(data) == (1000, 800)
    assert len(data) > 20_000


BLOCK_MATPLOTLIB = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError("no matplotlib here")
sys.meta_path.insert(0, Block())
from fleetbreaker.cli import main
sys.exit(main(["simulate", *sys.argv[1:]]))
"""


def test_plot_without_matplotlib_names_the_extra(tmp_path: Path) -> None:
    """Without matplotlib, --plot is a usage error naming the extra, before any simulation."""
    run = simulate(*QUICK, "--plot", str(tmp_path / "t.png"), code=BLOCK_MATPLOTLIB)
    assert run.returncode == 2, run.stdout + run.stderr
    assert "fleetbreaker[plot]" in run.stderr
    assert "Traceback" not in run.stderr
    assert run.stdout == ""
    assert not (tmp_path / "t.png").exists()


def test_quick_matrix_keeps_its_guarantees() -> None:
    """A quorum ignores one sick environment; every cell keeps its fleet checks."""
    run = simulate(*QUICK, *QUICK_CONFIG, "--matrix", "sick:quorum,down:consecutive", "--check")
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    for shape, policy in (("sick", "quorum"), ("down", "consecutive")):
        assert len(re.findall(rf"^{shape}\s+{policy}\s+\S", out, re.MULTILINE)) == 2, out
    assert re.search(r"^sick\s+quorum\s+never\s+no\s", out, re.MULTILINE), out
    assert re.search(r"^PASS  sick x quorum: one sick environment does not trip", out, re.MULTILINE)


def test_benchmark_script_is_a_thin_call_of_the_command() -> None:
    """benchmarks/sim_fleet.py passes its arguments to `fleetbreaker simulate`."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    script = ROOT / "benchmarks" / "sim_fleet.py"
    run = subprocess.run(
        [sys.executable, str(script), *QUICK, *QUICK_CONFIG, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["runs"]["fleetbreaker"]["trips_persisted"] == 1


def test_a_failed_check_is_exit_1() -> None:
    """A circuit that closes and trips again within one outage fails --check (exit 1), in
    text and in JSON."""
    argv = [*QUICK, "--outage-shape", "ratio:0.5", "--config", "recovery_timeout=1s"]
    argv += ["--config", "success_threshold=1", "--check"]
    text = simulate(*argv)
    assert text.returncode == 1, text.stdout + text.stderr
    assert re.search(
        r"^FAIL  fleetbreaker: at most one trip persisted per outage \(got [2-9]",
        text.stdout,
        re.MULTILINE,
    )
    as_json = simulate(*argv, "--json")
    assert as_json.returncode == 1
    document = json.loads(as_json.stdout)
    assert document["runs"]["fleetbreaker"]["trips_persisted"] > 1
    assert [c["passed"] for c in document["checks"]] == [True, True, False]
