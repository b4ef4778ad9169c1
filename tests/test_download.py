"""Claims about verified, resumable HTTP downloads, against a real loopback server."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from rgstore import download as download_module
from rgstore.checksums import Expected
from rgstore.download import download, get_text, http_client, retry_after
from rgstore.errors import DiskWriteError, IntegrityError, InvalidInputError, NotFoundError, RemoteError
from tests.hostile_http import HostileServer, Reply, endless, fixed, response, stall_after, trickle
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


def test_a_download_that_always_fails_before_its_body_does_not_promise_a_resume(tmp_path: Path) -> None:
    # Every attempt answered HTTP 500: the message said "the partial file is kept" with none on disk.
    with HostileServer({"/": fixed("500 Internal Server Error", b"oops")}) as srv, http_client() as client:
        with pytest.raises(RemoteError) as caught:
            download(client, f"{srv.url}/g.fa.gz", tmp_path / "g.fa.gz", expected=None, retries=1, backoff=0)
    message = str(caught.value)
    assert "failed 2 times (last: HTTP 500)" in message and "no byte of it arrived" in message
    assert "partial file is kept" not in message
    assert not (tmp_path / "g.fa.gz.part").exists() or (tmp_path / "g.fa.gz.part").stat().st_size == 0


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


# -- a hostile or broken upstream ----------------------------------------------------------------------


def _hostile_routes() -> dict[str, Reply]:
    return {
        "/loop": fixed("302 Found", headers=("Location: /loop",)),
        "/to-ftp": fixed("301 Moved Permanently", headers=("Location: ftp://127.0.0.1/x",)),
        "/badgz": fixed("200 OK", b"not gzip at all", headers=("Content-Encoding: gzip",)),
    }


@pytest.mark.parametrize(("path", "reason"), [
    ("/loop", "redirects"), ("/to-ftp", "unsupported protocol 'ftp://'"), ("/badgz", "decompressing"),
])
def test_redirect_loops_other_schemes_and_undecodable_bodies_are_one_line_remote_errors(
    tmp_path: Path, path: str, reason: str
) -> None:
    with HostileServer(_hostile_routes()) as srv, http_client(timeout=5.0) as client:
        with pytest.raises(RemoteError, match=f"cannot fetch {srv.url}{path}: .*{reason}"):
            get_text(client, srv.url + path, retries=3)
        if path != "/badgz":  # a download keeps the raw bytes (no decoding), so only the others fail
            with pytest.raises(RemoteError, match=f"cannot download {srv.url}{path}: .*{reason}"):
                download(client, srv.url + path, tmp_path / "x.gz", expected=None, retries=3, backoff=0.01)
            assert not (tmp_path / "x.gz").exists()
    # None of these gets better on a retry, so each was asked once per call (a loop: once per hop).
    asked = len([line for line in srv.seen if line.startswith(f"GET {path} ")])
    assert asked == {"/loop": 2 * 21, "/to-ftp": 2, "/badgz": 1}[path]


def test_a_body_compressed_again_on_the_way_fails_its_checksum_naming_the_encoding_rgstore_did_not_ask_for(
    tmp_path: Path
) -> None:
    import gzip

    routes = {
        # Apache's `AddEncoding x-gzip .gz`: the raw bytes are the file itself, only labelled gzip.
        "/labelled": fixed("200 OK", PAYLOAD, headers=("Content-Encoding: gzip", 'ETag: "l"')),
        # A proxy compressing the answer although rgstore sent Accept-Encoding: identity.
        "/recompressed": fixed("200 OK", gzip.compress(PAYLOAD), headers=("Content-Encoding: gzip", 'ETag: "r"')),
    }
    with HostileServer(routes) as srv, http_client(timeout=5.0) as client:
        assert download(client, f"{srv.url}/labelled", tmp_path / "l.gz", expected=MD5).size == len(PAYLOAD)
        with pytest.raises(IntegrityError, match=r"checksum mismatch .*\(the upstream sent it with Content-Encoding: "
                           r"gzip although rgstore asked for identity"):
            download(client, f"{srv.url}/recompressed", tmp_path / "r.gz", expected=MD5, retries=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["l.gz"]


def test_a_malformed_upstream_url_is_invalid_input_not_a_traceback(tmp_path: Path) -> None:
    with http_client(timeout=5.0) as client:
        with pytest.raises(InvalidInputError, match="invalid upstream URL"):
            get_text(client, "http://[::1/CHECKSUMS")
        with pytest.raises(InvalidInputError, match="invalid upstream URL"):
            download(client, "http://[::1/x.gz", tmp_path / "x.gz", expected=None)


def test_an_endless_answer_to_a_checksum_request_is_refused_not_buffered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(download_module, "TEXT_LIMIT", 1 << 20)
    with HostileServer({"/": endless()}) as srv, http_client(timeout=5.0) as client:
        with pytest.raises(RemoteError, match=r"CHECKSUMS: the answer exceeds 1 MiB"):
            get_text(client, f"{srv.url}/CHECKSUMS")


def test_a_server_that_stalls_mid_headers_or_mid_body_times_out_and_keeps_the_part(tmp_path: Path) -> None:
    routes = {
        "/head": stall_after(b"HTTP/1.1 200 OK\r\nContent-Len", seconds=10),
        "/body": stall_after(response("200 OK", b"0123456789")[:-4], seconds=10),
    }
    with HostileServer(routes) as srv, http_client(timeout=0.3) as client:
        with pytest.raises(RemoteError, match=f"cannot fetch {srv.url}/head: .*timed out"):
            get_text(client, f"{srv.url}/head", retries=0)
        with pytest.raises(RemoteError, match=f"download of {srv.url}/body failed 2 times .*timed out.*resumes"):
            download(client, f"{srv.url}/body", tmp_path / "b.gz", expected=None, retries=1, backoff=0.01)
    assert not (tmp_path / "b.gz").exists()


def test_a_checksum_request_retried_into_silence_says_how_often_and_how_long_each_try_waited() -> None:
    with HostileServer({"/": stall_after(b"", seconds=10)}) as srv, http_client(timeout=0.3) as client:
        with pytest.raises(RemoteError, match=rf"^cannot fetch {srv.url}/md5checksums.txt: timed out "
                           r"\(tried 3 times, each waiting 0.3 s for an answer\)$"):
            get_text(client, f"{srv.url}/md5checksums.txt", retries=2)
    assert len(srv.seen) == 3


def test_cli_fetch_raw_against_a_redirect_loop_is_one_line_and_leaves_no_entry(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with HostileServer({"/": fixed("302 Found", headers=("Location: /",))}) as srv:
        result = cli("cache", "fetch-raw", "--source", "ensembl", "--species", "homo_sapiens", "--release", "110",
                     "--base-url", srv.url)
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"error: cannot fetch {srv.url}/release-110/fasta/homo_sapiens/dna/CHECKSUMS: "
        "too many redirects (a redirect loop?)"]
    assert cli("cache", "ls", "--json").output.strip() in ("[]", "")


def test_an_endless_answer_stops_at_the_size_the_checksum_file_promises_and_keeps_nothing(tmp_path: Path) -> None:
    # A download ran until the disk was full: an Ensembl CHECKSUMS line bounds the file at blocks x 1 KiB.
    dest = tmp_path / "genome.fa.gz"
    with HostileServer({"/": endless()}) as srv, http_client(timeout=5.0) as client:
        with pytest.raises(IntegrityError, match="more than the 10,240 bytes its checksum file allows"):
            download(client, f"{srv.url}/genome.fa.gz", dest, expected=Expected(algorithm="sum", value="123/10"))
    assert list(tmp_path.iterdir()) == []


def test_a_download_without_a_promised_size_stops_before_the_disk_is_full_and_keeps_its_part(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # NCBI's md5checksums.txt promises no size: the disk's own free space is the bound.
    from rgstore.diskspace import free_bytes

    free = free_bytes(tmp_path)
    assert free is not None
    monkeypatch.setattr(download_module, "DISK_RESERVE", free + (1 << 30))  # as if the disk were nearly full
    dest = tmp_path / "genome.fa.gz"
    with HostileServer({"/": endless()}) as srv, http_client(timeout=5.0) as client:
        with pytest.raises(DiskWriteError, match="stopped downloading .* bytes left free on"):
            download(client, f"{srv.url}/genome.fa.gz", dest, expected=MD5)
    assert not dest.exists()


def test_a_trickling_download_is_given_up_in_one_line_naming_the_url_and_publishes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One byte every 50 ms never trips the 1 s read timeout: only the low-speed guard ends it.
    monkeypatch.setenv("RGSTORE_LOW_SPEED_TIME_S", "1")
    dest = tmp_path / "genome.fa.gz"
    with HostileServer({"/": trickle(PAYLOAD[:1000])}) as srv, http_client(timeout=1.0) as client:
        url = srv.url.replace("http://", "http://me:s3cret@") + "/genome.fa.gz"
        with pytest.raises(RemoteError) as caught:
            download(client, url, dest, expected=MD5, retries=0)
    message = str(caught.value)
    assert re.match(rf"^download of http://\*\*\*@127\.0\.0\.1:{srv.port}/genome\.fa\.gz failed 1 times \(last: "
                    r"the transfer averaged \d+ bytes/s over 1\.\d s, under the 1,024 bytes/s "
                    r"\$RGSTORE_LOW_SPEED_LIMIT asks for", message), message
    assert "\n" not in message and "s3cret" not in message
    assert not dest.exists()


def test_a_download_given_up_as_too_slow_resumes_from_its_part_when_the_upstream_speeds_up(
    server: UpstreamServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RGSTORE_LOW_SPEED_LIMIT", str(1 << 20))
    monkeypatch.setenv("RGSTORE_LOW_SPEED_TIME_S", "0.5")
    server.slow("big.bin", 20.0)  # 300 kB in 20 pieces over 20 s: 15 kB/s, far under 1 MiB/s
    dest = tmp_path / "big.bin"
    with http_client() as client, pytest.raises(RemoteError, match="under the 1,048,576 bytes/s .*next run resumes"):
        download(client, f"{server.url}/big.bin", dest, expected=MD5, retries=0)
    kept = (tmp_path / "big.bin.part").stat().st_size
    assert 0 < kept < len(PAYLOAD) and not dest.exists()
    server.slow("big.bin", 0.0)
    with http_client() as client:
        download(client, f"{server.url}/big.bin", dest, expected=MD5)
    assert dest.read_bytes() == PAYLOAD
    assert server.gets("big.bin")[-1].range == f"bytes={kept}-"


# -- rate limits (HTTP 429) ----------------------------------------------------------------------------


def test_a_rate_limited_download_is_retried_and_completes(server: UpstreamServer, tmp_path: Path) -> None:
    # NCBI answers 429 Too Many Requests to a busy client: that was a RemoteError on the first answer.
    server.throttle("big.bin", times=2, retry_after="0")
    dest = tmp_path / "big.bin"
    with http_client() as client:
        download(client, f"{server.url}/big.bin", dest, expected=MD5, backoff=0)
    assert dest.read_bytes() == PAYLOAD
    assert [r.status for r in server.gets("big.bin")] == [429, 429, 200]


def test_a_rate_limited_checksum_request_is_retried(server: UpstreamServer) -> None:
    (server.root / "md5checksums.txt").write_text("abc  ./x.fna.gz\n")
    server.throttle("md5checksums.txt", times=1, retry_after="0")
    with http_client() as client:
        assert get_text(client, f"{server.url}/md5checksums.txt") == "abc  ./x.fna.gz\n"
    assert [r.status for r in server.gets("md5checksums.txt")] == [429, 200]


def test_a_download_rate_limited_on_every_try_says_so_in_one_line(server: UpstreamServer, tmp_path: Path) -> None:
    server.throttle("big.bin", times=10, retry_after="0")
    with http_client() as client, pytest.raises(RemoteError, match=r"failed 2 times \(last: HTTP 429\)"):
        download(client, f"{server.url}/big.bin", tmp_path / "big.bin", expected=MD5, retries=1, backoff=0)


@pytest.mark.parametrize(("header", "waits"), [("7", [7.0, 7.0]), ("86400", [60.0])])
def test_a_retry_waits_as_long_as_retry_after_asks_but_at_most_a_minute(
    server: UpstreamServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, header: str, waits: list[float]
) -> None:
    # The waits are recorded, not slept: the claim is what the downloader asked the clock for.
    import time
    from types import SimpleNamespace

    asked: list[float] = []
    monkeypatch.setattr(download_module, "time", SimpleNamespace(sleep=asked.append, time=time.time, monotonic=time.monotonic))
    server.throttle("big.bin", times=len(waits), retry_after=header)
    with http_client() as client:
        download(client, f"{server.url}/big.bin", tmp_path / "big.bin", expected=MD5, backoff=0.5)
    assert asked == waits


def test_retries_stop_once_their_waits_would_pass_the_total_budget(
    server: UpstreamServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each Retry-After was capped at 60 s, but not their sum: an upstream answering 429 with a long
    # Retry-After held a download (and each checksum file) for 3 minutes before it failed.
    import time
    from types import SimpleNamespace

    from rgstore.download import RETRY_WAIT_BUDGET

    asked: list[float] = []
    monkeypatch.setattr(download_module, "time", SimpleNamespace(sleep=asked.append, time=time.time, monotonic=time.monotonic))
    assert RETRY_WAIT_BUDGET == 90.0  # room for one capped wait, not two
    server.throttle("big.bin", times=10, retry_after="86400")
    with http_client() as client, pytest.raises(RemoteError) as failed:
        download(client, f"{server.url}/big.bin", tmp_path / "big.bin", expected=MD5)
    assert [r.status for r in server.gets("big.bin")] == [429, 429] and asked == [60.0]
    assert str(failed.value) == (
        f"download of {server.url}/big.bin failed 2 times (last: HTTP 429; the upstream asks to wait 60 s more, "
        "past the 90 s rgstore waits in all); no byte of it arrived; run the command again later")
    (server.root / "md5checksums.txt").write_text("abc  ./x.fna.gz\n")
    server.throttle("md5checksums.txt", times=10, retry_after="86400")
    with http_client() as client, pytest.raises(RemoteError) as refused:
        get_text(client, f"{server.url}/md5checksums.txt")
    assert [r.status for r in server.gets("md5checksums.txt")] == [429, 429] and asked == [60.0, 60.0]
    assert str(refused.value) == (
        f"cannot fetch {server.url}/md5checksums.txt: HTTP 429 on try 2; the upstream asks to wait 60 s more, "
        "past the 90 s rgstore waits in all; run the command again later")


@pytest.mark.parametrize(("header", "seconds"), [
    ("5", 5.0), ("0", 0.0), ("3600", 60.0), (None, None), ("", None), ("soon", None), ("-3", None),
    ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # a date already past: retry now
])
def test_retry_after_is_read_as_seconds_or_a_date_and_capped(header: str | None, seconds: float | None) -> None:
    assert retry_after(header) == seconds


def test_tries_that_time_out_count_against_the_retry_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A silent server costs about the budget plus one read timeout, not a read timeout per try."""
    monkeypatch.setenv("RGSTORE_RETRY_BUDGET_S", "0.5")
    with HostileServer({"/": stall_after(b"", seconds=3)}) as srv, http_client(timeout=0.4) as client:
        with pytest.raises(RemoteError, match=r"failed 1 times .*RGSTORE_RETRY_BUDGET_S"):
            download(client, f"{srv.url}/big.bin", tmp_path / "big.bin", expected=None)
        assert len(srv.seen) == 1  # 0.4 s silent plus a pause is past 0.5 s: no second, third or fourth try
        with pytest.raises(RemoteError, match=r"timed out.*RGSTORE_RETRY_BUDGET_S"):
            get_text(client, f"{srv.url}/md5checksums.txt")
