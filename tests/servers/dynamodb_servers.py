"""DynamoDB-compatible servers the suite starts itself, and a proxy that injects faults.

* ``dynalite_server`` (session): dynalite under Node. Its conditional writes are atomic, so it
  serves the contract suite, the fleet tests and the fault tests.
* ``moto_server`` (session): moto's server mode, for single-client API behaviour only (its
  conditional writes are not atomic under concurrent requests: never race against it).
* ``disposable_dynalite``: a dynalite of the test's own, for tests that stop it.
* :class:`FaultProxy`: an HTTP proxy in front of a server that answers chosen operations with
  throttling or 5xx errors, and logs every request it sees.

A missing server program fails the run with the command that installs it: never a skip.
Everything listens on 127.0.0.1 and boto3 gets fake credentials, so nothing reaches AWS.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DYNALITE = ROOT / "node_modules" / "dynalite" / "cli.js"
REGION = "us-east-1"
FAKE_CREDENTIALS = {"aws_access_key_id": "fleetbreaker", "aws_secret_access_key": "tests"}
_ENV = {
    "AWS_ACCESS_KEY_ID": "fleetbreaker",
    "AWS_SECRET_ACCESS_KEY": "tests",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    # Never ask the instance metadata service, nor read the developer's ~/.aws.
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}
_UNSET = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB")
_START_TIMEOUT_S = 60.0


@dataclass
class ServerProcess:
    """A server the suite started; stopped, frozen and thawed by its PID."""

    name: str
    endpoint: str
    process: subprocess.Popen[bytes]
    log: Any = field(repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def freeze(self) -> None:
        """Stop the server answering (SIGSTOP): connections open, replies never come."""
        os.kill(self.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.pid, signal.SIGCONT)
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.log.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _start(name: str, command: list[str], port: int) -> ServerProcess:
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by ServerProcess.stop
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    server = ServerProcess(name, f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return server
        try:  # paces the polling, and notices a server that died
            process.wait(timeout=0.05)
        except subprocess.TimeoutExpired:
            continue
        log.seek(0)
        output = log.read().decode(errors="replace")[-2000:]
        server.stop()
        pytest.fail(f"{name} exited with status {process.returncode} before listening:\n{output}")
    server.stop()
    pytest.fail(f"{name} did not listen on port {port} within {_START_TIMEOUT_S:g} s")


def start_dynalite() -> ServerProcess:
    """A fresh dynalite on a free port (in memory, tables ready at once)."""
    node = shutil.which("node")
    if node is None or not DYNALITE.is_file():
        pytest.fail(
            "dynalite is required for the DynamoDB tests and is missing "
            f"(node: {node or 'not found'}, {DYNALITE}: not found). Install it with "
            "`make system-deps` (npm install --no-save dynalite@4.0.0 in the project root).",
            pytrace=False,
        )
    port = _free_port()
    command = [node, str(DYNALITE), "--host", "127.0.0.1", "--port", str(port)]
    command += ["--createTableMs", "0", "--deleteTableMs", "0", "--updateTableMs", "0"]
    return _start("dynalite", command, port)


def start_moto() -> ServerProcess:
    """A fresh moto server on a free port."""
    found = Path(sys.executable).with_name("moto_server")
    program = str(found) if found.is_file() else shutil.which("moto_server")
    if program is None:
        pytest.fail(
            "moto_server is required for the DynamoDB API tests and is missing. Install it "
            "with `.venv/bin/pip install -e '.[testservers]'` (moto[server]).",
            pytrace=False,
        )
    port = _free_port()
    return _start("moto_server", [program, "-H", "127.0.0.1", "-p", str(port)], port)


@pytest.fixture(scope="session")
def aws_sandbox() -> Iterator[None]:
    """Fake credentials and region; no metadata service, no ~/.aws, no endpoint overrides."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in _ENV.items():
            patch.setenv(key, value)
        for key in _UNSET:
            patch.delenv(key, raising=False)
        yield


@pytest.fixture(scope="session")
def dynalite_server(aws_sandbox: None) -> Iterator[ServerProcess]:
    server = start_dynalite()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def moto_server(aws_sandbox: None) -> Iterator[ServerProcess]:
    server = start_moto()
    yield server
    server.stop()


@pytest.fixture
def disposable_dynalite(aws_sandbox: None) -> Iterator[ServerProcess]:
    """A dynalite for this test alone, which it may freeze or stop."""
    server = start_dynalite()
    yield server
    server.stop()


def unique_table() -> str:
    return f"fleetbreaker-{uuid.uuid4().hex}"


def raw_client(endpoint: str) -> Any:
    """A plain boto3 DynamoDB client for planting and inspecting items."""
    import boto3

    return boto3.client("dynamodb", endpoint_url=endpoint, region_name=REGION, **FAKE_CREDENTIALS)


_sessions: dict[int, Any] = {}
_sessions_lock = threading.Lock()


def open_store(endpoint: str, table: str, **options: Any) -> Any:
    """A DynamoDBStore on ``table`` at ``endpoint``; module level, so partials of it pickle."""
    import boto3

    from fleetbreaker.stores.dynamodb import DynamoDBStore

    # One session per process: it caches the service model, so a client costs milliseconds.
    with _sessions_lock:
        session = _sessions.get(os.getpid())
        if session is None:
            session = boto3.session.Session(region_name=REGION, **FAKE_CREDENTIALS)
            _sessions[os.getpid()] = session
        return DynamoDBStore(
            table_name=table, boto3_session=session, endpoint_url=endpoint, **options
        )


@dataclass
class Fault:
    """Answer ``count`` requests for ``operation`` with ``status``/``code`` (count None: all).

    With ``forward`` the request still reaches the server first: the write lands and its
    answer is lost.
    """

    operation: str
    status: int
    code: str
    count: int | None = None
    forward: bool = False


class FaultProxy:
    """An HTTP proxy in front of a DynamoDB endpoint that logs requests and injects faults."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.removeprefix("http://")
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.connections = 0  # TCP connections accepted so far
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        handler = type("Handler", (_ProxyHandler,), {"proxy": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def inject(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self.requests.clear()

    def operations(self) -> list[str]:
        with self._lock:
            return [operation for operation, _ in self.requests]

    def _take(self, operation: str, body: dict[str, Any]) -> Fault | None:
        with self._lock:
            self.requests.append((operation, body))
            for fault in self._faults:
                if fault.operation == operation and fault.count != 0:
                    if fault.count is not None:
                        fault.count -= 1
                    return fault
        return None

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 10  # idle keep-alive connections end instead of holding a thread
    proxy: FaultProxy

    def setup(self) -> None:
        with self.proxy._lock:
            self.proxy.connections += 1
        super().setup()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        operation = self.headers.get("X-Amz-Target", "").rpartition(".")[2]
        fault = self.proxy._take(operation, json.loads(body or b"{}"))
        if fault is None or fault.forward:
            upstream = http.client.HTTPConnection(self.proxy.upstream, timeout=10)
            try:
                upstream.request("POST", self.path, body, dict(self.headers.items()))
                response = upstream.getresponse()
                status, payload = response.status, response.read()
                headers = [
                    (k, v)
                    for k, v in response.getheaders()
                    if k.lower() not in {"connection", "keep-alive", "content-length"}
                ]
            finally:
                upstream.close()
        if fault is not None:
            status = fault.status
            message = {"__type": f"com.amazonaws.dynamodb.v20120810#{fault.code}"}
            payload = json.dumps({**message, "message": "injected by FaultProxy"}).encode()
            headers = [("Content-Type", "application/x-amz-json-1.0")]
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base
        """Quiet: the request log is ``FaultProxy.requests``."""


@pytest.fixture
def fault_proxy(dynalite_server: ServerProcess) -> Iterator[FaultProxy]:
    """A FaultProxy in front of the session's dynalite."""
    proxy = FaultProxy(dynalite_server.endpoint)
    yield proxy
    proxy.close()
