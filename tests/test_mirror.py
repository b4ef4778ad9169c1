"""Claims about mirrors: they replay a primary's log from files, segments or a server, and stay read-only."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from rgstore.errors import (
    ChainError,
    IntegrityError,
    InvalidInputError,
    LogMismatchError,
    NotFoundError,
    ReadOnlyError,
    RemoteError,
)
from rgstore.events import AliasSet, Noted, Undone
from rgstore.log import NewEvent
from rgstore.mirror import promote, pull
from rgstore.mirrorstatus import status
from rgstore.replay import export_log, replay_file
from rgstore.segments import MANIFEST, publish, read_manifest
from rgstore.store import Store
from rgstore.verify import view_digests
from tests.conftest import REPO
from tests.hostile_http import HostileServer, Reply, endless, fixed, stall_after, trickle
from tests.progress_recorder import Bars
from tests.signalled import signal_when


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


def test_a_mirror_refuses_a_replay_which_would_skip_its_upstream_position(tmp_path: Path) -> None:
    with Store.open(tmp_path / "p") as primary, Store.open(tmp_path / "m") as mirror:
        _work(primary, 0, 3)
        publish(primary, tmp_path / "pub")
        pull(mirror, str(tmp_path / "pub"))
        _work(primary, 3, 2)
        export_log(primary, tmp_path / "x.rglog")
        before = view_digests(mirror), mirror.head()
        with pytest.raises(ReadOnlyError, match="mirror pull FILE"):
            replay_file(mirror, tmp_path / "x.rglog")
        assert (view_digests(mirror), mirror.head()) == before
        assert pull(mirror, str(tmp_path / "x.rglog")).applied == 2  # the mirror's way in
        _same(primary, mirror)


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
        publish(other, tmp_path / "behind")  # 5 events: behind the mirror's 10 below
        _work(other, 5, 10)
        publish(other, tmp_path / "ahead")  # 15 events: ahead of it
        _work(primary, 5, 5)
        publish(primary, tmp_path / "pub")
    with Store.open(tmp_path / "m") as mirror:
        pull(mirror, str(tmp_path / "pub"))
        before = mirror.head()
        for foreign in ("behind", "ahead"):  # either way the reason given is the foreign log
            with pytest.raises(LogMismatchError, match="serves log .* not this mirror's"):
                pull(mirror, str(tmp_path / foreign))
        assert mirror.head() == before


def test_publishing_into_another_logs_directory_is_refused(tmp_path: Path) -> None:
    with Store.open(tmp_path / "p") as primary, Store.open(tmp_path / "q") as other:
        _work(primary, 0, 2)
        _work(other, 0, 2)
        publish(primary, tmp_path / "pub")
        with pytest.raises(LogMismatchError):
            publish(other, tmp_path / "pub")
    assert read_manifest((tmp_path / "pub" / MANIFEST).read_bytes(), "x").head_seq == 2


def test_a_pull_from_the_primarys_store_directory_says_it_is_a_store_and_what_to_pull_instead(
        tmp_path: Path) -> None:
    from rgstore.firstpull import pull_new_store

    with Store.open(tmp_path / "p") as primary:
        _work(primary, 0, 2)
    said = f"{tmp_path / 'p'} is a store, not a published directory: pull a directory `rgstore --store"
    with pytest.raises(NotFoundError, match=f"^{re.escape(said)}"):
        pull_new_store(tmp_path / "m", str(tmp_path / "p"))  # a first pull, as serve --follow makes
    assert not (tmp_path / "m").exists()
    with Store.open(tmp_path / "m2") as mirror, pytest.raises(NotFoundError, match=f"^{re.escape(said)}"):
        pull(mirror, str(tmp_path / "p"))


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

    for _attempt in range(3):  # http.server takes no socket: the port freed here may be taken before it binds
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        static = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                                   "--directory", str(directory)], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and static.poll() is None:
            try:
                httpx.get(f"{url}/{MANIFEST}", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        if static.poll() is None:
            break
    try:
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
    from rgstore.upstream import prefetched

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

    from rgstore.upstream import prefetched

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


def _diverge(tmp_path: Path, after_restore: int = 3) -> tuple[Path, Path]:
    """A mirror at seq 8 of a primary then restored from a seq-5 backup and written to again (to 8 by default)."""
    import shutil

    primary, backup = tmp_path / "p", tmp_path / "backup"
    with Store.open(primary) as p:
        _work(p, 0, 5)
    shutil.copytree(primary, backup)
    with Store.open(primary) as p:
        _work(p, 5, 3)
        publish(p, tmp_path / "pub")
    with Store.open(tmp_path / "m") as mirror:
        pull(mirror, str(tmp_path / "pub"))
    shutil.rmtree(primary)
    shutil.copytree(backup, primary)
    with Store.open(primary) as p:
        p.append([NewEvent(stream="s", event=Noted(text=f"after restore {i}")) for i in range(after_restore)])
        assert p.head()[0] == 5 + after_restore
    return primary, tmp_path / "m"


def test_an_upstream_diverged_exactly_at_the_mirrors_head_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    primary_path, mirror_path = _diverge(tmp_path)
    with Store.open(primary_path) as primary:
        publish(primary, tmp_path / "pub2")
        export_log(primary, tmp_path / "x.rglog")
    with Store.open(mirror_path) as mirror:
        before = mirror.head(), view_digests(mirror), status(mirror, check_upstream=False)
        for source in (tmp_path / "pub2", tmp_path / "x.rglog"):
            with pytest.raises(LogMismatchError, match="different record at seq 8"):
                pull(mirror, str(source))
            assert (mirror.head(), view_digests(mirror), status(mirror, check_upstream=False)) == before


def test_status_reports_a_diverged_rolled_back_or_vanished_upstream_without_raising(tmp_path: Path) -> None:
    import shutil

    primary_path, mirror_path = _diverge(tmp_path)
    with Store.open(primary_path) as primary:
        shutil.rmtree(tmp_path / "pub")
        publish(primary, tmp_path / "pub")  # the mirror's own upstream now holds the diverged log
    with Store.open(mirror_path) as mirror:
        assert "diverged" in (status(mirror).error or "")
        with Store.open(primary_path) as primary:
            primary_head = primary.head()[0]
        shutil.rmtree(tmp_path / "pub")
        # Not Python's "[Errno 2] No such file or directory: '.../manifest.json'": pull's words.
        assert status(mirror).error == f"{tmp_path / 'pub'}: no such export file or segment directory (no manifest.json)"
        assert status(mirror).local_head == 8 and primary_head == 8


def test_status_reports_an_upstream_diverged_and_written_past_the_mirror_not_as_lag(tmp_path: Path) -> None:
    """A primary restored from a backup and written past the mirror's head: status said only "lag 2"."""
    primary_path, mirror_path = _diverge(tmp_path, after_restore=5)
    with Store.open(primary_path) as primary:
        publish(primary, tmp_path / "pub2", segment_size=3)  # seq 8 mid-segment: the segment is read
        publish(primary, tmp_path / "pub3", segment_size=4)  # seq 8 ends a segment: the manifest says
        export_log(primary, tmp_path / "x.rglog")
    with Store.open(tmp_path / "ahead") as ahead:  # the mirror's own history, further on: lag, no error
        pull(ahead, str(tmp_path / "pub"))
        promote(ahead)
        _work(ahead, 8, 4)
        export_log(ahead, tmp_path / "same.rglog")
    with _static_server(tmp_path / "pub2") as url, Store.open(mirror_path) as mirror:
        for source in (tmp_path / "pub2", tmp_path / "pub3", tmp_path / "x.rglog", url):
            mirror.environment.write(lambda txn, s=str(source): mirror.log.meta_put(txn, "replica_of", s.encode()))
            result = status(mirror)
            assert (result.upstream_head, result.error_kind) == (10, "upstream"), source
            assert result.error == f"{source} has a different record at seq 8: the upstream diverged"
        mirror.environment.write(lambda txn: mirror.log.meta_put(txn, "replica_of", str(tmp_path / "same.rglog").encode()))
        result = status(mirror)
        assert (result.upstream_head, result.lag, result.error) == (12, 4, None)


def test_status_of_an_upstream_now_serving_another_log_names_both_logs(tmp_path: Path) -> None:
    """Status took another log at seq 3 for this one "rolled back", or at seq 20 for this one 15 events on."""
    with Store.open(tmp_path / "p") as primary:
        _work(primary, 0, 5)
        publish(primary, tmp_path / "pub")
    with Store.open(tmp_path / "m") as mirror:
        pull(mirror, str(tmp_path / "pub"))
        ours = mirror.log_id()
    for n in (3, 20):
        with Store.open(tmp_path / f"other{n}") as other:
            _work(other, 0, n)
            export_log(other, tmp_path / f"other{n}.rglog")
            theirs = other.log_id()
        with Store.open(tmp_path / "m") as mirror:
            source = str(tmp_path / f"other{n}.rglog")
            mirror.environment.write(lambda txn, s=source: mirror.log.meta_put(txn, "replica_of", s.encode()))
            result = status(mirror)
        assert (result.error, result.error_kind) == (
            f"{source} serves log {theirs}, not this mirror's {ours}: it was replaced by another log", "upstream")


def test_status_of_an_unreachable_upstream_names_it_as_pull_does_not_a_manifest(tmp_path: Path) -> None:
    """Status said "cannot reach URL/manifest.json" of a primary server that is down, unlike pull's error."""
    from tests.server_fixture import refused_url

    with Store.open(tmp_path / "p") as primary:
        _work(primary, 0, 3)
        publish(primary, tmp_path / "pub")
    with refused_url() as url, Store.open(tmp_path / "m") as mirror:
        pull(mirror, str(tmp_path / "pub"))
        mirror.environment.write(lambda txn: mirror.log.meta_put(txn, "replica_of", url.encode()))
        with pytest.raises(RemoteError) as pulled:
            pull(mirror, url)
        error = status(mirror).error or ""
    assert error.startswith(f"cannot reach {url}: ") and "manifest.json" not in error
    assert str(pulled.value) == f"{error} (tried 4 times)"  # the same failure; a status does not retry it


def _tamper(pub: Path, change) -> None:  # type: ignore[no-untyped-def]
    import json

    doc = json.loads((pub / MANIFEST).read_bytes())
    change(doc)
    (pub / MANIFEST).write_text(json.dumps(doc))


@pytest.mark.parametrize(("change", "message"), [
    (lambda m: m.update(head_seq=999), "at seq 13: head seq 999 but the segments end at 12"),
    (lambda m: m.update(segments=[]), "at seq 1: head seq 12"),
    (lambda m: m.update(head_hash="0" * 64), "at seq 12: the head hash differs"),
    (lambda m: m["segments"][0].update(file="/etc/passwd"), "at seq 1: segment file '/etc/passwd'"),
    (lambda m: m["segments"][1].update(file="../other/segments/000000000006-000000000010.rgseg"), "at seq 6"),
    (lambda m: m["segments"].pop(1), "at seq 6: segment segments/000000000011-000000000012.rgseg covers 11-12"),
    (lambda m: m["segments"][1].update(prev_hash="ab" * 32), "at seq 6: segment .* does not chain"),
    # int() of 4,301+ digits raised ValueError
    (lambda m: m["segments"][0].update(file=f"segments/{'0' * 5000}1-000000000005.rgseg"), "at seq 1: segment file"),
    # a file name whose range is not the entry's (mutation testing found both unchecked by any test)
    (lambda m: m["segments"][0].update(file="segments/000000000001-000000000004.rgseg"),
     "at seq 1: segment file 'segments/000000000001-000000000004.rgseg' is not segments/000000000001-000000000005"),
    (lambda m: m["segments"][1].update(file="segments/000000000006-000000000005.rgseg", last_seq=5),
     "at seq 6: segment segments/000000000006-000000000005.rgseg covers 6-5"),
    (lambda m: m["segments"][0].update(sha256="not-a-digest"), "at seq 1: segment .* has a malformed sha256"),
], ids=["head-past-segments", "no-segments", "head-hash", "absolute-file", "dotdot-file", "gap", "broken-chain",
        "5000-digit-file", "file-names-another-range", "backwards-range", "malformed-sha256"])
def test_a_manifest_that_contradicts_itself_is_refused_naming_the_seq(tmp_path: Path, change, message: str) -> None:  # type: ignore[no-untyped-def]
    with Store.open(tmp_path / "p") as primary:
        _work(primary, 0, 12)
        publish(primary, tmp_path / "pub", segment_size=5)
        _tamper(tmp_path / "pub", change)
        with pytest.raises(IntegrityError, match=message):
            publish(primary, tmp_path / "pub")  # the publisher will not extend it either
    with Store.open(tmp_path / "m") as mirror:
        with pytest.raises(IntegrityError, match=message):
            pull(mirror, str(tmp_path / "pub"))
        assert mirror.head()[0] == 0


def test_a_segment_the_manifest_lists_but_the_directory_lacks_is_named_with_its_seqs(tmp_path: Path) -> None:
    # A local directory said only "No such file or directory: .../segments/...rgseg".
    from rgstore.errors import NotFoundError

    with Store.open(tmp_path / "p") as primary:
        _work(primary, 0, 12)
        publish(primary, tmp_path / "pub", segment_size=5)
    (tmp_path / "pub" / "segments" / "000000000006-000000000010.rgseg").unlink()
    with Store.open(tmp_path / "m") as mirror:
        with pytest.raises(NotFoundError, match=r"000000000006-000000000010\.rgseg: segment with seqs 6-10 that the "
                                                r"manifest lists is missing .*first affected seq 6$"):
            pull(mirror, str(tmp_path / "pub"))


@pytest.mark.parametrize("fmt, hint", [(2, "published by a newer rgstore"), (0, "reads format 1$")])
def test_a_manifest_of_another_format_is_refused_before_anything_is_pulled(tmp_path: Path, fmt: int, hint: str) -> None:
    with Store.open(tmp_path / "p") as primary:
        _work(primary, 0, 3)
        publish(primary, tmp_path / "pub")
    import msgspec

    manifest = msgspec.json.decode((tmp_path / "pub" / MANIFEST).read_bytes())
    manifest["format"] = fmt
    (tmp_path / "pub" / MANIFEST).write_bytes(msgspec.json.encode(manifest))
    with Store.open(tmp_path / "m") as mirror:
        with pytest.raises(InvalidInputError, match=f"manifest.json has format {fmt}; .*{hint}"):
            pull(mirror, str(tmp_path / "pub"))
        assert mirror.head()[0] == 0


def test_a_manifest_with_bytes_that_are_not_utf8_is_a_one_line_refusal(tmp_path: Path) -> None:
    # msgspec raises UnicodeDecodeError, not DecodeError, for a string that is not UTF-8.
    with Store.open(tmp_path / "p") as primary:
        _work(primary, 0, 3)
        publish(primary, tmp_path / "pub")
    raw = (tmp_path / "pub" / MANIFEST).read_bytes()
    (tmp_path / "pub" / MANIFEST).write_bytes(raw.replace(b'"log_id": "', b'"log_id": "\xf5', 1))
    with Store.open(tmp_path / "m") as mirror:
        with pytest.raises(InvalidInputError, match="not an rgstore segment manifest"):
            pull(mirror, str(tmp_path / "pub"))
        assert mirror.head()[0] == 0


def test_promote_twice_or_pull_after_promote_is_refused_clearly(tmp_path: Path) -> None:
    from rgstore.errors import ConflictError

    with Store.open(tmp_path / "p") as primary, Store.open(tmp_path / "m") as mirror:
        _work(primary, 0, 3)
        publish(primary, tmp_path / "pub")
        pull(mirror, str(tmp_path / "pub"))
        promote(mirror)
        with pytest.raises(ConflictError, match="already promoted"):
            promote(mirror)
        _work(primary, 3, 2)
        publish(primary, tmp_path / "pub")
        with pytest.raises(LogMismatchError, match="was promoted from a mirror of .* no longer pulls"):
            pull(mirror, str(tmp_path / "pub"))
        assert mirror.head()[0] == 3
        assert mirror.append([NewEvent(stream="s", event=Noted())]) == [4]


def test_a_promoted_store_shows_its_followers_stop_not_the_mirrors_old_failing_pulls(tmp_path: Path) -> None:
    from rgstore.mirror import record_pull_error

    with Store.open(tmp_path / "p") as primary, Store.open(tmp_path / "m") as mirror:
        _work(primary, 0, 1)
        publish(primary, tmp_path / "pub")
        pull(mirror, str(tmp_path / "pub"))
        record_pull_error(mirror, "cannot reach http://up.example/: refused")  # why one promotes, often
        promote(mirror)
        assert status(mirror, check_upstream=False).error is None  # the primary has no failing pulls
        record_pull_error(mirror, "the store was promoted to a primary")  # what a running follower records
        after = status(mirror, check_upstream=False)
    assert after.promoted and after.error is not None
    assert after.error.startswith("the follower stopped at 20") and after.error.endswith("promoted to a primary")


def test_mirror_status_labels_a_followers_stop_at_promotion_as_promoted_not_an_upstream_problem(
        tmp_path: Path) -> None:
    import json

    from rgstore.mirror import record_pull_error
    from tests.conftest import run_rgstore

    with Store.open(tmp_path / "p") as primary, Store.open(tmp_path / "m") as mirror:
        _work(primary, 0, 1)
        publish(primary, tmp_path / "pub")
        pull(mirror, str(tmp_path / "pub"))
        record_pull_error(mirror, "cannot reach http://up.example/: refused")
        assert status(mirror, check_upstream=False).error_kind == "upstream"  # a mirror's failing pulls
        promote(mirror)
        record_pull_error(mirror, "the store was promoted to a primary")  # what a running follower records
    shown = run_rgstore("--store", str(tmp_path / "m"), "mirror", "status")
    text = shown.stdout.decode()
    assert shown.returncode == 0 and "upstream problem" not in text, text
    assert re.search(r"^promoted: +the follower stopped at 20.*promoted to a primary$", text, re.M), text
    as_json = json.loads(run_rgstore("--store", str(tmp_path / "m"), "mirror", "status", "--json").stdout)
    assert as_json["error_kind"] == "promoted" and as_json["error"].startswith("the follower stopped at ")


def test_two_pulls_into_one_mirror_take_turns_and_both_succeed(tmp_path: Path) -> None:
    with Store.open(tmp_path / "p") as primary:
        for b in range(20):
            primary.append([NewEvent(stream=f"s{i % 7}", event=Noted(text=f"{b}:{i}")) for i in range(1000)])
        publish(primary, tmp_path / "pub", segment_size=1000)
        export_log(primary, tmp_path / "x.rglog")
        expected = primary.head()
    procs = [subprocess.Popen([sys.executable, "-m", "rgstore_cli", "--store", str(tmp_path / "m"), "mirror", "pull",
                               str(tmp_path / source), "--json"], cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) for source in ("pub", "x.rglog")]
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in results]
    with Store.open(tmp_path / "m") as mirror:
        assert mirror.head() == expected
        assert mirror.verify().ok


@pytest.mark.parametrize("source", ["", "   ", "http://", "https://:80/pub", "http://[::1"])
def test_an_empty_or_malformed_source_is_one_clear_error(tmp_path: Path, source: str) -> None:
    from rgstore.errors import InvalidInputError

    with Store.open(tmp_path / "m") as mirror, pytest.raises(InvalidInputError, match="empty SOURCE|not a valid URL"):
        pull(mirror, source)


@pytest.mark.parametrize(("text", "seconds"), [("5s", 5.0), ("500ms", 0.5), ("2m", 120.0), ("1h", 3600.0),
                                                ("10", 10.0), (" 1.5S ", 1.5), (".5s", 0.5), ("24h", 86400.0)])
def test_intervals_take_ms_s_m_h_units(text: str, seconds: float) -> None:
    from rgstore.follow import parse_interval

    assert parse_interval(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "-5s", "5 s", "1e3", "inf", "nan", "5sec", "1d", "²s", "１０s",
                                  "50ms", "0s", "25h", "9" * 400 + "h"])
def test_odd_intervals_are_one_line_errors(text: str) -> None:
    from rgstore.errors import InvalidInputError
    from rgstore.follow import parse_interval

    with pytest.raises(InvalidInputError, match="interval"):
        parse_interval(text)


def test_serve_refuses_a_bad_interval_or_follow_options_without_follow_in_one_line(tmp_path: Path) -> None:
    from click.testing import CliRunner
    from rgstore_cli.main import cli

    with Store.open(tmp_path / "m"):
        pass
    for args, word in ((["--follow", str(tmp_path / "nowhere"), "--interval", "²s"], "interval"),
                       (["--interval", "5s"], "--interval needs --follow"),
                       (["--with-sequences"], "--with-sequences needs --follow")):
        result = CliRunner().invoke(cli, ["--store", str(tmp_path / "m"), "serve", "--port", "0", *args])
        assert result.exit_code == 2  # usage mistakes, as everywhere in the CLI
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
        assert word in result.output and "Traceback" not in result.output, result.output


def test_publish_replaces_a_foreign_file_sitting_where_a_blob_or_sequence_belongs(tmp_path: Path) -> None:
    from rgstore.segments import publish_blobs, publish_refget
    from rgstore.verify import referenced_blobs

    tree = tmp_path / "tree.nwk"
    tree.write_text("(a:0.1,b:0.2);\n")
    pub = tmp_path / "pub"
    with Store.open(tmp_path / "p") as primary:
        primary.refpkgs.create("pkg", locus="16S", files=[("tree", tree)])
        primary.genomes.init(REPO / "rgstore" / "data" / "tiny.fa", ["tiny"])
        [sha] = referenced_blobs(primary)
        seq = primary.genomes.show("tiny").sequences[0].removeprefix("SQ.")
        foreign = [pub / "blobs" / sha[:2] / sha, pub / "refget" / "sequences" / seq[:2] / f"{seq}.seq"]
        for path in foreign:
            path.parent.mkdir(parents=True)
            path.write_text("<html>not found</html>")
        (pub / "index.html").write_text("hello")
        publish_blobs(primary, pub)
        publish_refget(primary, pub)
        publish(primary, pub)
    assert (pub / "index.html").read_text() == "hello"  # files publish does not own are left alone
    with Store.open(tmp_path / "m") as mirror:
        result = pull(mirror, str(pub), with_blobs=True, with_sequences=True)
        assert (result.blobs_fetched, result.sequences_fetched) == (1, 3)
        assert mirror.verify().ok


def test_a_lazy_mirror_will_not_publish_a_refget_store_with_holes(tmp_path: Path) -> None:
    from rgstore.errors import NotFoundError
    from rgstore.segments import publish_refget

    with Store.open(tmp_path / "p") as primary:
        primary.genomes.init(REPO / "rgstore" / "data" / "tiny.fa", ["tiny"])
        publish(primary, tmp_path / "pub")
        publish_refget(primary, tmp_path / "pub")
    with Store.open(tmp_path / "m") as mirror:
        pull(mirror, str(tmp_path / "pub"))
        with pytest.raises(NotFoundError, match="3 genome sequences of this mirror are not fetched yet"):
            publish_refget(mirror, tmp_path / "mpub")
        pull(mirror, str(tmp_path / "pub"), with_sequences=True)
        assert publish_refget(mirror, tmp_path / "mpub") > 0
    with Store.open(tmp_path / "m2") as chained:
        publish_mirror = tmp_path / "mpub"
        with Store.open(tmp_path / "m") as mirror:
            publish(mirror, publish_mirror)
        pull(chained, str(publish_mirror), with_sequences=True)
        assert chained.getseq("tiny", "chr1", 0, 30) == Store.open(tmp_path / "p", readonly=True).getseq("tiny", "chr1", 0, 30)


def test_a_lazy_mirror_will_not_publish_with_blobs_while_it_lacks_a_blob_its_log_references(tmp_path: Path) -> None:
    # It copied the blobs it had (none) and published a manifest whose followers were then told
    # "has no blob ... (publish with --with-blobs)" by a directory published with --with-blobs.
    from rgstore.errors import NotFoundError
    from rgstore.segments import publish_blobs

    tree = tmp_path / "tree.nwk"
    tree.write_text("(a:0.1,b:0.2);\n")
    with Store.open(tmp_path / "p") as primary:
        primary.refpkgs.create("pkg", locus="16S", files=[("tree", tree)])
        publish_blobs(primary, tmp_path / "pub")
        publish(primary, tmp_path / "pub")
    with Store.open(tmp_path / "m") as mirror:
        pull(mirror, str(tmp_path / "pub"))  # lazy: the blob stays upstream
        with pytest.raises(NotFoundError, match="1 refpkg blobs of this mirror are not fetched yet"):
            publish_blobs(mirror, tmp_path / "mpub")
        pull(mirror, str(tmp_path / "pub"), with_blobs=True)
        assert publish_blobs(mirror, tmp_path / "mpub") == 1
        publish(mirror, tmp_path / "mpub")
    with Store.open(tmp_path / "m2") as chained:
        assert pull(chained, str(tmp_path / "mpub"), with_blobs=True).blobs_fetched == 1
        assert chained.verify().ok


def _follow_beside(store: Path, source: Path, meanwhile, max_rounds: int,  # type: ignore[no-untyped-def]
                   until_head: int) -> int:
    """``follow`` of ``source`` into ``store`` every 0.1 s while ``meanwhile`` runs in a thread; its exit code.

    Once ``meanwhile`` has returned and the store's head (asked by another process) is ``until_head``,
    the follower is stopped as an operator would, with SIGTERM (its round is cut short); ``max_rounds`` bounds it.
    """
    import os
    import threading

    from rgstore.follow import follow

    def meanwhile_then_stop() -> None:
        meanwhile()
        _wait_for_head(store, until_head)
        # follow's own handler is in place until the main thread has joined this thread and restored the old one
        os.kill(os.getpid(), signal.SIGTERM)

    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)  # follow installs its own
    side = threading.Thread(target=meanwhile_then_stop)
    side.start()
    try:
        return follow(store, str(source), 0.1, max_rounds=max_rounds)
    finally:
        side.join()
        signal.signal(signal.SIGINT, handlers[0])
        signal.signal(signal.SIGTERM, handlers[1])


def test_a_follower_logs_an_outage_once_and_says_when_the_upstream_is_back(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    with Store.open(tmp_path / "p") as primary:
        _work(primary, 0, 3)
    Store.open(tmp_path / "m").close()

    def come_back() -> None:
        _wait_for_stderr("no such export file or segment directory")  # a failing round first, however slow the machine
        time.sleep(0.3)  # then, most likely, several more: each must not be logged again
        with Store.open(tmp_path / "p") as primary:
            publish(primary, tmp_path / "pub")

    assert _follow_beside(tmp_path / "m", tmp_path / "pub", come_back, max_rounds=40, until_head=3) == 0
    err = capsys.readouterr().err.splitlines()
    assert len([line for line in err if "no such export file or segment directory" in line]) == 1, err
    assert any("is back; caught up to seq 3" in line for line in err), err
    with Store.open(tmp_path / "m") as mirror:
        assert mirror.head()[0] == 3


def _wait_for_stderr(text: str) -> None:
    """Wait (up to 60 s) until ``text`` is in what this test captured of stderr so far (capsys; read, not consumed)."""
    import sys

    deadline = time.monotonic() + 60
    while text not in sys.stderr.getvalue() and time.monotonic() < deadline:  # type: ignore[attr-defined]
        time.sleep(0.05)


def _wait_for_head(store: Path, head: int) -> None:
    """Wait (up to 60 s) until the follower of ``store`` has caught up to seq ``head`` (another process asks)."""
    import json

    from tests.conftest import run_rgstore

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done = run_rgstore("--store", str(store), "mirror", "status", "--json")
        if done.returncode == 0 and json.loads(done.stdout)["local_head"] == head:
            break
        time.sleep(0.1)


def _caught_up_then(tmp_path: Path, then) -> None:  # type: ignore[no-untyped-def]
    """Wait until the follower of ``m`` has caught up to seq 3 (another process asks), then run ``then``."""
    _wait_for_head(tmp_path / "m", 3)
    then()


def _published_three_and_an_empty_mirror(tmp_path: Path) -> None:
    """Primary ``p`` with 3 events published to ``pub``, and an empty store ``m`` to follow it."""
    with Store.open(tmp_path / "p") as primary:
        _work(primary, 0, 3)
        publish(primary, tmp_path / "pub")
    Store.open(tmp_path / "m").close()


def _publish_two_more(tmp_path: Path) -> None:
    """Two more events on primary ``p``, published to ``pub``."""
    with Store.open(tmp_path / "p") as primary:
        _work(primary, 3, 2)
        publish(primary, tmp_path / "pub")


def test_a_follower_whose_store_is_restored_over_by_mv_follows_into_the_restored_store(  # type: ignore[no-untyped-def]
    tmp_path: Path, capsys
) -> None:
    """Its handle on the moved-away store can never write again; the store now at the path (as the server serves it) can."""
    import shutil

    _published_three_and_an_empty_mirror(tmp_path)

    def restore_then_publish() -> None:
        (tmp_path / "m").rename(tmp_path / "m.old")
        # A restore by cp then mv under the running follower: copied in place, a half-copied store (its log
        # there, its refget/ not yet) could be opened by the follower's next round, which creates refget/ first.
        shutil.copytree(tmp_path / "m.old", tmp_path / "m.new")
        (tmp_path / "m.new").rename(tmp_path / "m")
        _publish_two_more(tmp_path)

    code = _follow_beside(tmp_path / "m", tmp_path / "pub", lambda: _caught_up_then(tmp_path, restore_then_publish),
                          max_rounds=60, until_head=5)
    err = capsys.readouterr().err
    assert code == 0 and "was replaced; following" in err and "stopping" not in err, err
    with Store.open(tmp_path / "m", readonly=True) as restored, Store.open(tmp_path / "m.old", readonly=True) as old:
        assert (restored.head()[0], old.head()[0]) == (5, 3)


def test_a_follower_whose_store_is_moved_away_waits_for_one_at_its_path_and_never_creates_one(  # type: ignore[no-untyped-def]
    tmp_path: Path, capsys
) -> None:
    """Between an operator's two renames nothing is there: the follower says so once, then follows the store put back."""
    import shutil

    _published_three_and_an_empty_mirror(tmp_path)
    restored: list[bool] = []

    def move_away_then_restore() -> None:
        (tmp_path / "m").rename(tmp_path / "m.old")
        _wait_for_stderr("no store opens at")  # a round with nothing at the path, however slow the machine
        time.sleep(0.3)  # then, most likely, several more: each must not be logged again
        shutil.copytree(tmp_path / "m.old", tmp_path / "m")  # fails if the follower had created a store there
        restored.append(True)
        _publish_two_more(tmp_path)

    code = _follow_beside(tmp_path / "m", tmp_path / "pub",
                          lambda: _caught_up_then(tmp_path, move_away_then_restore), max_rounds=80,
                          until_head=5)
    err = capsys.readouterr().err
    assert code == 0 and restored and err.count("no store opens at") == 1 and "was replaced; following" in err, err
    with Store.open(tmp_path / "m", readonly=True) as mirror:
        assert mirror.head()[0] == 5


def test_a_follower_stopped_while_its_upstream_trickles_an_answer_ends_by_itself_without_finishing_the_round(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Its SIGTERM only set a flag, read after the round: the round waited for the whole trickle (each read within
    # the read timeout), a server's stop() raised TimeoutExpired after 30 s, and the follower went on running.
    from rgstore.follow import FollowerProcess

    monkeypatch.setenv("RGSTORE_LOW_SPEED_LIMIT", "0")  # no low-speed guard: this answer would take 14 hours
    Store.open(tmp_path / "m").close()
    with HostileServer({"/": trickle(b"x" * 100_000, every=0.5)}) as upstream:
        follower = FollowerProcess([str(tmp_path / "m"), upstream.url, "1h"])
        try:
            deadline = time.monotonic() + 60
            while not upstream.seen and follower.process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert upstream.seen and follower.process.poll() is None  # its round is reading the trickle now
            follower.stop(timeout=60)
        finally:
            if follower.process.poll() is None:
                follower.process.kill()
                follower.process.wait()
    assert follower.process.returncode == 0  # ended by itself on the SIGTERM, not killed by stop()'s fallback
    with Store.open(tmp_path / "m", readonly=True) as mirror:
        assert mirror.verify().ok


def test_a_refused_first_pull_leaves_the_new_store_unmarked_but_an_empty_upstream_marks_it(tmp_path: Path) -> None:
    with Store.open(tmp_path / "p") as primary:
        _work(primary, 0, 6)
        export_log(primary, tmp_path / "part.rglog", from_seq=4)
    with Store.open(tmp_path / "empty") as empty:
        publish(empty, tmp_path / "nothing")
    with Store.open(tmp_path / "m") as mirror:
        with pytest.raises(ChainError, match="starts at seq 4 but this mirror's head is 0"):
            pull(mirror, str(tmp_path / "part.rglog"))
        assert status(mirror, check_upstream=False).upstream is None
        assert mirror.append([NewEvent(stream="s", event=Noted())]) == [1]  # still an ordinary store
    with Store.open(tmp_path / "m2") as mirror:
        assert pull(mirror, str(tmp_path / "nothing")).applied == 0
        with pytest.raises(ReadOnlyError, match="mirror"):
            mirror.append([NewEvent(stream="s", event=Noted())])


def test_publish_writes_no_segment_through_a_stray_symlink_or_fifo_in_its_place(tmp_path: Path) -> None:
    import os

    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    pub = tmp_path / "pub"
    (pub / "segments").mkdir(parents=True)
    (pub / "segments" / "000000000001-000000000003.rgseg").symlink_to(precious)
    os.mkfifo(pub / "segments" / "000000000004-000000000006.rgseg")  # writing into it would block forever
    with Store.open(tmp_path / "p") as primary:
        _work(primary, 0, 6)
        manifest = publish(primary, pub, segment_size=3)
    assert precious.read_text() == "keep me"
    assert all((pub / seg.file).is_file() and not (pub / seg.file).is_symlink() for seg in manifest.segments)
    with Store.open(tmp_path / "m") as mirror:
        assert pull(mirror, str(pub)).applied == 6


def test_promoting_a_lazy_mirror_fetches_what_it_lacks_or_refuses_unless_forced(tmp_path: Path) -> None:
    """A primary has no upstream to fetch from: promotion completes the content first, or says what is missing."""
    from rgstore.errors import ConflictError

    tiny = REPO / "rgstore" / "data" / "tiny.fa"
    with Store.open(tmp_path / "p") as primary:
        primary.genomes.init(tiny, ["tiny"])
        publish(primary, tmp_path / "pub")
        want = primary.getseq("tiny", "chr1", 0, 30)
    from rgstore.segments import publish_refget

    for name in ("a", "b"):
        with Store.open(tmp_path / name) as mirror:
            pull(mirror, str(tmp_path / "pub"))  # no refget/ published yet: sequences cannot come
    with Store.open(tmp_path / "a") as mirror:
        with pytest.raises(ConflictError, match="lacks 3 sequences .* --force"):
            promote(mirror)
        assert status(mirror, check_upstream=False).upstream  # still a mirror: nothing changed
        promote(mirror, force=True)
        assert mirror.verify().problems  # accepted gaps are gaps
    with Store.open(tmp_path / "p") as primary:
        publish_refget(primary, tmp_path / "pub")
    with Store.open(tmp_path / "b") as mirror:
        promote(mirror)  # fetched the sequences first
        assert mirror.getseq("tiny", "chr1", 0, 30) == want
        assert mirror.verify().ok


def test_a_follower_keeps_the_log_current_past_content_that_fails_its_check(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """A bad blob is never stored and is retried; it does not stop the follower the way a bad log does."""
    from rgstore.follow import follow
    from rgstore.segments import publish_blobs
    from rgstore.verify import referenced_blobs

    tree = tmp_path / "tree.nwk"
    tree.write_text("(a:0.1,b:0.2);\n")
    with Store.open(tmp_path / "p") as primary:
        primary.refpkgs.create("pkg", locus="16S", files=[("tree", tree)])
        _work(primary, 0, 3)
        publish(primary, tmp_path / "pub")
        publish_blobs(primary, tmp_path / "pub")
        [sha] = referenced_blobs(primary)
        head = primary.head()
    blob = tmp_path / "pub" / "blobs" / sha[:2] / sha
    blob.write_bytes(blob.read_bytes().replace(b"0.1", b"0.9"))
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    try:
        assert follow(tmp_path / "m", str(tmp_path / "pub"), 0.1, max_rounds=3) == 0  # kept going
    finally:
        signal.signal(signal.SIGINT, handlers[0])
        signal.signal(signal.SIGTERM, handlers[1])
    err = capsys.readouterr().err
    assert err.count("failed its check, not stored") == 1, err  # logged once, retried every round
    with Store.open(tmp_path / "m") as mirror:
        assert mirror.head() == head and not mirror.blobs.exists(sha)


def test_a_pull_finishes_alias_files_an_earlier_pull_left_pending_even_with_nothing_new(tmp_path: Path) -> None:
    # A follower keeps its store open for days: a refresh that failed after a commit (here: a
    # directory sits where the TSV goes) must be finished by its next pull, not only by a reopen.
    from rgstore.pendingsync import abandoned_marks

    with Store.open(tmp_path / "p") as primary:
        primary.genomes.init(REPO / "rgstore" / "data" / "tiny.fa", ["tiny"])
        primary.aliases.set("ucsc:small", primary.genomes.resolve("tiny"))
        publish(primary, tmp_path / "pub")
        head = primary.head()
    tsv = tmp_path / "m" / "refget" / "aliases" / "collections" / "ucsc.tsv"
    with Store.open(tmp_path / "m") as mirror:
        (tsv / "blocker").mkdir(parents=True)
        with pytest.raises(OSError):
            pull(mirror, str(tmp_path / "pub"))
        assert mirror.head() == head and abandoned_marks(mirror.path)  # committed, refresh pending
        (tsv / "blocker").rmdir()
        tsv.rmdir()
        assert pull(mirror, str(tmp_path / "pub")).applied == 0
        assert tsv.read_text() == (tmp_path / "p" / "refget" / "aliases" / "collections" / "ucsc.tsv").read_text()
        assert abandoned_marks(mirror.path) == []


def test_status_gives_the_last_pull_in_utc_with_z_like_every_other_time(tmp_path: Path) -> None:
    from datetime import datetime, timezone

    with Store.open(tmp_path / "p") as primary, Store.open(tmp_path / "m") as mirror:
        _work(primary, 0, 3)
        publish(primary, tmp_path / "pub")
        pull(mirror, str(tmp_path / "pub"))
        last = status(mirror).last_pull
    assert last is not None and last.endswith("Z") and "+00:00" not in last
    assert datetime.fromisoformat(last).tzinfo == timezone.utc


def test_promote_takes_json_like_pull_and_status(tmp_path: Path) -> None:
    import json

    from tests.conftest import run_rgstore

    with Store.open(tmp_path / "p") as primary, Store.open(tmp_path / "m") as mirror:
        _work(primary, 0, 3)
        publish(primary, tmp_path / "pub")
        pull(mirror, str(tmp_path / "pub"))
    done = run_rgstore("--store", str(tmp_path / "m"), "mirror", "promote", "--json")
    assert done.returncode == 0 and done.stderr == b""
    assert json.loads(done.stdout) == {"store": str(tmp_path / "m"), "promoted_from": str(tmp_path / "pub")}
    assert json.loads(run_rgstore("--store", str(tmp_path / "m"), "mirror", "status", "--json").stdout)["promoted"]


# -- a hostile or broken upstream over HTTP ------------------------------------------------------------


def _published_routes(tmp_path: Path, n: int = 30) -> dict[str, Reply]:
    """Routes serving, as-is, a primary's ``n`` events published in segments of 10."""
    with Store.open(tmp_path / "p") as primary:
        _work(primary, 0, n)
        publish(primary, tmp_path / "pub", segment_size=10)
    pub = tmp_path / "pub"
    routes = {f"/{path.relative_to(pub).as_posix()}": fixed("200 OK", path.read_bytes())
              for path in pub.rglob("*") if path.is_file()}
    return routes


def test_an_events_page_answered_by_a_login_page_is_a_remote_error_not_a_broken_chain(tmp_path: Path) -> None:
    head = b'{"log_id": "3827b8ad4c7f413c888f77f0c0807a50", "head_seq": 30, "head_hash": "' + b"0" * 64 + b'"}'
    routes = {"/events/head": fixed("200 OK", head),
              "/events?": fixed("200 OK", b"<html><body>Please log in</body></html>", ("Content-Type: text/html",))}
    with HostileServer(routes) as srv, Store.open(tmp_path / "m") as mirror:
        with pytest.raises(RemoteError, match=rf"^{srv.url}/events answered text/html, not rgstore records"):
            pull(mirror, srv.url)
        assert mirror.head()[0] == 0 and status(mirror, check_upstream=False).upstream is None


def test_an_endless_answer_where_a_small_document_belongs_is_refused_and_a_retry_succeeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rgstore import upstream

    monkeypatch.setattr(upstream, "SMALL_LIMIT", 1 << 20)
    routes = _published_routes(tmp_path)
    segment = next(path for path in routes if path.endswith("-000000000030.rgseg"))
    good = routes[segment]
    with HostileServer({"/": endless()}) as srv, Store.open(tmp_path / "m") as mirror:
        with pytest.raises(RemoteError, match=rf"^{srv.url}: the answer runs past 1,048,576 bytes"):
            pull(mirror, srv.url)  # manifest.json never ends
        srv.routes = {"/manifest.json": fixed("404 Not Found"), "/events/head": endless()}
        with pytest.raises(RemoteError, match=rf"^{srv.url}/events/head: the answer runs past"):
            pull(mirror, srv.url)
        srv.routes = {**routes, segment: endless()}
        with pytest.raises(RemoteError, match=rf"{segment}: the answer runs past [0-9,]+ bytes"):
            pull(mirror, srv.url)  # a segment longer than the manifest says it is
        assert mirror.head()[0] == 0
        srv.routes[segment] = good
        assert pull(mirror, srv.url).applied == 30


def test_a_stalled_upstream_times_out_with_the_url_and_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rgstore import upstream

    monkeypatch.setattr(upstream, "TIMEOUT_S", 0.3)
    routes = _published_routes(tmp_path)
    segment = next(path for path in routes if path.endswith("-000000000020.rgseg"))
    with HostileServer({**routes, segment: stall_after(b"HTTP/1.1 200 OK\r\nContent-Length: 900\r\n\r\nRGS", 10)}) as srv:
        with Store.open(tmp_path / "m") as mirror:
            with pytest.raises(RemoteError, match=rf"^cannot reach {srv.url}{segment}: timed out"):
                pull(mirror, srv.url)
            assert mirror.head()[0] == 0


def test_a_redirect_loop_is_given_up_as_one_not_called_unreachable_and_changes_nothing(tmp_path: Path) -> None:
    routes = _published_routes(tmp_path)
    segment = next(path for path in routes if path.endswith("-000000000020.rgseg"))
    with HostileServer({**routes, segment: fixed("302 Found", headers=(f"Location: {segment}",))}) as srv:
        with Store.open(tmp_path / "m") as mirror:
            with pytest.raises(RemoteError, match=rf"^gave up on {srv.url}{segment}: too many redirects "
                               r"\(a redirect loop\?\)$"):
                pull(mirror, srv.url)
            assert mirror.head()[0] == 0


def test_a_trickling_segment_is_given_up_with_its_url_and_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A byte every 50 ms never trips the read timeout; the low-speed guard ends the pull after ~1 s.
    monkeypatch.setenv("RGSTORE_LOW_SPEED_TIME_S", "1")
    routes = _published_routes(tmp_path)
    segment = next(path for path in routes if path.endswith("-000000000020.rgseg"))
    with HostileServer({**routes, segment: trickle(b"x" * 900)}) as srv, Store.open(tmp_path / "m") as mirror:
        with pytest.raises(RemoteError, match=rf"^gave up on {srv.url}{segment}: the transfer averaged \d+ "
                           r"bytes/s over 1\.\d s, under the 1,024 bytes/s \$RGSTORE_LOW_SPEED_LIMIT"):
            pull(mirror, srv.url)
        assert mirror.head()[0] == 0


def test_a_bad_low_speed_setting_is_named_when_pulling_from_a_server_not_taken_for_no_server_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # /events/head is the first body read from a server (no manifest.json there): its decode errors meant "no server".
    monkeypatch.setenv("RGSTORE_LOW_SPEED_LIMIT", "fast")
    head = b'{"log_id": "x", "head_seq": 0, "head_hash": ""}'
    with HostileServer({"/events/head": fixed("200 OK", head)}) as srv, Store.open(tmp_path / "m") as mirror:
        with pytest.raises(InvalidInputError, match=r"^\$RGSTORE_LOW_SPEED_LIMIT='fast': expected a number >= 0$"):
            pull(mirror, srv.url)
        assert mirror.head()[0] == 0


def _all_routes(pub: Path) -> dict[str, Reply]:
    return {f"/{path.relative_to(pub).as_posix()}": fixed("200 OK", path.read_bytes())
            for path in pub.rglob("*") if path.is_file()}


def test_a_source_with_a_password_in_it_is_refused_and_netrc_supplies_it_instead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The source is recorded (``replica_of``) and printed: a password there would leak for good."""
    routes = _published_routes(tmp_path)
    with HostileServer(routes) as srv, Store.open(tmp_path / "m") as mirror:
        srv.basic_auth = ("reader", "s3cret")
        secret = srv.url.replace("http://", "http://reader:s3cret@")
        with pytest.raises(InvalidInputError, match=r"^SOURCE 'http://\*\*\*@127.0.0.1:\d+' carries credentials.*netrc"):
            pull(mirror, secret)
        assert status(mirror, check_upstream=False).upstream is None and srv.seen == []
        (tmp_path / "netrc").write_text("machine 127.0.0.1 login reader password s3cret\n")
        monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
        assert pull(mirror, srv.url).applied == 30
        assert status(mirror).upstream == srv.url and status(mirror).error is None


def test_cli_mirror_pull_with_a_password_in_the_url_prints_one_line_without_it(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("mirror", "pull", "http://reader:s3cret@127.0.0.1:9/pub")
    assert result.exit_code == 1 and "s3cret" not in result.output
    assert result.output.strip().splitlines() == [
        "error: SOURCE 'http://***@127.0.0.1:9/pub' carries credentials, which would be printed and recorded; "
        "put credentials in ~/.netrc (or the file $NETRC names) instead"]


def test_an_uppercase_scheme_is_a_url_like_any_other(tmp_path: Path) -> None:
    routes = _published_routes(tmp_path)
    with HostileServer(routes) as srv, Store.open(tmp_path / "m") as mirror:
        result = pull(mirror, srv.url.replace("http://", "HTTP://"))
        assert (result.applied, result.source) == (30, srv.url)
        assert status(mirror).upstream == srv.url


def test_a_source_url_with_a_query_string_is_refused_not_mangled(tmp_path: Path) -> None:
    with Store.open(tmp_path / "m") as mirror:
        with pytest.raises(InvalidInputError, match=r"has a query string or fragment; give the base URL"):
            pull(mirror, "http://127.0.0.1:9/pub?token=abc")


def test_an_events_head_with_a_negative_head_seq_is_an_invalid_answer_not_a_rollback(tmp_path: Path) -> None:
    head = b'{"log_id": "3827b8ad4c7f413c888f77f0c0807a50", "head_seq": -1, "head_hash": "' + b"0" * 64 + b'"}'
    with HostileServer({"/events/head": fixed("200 OK", head)}) as srv, Store.open(tmp_path / "m") as mirror:
        with pytest.raises(RemoteError, match=rf"^{srv.url}/events/head states head_seq -1: not an rgstore server's"):
            pull(mirror, srv.url)
        assert status(mirror, check_upstream=False).upstream is None


@pytest.mark.parametrize("command", [["mirror", "pull", "{url}", "--with-blobs"],
                                     ["serve", "--port", "0", "--follow", "{url}"]])
def test_sigterm_while_a_pull_into_an_existing_mirror_fetches_a_blob_unwinds_and_leaves_no_temp_file(
    store: Store, tmp_path: Path, command: list[str]
) -> None:
    # Only a first pull ran under signals_unwind: into an existing mirror (`mirror pull`, or the pull `serve --follow`
    # makes before serving) SIGTERM killed the pull outright, and the blob's temp file stayed in blobs/.
    from rgstore.segments import publish_blobs
    from rgstore.verify import referenced_blobs
    from tests.hostile_http import response

    tree = tmp_path / "tree.nwk"
    tree.write_text("(a:0.1,b:0.2);\n" * 10_000)
    store.refpkgs.create("pkg", locus="16S", files=[("tree", tree)])
    pub = tmp_path / "pub"
    publish(store, pub)
    publish_blobs(store, pub)
    [sha] = referenced_blobs(store)
    blob = f"/blobs/{sha[:2]}/{sha}"
    whole = response("200 OK", (pub / blob[1:]).read_bytes())
    mirror_path = tmp_path / "m"
    with HostileServer({**_all_routes(pub), blob: stall_after(whole[:len(whole) // 2], 120)}) as srv:
        with Store.open(mirror_path) as mirror:
            pull(mirror, srv.url)  # the log only: the blob stays upstream
        proc = subprocess.Popen([sys.executable, "-m", "rgstore_cli", "--store", str(mirror_path),
                                 *(arg.format(url=srv.url) for arg in command)],
                                cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # Once half the blob is in its temp file.
        err = signal_when(proc, lambda: any(blob in line for line in srv.seen)
                          and bool(list((mirror_path / "blobs").rglob(".tmp-*"))), signal.SIGTERM, poll=0.02)
    assert proc.returncode == 128 + signal.SIGTERM and b"Traceback" not in err, err.decode()
    assert list((mirror_path / "blobs").rglob(".tmp-*")) == []
    with Store.open(mirror_path) as mirror:
        assert not mirror.blobs.exists(sha) and mirror.verify().ok


def test_a_blob_or_cache_file_longer_than_recorded_is_refused_before_it_fills_the_disk(
    store: Store, server, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    from rgstore.cachecopy import publish_cache
    from rgstore.segments import publish_blobs
    from rgstore.verify import referenced_blobs
    from tests.upstream_fixture import ENSEMBL, base, req

    tree = tmp_path / "tree.nwk"
    tree.write_text("(a:0.1,b:0.2);\n" * 100)
    store.refpkgs.create("pkg", locus="16S", files=[("tree", tree)])
    store.cache.regions(req(ENSEMBL, "gene"), base_url=base(server, "ensembl"))
    pub = tmp_path / "pub"
    publish(store, pub)
    publish_blobs(store, pub)
    publish_cache(store, pub)
    [sha] = referenced_blobs(store)
    routes = _all_routes(pub)
    blob, cache_file = f"/blobs/{sha[:2]}/{sha}", max((r for r in routes if r.startswith("/cache/")), key=len)
    good = (pub / cache_file[1:]).read_bytes()
    with HostileServer({**routes, blob: endless()}) as srv, Store.open(tmp_path / "m") as mirror:
        local = mirror.cache.root / cache_file.removeprefix("/cache/")
        with pytest.raises(RemoteError, match=rf"^{srv.url}{blob}: the answer runs past the {tree.stat().st_size:,} "
                                              "bytes recorded for it"):
            pull(mirror, srv.url, with_blobs=True)
        assert not mirror.blobs.exists(sha) and list(mirror.blobs.root.rglob("*")) == []
        srv.routes = {**routes, cache_file: fixed("200 OK", good + b"\n" * 10)}
        with pytest.raises(RemoteError, match=rf"^{srv.url}{cache_file}: the answer runs past the {len(good):,} bytes"):
            pull(mirror, srv.url, with_blobs=True)
        assert not local.exists() and list(local.parent.glob(f".{local.name}.*")) == []  # no temp file either
        srv.routes = routes
        assert pull(mirror, srv.url, with_blobs=True).cache_files_fetched >= 1
        assert mirror.blobs.read_bytes(sha) == tree.read_bytes() and local.read_bytes() == good


def test_a_pull_with_nothing_new_from_a_moved_upstream_makes_it_the_mirrors_upstream(tmp_path: Path) -> None:
    with Store.open(tmp_path / "p") as primary, Store.open(tmp_path / "m") as mirror:
        _work(primary, 0, 6)
        publish(primary, tmp_path / "pub")
        assert pull(mirror, str(tmp_path / "pub")).applied == 6
        (tmp_path / "pub").rename(tmp_path / "moved")  # the published directory moved (a new disk, a new URL)
        assert pull(mirror, str(tmp_path / "moved")).applied == 0
        now = status(mirror)
        assert now.upstream == str(tmp_path / "moved")
        assert (now.error, now.lag) == (None, 0)


@pytest.mark.parametrize("behind", [5, 0], ids=["edge-at-5", "edge-before-the-first-event"])
def test_an_upstream_behind_on_the_same_history_is_a_lagging_copy_and_pulls_nothing(tmp_path: Path, behind: int) -> None:
    """A pool of mirrors or CDN edges at different heads: the one behind is skipped, not refused for good.

    At seq 0 (an edge still holding the first, empty publish) its head hash is the log's genesis hash.
    """
    with Store.open(tmp_path / "p") as primary:
        _work(primary, 0, behind)
        publish(primary, tmp_path / "old")
        export_log(primary, tmp_path / "old.rglog")
        _work(primary, behind, 5)
        publish(primary, tmp_path / "new")
    with Store.open(tmp_path / "m") as mirror:
        pull(mirror, str(tmp_path / "new"))
        before = mirror.head(), view_digests(mirror)
        for lagging in (tmp_path / "old", tmp_path / "old.rglog"):
            result = pull(mirror, str(lagging))
            assert (result.applied, result.upstream_head, result.head_seq) == (0, behind, behind + 5)
            assert (mirror.head(), view_digests(mirror)) == before
            assert status(mirror).error is None and status(mirror).lag == 0
        assert pull(mirror, str(tmp_path / "new")).applied == 0


def test_another_logs_empty_copy_is_not_taken_for_a_lagging_copy(tmp_path: Path) -> None:
    with Store.open(tmp_path / "p") as primary:
        _work(primary, 0, 3)
        publish(primary, tmp_path / "new")
    with Store.open(tmp_path / "m") as mirror:
        pull(mirror, str(tmp_path / "new"))
    with Store.open(tmp_path / "other") as other:  # another log's empty copy is still not this one's
        publish(other, tmp_path / "foreign")
    manifest = read_manifest((tmp_path / "foreign" / MANIFEST).read_bytes(), "foreign")
    (tmp_path / "foreign" / MANIFEST).write_text((tmp_path / "foreign" / MANIFEST).read_text().replace(
        manifest.log_id, read_manifest((tmp_path / "new" / MANIFEST).read_bytes(), "new").log_id))
    with Store.open(tmp_path / "m") as mirror:
        with pytest.raises(LogMismatchError, match="at seq 0, behind this mirror's 3"):
            pull(mirror, str(tmp_path / "foreign"))  # the log id forged, the genesis hash not


def test_an_upstream_behind_with_a_different_record_there_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    primary_path, mirror_path = _diverge(tmp_path, after_restore=1)  # a different seq 6, behind the mirror's 8
    with Store.open(primary_path) as primary:
        publish(primary, tmp_path / "pub6")
    with Store.open(mirror_path) as mirror:
        before = mirror.head(), view_digests(mirror)
        with pytest.raises(LogMismatchError, match="at seq 6, behind this mirror's 8, with a different record there"):
            pull(mirror, str(tmp_path / "pub6"))
        assert (mirror.head(), view_digests(mirror)) == before


def test_pull_takes_a_pathlib_path_to_an_export_file(tmp_path: Path) -> None:
    with Store.open(tmp_path / "p") as primary, Store.open(tmp_path / "m") as mirror:
        _work(primary, 0, 3)
        export_log(primary, tmp_path / "x.rglog")
        assert pull(mirror, tmp_path / "x.rglog").applied == 3
        _same(primary, mirror)


def test_status_text_labels_each_head_once_and_lines_up(tmp_path: Path) -> None:
    from tests.conftest import run_rgstore

    with Store.open(tmp_path / "p") as primary, Store.open(tmp_path / "m") as mirror:
        _work(primary, 0, 3)
        publish(primary, tmp_path / "pub")
        pull(mirror, str(tmp_path / "pub"))
        _work(primary, 3, 5)
        publish(primary, tmp_path / "pub")
        head = primary.head()[0]
    lines = run_rgstore("--store", str(tmp_path / "m"), "mirror", "status").stdout.decode().splitlines()
    labels = [line.split(":", 1)[0] for line in lines]
    assert labels == ["upstream", "local head", "upstream head", "last pull"]
    assert len({line.index(line.split(":", 1)[1].strip()) for line in lines}) == 1  # values start in one column
    assert lines[2].endswith(f"{head} (lag {head - int(lines[1].split()[-1])} events)")


def test_mirror_status_gives_its_head_as_head_seq_like_status_and_pull_and_keeps_local_head(tmp_path: Path) -> None:
    # `rgstore status` and `mirror pull` say head_seq; `mirror status` said only local_head (scripts read that too).
    import json

    from tests.conftest import run_rgstore

    with Store.open(tmp_path / "p") as primary:
        _work(primary, 0, 3)
        publish(primary, tmp_path / "pub")
    pulled = json.loads(run_rgstore("--store", str(tmp_path / "m"), "mirror", "pull", str(tmp_path / "pub"),
                                    "--json").stdout)
    shown = json.loads(run_rgstore("--store", str(tmp_path / "m"), "mirror", "status", "--json").stdout)
    store = json.loads(run_rgstore("--store", str(tmp_path / "m"), "status", "--json").stdout)
    assert shown["head_seq"] == shown["local_head"] == pulled["head_seq"] == store["head_seq"] == 3
    assert store["replica"]["head_seq"] == store["replica"]["local_head"] == 3  # /status answers this replica too


def test_publishing_and_pulling_refpkg_blobs_report_progress_in_bytes(tmp_path: Path) -> None:
    # A lab's refpkg versions are gigabytes of alignments: copying them out and pulling them in took
    # minutes with nothing on the terminal. Each step now has a byte bar run to its total.
    aln, tree = tmp_path / "seqs.fasta", tmp_path / "tree.nwk"
    aln.write_text(">a\n" + "ACGT" * 50_000 + "\n>b\n" + "ACGT" * 50_000 + "\n")
    tree.write_text("(a:0.1,b:0.2);\n")
    sizes = aln.stat().st_size + tree.stat().st_size
    pub = tmp_path / "pub"
    with Store.open(tmp_path / "p") as primary:
        primary.refpkgs.create("pkg", locus="16S", files=[("aln_fasta", aln), ("tree", tree)])
        published = Bars()
        from rgstore.segments import publish_blobs

        assert publish_blobs(primary, pub, progress=published) == 2
        publish(primary, pub)
    assert published.totals() == [["publish blobs", sizes, sizes]]
    with Store.open(tmp_path / "m") as mirror:
        pulled = Bars()
        assert pull(mirror, str(pub), with_blobs=True, progress=pulled).blobs_fetched == 2
    assert ["fetch blobs", sizes, sizes] in pulled.totals()


def test_pulling_with_sequences_reports_the_sequences_and_each_ones_residues(tmp_path: Path) -> None:
    # A human genome's 3 Gbp took minutes to fetch with nothing on the terminal (the replay bar had
    # closed): a bar now counts the sequences, and each download has its own bar in residues.
    from rgstore.segments import publish_refget

    fasta = tmp_path / "g.fa"
    fasta.write_text(">chr1\n" + "ACGT" * 30 + "\n>chr2\nGGCC\n>chrM\nTTTTA\n")
    with Store.open(tmp_path / "p") as primary:
        primary.genomes.init(fasta, ["tiny"])
        publish_refget(primary, tmp_path / "pub")
        publish(primary, tmp_path / "pub")
    bars: list[list[object]] = []  # [description, total, unit, sum of updates], one per bar started

    class _Bar:
        def __init__(self, record: list[object]) -> None:
            self.record = record

        def update(self, n: int = 1) -> None:
            self.record[3] = int(self.record[3]) + n  # type: ignore[call-overload]

        def close(self) -> None:
            pass

    def recorder(desc: str, total: int | None = None, unit: str = "it") -> _Bar:
        bars.append([desc, total, unit, 0])
        return _Bar(bars[-1])

    with Store.open(tmp_path / "m") as mirror:
        assert pull(mirror, str(tmp_path / "pub"), with_sequences=True, progress=recorder).sequences_fetched == 3
    assert ["fetch sequences", 3, "seq", 3] in bars
    downloads = sorted((total, done) for desc, total, unit, done in bars
                       if str(desc).startswith("fetch ") and desc != "fetch sequences" and unit == "bp")
    assert downloads == [(4, 4), (5, 5), (120, 120)]


def test_a_failed_first_pull_leaves_no_store_behind_and_a_good_one_still_creates_it(tmp_path: Path) -> None:
    # `--store NEW mirror pull BAD` (and `serve --follow BAD`) left an empty store at NEW that later commands took for one.
    from click.testing import CliRunner
    from rgstore_cli.main import cli

    from tests.server_fixture import refused_url

    (tmp_path / "plain").mkdir()
    (tmp_path / "notes.txt").write_text("not a log\n")
    new = tmp_path / "new" / "mirror"
    with refused_url() as nobody:
        bad = [str(tmp_path / "nowhere"), str(tmp_path / "plain"), str(tmp_path / "notes.txt"), nobody]
        for source in bad:
            for args in (["mirror", "pull", source], ["serve", "--port", "0", "--follow", source]):
                result = CliRunner().invoke(cli, ["--store", str(new), *args])
                assert result.exit_code == 1 and result.stderr.startswith("error: ") \
                    and result.stderr.count("\n") == 1, args
                assert not (tmp_path / "new").exists(), args
    with Store.open(tmp_path / "p", actor="primary@test") as primary:
        _work(primary, 0, 3)
        export_log(primary, tmp_path / "log.rglog")
    pulled = CliRunner().invoke(cli, ["--store", str(new), "mirror", "pull", str(tmp_path / "log.rglog")])
    assert pulled.exit_code == 0 and "pulled 3 events" in pulled.stdout


def test_a_first_pull_from_a_source_failing_after_its_probe_leaves_no_store_and_keeps_a_prepared_directory(
    tmp_path: Path,
) -> None:
    # The probe passes (a server's /events/head, a manifest), then the records fail: an empty store was left behind.
    import os

    from click.testing import CliRunner
    from rgstore_cli.main import cli

    routes = _published_routes(tmp_path)
    first = next(path for path in routes if path.endswith("-000000000010.rgseg"))
    data = bytearray((tmp_path / "pub" / first.lstrip("/")).read_bytes())
    data[len(data) // 2] ^= 0xFF  # one byte flipped: the same size, another content
    head = b'{"log_id": "3827b8ad4c7f413c888f77f0c0807a50", "head_seq": 30, "head_hash": "' + b"0" * 64 + b'"}'
    failing = {"events": {"/events/head": fixed("200 OK", head), "/events?": fixed("500 Internal Server Error")},
               "missing": {path: reply for path, reply in routes.items() if path != first},
               "tampered": {**routes, first: fixed("200 OK", bytes(data))}}
    prepared = tmp_path / "prepared"
    prepared.mkdir()
    inode = prepared.stat().st_ino
    with HostileServer() as srv:
        for how, served in failing.items():
            srv.routes = served
            for args in (["mirror", "pull", srv.url], ["serve", "--port", "0", "--follow", srv.url]):
                for new in (tmp_path / "new" / "mirror", prepared):
                    result = CliRunner().invoke(cli, ["--store", str(new), *args])
                    assert result.exit_code == 1 and result.stderr.startswith("error: "), (how, args, result.stderr)
                    assert not (tmp_path / "new").exists(), (how, args)
                    assert os.listdir(prepared) == [] and prepared.stat().st_ino == inode, (how, args)
        srv.routes = routes
        pulled = CliRunner().invoke(cli, ["--store", str(prepared), "mirror", "pull", srv.url])
    assert pulled.exit_code == 0 and "pulled 30 events" in pulled.stdout, pulled.stderr
    assert prepared.stat().st_ino == inode and not [name for name in os.listdir(prepared) if name.startswith(".rgstore-pull-")]
    with Store.open(prepared) as mirror:
        assert mirror.head()[0] == 30 and status(mirror, check_upstream=False).upstream == srv.url


def test_a_first_pull_failing_after_applying_events_keeps_them_in_place_and_the_next_pull_resumes(
    tmp_path: Path,
) -> None:
    from rgstore.firstpull import pull_new_store

    routes = _published_routes(tmp_path)
    second = next(path for path in routes if path.endswith("-000000000020.rgseg"))
    new = tmp_path / "new" / "mirror"
    with HostileServer({path: reply for path, reply in routes.items() if path != second}) as srv:
        with pytest.raises(NotFoundError, match=second):
            pull_new_store(new, srv.url, batch_size=10)
        assert [path.name for path in new.iterdir() if path.name.startswith(".rgstore-pull-")] == []
        with Store.open(new, readonly=True) as mirror:
            assert mirror.head()[0] == 10 and status(mirror, check_upstream=False).upstream == srv.url
        srv.routes = routes
        assert pull_new_store(new, srv.url, batch_size=10).applied == 20
    with Store.open(new, readonly=True) as mirror:
        assert mirror.head()[0] == 30 and mirror.verify().ok


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_first_pull_interrupted_before_applying_anything_leaves_no_store(tmp_path: Path, signum: int) -> None:
    # Ctrl-C or a TERM while the first segment is awaited: the store Store.open had made stayed at NEW, empty.
    # A HUP (terminal closed, ssh dropped) killed the process outright: its staging was left in NEW.
    routes = _published_routes(tmp_path)
    first = next(path for path in routes if path.endswith("-000000000010.rgseg"))
    new = tmp_path / "new" / "mirror"
    with HostileServer({**routes, first: stall_after(b"HTTP/1.1 200 OK\r\nContent-Length: 900\r\n\r\nRGS", 30)}) as srv:
        proc = subprocess.Popen([sys.executable, "-m", "rgstore_cli", "--store", str(new), "mirror", "pull", srv.url],
                                cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while not any(first in line for line in srv.seen) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert any(first in line for line in srv.seen), proc.communicate(timeout=30)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode != 0 and not (tmp_path / "new").exists(), err
    if signum == signal.SIGHUP:  # unwound like SIGTERM: the shell's 128 + SIGHUP, no traceback
        assert proc.returncode == 129 and b"Traceback" not in err, err


def test_a_first_pull_removes_the_staging_left_by_a_killed_pull_but_never_a_live_ones(tmp_path: Path) -> None:
    # A first pull killed by SIGKILL left its hidden staging directory (a partial log) inside NEW for ever.
    import fcntl
    import os

    from rgstore.firstpull import STAGING_PREFIX, pull_new_store

    with Store.open(tmp_path / "p", actor="primary@test") as primary:
        _work(primary, 0, 3)
        export_log(primary, tmp_path / "log.rglog")
    new = tmp_path / "new"
    dead, live, young = (new / f"{STAGING_PREFIX}{name}" for name in ("dead", "live", "young"))
    for staging in (dead, live, young):
        (staging / "log").mkdir(parents=True)
        (staging / "log" / "data.mdb").write_bytes(b"\0" * 4096)
    for staging in (dead, live):
        os.utime(staging, (time.time() - 3600, time.time() - 3600))
    held = os.open(live, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(held, fcntl.LOCK_EX)  # a pull still running, in another process as far as flock is concerned
        assert pull_new_store(new, tmp_path / "log.rglog").applied == 3
        assert not dead.exists() and live.exists() and young.exists()
    finally:
        os.close(held)
    with Store.open(new, readonly=True) as mirror:
        assert mirror.head()[0] == 3 and mirror.verify().ok


def test_a_first_pull_killed_outright_is_resumed_by_the_next_not_pulled_again(tmp_path: Path) -> None:
    # SIGKILL (the OOM killer, a pod restarted) left the pulled events only in the hidden staging
    # directory; the next first pull deleted them and started again from nothing.
    import os

    from rgstore.firstpull import STAGING_PREFIX, pull_new_store

    with Store.open(tmp_path / "p", actor="primary@test") as primary:
        _work(primary, 0, 3)
        export_log(primary, tmp_path / "first.rglog")
        _work(primary, 3, 5)
        export_log(primary, tmp_path / "all.rglog")
    new = tmp_path / "new"
    with Store.open(new / f"{STAGING_PREFIX}killed") as staged:  # what a killed first pull leaves
        pull(staged, str(tmp_path / "first.rglog"))
        pulled_first = staged.head()[0]
    assert pulled_first > 0
    result = pull_new_store(new, tmp_path / "all.rglog")
    with Store.open(tmp_path / "p", readonly=True) as primary, Store.open(new, readonly=True) as mirror:
        assert result.applied == primary.head()[0] - pulled_first and mirror.head() == primary.head()
        assert mirror.verify().ok
    assert not [name for name in os.listdir(new) if name.startswith(STAGING_PREFIX)]


def test_a_pull_into_a_mirror_removes_a_dead_first_pulls_leftovers_in_it(tmp_path: Path) -> None:
    import os

    from rgstore.firstpull import STAGING_PREFIX

    with Store.open(tmp_path / "p", actor="primary@test") as primary:
        _work(primary, 0, 3)
        export_log(primary, tmp_path / "log.rglog")
    leftover = tmp_path / "m" / f"{STAGING_PREFIX}dead"
    with Store.open(tmp_path / "m") as mirror:
        (leftover / "log").mkdir(parents=True)
        os.utime(leftover, (time.time() - 3600, time.time() - 3600))
        pull(mirror, str(tmp_path / "log.rglog"))
    assert not leftover.exists()


def test_a_first_pull_interrupted_while_moving_into_place_finishes_the_move_first(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A Ctrl-C between two renames of the move left blobs/ and refget/ in NEW without log/: no store, not empty.
    import os

    from rgstore import firstpull
    from rgstore.interrupts import interrupt

    with Store.open(tmp_path / "p", actor="primary@test") as primary:
        _work(primary, 0, 3)
        export_log(primary, tmp_path / "log.rglog")
    moved: list[str] = []
    rename = os.rename

    def rename_then_signal(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        rename(src, dst)
        moved.append(os.path.basename(dst))
        if len(moved) == 1:  # what signals_unwind's handler does when the signal lands here
            interrupt(KeyboardInterrupt())

    monkeypatch.setattr(firstpull.os, "rename", rename_then_signal)
    new = tmp_path / "new"
    with pytest.raises(KeyboardInterrupt):
        firstpull.pull_new_store(new, tmp_path / "log.rglog")
    monkeypatch.undo()
    assert len(moved) > 1 and moved[-1] == "log"
    with Store.open(tmp_path / "p", readonly=True) as primary, Store.open(new, readonly=True) as mirror:
        assert mirror.head() == primary.head() and mirror.verify().ok
    assert not [name for name in os.listdir(new) if name.startswith(firstpull.STAGING_PREFIX)]


def _published_on_http(tmp_path: Path, n: int = 25):  # type: ignore[no-untyped-def]
    """A primary with ``n`` events published in segments of 10, served by a fault-injecting loopback server."""
    from tests.upstream_fixture import UpstreamServer

    with Store.open(tmp_path / "p") as primary:
        _work(primary, 0, n)
        publish(primary, tmp_path / "pub", segment_size=10)
        expected = primary.head(), view_digests(primary)
    return UpstreamServer(tmp_path / "pub"), expected


def test_a_pull_rides_out_an_upstream_answering_503_then_recovering(tmp_path: Path) -> None:
    server, expected = _published_on_http(tmp_path)
    with server:
        server.throttle(MANIFEST, times=2, retry_after="0", status=503)
        server.throttle("0011-000000000020.rgseg", times=1, retry_after="1", status=503)
        server.throttle("0021-000000000025.rgseg", times=1, retry_after="0", status=502)
        with Store.open(tmp_path / "m") as mirror:
            result = pull(mirror, server.url)
            assert (result.applied, mirror.head(), view_digests(mirror)) == (25, *expected)
            assert mirror.verify().ok
        assert [r.status for r in server.gets("0011-000000000020.rgseg")] == [503, 200]  # asked again, once


def test_a_pull_from_an_upstream_that_always_answers_503_fails_in_one_line_within_the_budget(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RGSTORE_RETRY_BUDGET_S", "0.5")
    server, _ = _published_on_http(tmp_path)
    with server, Store.open(tmp_path / "m") as mirror:
        server.throttle("0011-000000000020.rgseg", times=100, retry_after="1", status=503)
        with pytest.raises(RemoteError) as caught:
            pull(mirror, server.url)
        message = str(caught.value)
        assert "\n" not in message and "HTTP 503" in message and "rgstore waits in all" in message
        assert len(server.gets("0011-000000000020.rgseg")) == 1  # its 1 s Retry-After is past the 0.5 s budget
        assert mirror.head()[0] <= 10 and mirror.verify().ok  # nothing past the failing segment, and sound
        server.throttle("0011-000000000020.rgseg", times=100, retry_after="0", status=500)
        with pytest.raises(RemoteError, match=r"HTTP 500 \(tried 4 times\)"):
            pull(mirror, server.url)


def test_mirror_status_reports_an_upstream_answering_503_at_once_instead_of_waiting_it_out(tmp_path: Path) -> None:
    from rgstore.mirrorstatus import status

    server, _ = _published_on_http(tmp_path)
    with server, Store.open(tmp_path / "m") as mirror:
        pull(mirror, server.url)
        asked = len(server.gets("manifest.json"))
        server.throttle("manifest.json", times=100, retry_after="30", status=503)
        report = status(mirror)  # a pull would wait 30 s (within the default 90 s budget) and try again
        assert report.error is not None and "HTTP 503" in report.error and report.error_kind == "upstream"
        assert len(server.gets("manifest.json")) == asked + 1


def test_a_pull_whose_segment_download_is_cut_once_retries_and_succeeds(tmp_path: Path) -> None:
    server, expected = _published_on_http(tmp_path)
    with server, Store.open(tmp_path / "m") as mirror:
        server.drop_after("0011-000000000020.rgseg", 40, times=1)
        assert pull(mirror, server.url).applied == 25
        assert (mirror.head(), view_digests(mirror)) == expected
        assert mirror.verify().ok
        assert len(server.gets("0011-000000000020.rgseg")) == 2


def test_a_tampered_segment_over_http_fails_at_once_naming_its_seqs_without_a_retry(tmp_path: Path) -> None:
    server, _ = _published_on_http(tmp_path)
    with server, Store.open(tmp_path / "m") as mirror:
        server.corrupt("0011-000000000020.rgseg")
        with pytest.raises(IntegrityError, match="seqs 11-20.*first affected seq 11"):
            pull(mirror, server.url)
        assert len(server.gets("0011-000000000020.rgseg")) == 1
        assert mirror.head()[0] <= 10 and mirror.verify().ok  # nothing of the bad segment landed
