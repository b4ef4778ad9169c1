"""`rgstore serve --header-timeout`: a connection must deliver a request head in time, or it is closed.

A real server on loopback with a 1 s timeout; every wait is bounded, nothing asserts on timings.
"""

from __future__ import annotations

import json
import random
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rgstore.events import Noted
from rgstore.log import NewEvent
from rgstore.store import Store
from tests.server_fixture import Server, free_port, init_genome, running_server

BOUND_S = 30.0  # far beyond the 1 s timeout: a server that never closes fails the test, not the suite
BASES = 8_000_000  # a response far larger than the socket buffers on both ends hold


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str, bytes]]:
    """A server with ``--header-timeout 1s`` on a store with one genome of one large sequence."""
    tmp = tmp_path_factory.mktemp("headertimeout")
    bases = "".join(random.Random(11).choices("ACGT", k=BASES))
    fasta = tmp / "big.fa"
    fasta.write_text(f">big\n{bases}\n")
    path = tmp / "store"
    digest = init_genome(path, fasta, "big")["sequences"][0]  # type: ignore[index]
    with running_server(path, extra_args=["--header-timeout", "1s"]) as server:
        yield server, str(digest), bases.encode()


def _connect(server: Server, *, rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket()
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # before connect: sets the window
    sock.settimeout(BOUND_S)
    sock.connect(("127.0.0.1", int(server.url.rsplit(":", 1)[1])))
    return sock


def _closed_by_server(sock: socket.socket) -> bool:
    """True once the server closed the connection (EOF or reset), waiting at most ``BOUND_S``."""
    try:
        return sock.recv(4096) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def _read_response(sock: socket.socket, buffered: bytes = b"") -> tuple[bytes, bytes]:
    """One whole response with a Content-Length: its head and body."""
    data = buffered
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before the response head: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    chunks = [body]
    have = len(body)
    while have < length:
        chunk = sock.recv(1 << 20)
        assert chunk, f"response cut after {have} of {length} bytes"
        chunks.append(chunk)
        have += len(chunk)
    return head, b"".join(chunks)


def test_a_client_that_sends_nothing_is_disconnected(served: tuple[Server, str, bytes]) -> None:
    server, _, _ = served
    with _connect(server) as sock:
        assert _closed_by_server(sock)


def test_a_request_head_without_its_blank_line_is_disconnected(served: tuple[Server, str, bytes]) -> None:
    server, _, _ = served
    with _connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        assert _closed_by_server(sock)


def test_a_head_trickled_a_header_at_a_time_is_disconnected_though_bytes_keep_coming(
    served: tuple[Server, str, bytes],
) -> None:
    """Slowloris: each byte arriving must not restart the clock."""
    server, _, _ = served
    with _connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        deadline = time.monotonic() + BOUND_S
        closed = False
        while not closed and time.monotonic() < deadline:
            try:
                sock.sendall(b"X-Slow: 1\r\n")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            if select.select([sock], [], [], 0.2)[0]:  # paces the trickle; readable: EOF (or a reset)
                closed = _closed_by_server(sock)
                assert closed, "the server answered a request head that never ended"
        assert closed


def test_requests_on_a_kept_alive_connection_are_answered(served: tuple[Server, str, bytes]) -> None:
    server, _, _ = served
    with _connect(server) as sock:
        for _ in range(3):
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            head, body = _read_response(sock)
            assert head.startswith(b"HTTP/1.1 200") and b'"log_id"' in body, head + body
        assert _closed_by_server(sock)  # then, idle, it is closed like any other


def test_a_slow_reader_gets_a_whole_download_and_then_a_second_answer_on_the_same_connection(
    served: tuple[Server, str, bytes],
) -> None:
    """The clock does not run while a response streams: a reader stalled well past it loses nothing."""
    server, digest, bases = served
    with _connect(server, rcvbuf=65536) as sock:
        sock.sendall(f"GET /sequence/{digest} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        first = sock.recv(4096)
        assert first.startswith(b"HTTP/1.1 200"), first
        time.sleep(3)  # the behaviour under test: stall (the server's writes block) past the 1 s timeout
        head, body = _read_response(sock, first)
        assert body == bases, f"{len(body)} of {len(bases)} bytes, or other ones"
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")  # the clock restarted at the response's end
        head, _ = _read_response(sock)
        assert head.startswith(b"HTTP/1.1 200"), head


def test_a_posted_body_that_stops_arriving_gets_a_one_line_json_408_and_the_connection_closed(
    served: tuple[Server, str, bytes],
) -> None:
    """A Content-Length never made good held the request open for ever: the head clock stops at the head."""
    server, _, _ = served
    with _connect(server) as sock:
        sock.sendall(b"POST /seqcol/comparison/anything HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\n\r\n{}")
        head, body = _read_response(sock)  # within BOUND_S (30 s), far past the 1 s timeout
        assert head.startswith(b"HTTP/1.1 408"), head + body
        assert b"connection: close" in head.lower(), head
        assert body.count(b"\n") <= 1 and "2 of 100 bytes" in json.loads(body)["detail"], body
        assert _closed_by_server(sock)


def test_two_workers_close_an_idle_connection_too(tmp_path: Path) -> None:
    """The timeout reaches worker processes (a fresh interpreter each, given uvicorn's config)."""
    path = tmp_path / "store"
    with Store.open(path, actor="tester@test") as store:
        store.append([NewEvent(stream="note:a", event=Noted(text="x"))])
    with running_server(path, workers=2, extra_args=["--header-timeout", "1s"]) as server, _connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        assert _closed_by_server(sock)


def test_a_malformed_header_timeout_is_a_usage_error_before_serving(tmp_path: Path) -> None:
    from click.testing import CliRunner
    from rgstore_cli.main import cli

    for bad in ("soon", "10ms", "0"):
        result = CliRunner().invoke(cli, ["--store", str(tmp_path / "store"), "serve", "--port", str(free_port()),
                                          "--header-timeout", bad])
        assert result.exit_code == 2, result.output
        assert "--header-timeout" in result.output and "100ms to 24h" in result.output, result.output
