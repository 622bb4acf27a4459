"""Real PostgreSQL servers for the tests: throwaway clusters on 127.0.0.1, stopped by PID.

The binaries are Debian's ``postgresql`` package (``make system-deps``), found under
``/usr/lib/postgresql/*/bin``; a missing one fails the run. PostgreSQL refuses to run as root,
so under root the cluster belongs to the ``postgres`` system user the package creates, in a
directory of its own under the system temp directory (pytest's is private to root). Each
server can be stopped or killed as a whole, the postmaster and
its backends together (found in /proc: Linux only, as the suite is).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fleetbreaker.stores import Store
from tests.servers.redis_servers import free_port

_START_TIMEOUT_S = 30.0
_ROOT = os.geteuid() == 0 if hasattr(os, "geteuid") else False
_SERVER_USER = "postgres"


def binaries() -> Path:
    """The directory holding ``initdb`` and ``postgres`` (the newest installed version)."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
    )
    for directory in reversed(found):
        if (directory / "initdb").is_file() and (directory / "postgres").is_file():
            return directory
    pytest.fail(
        "PostgreSQL's server binaries (initdb, postgres) are not installed under "
        "/usr/lib/postgresql/*/bin: run `make system-deps` (apt-get install -y postgresql)",
        pytrace=False,
    )


def _owner() -> tuple[int, int] | None:
    """The uid and gid the server runs as when the tests run as root; ``None`` otherwise."""
    if not _ROOT:
        return None
    import pwd

    try:
        entry = pwd.getpwnam(_SERVER_USER)
    except KeyError:
        pytest.fail(
            f"running as root, and there is no {_SERVER_USER!r} user to run PostgreSQL as "
            "(Debian's postgresql package creates it): run `make system-deps`",
            pytrace=False,
        )
    return entry.pw_uid, entry.pw_gid


class PostgresServer:
    """One throwaway cluster on a fixed port of 127.0.0.1, restartable on that port."""

    def __init__(self) -> None:
        self.bin = binaries()
        self.owner = _owner()
        self.directory = Path(tempfile.mkdtemp(prefix="fleetbreaker-pg-"))
        self.data = self.directory / "data"
        self.log = self.directory / "server.log"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        if self.owner is not None:
            os.chown(self.directory, *self.owner)
        self._run_as_owner(
            [
                str(self.bin / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ]
        )

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _user(self) -> dict[str, object]:
        if self.owner is None:
            return {}
        return {"user": self.owner[0], "group": self.owner[1], "extra_groups": []}

    def _run_as_owner(self, args: list[str]) -> None:
        done = subprocess.run(args, capture_output=True, check=False, **self._user())  # type: ignore[call-overload]
        if done.returncode != 0:
            pytest.fail(
                f"{args[0]} failed ({done.returncode}):\n{done.stdout.decode(errors='replace')}"
                f"\n{done.stderr.decode(errors='replace')}",
                pytrace=False,
            )

    def start(self) -> PostgresServer:
        """Start the postmaster and wait until it accepts connections."""
        args = [
            str(self.bin / "postgres"),
            "-D",
            str(self.data),
            "-p",
            str(self.port),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"unix_socket_directories={self.directory}",
            "-c",
            "fsync=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=300",
            "-c",
            "shared_buffers=32MB",
        ]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(  # type: ignore[call-overload]
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # no terminal's signals (Ctrl-C) reach it
                **self._user(),
            )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        from psycopg import pq

        conninfo = (
            f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres connect_timeout=2"
        )
        deadline = time.monotonic() + _START_TIMEOUT_S
        while pq.PGconn.ping(conninfo.encode()) != pq.Ping.OK:
            assert self.process is not None
            try:
                code = self.process.wait(timeout=0.05)
            except subprocess.TimeoutExpired:
                pass
            else:
                pytest.fail(f"postgres exited with {code}:\n{self.log_tail()}", pytrace=False)
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"postgres not ready within {_START_TIMEOUT_S} s", pytrace=False)

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def _children(self) -> list[int]:
        """The postmaster's children (backends and helpers). Each calls setsid(), so signalling
        the postmaster's process group would miss them."""
        assert self.process is not None
        parent, found = self.process.pid, []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue  # exited meanwhile
            # pid (comm) state ppid ...: comm may hold spaces and parentheses.
            if int(stat.rpartition(")")[2].split()[1]) == parent:
                found.append(int(entry.name))
        return found

    def _signal_all(self, signum: int) -> list[int]:
        """Stop the postmaster first (it forks no backend while stopped), then signal it and
        every child; the PIDs signalled."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)
        pids = [self.process.pid, *self._children()]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
        return pids

    def pause(self) -> None:
        """SIGSTOP the postmaster and every backend: connections stay open, nothing answers."""
        self._signal_all(signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None:
            self._signal_all(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL the postmaster and its backends: the server vanishes mid-conversation."""
        if self.process is not None:
            pids = self._signal_all(signal.SIGKILL)
            self.process.wait()
            _wait_gone(pids)
            self.process = None

    def stop(self) -> None:
        """Fast shutdown (SIGINT); SIGKILL for the group if it lingers."""
        if self.process is None:
            return
        pids = self._signal_all(signal.SIGCONT)
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pids = self._signal_all(signal.SIGKILL)
            self.process.wait()
        _wait_gone(pids)
        self.process = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def _wait_gone(pids: list[int]) -> None:
    """Wait (up to 10 s) until none of ``pids`` is left, so a restart finds its port and
    shared memory free."""
    deadline = time.monotonic() + 10
    for pid in pids:
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.005)


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not: a container's init may never reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def unique_table() -> str:
    return f"fb_{uuid.uuid4().hex[:16]}"


def open_store(dsn: str, table: str, timeout: float = 5.0) -> Store:
    """A PostgresStore for the test harness (module level, so a partial of it pickles).

    Generous timeout: on a loaded 2-core runner the bounded default would make the contract
    and fleet tests flaky; the fault tests check the default themselves.
    """
    from fleetbreaker.stores.postgres import PostgresStore

    return PostgresStore(dsn, table=table, timeout=timeout)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL cluster for the session; tests isolate themselves by table."""
    server = PostgresServer().start()
    yield server
    server.remove()


@pytest.fixture
def postgres_server_factory() -> Iterator[Callable[[], PostgresServer]]:
    """Start private clusters that a test may stop, kill or restart; all removed after."""
    started: list[PostgresServer] = []

    def start() -> PostgresServer:
        server = PostgresServer()
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.remove()
