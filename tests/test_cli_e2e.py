"""The `fleetbreaker` command end to end: a subprocess against SQLite, Redis and DynamoDB
(dynalite), with `TZ` set far from UTC so that a local time would show."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO

import psycopg
import pytest

from fleetbreaker import CircuitState, SQLiteStore, Store, operations
from fleetbreaker._cli.times import iso
from fleetbreaker._protocol import Record
from tests.servers import dynamodb_servers, postgres_servers
from tests.servers.redis_servers import ServerProcess, open_redis_store

SRC = Path(__file__).resolve().parents[1] / "src"
WAIT_S = 30.0  # bounded waits for a subprocess: generous, a loaded runner is slow
KINDS = ["sqlite", "redis", "postgres", "dynamodb"]


@dataclass
class Target:
    """A store the CLI reaches by ``url``, and the test process reaches by ``store``."""

    kind: str
    url: str
    store: Store

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, "--store", self.url)


def cli_env() -> dict[str, str]:
    """The test's environment, in Tokyo's time zone, with no store named."""
    env = {
        **os.environ,
        "TZ": "Asia/Tokyo",
        "PYTHONPATH": os.pathsep.join([str(SRC), str(Path.cwd())]),
    }
    env.pop("FLEETBREAKER_STORE", None)
    return env


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m fleetbreaker ARGS`, its output captured, within a bounded wait."""
    return subprocess.run(
        [sys.executable, "-m", "fleetbreaker", *args],
        capture_output=True,
        text=True,
        env=cli_env() if env is None else env,
        timeout=WAIT_S * 2,
        check=False,
    )


@pytest.fixture
def sqlite_target(tmp_path: Path) -> Iterator[Target]:
    path = tmp_path / "breakers.db"
    store = SQLiteStore(path)
    yield Target("sqlite", f"sqlite://{path}", store)
    store.close()


@pytest.fixture
def redis_target(redis_server_process: ServerProcess) -> Iterator[Target]:
    prefix = f"fbtest:{uuid.uuid4().hex}:"
    store = open_redis_store(redis_server_process.url, prefix)
    yield Target("redis", f"{redis_server_process.url}?prefix={prefix}", store)
    store.close()


@pytest.fixture
def dynamodb_target(dynalite_server: dynamodb_servers.ServerProcess) -> Iterator[Target]:
    table = dynamodb_servers.unique_table()
    store = dynamodb_servers.open_store(dynalite_server.endpoint, table)
    store.create_table()
    url = f"dynamodb://{table}?endpoint_url={dynalite_server.endpoint}&region=us-east-1"
    yield Target("dynamodb", url, store)
    store.close()
    client = dynamodb_servers.raw_client(dynalite_server.endpoint)
    client.delete_table(TableName=table)
    client.close()


@pytest.fixture
def postgres_target(postgres_server: postgres_servers.PostgresServer) -> Iterator[Target]:
    table = postgres_servers.unique_table()
    store = postgres_servers.open_store(postgres_server.dsn, table)
    assert (
        store.names() == []
    )  # the table made, as by the fleet's first breaker (the CLI never makes one)
    yield Target("postgres", f"{postgres_server.dsn}?table={table}&timeout=5", store)
    store.close()


@pytest.fixture(params=KINDS)
def target(request: pytest.FixtureRequest) -> Target:
    """Each store kind that a fleet shares, in turn."""
    found: Target = request.getfixturevalue(f"{request.param}_target")
    return found


def plant_open(store: Store, name: str, now: float, *, epoch: int = 0) -> Record:
    """``name`` tripped 3 min ago by 5 consecutive failures; next probe in 57 s."""
    record = Record(
        CircuitState.OPEN,
        epoch + 1,
        opened_at=now - 180,
        retry_at=now + 57,
        failure_count=5,
        updated_at=now - 180,
        expires_at=now + 3600,
        rule="consecutive",
    )
    assert store.compare_and_set(name, epoch or None, record)
    return record


def plant_closed(store: Store, name: str, now: float, *, epoch: int = 0) -> Record:
    record = Record(CircuitState.CLOSED, epoch + 1, updated_at=now, expires_at=now + 3600)
    assert store.compare_and_set(name, epoch or None, record)
    return record


# ---- list and show --------------------------------------------------------------------------


def test_list_shows_every_circuit_in_utc(target: Target) -> None:
    """`list` prints each circuit with UTC times whatever TZ says, and exits 1 if one is open."""
    now = time.time()
    opened = plant_open(target.store, "payments", now)
    plant_closed(target.store, "search", now)

    result = target.run("list")
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["CIRCUIT", "STATE", "SINCE"]
    assert [line.split()[:2] for line in lines[1:]] == [["payments", "open"], ["search", "closed"]]
    assert f"{iso(opened.opened_at)} (3 min ago)" in lines[1]
    assert "5 failures (consecutive)" in lines[1]
    assert f"{iso(opened.retry_at)} (in 5" in lines[1]  # in 56 or 57 s


def test_list_json_parses(target: Target) -> None:
    """`list --json` is JSON with epoch seconds and ISO strings in UTC."""
    now = time.time()
    opened = plant_open(target.store, "payments", now)
    result = target.run("list", "--json")
    assert result.returncode == 1, result.stderr
    document = json.loads(result.stdout)
    (circuit,) = document["circuits"]
    assert circuit["name"] == "payments"
    assert circuit["state"] == "open"
    assert circuit["healthy"] is False
    assert circuit["opened_at"] == pytest.approx(opened.opened_at)
    assert circuit["opened_at_iso"] == iso(opened.opened_at)
    assert circuit["next_probe_at_iso"] == iso(opened.retry_at)
    assert circuit["failure_count"] == 5
    assert circuit["rule"] == "consecutive"
    assert document["now_iso"].endswith("Z")


def test_list_of_closed_circuits_exits_0(target: Target) -> None:
    """Every circuit closed: exit 0; an empty store says so and exits 0 too."""
    result = target.run("list")
    assert (result.returncode, result.stdout) == (0, f"no circuits in {target.url}\n")
    plant_closed(target.store, "search", time.time())
    result = target.run("list")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1].split()[:2] == ["search", "closed"]


def test_show_one_circuit(target: Target) -> None:
    """`show` prints one circuit (exit 1 when open, 0 when closed); --json parses."""
    now = time.time()
    opened = plant_open(target.store, "payments", now)
    plant_closed(target.store, "search", now)

    result = target.run("show", "payments")
    assert result.returncode == 1, result.stderr
    assert "circuit:     payments" in result.stdout
    assert f"opened at:   {iso(opened.opened_at)} (3 min ago)" in result.stdout

    result = target.run("show", "search", "--json")
    assert result.returncode == 0, result.stderr
    circuit = json.loads(result.stdout)["circuit"]
    assert (circuit["name"], circuit["state"], circuit["healthy"]) == ("search", "closed", True)


def test_show_an_unknown_circuit_exits_4(target: Target) -> None:
    """A name with no record is exit 4, naming the close matches: never a healthy 'closed'."""
    plant_open(target.store, "payments", time.time())
    result = target.run("show", "paymnets")
    assert result.returncode == 4
    assert result.stdout == ""
    assert "no record for circuit 'paymnets'" in result.stderr
    assert "close matches: 'payments'" in result.stderr


# ---- watch ----------------------------------------------------------------------------------


class Lines:
    """A subprocess's output lines, read by a thread: waited for with a bound, never slept on."""

    def __init__(self, stream: IO[str]) -> None:
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._thread.join(timeout=WAIT_S)

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, wanted: Callable[[str], bool], what: str) -> str:
        deadline = time.monotonic() + WAIT_S
        while True:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no line {what} within {WAIT_S:g} s; saw {self.seen}")
            if line is None:
                pytest.fail(f"output ended before a line {what}; saw {self.seen}")
            self.seen.append(line)
            if wanted(line):
                return line


@dataclass
class Watch:
    process: subprocess.Popen[str]
    lines: Lines

    def stop(self, how: signal.Signals) -> int:
        """Send ``how``; the exit code (within a bounded wait)."""
        self.process.send_signal(how)
        return self.process.wait(timeout=WAIT_S)


@contextmanager
def watching(target: Target, tmp_path: Path, *args: str) -> Iterator[Watch]:
    """`fleetbreaker watch ARGS` piped; killed on the way out if the test did not stop it."""
    with (tmp_path / "watch.err").open("w") as errors:
        process = subprocess.Popen(
            [sys.executable, "-m", "fleetbreaker", "watch", *args, "--store", target.url],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            env=cli_env(),
        )
        assert process.stdout is not None
        lines = Lines(process.stdout)
        try:
            yield Watch(process, lines)
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()
            lines.close()
            process.stdout.close()


def test_watch_prints_a_line_per_change(target: Target, tmp_path: Path) -> None:
    """Piped, `watch` prints each circuit once, then a line per change; Ctrl-C exits 0."""
    before = plant_closed(target.store, "payments", time.time())
    with watching(target, tmp_path, "--interval", "0.2") as watch:
        first = watch.lines.wait_for(lambda line: " payments " in line, "for payments")
        assert first.endswith(" payments is closed")
        plant_open(target.store, "payments", time.time(), epoch=before.epoch)
        change = watch.lines.wait_for(lambda line: "->" in line, "for the change")
        assert target.run("open", "payments", "--for", "5m", "--reason", "INC-7").returncode == 0
        forced = watch.lines.wait_for(lambda line: "forced_open" in line, "for the override")
        assert watch.stop(signal.SIGINT) == 0
    assert forced.split()[1:5] == ["payments", "open", "->", "forced_open"]
    assert "'INC-7'" in forced
    stamp, name, old, arrow, new, *rest = change.split()
    assert (name, old, arrow, new) == ("payments", "closed", "->", "open")
    seen = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert abs(seen.timestamp() - time.time()) < 60  # UTC, although TZ is Asia/Tokyo
    assert "5 failures (consecutive)" in " ".join(rest)
    errors = (tmp_path / "watch.err").read_text()
    assert "Traceback" not in errors, errors


def test_watch_named_circuits_and_sigterm(sqlite_target: Target, tmp_path: Path) -> None:
    """`watch NAME` follows that circuit even before it has a record; SIGTERM exits 0."""
    with watching(sqlite_target, tmp_path, "payments", "--interval", "0.2") as watch:
        first = watch.lines.wait_for(lambda line: "payments" in line, "for payments")
        assert first.endswith(" payments has no record")
        plant_open(sqlite_target.store, "payments", time.time())
        change = watch.lines.wait_for(lambda line: "->" in line, "for the change")
        assert change.split()[1:5] == ["payments", "none", "->", "open"]
        assert watch.stop(signal.SIGTERM) == 0
    errors = (tmp_path / "watch.err").read_text()
    assert "no record for circuit 'payments'" in errors
    assert "Traceback" not in errors


def test_watch_json_lines(sqlite_target: Target, tmp_path: Path) -> None:
    """`watch --json` prints one JSON object per line: the first sight, then each change."""
    before = plant_closed(sqlite_target.store, "payments", time.time())
    with watching(sqlite_target, tmp_path, "--json", "--interval", "0.2") as watch:
        first = json.loads(watch.lines.wait_for(lambda line: "payments" in line, "for payments"))
        plant_open(sqlite_target.store, "payments", time.time(), epoch=before.epoch)
        change = json.loads(watch.lines.wait_for(lambda line: '"initial": false' in line, "change"))
        assert watch.stop(signal.SIGINT) == 0
    assert (first["initial"], first["to"], first["circuit"]["state"]) == (True, "closed", "closed")
    assert (change["from"], change["to"], change["circuit"]["state"]) == ("closed", "open", "open")
    assert change["at_iso"].endswith("Z")


# ---- exit codes -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:1/0?socket_connect_timeout=2",
        "dynamodb://breakers?endpoint_url=http://127.0.0.1:1&region=us-east-1",
        "postgresql://app@127.0.0.1:1/app",
    ],
    ids=["redis-closed-port", "dynamodb-closed-port", "postgres-closed-port"],
)
@pytest.mark.parametrize("command", [["list"], ["show", "payments"], ["watch"]])
@pytest.mark.usefixtures("aws_sandbox")
def test_an_unreachable_store_exits_3(url: str, command: list[str]) -> None:
    """A store that does not answer is exit 3 with the store's message, no traceback."""
    result = run_cli(*command, "--store", url)
    assert result.returncode == 3, result.stderr
    assert result.stderr.startswith(f"fleetbreaker {command[0]}: store error: ")
    assert "Traceback" not in result.stderr


def test_a_missing_dynamodb_table_exits_3(
    dynalite_server: dynamodb_servers.ServerProcess,
) -> None:
    """A table that does not exist is a store error (exit 3) that names it."""
    url = f"dynamodb://no-such-table?endpoint_url={dynalite_server.endpoint}&region=us-east-1"
    result = run_cli("list", "--store", url)
    assert result.returncode == 3, result.stderr
    assert "no-such-table" in result.stderr


def test_a_missing_sqlite_file_exits_3_and_creates_nothing(tmp_path: Path) -> None:
    """The read commands never create an SQLite file: a path with no database is exit 3."""
    path = tmp_path / "missing.db"
    for command in (["list"], ["show", "payments"], ["watch"]):
        result = run_cli(*command, "--store", f"sqlite://{path}")
        assert result.returncode == 3, result.stderr
        assert f"no SQLite database at {str(path)!r}" in result.stderr
    assert not path.exists()


def test_a_missing_postgres_table_exits_3_and_creates_nothing(
    postgres_server: postgres_servers.PostgresServer,
) -> None:
    """A table name with a typo is exit 3, never a new, empty and healthy-looking table; a URL
    that asks for the table to be made (create_table=true) gets it."""
    table = postgres_servers.unique_table()
    url = f"{postgres_server.dsn}?table={table}&timeout=5"
    opening = ["open", "payments", "--for", "1m", "--reason", "test", "--create"]
    for command in (["list"], ["show", "payments"], ["watch"], opening):
        result = run_cli(*command, "--store", url)
        assert result.returncode == 3, (command, result.stderr)
        assert "the table does not exist" in result.stderr, result.stderr
    with psycopg.connect(postgres_server.dsn, autocommit=True) as conn:
        assert conn.execute("SELECT to_regclass(%s)", (table,)).fetchone() == (None,)
    made = run_cli("list", "--store", f"{url}&create_table=true")
    assert made.returncode == 0, made.stderr
    with psycopg.connect(postgres_server.dsn, autocommit=True) as conn:
        assert conn.execute("SELECT to_regclass(%s)", (table,)).fetchone() == (table,)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["list", "--store", "cache:6379"], "is not a store URL"),
        (["list", "--store", "http://cache"], "unknown scheme 'http'"),
        (["watch", "--store", "memory://", "--interval", "0"], "more than 0 s"),
        (["watch", "--store", "memory://", "--interval", "0.01"], "at least 0.1 s"),
        (["watch", "--store", "memory://", "--interval", "soon"], "expected a duration"),
        (["show", "--store", "memory://"], "the following arguments are required: NAME"),
        (["list"], "no store given: pass --store URL or set FLEETBREAKER_STORE"),
        (["explode"], "invalid choice: 'explode'"),
    ],
    ids=[
        "no-scheme",
        "unknown-scheme",
        "zero-interval",
        "tiny-interval",
        "junk-interval",
        "no-name",
        "no-store",
        "unknown-command",
    ],
)
def test_usage_errors_exit_2(args: list[str], message: str) -> None:
    """A bad command line or store URL is exit 2 with a message that says what is wrong."""
    result = run_cli(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_the_environment_names_the_store(sqlite_target: Target) -> None:
    """FLEETBREAKER_STORE names the store when --store is not given; --store wins over it."""
    plant_open(sqlite_target.store, "payments", time.time())
    env = {**cli_env(), "FLEETBREAKER_STORE": sqlite_target.url}
    result = run_cli("list", env=env)
    assert result.returncode == 1, result.stderr
    assert "payments" in result.stdout
    result = run_cli("list", "--store", "memory://", env=env)
    assert (result.returncode, result.stdout) == (0, "no circuits in memory://\n")


def test_version() -> None:
    """`--version` prints the version on stdout and exits 0."""
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("fleetbreaker ")


# ---- the operator's writes ------------------------------------------------------------------


def test_open_close_clear_reset(target: Target) -> None:
    """An operator forces a circuit open, then closed, clears the override and resets it; each
    write is in the store (as any process reads it) and in `list`, `show` and the history."""
    plant_open(target.store, "payments", time.time())

    result = target.run("open", "payments", "--for", "30m", "--reason", "INC-42", "--actor", "al")
    assert result.returncode == 0, result.stderr
    info = operations.read(target.store, "payments")
    assert info is not None
    assert info.override is not None
    assert (info.override.kind, info.override.reason, info.override.actor) == (
        "open",
        "INC-42",
        "al",
    )
    assert info.override.until == pytest.approx(time.time() + 1800, abs=60)
    until = re.escape(f"until {iso(info.override.until)} (in ")
    assert re.fullmatch(
        f"forced 'payments' open for 30 min, {until}(29|30) min\\), by al: 'INC-42'\n",
        result.stdout,
    )
    assert result.stderr == ""  # the library's log line of the write is the command's own

    listed = target.run("list")
    assert listed.returncode == 1
    row = listed.stdout.splitlines()[1]
    assert row.split()[:3] == ["payments", "forced_open", "(open)"]
    assert re.search(f"{until}(29|30) min\\) by al", row)

    shown = json.loads(target.run("show", "payments", "--json").stdout)["circuit"]
    assert shown["effective_state"] == "forced_open"
    assert shown["override"]["until_iso"] == iso(info.override.until)
    assert shown["history"][-1]["to_state"] == "forced_open"
    assert (shown["history"][-1]["by"], shown["history"][-1]["reason"]) == ("al", "INC-42")

    result = target.run("close", "payments", "--for", "15m", "--reason", "INC-42 healed")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("forced 'payments' closed for 15 min, until ")
    assert target.run("list").returncode == 1  # overridden, even though closed

    result = target.run("clear", "payments", "--reason", "over")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("cleared the override of 'payments' (forced closed by ")
    result = target.run("clear", "payments")
    assert (result.returncode, result.stdout) == (
        0,
        "'payments' has no override in force: nothing done\n",
    )

    result = target.run("reset", "payments", "--reason", "clean slate")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("reset 'payments': open -> closed")
    info = operations.read(target.store, "payments")
    assert info is not None
    assert (info.state, info.override, info.history[-1].reason) == (
        CircuitState.CLOSED,
        None,
        "clean slate",
    )
    assert target.run("list").returncode == 0


@pytest.mark.parametrize("verb", ["open", "close", "clear", "reset"])
def test_a_write_to_an_unknown_circuit_exits_4(sqlite_target: Target, verb: str) -> None:
    """A typo never creates a circuit: exit 4, the close matches named, nothing written."""
    plant_closed(sqlite_target.store, "payments", time.time())
    options = {"open": ["--for", "5m"], "close": ["--for", "5m"]}.get(verb, [])
    result = sqlite_target.run(verb, "paymnts", *options, "--reason", "why")
    assert result.returncode == 4
    assert "no record for circuit 'paymnts'" in result.stderr
    assert "close matches: 'payments'" in result.stderr
    assert ("add --create" in result.stderr) == (verb in {"open", "close"})
    assert sqlite_target.store.load("paymnts") is None


def test_open_pre_empts_a_circuit_no_process_used_yet(sqlite_target: Target) -> None:
    """`open` on a name with no record (and none close to it) sets the override, and says so."""
    plant_closed(sqlite_target.store, "payments", time.time())
    result = sqlite_target.run("open", "checkout", "--for", "90", "--reason", "pre-empt", "--json")
    assert result.returncode == 0, result.stderr
    assert "pre-empts it" in result.stderr
    circuit = json.loads(result.stdout)["circuit"]
    assert (circuit["name"], circuit["effective_state"]) == ("checkout", "forced_open")


def test_create_forces_a_circuit_whose_name_is_close_to_another(sqlite_target: Target) -> None:
    """`open --create` sets an override on a name close to a known one; --json shows it."""
    plant_closed(sqlite_target.store, "checkouts", time.time())
    result = sqlite_target.run(
        "open", "checkout", "--for", "90", "--reason", "pre-empt", "--create", "--json"
    )
    assert result.returncode == 0, result.stderr
    circuit = json.loads(result.stdout)["circuit"]
    assert (circuit["name"], circuit["effective_state"]) == ("checkout", "forced_open")
    info = operations.read(sqlite_target.store, "checkout")
    assert info is not None
    assert info.override is not None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["open", "payments", "--for", "0", "--reason", "x"], "more than 0 s"),
        (["open", "payments", "--for=-5m", "--reason", "x"], "more than 0 s"),
        (["open", "payments", "--for", "-5", "--reason", "x"], "more than 0 s"),
        (["open", "payments", "--for", "soon", "--reason", "x"], "expected a duration"),
        (["open", "payments", "--for", "8d", "--reason", "x"], "at most record_ttl"),
        (["open", "payments", "--for", "5m", "--reason", ""], "reason is required"),
        (["open", "payments", "--reason", "x"], "required: --for"),
        (["close", "payments", "--for", "5m"], "required: --reason"),
        (["reset", "payments"], "required: --reason"),
        (["clear"], "required: NAME"),
    ],
    ids=[
        "zero",
        "negative-m",
        "negative",
        "junk",
        "too-long",
        "empty-reason",
        "no-duration",
        "no-reason",
        "reset-no-reason",
        "clear-no-name",
    ],
)
def test_bad_write_arguments_exit_2(sqlite_target: Target, args: list[str], message: str) -> None:
    """A bad duration or reason is a usage error (exit 2) that writes nothing."""
    before = plant_closed(sqlite_target.store, "payments", time.time())
    result = sqlite_target.run(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert sqlite_target.store.load("payments") == before
