"""A real `rgstore serve` (uvicorn) subprocess on a free loopback port, for tests and benchmarks.

``running_server(store)`` starts ``python -m rgstore_cli --store STORE serve --port 0``, reads the port
it bound, waits until ``/healthz`` answers, yields a ``Server`` (base URL and process), and stops it
afterwards.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

__all__ = ["Server", "running_server", "free_port", "refused_url", "rgstore_cli", "init_genome", "REPO"]

REPO = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT_S = 60.0


@dataclass
class Server:
    """A running server: its base URL (no trailing slash) and the uvicorn process."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        """What the server wrote to stderr/stdout so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def refused_url() -> Iterator[str]:
    """``http://127.0.0.1:PORT`` that refuses every connection until the block ends.

    The port stays bound by a socket that never listens, so a connect is refused and no other process
    can take the port meanwhile (a port bound and released at once may be someone's server a moment later).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log_path.read_text(errors='replace')}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"server at {url} not healthy after {STARTUP_TIMEOUT_S}s:\n{log_path.read_text()}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=15)


_ANNOUNCED = re.compile(rb"read-only at http://127\.0\.0\.1:(\d+)")


def _bound_url(process: subprocess.Popen[bytes], log_path: Path) -> str:
    """The URL a server started with ``--port 0`` announces once bound (no other server can hold that port)."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        found = _ANNOUNCED.search(log_path.read_bytes())
        if found:
            return f"http://127.0.0.1:{int(found[1])}"
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log_path.read_text(errors='replace')}")
        time.sleep(0.02)
    raise RuntimeError(f"server announced no port after {STARTUP_TIMEOUT_S}s:\n{log_path.read_text()}")


@contextmanager
def running_server(
    store: Path, *, workers: int = 1, extra_args: Sequence[str] = (), env: dict[str, str] | None = None,
    log_dir: Path | None = None,
) -> Iterator[Server]:
    """Run `rgstore serve` on ``store`` until the block ends, on a port the kernel picks (``--port 0``).

    A port picked here and handed over could be taken by another test's server in between, whose
    /healthz would then answer for this one; the server binds port 0 and announces what it got.
    """
    log_dir = log_dir or store.parent
    fd, name = tempfile.mkstemp(prefix="server-", suffix=".log", dir=log_dir)
    log_path = Path(name)
    with os.fdopen(fd, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "rgstore_cli", "--store", str(store), "serve", "--host", "127.0.0.1",
             "--port", "0", "--workers", str(workers), *extra_args],
            cwd=REPO, env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        url = _bound_url(process, log_path)
        _wait_healthy(url, process, log_path)
        yield Server(url=url, process=process, log_path=log_path)
    finally:
        _stop(process)


def rgstore_cli(store: Path, *args: str) -> str:
    """Run one real `rgstore` command in-process against ``store``; its stdout, or AssertionError."""
    from click.testing import CliRunner
    from rgstore_cli.main import cli

    result = CliRunner().invoke(cli, ["--store", str(store), "--actor", "tester@test", *args],
                                catch_exceptions=False)
    assert result.exit_code == 0, f"rgstore {' '.join(args)} exited {result.exit_code}: {result.output}"
    return result.stdout


def init_genome(store: Path, fasta: Path, name: str, *extra: str) -> dict[str, object]:
    """`rgstore genome init --fasta FASTA --name NAME ... --json`: the genome it recorded."""
    import json

    out = json.loads(rgstore_cli(store, "genome", "init", "--fasta", str(fasta), "--name", name, *extra, "--json"))
    genome: dict[str, object] = out["genome"]
    return genome
