"""Claims about `rgstore gc` and blob downloads in flight: a live download's temp file survives ``--grace 0`` however
long the download has stalled, and completes; a killed download's temp file is collected."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rgstore.blobfetch import fetch_blob
from rgstore.store import Store
from tests.conftest import REPO
from tests.hostile_http import HostileServer, Reply

DATA = b"(a:0.1,b:0.2);\n" * 4000
SHA = hashlib.sha256(DATA).hexdigest()


class Gate:
    """A blob reply that sends its headers and half the body, then waits for ``open`` before sending the rest."""

    def __init__(self) -> None:
        self.half_sent = threading.Event()
        self.open = threading.Event()

    def reply(self) -> Reply:
        def send(conn: socket.socket, path: str) -> bool:
            conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {len(DATA)}\r\n\r\n".encode() + DATA[:len(DATA) // 2])
            self.half_sent.set()
            if self.open.wait(120):
                conn.sendall(DATA[len(DATA) // 2:])
            return False

        return send


@pytest.fixture
def stalled() -> Iterator[tuple[HostileServer, Gate]]:
    """A loopback upstream "server" whose /blobs/ answers stall half-way until the test opens the gate."""
    gate = Gate()
    with HostileServer({"/blobs/": gate.reply()}) as host:
        try:
            yield host, gate
        finally:
            gate.open.set()


def _temps(store: Path) -> list[Path]:
    return sorted((store / "blobs").glob(".tmp-*"))


def _gc_grace_0(store: Path) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-m", "rgstore_cli", "--store", str(store), "gc", "--grace", "0", "--json"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report: dict[str, object] = json.loads(done.stdout)
    return report


def _stalled_long_ago(path: Path) -> None:
    """Backdate ``path``: a download stalled for an hour, past any grace and past gc's floor for fresh files."""
    then = time.time() - 3600
    os.utime(path, (then, then))


def _wait_for(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 60
    while not check():
        assert time.monotonic() < deadline, f"no {what} after 60 s"
        time.sleep(0.02)


def test_gc_grace_0_leaves_a_stalled_blob_downloads_temp_file_and_the_download_completes(
        store: Store, stalled: tuple[HostileServer, Gate]) -> None:
    host, gate = stalled
    failure: list[BaseException] = []

    def download() -> None:
        try:
            fetch_blob(store, host.url, SHA, len(DATA))  # the real path a lazy mirror's read takes
        except BaseException as exc:  # reported by the test, not lost in the thread
            failure.append(exc)

    writer = threading.Thread(target=download)
    writer.start()
    try:
        assert gate.half_sent.wait(60)
        _wait_for(lambda: len(_temps(store.path)) == 1, "temp file")
        [tmp] = _temps(store.path)
        _stalled_long_ago(tmp)
        report = _gc_grace_0(store.path)
        assert report["temp_files_removed"] == 0 and tmp.exists(), report
    finally:
        gate.open.set()
        writer.join(120)
    assert failure == [] and not writer.is_alive(), failure
    assert store.blobs.verify(SHA).size == len(DATA) and _temps(store.path) == []


def test_gc_grace_0_removes_the_temp_file_of_a_blob_download_whose_process_was_killed(
        store: Store, stalled: tuple[HostileServer, Gate]) -> None:
    host, gate = stalled
    child = subprocess.Popen(
        [sys.executable, "-c",
         "import sys; from pathlib import Path; from rgstore.blobfetch import fetch_blob; "
         "from rgstore.store import Store; fetch_blob(Store.open(Path(sys.argv[1])), sys.argv[2], sys.argv[3])",
         str(store.path), host.url, SHA], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert gate.half_sent.wait(60)
        _wait_for(lambda: len(_temps(store.path)) == 1, "temp file")
        child.send_signal(signal.SIGKILL)  # a crash: no cleanup ran, and the kernel dropped its lock
        child.communicate(timeout=60)
    finally:
        child.kill()
        child.communicate(timeout=60)
    [tmp] = _temps(store.path)
    fresh = _gc_grace_0(store.path)  # a fresh unlocked temp file may be a writer that has not locked it yet
    assert fresh["temp_files_removed"] == 0 and tmp.exists(), fresh
    _stalled_long_ago(tmp)
    report = _gc_grace_0(store.path)
    assert report["temp_files_removed"] == 1 and _temps(store.path) == [], report
    assert not store.blobs.exists(SHA)
