"""Claims about verified, resumable HTTP downloads, against a real loopback server."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from rgstore.checksums import Expected
from rgstore.download import download, get_text, http_client
from rgstore.errors import IntegrityError, NotFoundError, RemoteError
from tests.upstream_fixture import UpstreamServer

PAYLOAD = os.urandom(300_000)
MD5 = Expected(algorithm="md5", value=hashlib.md5(PAYLOAD).hexdigest())


@pytest.fixture
def server(tmp_path: Path) -> Iterator[UpstreamServer]:
    root = tmp_path / "up"
    root.mkdir()
    (root / "big.bin").write_bytes(PAYLOAD)
    with UpstreamServer(root) as srv:
        yield srv


def test_a_download_is_verified_then_renamed_into_place(server: UpstreamServer, tmp_path: Path) -> None:
    dest = tmp_path / "out" / "big.bin"
    with http_client() as client:
        info = download(client, f"{server.url}/big.bin", dest, expected=MD5)
    assert dest.read_bytes() == PAYLOAD
    assert info.sha256 == hashlib.sha256(PAYLOAD).hexdigest() and info.size == len(PAYLOAD)
    assert sorted(p.name for p in dest.parent.iterdir()) == ["big.bin"]


def test_a_checksum_mismatch_publishes_nothing(server: UpstreamServer, tmp_path: Path) -> None:
    server.corrupt("big.bin")
    dest = tmp_path / "out" / "big.bin"
    with http_client() as client, pytest.raises(IntegrityError, match="checksum mismatch"):
        download(client, f"{server.url}/big.bin", dest, expected=MD5)
    assert list(dest.parent.iterdir()) == []


def test_a_dropped_connection_is_resumed_with_range(server: UpstreamServer, tmp_path: Path) -> None:
    server.drop_after("big.bin", 100_000)
    dest = tmp_path / "big.bin"
    with http_client() as client:
        download(client, f"{server.url}/big.bin", dest, expected=MD5, backoff=0)
    assert dest.read_bytes() == PAYLOAD
    log = server.gets("big.bin")
    assert [(r.range, r.status) for r in log] == [(None, 200), ("bytes=100000-", 206)]


def test_an_interrupted_download_resumes_in_a_later_call(server: UpstreamServer, tmp_path: Path) -> None:
    server.drop_after("big.bin", 123_456)
    dest = tmp_path / "big.bin"
    with http_client() as client, pytest.raises(RemoteError, match="next run resumes"):
        download(client, f"{server.url}/big.bin", dest, expected=MD5, retries=0)
    assert not dest.exists()
    assert (tmp_path / "big.bin.part").stat().st_size == 123_456
    with http_client() as client:
        download(client, f"{server.url}/big.bin", dest, expected=MD5)
    assert dest.read_bytes() == PAYLOAD
    assert server.gets("big.bin")[-1].range == "bytes=123456-"
    assert not (tmp_path / "big.bin.part").exists() and not (tmp_path / "big.bin.part.json").exists()


def test_a_changed_upstream_file_restarts_instead_of_splicing(server: UpstreamServer, tmp_path: Path) -> None:
    server.drop_after("big.bin", 50_000)
    dest = tmp_path / "big.bin"
    with http_client() as client, pytest.raises(RemoteError):
        download(client, f"{server.url}/big.bin", dest, expected=None, retries=0)
    changed = os.urandom(200_000)
    (server.root / "big.bin").write_bytes(changed)  # new ETag: If-Range fails, the server sends 200
    with http_client() as client:
        download(client, f"{server.url}/big.bin", dest, expected=None)
    assert dest.read_bytes() == changed
    assert server.gets("big.bin")[-1].status == 200


def test_a_complete_part_is_accepted_on_416(server: UpstreamServer, tmp_path: Path) -> None:
    dest = tmp_path / "big.bin"
    with http_client() as client:
        download(client, f"{server.url}/big.bin", dest, expected=MD5)
        # Pretend a run was killed after the last byte but before the rename.
        os.replace(dest, tmp_path / "big.bin.part")
        etag = client.get(f"{server.url}/big.bin").headers["etag"]
        (tmp_path / "big.bin.part.json").write_text(
            json.dumps({"url": f"{server.url}/big.bin", "validator": etag})
        )
        download(client, f"{server.url}/big.bin", dest, expected=MD5)
    assert dest.read_bytes() == PAYLOAD
    assert server.gets("big.bin")[-1].status == 416


def test_missing_upstream_files_are_not_found(server: UpstreamServer, tmp_path: Path) -> None:
    with http_client() as client:
        with pytest.raises(NotFoundError, match="404"):
            get_text(client, f"{server.url}/nope.txt")
        with pytest.raises(NotFoundError, match="404"):
            download(client, f"{server.url}/nope.bin", tmp_path / "x", expected=None)
