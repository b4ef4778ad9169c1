"""/store/: the RefgetStore directory over HTTP with Range support, proven with gtars open_remote."""

from __future__ import annotations

import http.client
import os
import random
import shutil
import threading
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


def test_the_store_directory_itself_is_a_404_naming_its_index_file(served: tuple[Server, Path, str]) -> None:
    # deployment.md names /store/; its answer was `no such store file: ''`, which told nothing.
    server, _, _ = served
    r = httpx.get(f"{server.url}/store/")
    assert r.status_code == 404 and "/store/rgstore.json" in r.json()["detail"], r.text
    assert httpx.get(f"{server.url}/store/rgstore.json").status_code == 200


@pytest.mark.parametrize("root", ["/rg", "/rg/"])
def test_the_store_directory_404_behind_a_root_path_names_the_paths_its_clients_see(tmp_path: Path, root: str) -> None:
    # It named /store/ and /store/rgstore.json, which a client behind the proxy stripping /rg never reaches.
    path = tmp_path / "store"
    Store.open(path).close()
    with running_server(path, extra_args=["--root-path", root]) as server:
        r = httpx.get(f"{server.url}/store/")
    assert r.status_code == 404, r.text
    assert r.json()["detail"] == ("/rg/store/ is the RefgetStore directory, which lists no files: its index is "
                                  "/rg/store/rgstore.json, what gtars RefgetStore.open_remote reads")


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


def test_a_file_replaced_while_it_is_served_is_sent_whole_as_one_version(served: tuple[Server, Path, str]) -> None:
    """Writers replace index files by rename: each answer is one version, its Content-Length its own."""
    server, path, _ = served
    versions = [b"{}\n", b'{"x": "' + b"y" * 300_000 + b'"}\n']  # one under a chunk, one over
    target = path / "refget" / "swapped.json"
    target.write_bytes(versions[0])
    stop = threading.Event()

    def replace_by_rename() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            (path / "refget" / ".swap.tmp").write_bytes(versions[i % 2])
            os.replace(path / "refget" / ".swap.tmp", target)

    writer = threading.Thread(target=replace_by_rename)
    writer.start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for _ in range(300):
                r = client.get("/store/swapped.json")  # a short or long body raises RemoteProtocolError
                assert r.status_code == 200 and r.content in versions
                assert int(r.headers["content-length"]) == len(r.content)
    finally:
        stop.set()
        writer.join()
        target.unlink()


@pytest.mark.parametrize("route", ["store", "blob"])
def test_conditional_requests_are_answered_304_without_a_body(served: tuple[Server, Path, str], route: str) -> None:
    server, path, _ = served
    if route == "store":
        url = f"{server.url}/store/rgstore.json"
    else:
        with Store.open(path) as store:
            info, _ = store.blobs.put_bytes(b"blob bytes\n")
        url = f"{server.url}/blobs/{info.sha256}"
    first = httpx.get(url)
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    if route == "blob":
        assert etag == f'"{info.sha256}"'
    for headers in ({"If-None-Match": etag}, {"If-None-Match": f'W/"other", W/{etag}'}, {"If-None-Match": "*"},
                    {"If-Modified-Since": modified}):
        for method in ("GET", "HEAD"):
            r = httpx.request(method, url, headers=headers)
            assert r.status_code == 304 and r.content == b"", (method, headers)
            assert r.headers["etag"] == etag
    for headers in ({"If-None-Match": '"other"'}, {"If-Modified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"},
                    {"If-Modified-Since": "not a date"},
                    {"If-None-Match": '"other"', "If-Modified-Since": modified}):  # If-None-Match decides
        r = httpx.get(url, headers=headers)
        assert r.status_code == 200 and r.content == first.content, headers


def test_an_asctime_if_modified_since_is_gmt_whatever_the_server_time_zone(tmp_path: Path) -> None:
    path = tmp_path / "store"
    with Store.open(path, actor="tester@test") as store:
        info, _ = store.blobs.put_bytes(b"blob bytes\n")
        blob = store.blobs.path(info.sha256)
    modified = 784116000  # 1994-11-06T10:00:00Z
    os.utime(blob, (modified, modified))
    # A POSIX zone five hours west of UTC (no zoneinfo files needed); asctime dates carry no zone.
    with running_server(path, env={"TZ": "XST5"}) as server:
        url = f"{server.url}/blobs/{info.sha256}"
        assert httpx.get(url).headers["last-modified"] == "Sun, 06 Nov 1994 10:00:00 GMT"
        earlier = httpx.get(url, headers={"If-Modified-Since": "Sun Nov  6 08:49:37 1994"})
        assert earlier.status_code == 200 and earlier.content == b"blob bytes\n"
        same = httpx.get(url, headers={"If-Modified-Since": "Sun Nov  6 10:00:00 1994"})
        assert same.status_code == 304


def test_range_errors_are_one_line_json_as_on_the_refget_route(served: tuple[Server, Path, str]) -> None:
    server, path, _ = served
    url = f"{server.url}/store/rgstore.json"
    whole = (path / "refget" / "rgstore.json").read_bytes()
    size = len(whole)
    for header, status in (("bytes=abc", 400), ("items=0-3", 400), (f"bytes={size}-", 416), ("bytes=9-2", 416)):
        r = httpx.get(url, headers={"Range": header})
        assert r.status_code == status, header
        assert r.headers["content-type"] == "application/json" and "\n" not in r.json()["detail"]
        if status == 416:
            assert r.headers["content-range"] == f"bytes */{size}"
    # Several ranges, a stale If-Range or an empty Range: the whole file, as RFC 9110 allows.
    for headers in ({"Range": "bytes=0-1,4-5"}, {"Range": "bytes=0-1", "If-Range": '"stale"'}, {"Range": ""}):
        r = httpx.get(url, headers=headers)
        assert r.status_code == 200 and r.content == whole, headers
    current = httpx.head(url).headers["etag"]
    r = httpx.get(url, headers={"Range": "bytes=0-1", "If-Range": current})
    assert r.status_code == 206 and r.content == whole[:2]


def test_range_sent_on_two_lines_is_one_list_of_two_ranges_so_the_whole_file(served: tuple[Server, Path, str]) -> None:
    server, path, _ = served
    whole = (path / "refget" / "rgstore.json").read_bytes()
    url = f"{server.url}/store/rgstore.json"
    # RFC 9110 5.3 combines the lines: two ranges, answered whole as a single-line list is, never the first alone.
    r = httpx.get(url, headers=[("Range", "bytes=0-1"), ("Range", "bytes=4-5")])
    assert r.status_code == 200 and r.content == whole
    r = httpx.get(url, headers=[("Range", ""), ("Range", "bytes=4-5")])
    assert r.status_code == 206 and r.content == whole[4:6]


def test_an_unchanged_file_is_hashed_once_for_many_requests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Hashing on every request made a HEAD or a one-byte Range of a 1 GB blob hash the gigabyte.
    from rgstore_api import files

    path = tmp_path / "blob"
    path.write_bytes(b"ACGT" * 100_000)
    monkeypatch.setattr(files, "_RACY_S", -1.0)  # the file is brand new: trust its timestamps anyway
    reads = []
    real_pread = os.pread
    monkeypatch.setattr(os, "pread", lambda fd, n, at: reads.append(at) or real_pread(fd, n, at))
    fd = os.open(path, os.O_RDONLY)
    try:
        first = files.fd_checksums(fd)
        hashed = len(reads)
        assert files.fd_checksums(fd) == first and len(reads) == hashed
    finally:
        os.close(fd)
    assert first.size == 400_000


def test_a_file_rewritten_in_place_is_hashed_again(tmp_path: Path) -> None:
    from rgstore_api import files

    path = tmp_path / "blob"
    path.write_bytes(b"A" * 4096)
    fd = os.open(path, os.O_RDONLY)
    try:
        before = files.fd_checksums(fd)
        path.write_bytes(b"C" * 4096)  # same size, likely the same timestamp tick
        after = files.fd_checksums(fd)
    finally:
        os.close(fd)
    assert before.sha256 != after.sha256 and after.size == 4096
