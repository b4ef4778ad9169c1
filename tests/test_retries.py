"""Claims about rgstore.retries: what a try that timed out costs the budget (its silence, not the bytes that
did arrive), and which scope a request draws on."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from rgstore import upstream
from rgstore.download import download, http_client
from tests.hostile_http import HostileServer, Reply, response

BODY = bytes(range(256)) * 64


def _streams_then_stalls() -> tuple[list[str], Reply]:
    """A route whose first answer sends half of BODY over ~2.5 s, then goes silent; later answers send BODY whole."""
    tries: list[str] = []

    def reply(conn: socket.socket, path: str) -> bool:
        tries.append(path)
        if len(tries) > 1:
            conn.sendall(response("200 OK", BODY, ('ETag: "same"',)))
            return True
        head = f'HTTP/1.1 200 OK\r\nContent-Length: {len(BODY)}\r\nETag: "same"\r\n\r\n'.encode()
        conn.sendall(head)
        half = len(BODY) // 2
        for i in range(50):  # bytes keep arriving for longer than the whole budget ...
            conn.sendall(BODY[i * half // 50:(i + 1) * half // 50])
            time.sleep(0.05)
        time.sleep(2.0)  # ... then the server says nothing past the read timeout
        return False

    return tries, reply


def test_a_long_download_that_then_times_out_is_still_resumed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RGSTORE_RETRY_BUDGET_S", "2")
    tries, reply = _streams_then_stalls()
    with HostileServer({"/f": reply}) as srv, http_client(timeout=0.5) as client:
        download(client, f"{srv.url}/f", tmp_path / "f", expected=None)
    assert (tmp_path / "f").read_bytes() == BODY
    assert len(tries) == 2


def test_a_long_stream_that_then_times_out_is_still_resumed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RGSTORE_RETRY_BUDGET_S", "2")
    tries, reply = _streams_then_stalls()
    with HostileServer({"/f": reply}) as srv, http_client(timeout=0.5) as client:
        got = b"".join(upstream.stream(client, f"{srv.url}/f", limit=len(BODY)))
    assert got == BODY
    assert len(tries) == 2


def test_an_explicit_budget_inside_a_pulls_scope_is_its_own_and_the_outer_one_comes_back() -> None:
    from rgstore.retries import current, scope

    with scope(seconds=30) as outer:
        with scope(seconds=0) as inner:  # a status asked for inside a pull: no retries, whatever the pull allows
            assert inner is not outer and inner.seconds == 0 and current() is inner
        with scope() as shared:  # a pull inside a pull (promote's) shares the outer budget
            assert shared is outer
        assert current() is outer


def test_an_rgstore_servers_5xx_marked_not_transient_is_not_retried_and_a_bare_5xx_is() -> None:
    import httpx

    from rgstore.httpclient import status_error
    from rgstore.retries import NOT_TRANSIENT_HEADER, Transient

    bad_bytes = httpx.Response(502, headers={NOT_TRANSIENT_HEADER: "0"})  # its upstream sent bytes failing a digest
    assert not isinstance(status_error(bad_bytes, "x"), Transient)
    assert isinstance(status_error(httpx.Response(502), "x"), Transient)  # a proxy's 502: a blip
    assert isinstance(status_error(httpx.Response(503, headers={"Retry-After": "1"}), "x"), Transient)
