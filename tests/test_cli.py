"""The `fleetbreaker` command line in process: help, the demo's argument checks, and the
deprecated `status` command (kept for one release, its output unchanged)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from fleetbreaker import CircuitBreaker, Config, SQLiteStore, cli


class BoomError(Exception):
    pass


def fail() -> None:
    raise BoomError


def test_module_help_lists_the_commands() -> None:
    """`python -m fleetbreaker --help` exits 0, names every command and the exit codes; the
    deprecated `status` is not advertised."""
    result = subprocess.run(
        [sys.executable, "-m", "fleetbreaker", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    commands = result.stdout.partition("commands:")[2].partition("store:")[0].split()
    for command in ("list", "show", "watch", "open", "close", "clear", "reset", "demo"):
        assert command in commands
    assert "status" not in commands
    exit_codes = result.stdout.partition("exit codes:")[2].splitlines()
    assert [line[2] for line in exit_codes if line[:3].strip().isdigit()] == list("01234")


def test_demo_help_lists_its_options(capsys: pytest.CaptureFixture[str]) -> None:
    """`demo --help` exits 0 and documents every option."""
    assert cli.main(["demo", "--help"]) == 0
    out = capsys.readouterr().out
    for option in ("--processes", "--threads", "--healthy", "--outage", "--after", "--store-dir"):
        assert option in out


def test_a_command_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    """Without a subcommand the usage error exits 2."""
    assert cli.main([]) == 2
    assert "usage: fleetbreaker" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--processes", "0"], "must be at least 1, got 0"),
        (["--threads", "many"], "expected a whole number, got 'many'"),
        (["--outage", "0"], "must be a number of seconds > 0, got 0"),
        (["--after", "-1"], "must be a number of seconds > 0, got -1"),
        (["--healthy", "nan"], "must be a number of seconds >= 0, got nan"),
    ],
    ids=["no-processes", "threads-not-a-number", "no-outage", "negative-after", "nan-healthy"],
)
def test_demo_rejects_bad_options(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad demo option is a usage error (exit 2) that says what is allowed."""
    assert cli.main(["demo", *argv]) == 2
    assert message in capsys.readouterr().err


def test_status_of_a_fresh_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A store with no circuits says so and exits 0; stderr says what replaces `status`."""
    db = tmp_path / "fresh.db"
    SQLiteStore(db).close()
    assert cli.main(["status", "--sqlite", str(db)]) == 0
    out, err = capsys.readouterr()
    assert out == f"no circuits in {str(db)!r}\n"
    assert err == (
        "fleetbreaker status is deprecated and goes in the next release: use "
        f"fleetbreaker --store sqlite://{db} list\n"
    )


def test_status_shows_each_circuit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Stored circuits are listed with their state; a named circuit with no record reads closed."""
    db = tmp_path / "breakers.db"
    store = SQLiteStore(db)
    config = Config(failure_threshold=1, recovery_timeout=60)
    with pytest.raises(BoomError):
        CircuitBreaker("payments", store=store, config=config).call(fail)
    store.close()

    assert cli.main(["status", "--sqlite", str(db)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["circuit", "state", "epoch", "detail"]
    assert lines[1].startswith("payments  open           1  opened ")
    assert "after 1 failure; next probe from " in lines[1]
    assert len(lines) == 2

    assert cli.main(["status", "--sqlite", str(db), "search", "payments"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["search", "closed", "-", "no", "stored", "record"]
    assert lines[2].startswith("payments  open ")


def test_status_of_a_missing_file_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A path with no database is an error (exit 2), and no database is created there."""
    db = tmp_path / "missing.db"
    assert cli.main(["status", "--sqlite", str(db)]) == 2
    assert f"no database file at {str(db)!r}" in capsys.readouterr().err
    assert not db.exists()


@pytest.mark.parametrize("kind", ["directory", "text-file", "other-database"])
def test_status_of_a_bad_path(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A directory, a non-database file or someone else's database: a clear error, exit 2."""
    path = tmp_path / "target"
    if kind == "directory":
        path.mkdir()
    elif kind == "text-file":
        path.write_text("not a database, just some text that is long enough\n" * 20)
    else:
        with sqlite3.connect(path) as conn:
            conn.execute("CREATE TABLE invoices (id INTEGER)")
        conn.close()
    assert cli.main(["status", "--sqlite", str(path)]) == 2
    deprecation, err = capsys.readouterr().err.split("\n", 1)
    assert deprecation.startswith("fleetbreaker status is deprecated")
    assert err.startswith("fleetbreaker status: ")
    expected = {
        "directory": "no database file at",
        "text-file": "cannot use",
        "other-database": "an SQLite database of something else",
    }[kind]
    assert expected in err


def test_a_reader_that_goes_away_ends_the_command_quietly() -> None:
    """`fleetbreaker ... | head` that stops reading: exit 141 (as SIGPIPE would), no traceback."""
    # About 160 KB of JSON, more than a pipe holds: the command is still writing when the
    # reader closes its end, whatever the scheduling.
    command = [sys.executable, "-m", "fleetbreaker", "simulate", "--envs", "20"]
    command += ["--duration", "3000s", "--outage", "20s:50s", "--json"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        assert process.stdout is not None
        assert process.stderr is not None
        assert process.stdout.read(1) == b"{"
        process.stdout.close()  # the reader goes away while the command still writes
        errors = process.stderr.read().decode()
        code = process.wait(timeout=60)
    assert "Traceback" not in errors, errors
    assert code == 141, errors
