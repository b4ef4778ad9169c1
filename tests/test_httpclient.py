"""Claims about building HTTP clients under the environment's proxy settings."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from rgstore import upstream
from rgstore.errors import InvalidInputError, RemoteError
from rgstore.httpclient import check_url, kept_client, new_client, redact
from tests.hostile_http import HostileServer, Reply, endless, fixed, response, stall_after, trickle


@pytest.mark.parametrize("setting", ["socks4://127.0.0.1:1", "gopher://proxy", "http://[::1"])
def test_an_unusable_proxy_setting_is_one_line_naming_it_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, setting: str
) -> None:
    monkeypatch.setenv("ALL_PROXY", setting)
    with pytest.raises(InvalidInputError, match=rf"^unusable proxy setting \(.*ALL_PROXY={re.escape(setting)}"):
        new_client()


def test_a_proxy_password_is_not_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "gopher://me:s3cret@proxy:8080")
    with pytest.raises(InvalidInputError) as caught:
        new_client()
    assert "s3cret" not in str(caught.value) and "gopher://***@proxy:8080" in str(caught.value)


def test_a_socks5_proxy_from_the_environment_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    greeting: list[bytes] = []
    with socket.socket() as proxy:
        proxy.bind(("127.0.0.1", 0))
        proxy.listen(1)

        def accept() -> None:
            conn, _ = proxy.accept()
            with conn:
                greeting.append(conn.recv(16))  # then hang up: the pull fails, having spoken SOCKS5

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        monkeypatch.setenv("ALL_PROXY", f"socks5://127.0.0.1:{proxy.getsockname()[1]}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        monkeypatch.setenv("RGSTORE_RETRY_BUDGET_S", "0")  # one try: this proxy answers one connection only
        with upstream.client() as client, pytest.raises(RemoteError, match="^cannot reach .*SOCKS proxy failed"):
            upstream.get(client, "http://example.invalid/manifest.json")
        thread.join(timeout=5)
    assert greeting and greeting[0][:1] == b"\x05"  # a SOCKS5 handshake, not an HTTP request


def test_cli_mirror_pull_under_an_unusable_proxy_setting_fails_in_one_line(
    cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "socks4://127.0.0.1:1")
    result = cli("mirror", "pull", "http://127.0.0.1:9")
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "error: unusable proxy setting (HTTP_PROXY=socks4://127.0.0.1:1): "
        "Unknown scheme for proxy URL URL('socks4://127.0.0.1:1')"]


# -- credentials: never in a URL, from netrc instead --------------------------------------------------


def _clients() -> dict[str, Callable[[], httpx.Client]]:
    from rgstore import download, remote

    return {"upstream": upstream.client, "cache": download.http_client, "remote": lambda: remote._Http(5.0).client}


@pytest.mark.parametrize("which", ["upstream", "cache", "remote"])
def test_every_client_sends_basic_auth_from_the_netrc_file_that_NETRC_names(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, which: str
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login reader password s3cret\n")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.netrc of the user running the tests
    monkeypatch.delenv("NETRC", raising=False)
    with HostileServer({"/doc": fixed("200 OK", b"members only")}) as srv:
        srv.basic_auth = ("reader", "s3cret")
        with _clients()[which]() as client:
            assert client.get(f"{srv.url}/doc").status_code == 401  # no netrc: no credentials sent
        monkeypatch.setenv("NETRC", str(netrc))
        with _clients()[which]() as client:
            assert client.get(f"{srv.url}/doc").content == b"members only"


def test_the_home_netrc_is_used_when_NETRC_is_unset(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".netrc").write_text("machine 127.0.0.1\n  login reader\n  password s3cret\n")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("NETRC", raising=False)
    with HostileServer({"/doc": fixed("200 OK", b"members only")}) as srv, upstream.client() as client:
        srv.basic_auth = ("reader", "s3cret")
        assert upstream.get(client, f"{srv.url}/doc") == b"members only"


def test_a_malformed_netrc_is_one_line_that_does_not_quote_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login reader password s3cret\nbogus s3cret\n")
    monkeypatch.setenv("NETRC", str(netrc))
    with pytest.raises(InvalidInputError, match=rf"^cannot read the netrc file {re.escape(str(netrc))} \(line 2\)") as caught:
        new_client()
    assert "s3cret" not in str(caught.value)


def test_redact_masks_the_userinfo_of_every_url_and_nothing_else() -> None:
    text = "cannot reach http://me:pw@h:1/a@b?q=x@y (via HTTPS://tok@proxy), not mail@example.org"
    assert redact(text) == "cannot reach http://***@h:1/a@b?q=x@y (via HTTPS://***@proxy), not mail@example.org"


@pytest.mark.parametrize(("url", "problem"), [
    ("http://me:s3cret@host/pub", "carries credentials, which would be printed and recorded; put credentials "
                                  "in ~/.netrc (or the file $NETRC names) instead"),
    ("https://host/pub?token=1", "has a query string or fragment"),
    ("http://host/pub#top", "has a query string or fragment"),
    ("ftp://host/pub", "must start with http:// or https://"),
    ("http:///pub", "is not a valid URL (no host)"),
])
def test_check_url_refuses_what_cannot_be_recorded_or_appended_to(url: str, problem: str) -> None:
    with pytest.raises(InvalidInputError, match=re.escape(problem)) as caught:
        check_url(url, "SOURCE")
    assert "s3cret" not in str(caught.value)


def test_check_url_takes_the_scheme_in_any_case() -> None:
    assert check_url(" HTTPS://Host:8000/Pub/ ", "SOURCE") == "https://Host:8000/Pub"


def test_a_closed_hostile_server_no_longer_answers_on_its_port() -> None:
    """Left listening, its port could be handed to a later test's server and answer for it (endlessly)."""
    with HostileServer({"/": endless()}) as srv:
        port = srv.port
    with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
        probe.connect(("127.0.0.1", port))


def test_a_trickling_blob_stream_is_a_one_line_remote_error_naming_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    # The server was reached: "gave up on", not "cannot reach"; credentials in the URL never printed.
    monkeypatch.setenv("RGSTORE_LOW_SPEED_LIMIT", "100")
    monkeypatch.setenv("RGSTORE_LOW_SPEED_TIME_S", "0.5")
    with HostileServer({"/blobs/": trickle(b"b" * 400, every=0.05)}) as srv, upstream.client() as client:
        url = f"http://u:secret@127.0.0.1:{srv.port}/blobs/ab"
        with pytest.raises(RemoteError, match=rf"^gave up on http://\*\*\*@127\.0\.0\.1:{srv.port}/blobs/ab: the "
                           r"transfer averaged \d+ bytes/s over 0\.\d s, under the 100 bytes/s [^\n]*$"):
            list(upstream.stream(client, url, limit=400))


def test_a_body_faster_than_the_low_speed_limit_arrives_whole_in_the_chunks_asked_for(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RGSTORE_LOW_SPEED_LIMIT", "10")
    monkeypatch.setenv("RGSTORE_LOW_SPEED_TIME_S", "0.2")
    body = bytes(range(256)) * 4
    with HostileServer({"/f": trickle(body[:30], every=0.02), "/big": fixed("200 OK", body)}) as srv, \
            upstream.client() as client:
        assert b"".join(upstream.stream(client, f"{srv.url}/f", limit=None)) == body[:30]  # ~50 bytes/s
        assert [len(c) for c in upstream.stream(client, f"{srv.url}/big", limit=None)] == [len(body)]


@pytest.mark.parametrize(("name", "value"), [("RGSTORE_LOW_SPEED_LIMIT", "-1"), ("RGSTORE_LOW_SPEED_TIME_S", "0"),
                                             ("RGSTORE_LOW_SPEED_TIME_S", "soon")])
def test_an_unusable_low_speed_setting_is_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with HostileServer({"/": fixed("200 OK", b"x")}) as srv, upstream.client() as client:
        with pytest.raises(InvalidInputError, match=rf"^\${name}='{value}': expected a number >= "):
            upstream.get(client, f"{srv.url}/x")


def test_a_low_speed_time_of_0_is_accepted_when_a_limit_of_0_turns_the_guard_off(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    # As curl ignores --speed-time when --speed-limit is 0; a time that is no number is still a typo.
    monkeypatch.setenv("RGSTORE_LOW_SPEED_LIMIT", "0")
    monkeypatch.setenv("RGSTORE_LOW_SPEED_TIME_S", "0")
    with HostileServer({"/": trickle(b"x" * 10, every=0.02)}) as srv, upstream.client() as client:
        assert upstream.get(client, f"{srv.url}/x") == b"x" * 10
        monkeypatch.setenv("RGSTORE_LOW_SPEED_TIME_S", "-1")
        with pytest.raises(InvalidInputError, match=r"^\$RGSTORE_LOW_SPEED_TIME_S='-1': expected a number >= 0$"):
            upstream.get(client, f"{srv.url}/x")


def test_a_gzip_body_trickled_on_the_wire_is_given_up_however_fast_it_decodes(monkeypatch: pytest.MonkeyPatch) -> None:
    import gzip

    # ~50 bytes/s on the wire decode to ~50 kB/s of zeros: the guard measures what the upstream sends.
    monkeypatch.setenv("RGSTORE_LOW_SPEED_LIMIT", "1000")
    monkeypatch.setenv("RGSTORE_LOW_SPEED_TIME_S", "0.5")
    packed = gzip.compress(bytes(2_000_000), 9)
    with HostileServer({"/": trickle(packed, every=0.02, headers=("Content-Encoding: gzip",))}) as srv, \
            upstream.client() as client:
        with pytest.raises(RemoteError, match=rf"^gave up on {srv.url}/x: the transfer averaged \d+ bytes/s over "
                           r"0\.\d s, under the 1,000 bytes/s"):
            upstream.get(client, f"{srv.url}/x")
        with pytest.raises(RemoteError, match=r"under the 1,000 bytes/s"):
            list(upstream.stream(client, f"{srv.url}/x", limit=None))


# -- a kept connection the server closes as a request goes out ------------------------------------------------------


def _hangs_up_on_reuse(connections: list[socket.socket]) -> Reply:
    """Answer a connection's first request (keep-alive), then hang up without answering its next one.

    What a server closing an idle kept connection just as the client reuses it looks like to the client.
    """

    def reply(conn: socket.socket, path: str) -> bool:
        if conn in connections:
            return False
        connections.append(conn)
        conn.sendall(response("200 OK", b"answer"))
        return True

    return reply


def _hangs_up(conn: socket.socket, path: str) -> bool:
    return False


def test_a_get_on_a_kept_connection_the_server_closed_is_sent_again_on_a_new_one() -> None:
    connections: list[socket.socket] = []
    with HostileServer({"/": _hangs_up_on_reuse(connections)}) as srv, kept_client(srv.url) as client:
        assert client.get(f"{srv.url}/a").content == b"answer"
        with client.stream("GET", f"{srv.url}/b") as resp:
            assert resp.read() == b"answer"
        assert client.head(f"{srv.url}/c").status_code == 200
    assert srv.seen == ["GET /a HTTP/1.1", "GET /b HTTP/1.1", "GET /b HTTP/1.1", "HEAD /c HTTP/1.1",
                        "HEAD /c HTTP/1.1"]
    assert len(connections) == 3  # each retry on a connection of its own


def test_a_get_through_a_proxy_from_the_environment_is_sent_again_too(monkeypatch: pytest.MonkeyPatch) -> None:
    connections: list[socket.socket] = []
    with HostileServer({"http://": _hangs_up_on_reuse(connections)}) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        with new_client() as client:
            assert client.get("http://example.invalid/a").content == b"answer"
            assert client.get("http://example.invalid/b").content == b"answer"
    assert proxy.seen == ["GET http://example.invalid/a HTTP/1.1", *["GET http://example.invalid/b HTTP/1.1"] * 2]


def test_a_server_that_always_hangs_up_is_asked_twice_then_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # The transport's own second send, alone: rgstore.retries' tries (each asking twice) are turned off here.
    monkeypatch.setenv("RGSTORE_RETRY_BUDGET_S", "0")
    with HostileServer({"/": _hangs_up}) as srv, upstream.client() as client:
        with pytest.raises(RemoteError, match=rf"^cannot reach {srv.url}/x: Server disconnected without sending a "
                           r"response\.$"):
            upstream.get(client, f"{srv.url}/x")
    assert srv.seen == ["GET /x HTTP/1.1"] * 2


def test_a_post_whose_connection_was_closed_is_not_sent_again() -> None:
    connections: list[socket.socket] = []
    with HostileServer({"/": _hangs_up_on_reuse(connections)}) as srv, new_client() as client:
        assert client.post(f"{srv.url}/a").content == b"answer"
        with pytest.raises(httpx.RemoteProtocolError):
            client.post(f"{srv.url}/b")
    assert srv.seen == ["POST /a HTTP/1.1", "POST /b HTTP/1.1"]


def test_a_get_whose_answer_was_cut_midway_or_timed_out_is_not_sent_again() -> None:
    cut = stall_after(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", 0)
    with HostileServer({"/cut": cut, "/silent": stall_after(b"", 5)}) as srv, new_client() as client:
        with pytest.raises(httpx.RemoteProtocolError, match=r"received 3 bytes, expected 10"):
            client.get(f"{srv.url}/cut")
        with pytest.raises(httpx.ReadTimeout):
            client.get(f"{srv.url}/silent", timeout=0.3)
    assert srv.seen == ["GET /cut HTTP/1.1", "GET /silent HTTP/1.1"]
