"""`rgstore serve` under a low open-file limit: the soft limit is raised to the hard one, or serving is refused.

Before: under `ulimit -n 16` the server printed "serving" and then hung every request (accept: EMFILE).
Real `rgstore serve` subprocesses, their limits set in the child before it runs; every wait is bounded.
"""

from __future__ import annotations

import http.client
import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import httpx

from tests.server_fixture import REPO, _stop, _wait_healthy, free_port, init_genome

TINY = Path(str(resources.files("rgstore") / "data" / "tiny.fa"))
BOUND_S = 60.0  # a server that hangs fails the test, not the suite
CLIENTS = 24  # more connections held at once than a 16-file process can accept


def _open_files(soft: int, hard: int) -> Callable[[], None]:
    """A preexec_fn giving the child this RLIMIT_NOFILE (a hard limit above the parent's is not ours to give)."""
    return lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _serve(store: Path, port: int) -> list[str]:
    return [sys.executable, "-m", "rgstore_cli", "--store", str(store), "serve", "--host", "127.0.0.1",
            "--port", str(port)]


def test_serve_refuses_in_one_line_naming_the_limit_when_the_hard_limit_is_too_low(tmp_path: Path) -> None:
    store = tmp_path / "store"
    init_genome(store, TINY, "tiny")
    done = subprocess.run(_serve(store, free_port()), cwd=REPO, capture_output=True, timeout=BOUND_S,
                          preexec_fn=_open_files(16, 16))
    err = done.stderr.decode()
    assert done.returncode == 1 and err.count("\n") == 1, err
    assert err.startswith("error: the open-file limit (ulimit -n) is 16 ") and "ulimit -n 1024" in err
    assert "rgstore: serving" not in err  # refused before the start-up line


def test_serve_under_a_low_soft_limit_raises_it_and_answers_many_clients_at_once(tmp_path: Path) -> None:
    store = tmp_path / "store"
    digest = init_genome(store, TINY, "tiny")["digest"]
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    port = free_port()
    log_path = tmp_path / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(_serve(store, port), cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                   preexec_fn=_open_files(16, hard))
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process, log_path)
        clients = [httpx.Client(base_url=url, timeout=BOUND_S) for _ in range(CLIENTS)]
        try:
            for client in clients:  # each keeps its connection open: CLIENTS sockets in the server at once
                assert client.get(f"/v4/genomes/{digest}").status_code == 200
            for client in clients:  # and each is answered again on it
                assert client.get("/sequence/service-info").status_code == 200
        finally:
            for client in clients:
                client.close()
    finally:
        _stop(process)
    assert "rgstore: serving" in log_path.read_text(errors="replace")


def test_a_request_that_runs_out_of_descriptors_opening_a_sequence_file_is_the_one_line_503(tmp_path: Path) -> None:
    # Under hard and soft limits of 64, each kept-open client takes one of the server's descriptors; the
    # request whose sequence file finds none left was a 500 "internal server error (OSError)", where opening
    # the store under the same limit is the 503 "too many open files" line.
    store = tmp_path / "store"
    digest = init_genome(store, TINY, "tiny")["sequences"][0]  # type: ignore[index]
    port = free_port()
    log_path = tmp_path / "server.log"
    with open(log_path, "wb") as log:  # 24h: no header timeout closes a held connection; the test does
        process = subprocess.Popen([*_serve(store, port), "--header-timeout", "24h"], cwd=REPO, stdout=log,
                                   stderr=subprocess.STDOUT, preexec_fn=_open_files(64, 64))
    url = f"http://127.0.0.1:{port}"
    connections: list[http.client.HTTPConnection] = []
    try:
        _wait_healthy(url, process, log_path)
        for _ in range(64):  # a new connection each time: the one taking the server's last descriptor answers
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=BOUND_S)
            connections.append(connection)
            connection.request("GET", f"/sequence/{digest}?start=0&end=4")
            answer = connection.getresponse()
            body = answer.read()
            if answer.status != 200:
                break
            # The start of a next request's head: uvicorn's 5 s keep-alive timer stops, so on a machine slow
            # enough to take 5 s over these requests the first connections still hold their descriptors.
            assert connection.sock is not None
            connection.sock.sendall(b"GET /sequence/service-info HTTP/1.1\r\n")
        assert answer.status == 503, body
        detail = json.loads(body)["detail"]
        assert detail.startswith("too many open files: this process reached its limit of 64 (ulimit -n)"), detail
        assert "\n" not in detail
        for connection in connections:
            connection.close()
        _wait_until_closed_by_the_server(process.pid, 64 - len(connections))
        connections = []
        with httpx.Client(base_url=url, timeout=BOUND_S) as client:  # descriptors free again: answered as before
            assert client.get(f"/sequence/{digest}", params={"start": 0, "end": 4}).text == "ATTT"
    finally:
        for connection in connections:
            connection.close()
        _stop(process)


def _wait_until_closed_by_the_server(pid: int, descriptors: int) -> None:
    """Wait (up to 60 s) until process ``pid`` holds at most ``descriptors`` descriptors (read from /proc).

    A connection made while the server still holds every descriptor finds accept() failing, and uvloop
    (libuv) then accepts and closes the waiting connections to shed them: the next client must come after.
    """
    fds = Path(f"/proc/{pid}/fd")
    deadline = time.monotonic() + BOUND_S
    while fds.is_dir() and len(list(fds.iterdir())) > descriptors and time.monotonic() < deadline:
        time.sleep(0.05)
