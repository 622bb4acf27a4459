"""Servers the benchmarks measure against: started on 127.0.0.1, stopped by PID.

Shared by the benchmark scripts (run as ``python benchmarks/NAME.py``, which puts this folder on
``sys.path``). A server that cannot start ends the benchmark with a message saying how to
install it; a benchmark never measures without its peer.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DYNALITE_CLI = ROOT / "node_modules" / "dynalite" / "cli.js"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def accepts_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True


@contextmanager
def local_server(
    label: str, command: list[str], ready: Callable[[], bool], timeout: float = 30
) -> Iterator[None]:
    """Run ``command`` until the block ends; wait (bounded) until ``ready()`` first."""
    proc = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            try:  # waiting on the process reports a server that dies at once
                code = proc.wait(timeout=0.05)
            except subprocess.TimeoutExpired:
                if time.monotonic() > deadline:
                    sys.exit(f"{label} did not become ready within {timeout:g} s")
                continue
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            sys.exit(f"{label} exited with {code}: {err}")
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()


@contextmanager
def dynalite(cli: Path, who: str) -> Iterator[str]:
    """Run dynalite (in memory) on a free port; yield its endpoint URL."""
    node = shutil.which("node")
    if node is None or not cli.is_file():
        missing = "node is not on PATH" if node is None else f"{cli} does not exist"
        sys.exit(
            f"{who}: needs dynalite, a local DynamoDB-compatible server, and {missing}. "
            f"Install it with `make system-deps`, or `npm install --no-save dynalite@4.0.0` "
            f"in {ROOT}."
        )
    port = free_port()
    command = [node, str(cli), "--host", "127.0.0.1", "--port", str(port)]
    command += ["--createTableMs", "0", "--deleteTableMs", "0", "--updateTableMs", "0"]
    with local_server(f"{who}: dynalite", command, lambda: accepts_connections(port)):
        yield f"http://127.0.0.1:{port}"
