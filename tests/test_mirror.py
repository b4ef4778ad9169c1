"""Claims about mirrors: they replay a primary's log from files, segments or a server, and stay read-only."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from rgstore.errors import ChainError, IntegrityError, LogMismatchError, ReadOnlyError, RemoteError
from rgstore.events import AliasSet, Noted, Undone
from rgstore.log import NewEvent
from rgstore.mirror import promote, pull, status
from rgstore.replay import export_log
from rgstore.segments import MANIFEST, publish, read_manifest
from rgstore.store import Store
from rgstore.verify import view_digests
from tests.conftest import REPO


def _work(store: Store, start: int, n: int) -> None:
    for i in range(start, start + n):
        if i % 5 == 4:
            store.append([NewEvent(stream=f"alias:refgenie/a{i % 3}", event=Undone())])
        else:
            store.append([NewEvent(stream=f"alias:refgenie/a{i % 3}",
                                   event=AliasSet(namespace="refgenie", name=f"a{i % 3}", digest=f"d{i}"))])


def _same(a: Store, b: Store) -> None:
    assert a.head() == b.head()
    assert view_digests(a) == view_digests(b)


def test_pull_from_segments_is_incremental_and_identical(tmp_path: Path) -> None:
    with Store.open(tmp_path / "p") as primary, Store.open(tmp_path / "m") as mirror:
        _work(primary, 0, 23)
        first = publish(primary, tmp_path / "pub", segment_size=10)
        assert [(s.first_seq, s.last_seq) for s in first.segments] == [(1, 10), (11, 20), (21, 23)]
        assert pull(mirror, str(tmp_path / "pub")).applied == 23
        _same(primary, mirror)
        before = {s.file: (tmp_path / "pub" / s.file).read_bytes() for s in first.segments}
        _work(primary, 23, 12)
        second = publish(primary, tmp_path / "pub", segment_size=10)
        # Published segments are never rewritten; new records go to new segments.
        assert second.segments[:3] == first.segments
        assert all((tmp_path / "pub" / f).read_bytes() == data for f, data in before.items())
        assert pull(mirror, str(tmp_path / "pub")).applied == 12
        _same(primary, mirror)
        assert mirror.verify().ok


def test_pull_from_an_export_file(tmp_path: Path) -> None:
    with Store.open(tmp_path / "p") as primary, Store.open(tmp_path / "m") as mirror:
        _work(primary, 0, 15)
        export_log(primary, tmp_path / "x.rglog")
        result = pull(mirror, str(tmp_path / "x.rglog"))
        assert (result.kind, result.applied, result.upstream_head) == ("export", 15, 15)
        _same(primary, mirror)


def test_a_mirror_refuses_its_own_writes_until_promoted(tmp_path: Path) -> None:
    with Store.open(tmp_path / "p") as primary, Store.open(tmp_path / "m") as mirror:
        _work(primary, 0, 3)
        publish(primary, tmp_path / "pub")
        pull(mirror, str(tmp_path / "pub"))
        with pytest.raises(ReadOnlyError, match="mirror"):
            mirror.append([NewEvent(stream="s", event=Noted())])
        st = status(mirror)
        assert (st.upstream, st.local_head, st.upstream_head, st.lag) == (str(tmp_path / "pub"), 3, 3, 0)
        assert promote(mirror) == str(tmp_path / "pub")
        assert mirror.append([NewEvent(stream="s", event=Noted())]) == [4]


def test_a_tampered_segment_is_detected_and_names_the_seq(tmp_path: Path) -> None:
    with Store.open(tmp_path / "p") as primary:
        _work(primary, 0, 25)
        manifest = publish(primary, tmp_path / "pub", segment_size=10)
    seg = tmp_path / "pub" / manifest.segments[1].file
    data = bytearray(seg.read_bytes())
    data[-3] ^= 0xFF
    seg.write_bytes(bytes(data))
    with Store.open(tmp_path / "m") as mirror:
        with pytest.raises(IntegrityError, match="seqs 11-20"):
            pull(mirror, str(tmp_path / "pub"))
        assert mirror.head()[0] < 11  # nothing of the bad segment landed
        assert mirror.verify().ok


def test_a_consistently_forged_segment_fails_the_chain_at_its_seq(tmp_path: Path) -> None:
    import hashlib

    import msgspec

    from rgstore.logfile import read_log_file, write_log_file

    with Store.open(tmp_path / "p") as primary:
        _work(primary, 0, 20)
        manifest = publish(primary, tmp_path / "pub", segment_size=10)
    seg = manifest.segments[1]
    header, frames = read_log_file(tmp_path / "pub" / seg.file)
    records = list(frames)
    seq, rec = records[3]
    forged = bytearray(rec)
    forged[-1] ^= 0x01
    records[3] = (seq, bytes(forged))
    write_log_file(tmp_path / "pub" / seg.file, header, records)
    data = (tmp_path / "pub" / seg.file).read_bytes()
    manifest.segments[1] = msgspec.structs.replace(seg, sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    (tmp_path / "pub" / MANIFEST).write_bytes(msgspec.json.encode(manifest))
    with Store.open(tmp_path / "m") as mirror, pytest.raises(ChainError, match=f"seq {seq}"):
        pull(mirror, str(tmp_path / "pub"))


def test_a_foreign_upstream_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    with Store.open(tmp_path / "p") as primary, Store.open(tmp_path / "q") as other:
        _work(primary, 0, 5)
        _work(other, 0, 5)
        publish(primary, tmp_path / "pub")
        publish(other, tmp_path / "other")
    with Store.open(tmp_path / "m") as mirror:
        pull(mirror, str(tmp_path / "pub"))
        before = mirror.head()
        with pytest.raises(LogMismatchError):
            pull(mirror, str(tmp_path / "other"))
        assert mirror.head() == before


def test_publishing_into_another_logs_directory_is_refused(tmp_path: Path) -> None:
    with Store.open(tmp_path / "p") as primary, Store.open(tmp_path / "q") as other:
        _work(primary, 0, 2)
        _work(other, 0, 2)
        publish(primary, tmp_path / "pub")
        with pytest.raises(LogMismatchError):
            publish(other, tmp_path / "pub")
    assert read_manifest((tmp_path / "pub" / MANIFEST).read_bytes(), "x").head_seq == 2


def test_a_pull_killed_midway_resumes_to_an_identical_mirror(tmp_path: Path) -> None:
    with Store.open(tmp_path / "p") as primary:
        for b in range(30):
            primary.append([NewEvent(stream=f"s{i % 7}", event=Noted(text=f"{b}:{i}")) for i in range(1000)])
        publish(primary, tmp_path / "pub", segment_size=2000)
        expected = primary.head(), view_digests(primary)
    mirror = tmp_path / "m"
    code = (f"from rgstore.store import Store\nfrom rgstore.mirror import pull\n"
            f"s = Store.open({str(mirror)!r})\npull(s, {str(tmp_path / 'pub')!r})\n")
    for delay in (0.5, 0.9, 1.3):
        proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        with Store.open(mirror) as m:
            assert m.verify().ok
    with Store.open(mirror) as m:
        pull(m, str(tmp_path / "pub"))
        assert (m.head(), view_digests(m)) == expected


@contextmanager
def _static_server(directory: Path) -> Iterator[str]:
    """Python's own http.server over ``directory`` on a loopback port; yields its URL."""
    import socket

    import httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    static = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                               "--directory", str(directory)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{url}/{MANIFEST}", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        yield url
    finally:
        static.terminate()
        static.wait(timeout=10)


def test_pull_from_segments_on_a_plain_static_http_server(tmp_path: Path) -> None:
    """Any static host serves published segments: here Python's own http.server (no Range needed)."""
    with Store.open(tmp_path / "p") as primary:
        _work(primary, 0, 30)
        publish(primary, tmp_path / "pub", segment_size=7)
        expected = primary.head(), view_digests(primary)
    with _static_server(tmp_path / "pub") as url, Store.open(tmp_path / "m") as mirror:
        result = pull(mirror, url)
        assert (result.kind, result.applied) == ("segments", 30)
        assert (mirror.head(), view_digests(mirror)) == expected


def test_a_tampered_blob_on_a_static_host_is_refused_and_leaves_nothing_behind(tmp_path: Path) -> None:
    """Blobs stream from the host into a temp file; bytes that fail the sha256 are never stored, even under their own hash."""
    from rgstore.verify import referenced_blobs

    tree = tmp_path / "tree.nwk"
    tree.write_text("(a:0.1,b:0.2);\n" * 1000)
    pub = tmp_path / "pub"
    with Store.open(tmp_path / "p") as primary:
        primary.refpkgs.create("pkg", locus="16S", files=[("tree", tree)])
        publish(primary, pub)
        [sha] = referenced_blobs(primary)
        blob = pub / "blobs" / sha[:2] / sha
        blob.parent.mkdir(parents=True)
        primary.blobs.copy_to(sha, blob)
    good = blob.read_bytes()
    blob.write_bytes(good.replace(b"a:0.1", b"a:0.9", 1))
    with _static_server(pub) as url, Store.open(tmp_path / "m") as mirror:
        with pytest.raises(IntegrityError, match=f"blob {sha} from {url} fails its sha256"):
            pull(mirror, url, with_blobs=True)
        assert not [f for f in mirror.blobs.root.rglob("*") if f.is_file()]  # no stray blob, no temp file
        blob.write_bytes(good)
        pull(mirror, url, with_blobs=True)
        assert mirror.blobs.read_bytes(sha) == good


def test_publishing_into_the_store_itself_is_refused(tmp_path: Path) -> None:
    from rgstore.errors import InvalidInputError

    with Store.open(tmp_path / "p") as primary:
        _work(primary, 0, 2)
        with pytest.raises(InvalidInputError, match="inside the store"):
            publish(primary, tmp_path / "p" / "log")
    assert not (tmp_path / "p" / "log" / MANIFEST).exists()


def test_an_unsupported_url_scheme_is_one_clear_error(tmp_path: Path) -> None:
    from rgstore.errors import InvalidInputError

    with Store.open(tmp_path / "m") as mirror, pytest.raises(InvalidInputError, match="unsupported URL scheme"):
        pull(mirror, "ftp://example.org/pub")


def test_prefetched_pages_arrive_in_order_with_the_producers_error_last() -> None:
    from rgstore.mirror import prefetched

    def pages() -> Iterator[int]:
        yield from range(5)
        raise RemoteError("page 5 failed")

    got: list[int] = []
    with pytest.raises(RemoteError, match="page 5 failed"):
        for page in prefetched(pages()):
            got.append(page)
    assert got == [0, 1, 2, 3, 4]


def test_closing_a_prefetch_early_stops_its_producer() -> None:
    import threading

    from rgstore.mirror import prefetched

    produced: list[int] = []

    def pages() -> Iterator[int]:
        for i in range(1000):
            produced.append(i)
            yield i

    it = prefetched(pages(), depth=2)
    assert next(it) == 0
    it.close()  # joins the producer
    assert not any(t.name == "rgstore-prefetch" for t in threading.enumerate())
    assert len(produced) <= 5
