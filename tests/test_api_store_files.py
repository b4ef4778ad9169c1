"""/store/: the RefgetStore directory over HTTP with Range support, proven with gtars open_remote."""

from __future__ import annotations

import http.client
import os
import random
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from gtars.refget import RefgetStore

from rgstore.store import Store
from tests.server_fixture import Server, running_server


def write_fasta(path: Path, records: dict[str, str]) -> Path:
    path.write_text("".join(f">{name}\n" + "\n".join(seq[i:i + 60] for i in range(0, len(seq), 60)) + "\n"
                            for name, seq in records.items()))
    return path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path, str]]:
    root = tmp_path_factory.mktemp("storefiles")
    path = root / "store"
    Store.open(path, actor="tester@test").close()
    rng = random.Random(7)
    (root / "in").mkdir()
    fasta = write_fasta(root / "in" / "g.fa", {
        "chr1": "".join(rng.choice("ACGT") for _ in range(50_000)),
        "chr2": "".join(rng.choice("ACGTN") for _ in range(7_000)),
    })
    # Raw mode is what rgstore keeps (docs/architecture.md); this is the layout genome init writes.
    refget = RefgetStore.on_disk(str(path / "refget"))
    refget.set_quiet(True)
    refget.disable_encoding()
    meta, _ = refget.add_sequence_collection_from_fasta(str(fasta))
    os.symlink(path / "log" / "data.mdb", path / "refget" / "escape.json")  # must never be served
    with running_server(path) as server:
        yield server, path, meta.digest


def raw_get(server: Server, target: str) -> int:
    """Status of a GET sent with the request target exactly as given (no client-side normalisation)."""
    host, port = server.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.putrequest("GET", target, skip_accept_encoding=True)
        conn.endheaders()
        return conn.getresponse().status
    finally:
        conn.close()


def test_manifest_is_served_whole(served: tuple[Server, Path, str]) -> None:
    server, path, _ = served
    r = httpx.get(f"{server.url}/store/rgstore.json")
    assert r.status_code == 200
    assert r.content == (path / "refget" / "rgstore.json").read_bytes()
    assert r.headers["accept-ranges"] == "bytes"
    assert r.headers["content-type"].startswith("application/json")


def test_single_range_gets_206_with_exactly_those_bytes(served: tuple[Server, Path, str]) -> None:
    server, path, _ = served
    seq_file = next((path / "refget" / "sequences").rglob("*.seq"))
    rel = seq_file.relative_to(path / "refget").as_posix()
    r = httpx.get(f"{server.url}/store/{rel}", headers={"Range": "bytes=10-19"})
    assert r.status_code == 206
    assert r.content == seq_file.read_bytes()[10:20]
    assert r.headers["content-range"] == f"bytes 10-19/{seq_file.stat().st_size}"
    assert r.headers["content-length"] == "10"
    assert "immutable" in r.headers["cache-control"]


def test_range_past_the_end_is_416(served: tuple[Server, Path, str]) -> None:
    server, path, _ = served
    seq_file = next((path / "refget" / "sequences").rglob("*.seq"))
    rel = seq_file.relative_to(path / "refget").as_posix()
    size = seq_file.stat().st_size
    r = httpx.get(f"{server.url}/store/{rel}", headers={"Range": f"bytes={size}-{size + 5}"})
    assert r.status_code == 416


def test_head_of_a_sequence_file_sends_its_length_only(served: tuple[Server, Path, str]) -> None:
    server, path, _ = served
    seq_file = next((path / "refget" / "sequences").rglob("*.seq"))
    rel = seq_file.relative_to(path / "refget").as_posix()
    r = httpx.head(f"{server.url}/store/{rel}")
    assert r.status_code == 200
    assert r.content == b""
    assert int(r.headers["content-length"]) == seq_file.stat().st_size


@pytest.mark.parametrize("target", [
    "/store/",
    "/store/sequences",
    "/store/../log/data.mdb",
    "/store/%2e%2e/log/data.mdb",
    "/store/..%2flog%2fdata.mdb",
    "/store/sequences/../../log/data.mdb",
    "/store/%2fetc%2fpasswd",
    "/store//etc/passwd",
    "/store/escape.json",
    "/store/.rgstore.lock",
    "/store/no-such-file",
    "/store/rgstore.json%00.txt",
    "/blobs/" + "0" * 64,
    "/blobs/%2e%2e%2flog%2fdata.mdb",
    "/blobs/ABCDEF",
])
def test_nothing_outside_the_refget_directory_is_reachable(served: tuple[Server, Path, str], target: str) -> None:
    server, _, _ = served
    assert raw_get(server, target) in (400, 404)


def test_gtars_open_remote_reads_the_same_bases_as_the_local_store(
    served: tuple[Server, Path, str], tmp_path: Path
) -> None:
    server, path, digest = served
    local = RefgetStore.open_local(str(path / "refget"))
    local.set_quiet(True)
    remote = RefgetStore.open_remote(str(tmp_path / "cache"), f"{server.url}/store")
    remote.set_quiet(True)
    assert remote.get_collection_level2(digest) == local.get_collection_level2(digest)
    rng = random.Random(3)
    for seq_digest, length in zip(local.get_collection_level2(digest)["sequences"],
                                  local.get_collection_level2(digest)["lengths"]):
        for _ in range(5):
            start = rng.randrange(length)
            end = min(length, start + rng.randrange(1, 2000))
            # A 200 answer would make gtars raise: these reads exercise 206 end to end.
            assert remote.get_substring(seq_digest, start, end) == local.get_substring(seq_digest, start, end)
    shutil.rmtree(tmp_path / "cache")
