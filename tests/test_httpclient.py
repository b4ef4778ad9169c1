"""Claims about building HTTP clients under the environment's proxy settings."""

from __future__ import annotations

import re
import socket
import threading
from pathlib import Path

import pytest

from rgstore import upstream
from rgstore.errors import InvalidInputError, RemoteError
from rgstore.httpclient import new_client


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
