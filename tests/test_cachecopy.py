"""Claims about cache files in published directories and mirrors: verified, streamed, never half-written."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rgstore.cachecopy import cache_files, publish_cache
from rgstore.errors import IntegrityError, InvalidInputError, NotFoundError, ReadOnlyError
from rgstore.events import CacheEvicted, CacheInserted, FileRef
from rgstore.log import NewEvent
from rgstore.mirror import pull
from rgstore.replay import export_log
from rgstore.segments import publish
from rgstore.store import Store
from tests.conftest import REPO
from tests.server_fixture import running_server
from tests.upstream_fixture import ENSEMBL, UpstreamServer, base, req


def test_publish_to_an_empty_directory_path_is_refused_in_one_line(store: Store) -> None:
    with pytest.raises(InvalidInputError, match="^empty path for the publish directory; name one$"):
        publish_cache(store, "")


def test_publish_copies_every_live_file_byte_for_byte(store: Store, server: UpstreamServer, tmp_path: Path) -> None:
    store.cache.regions(req(ENSEMBL, "gene,CDS"), base_url=base(server, "ensembl"))
    pub = tmp_path / "pub"
    files = list(cache_files(store))
    assert publish_cache(store, pub) == len(files) == 6
    for entry, relative, ref in files:
        copy = pub / "cache" / entry.path / relative
        assert hashlib.sha256(copy.read_bytes()).hexdigest() == ref.sha256
    assert publish_cache(store, pub) == 0  # already there
    assert not list(pub.rglob("*.tmp"))


def test_publish_refuses_a_corrupt_file_and_leaves_no_partial_copy(
    store: Store, server: UpstreamServer, tmp_path: Path
) -> None:
    store.cache.regions(req(ENSEMBL, "gene"), base_url=base(server, "ensembl"))
    entry = store.cache.ls(level=1)[0]
    local = store.cache_path / entry.path / "annotation" / "gene.fna"
    data = local.read_bytes()
    local.write_bytes(data[:-2] + (b"A" if data[-2:-1] != b"A" else b"C") + b"\n")
    pub = tmp_path / "pub"
    with pytest.raises(IntegrityError, match="cache verify"):
        publish_cache(store, pub)
    published = pub / "cache" / entry.path / "annotation"
    assert not published.exists() or list(published.iterdir()) == []


def test_a_lazy_mirror_publishing_cache_files_it_never_fetched_is_refused_naming_the_pull_that_fetches_them(
    store: Store, server: UpstreamServer, tmp_path: Path
) -> None:
    # It was a bare FileNotFoundError naming a path in the mirror's own cache/.
    store.cache.regions(req(ENSEMBL, "gene"), base_url=base(server, "ensembl"))
    pub = tmp_path / "pub"
    publish(store, pub)
    publish_cache(store, pub)
    with Store.open(tmp_path / "mirror") as mirror:
        pull(mirror, str(pub))
        with pytest.raises(NotFoundError, match=r"cache files of this mirror are not fetched yet .*--with-blobs"):
            publish_cache(mirror, tmp_path / "mpub")
        pull(mirror, str(pub), with_blobs=True)
        assert publish_cache(mirror, tmp_path / "mpub") == len(list(cache_files(mirror))) > 0


def test_a_download_whose_source_stalled_after_its_last_bytes_survives_a_gc_at_its_rename(
    store: Store, server: UpstreamServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # write_verified released its temp file's flock at close, before the rename: a gc sweeping then found an
    # unlocked temp file whose mtime (its last bytes) was old, deleted it, and the finished download failed.
    from rgstore.cachecopy import local_cache_file
    from rgstore.files import write_verified
    from rgstore.gc import collect_garbage

    store.cache.regions(req(ENSEMBL, "gene"), base_url=base(server, "ensembl"))
    entry, relative, ref = next(iter(cache_files(store)))
    dest = local_cache_file(store, entry, relative)
    data = dest.read_bytes()
    dest.unlink()  # a lazy mirror's missing file, about to be installed

    def stalled() -> Iterator[bytes]:
        yield data
        (tmp,) = dest.parent.glob(f".{dest.name}.*.tmp")
        old = time.time() - 3600
        os.utime(tmp, (old, old))  # the source took an hour to end after its last bytes

    real_replace = os.replace
    removed: list[int] = []

    def gc_then_replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        if Path(dst) == dest:
            removed.append(collect_garbage(store, grace=0).temp_files_removed)
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", gc_then_replace)
    assert write_verified(dest, stalled(), ref.sha256)
    assert removed == [0] and dest.read_bytes() == data


def test_a_mirror_serves_hits_unrecorded_and_refuses_misses_before_writing_files(
    store: Store, server: UpstreamServer, tmp_path: Path
) -> None:
    store.cache.regions(req(ENSEMBL, "gene"), base_url=base(server, "ensembl"))
    pub = tmp_path / "pub"
    publish(store, pub)
    publish_cache(store, pub)
    with Store.open(tmp_path / "mirror") as mirror:
        pull(mirror, str(pub), with_blobs=True)
        head = mirror.head()
        mirror.cache.clock = lambda: time.time() + 7200  # past the touch interval: a primary would record it
        [hit] = mirror.cache.regions(req(ENSEMBL, "gene"))
        assert hit.hit and Path(hit.path).is_file()
        with pytest.raises(ReadOnlyError, match="read-only mirror .* extracting exon"):
            mirror.cache.regions(req(ENSEMBL, "gene,exon"), base_url=base(server, "ensembl"))
        assert mirror.head() == head
        assert sorted(p.name for p in mirror.cache_path.iterdir() if not p.name.startswith(".")) == sorted(
            p.name for p in (pub / "cache").iterdir()
        )


def test_entry_paths_from_an_upstream_log_never_reach_outside_the_cache(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "file").write_text("precious")
    ref = FileRef(name="file", sha256=hashlib.sha256(b"precious").hexdigest(), md5="", size=8)
    evil = {"a" * 64: "../../victim", "b" * 64: "ensembl_raw/x/../../../victim", "c" * 64: "cached_genomic_/.."}
    with Store.open(tmp_path / "primary") as primary:
        for key, path in evil.items():
            primary.append([NewEvent(stream=f"cache:{key}", event=CacheInserted(
                key=key, level=1, path=path, files={"file": ref}, request={}))])
        pub = tmp_path / "pub"
        publish(primary, pub)
        report = primary.cache.verify()
        assert {p.key for p in report.problems} == set(evil)
        assert all(p.problem == "not a cache entry directory" for p in report.problems)
        assert publish_cache(primary, pub) == 0
        for key in sorted(evil)[:2]:
            primary.append([NewEvent(stream=f"cache:{key}", event=CacheEvicted(key=key, reason="gone"))])
        publish(primary, pub)
        primary.cache.gc(max_age=0.0)
    with Store.open(tmp_path / "mirror") as mirror:
        pull(mirror, str(pub), with_blobs=True)
        mirror.cache.gc(max_age=None)
    assert (victim / "file").read_text() == "precious"


def test_a_mirror_refuses_a_tampered_cache_file_and_keeps_no_partial_copy(
    store: Store, server: UpstreamServer, tmp_path: Path
) -> None:
    store.cache.regions(req(ENSEMBL, "gene"), base_url=base(server, "ensembl"))
    pub = tmp_path / "pub"
    publish(store, pub)
    publish_cache(store, pub)
    entry = store.cache.ls(level=1)[0]
    published = pub / "cache" / entry.path / "annotation" / "gene.fna"
    good = published.read_bytes()
    published.write_bytes(good[:-2] + (b"A" if good[-2:-1] != b"A" else b"C") + b"\n")
    with Store.open(tmp_path / "mirror") as mirror:
        with pytest.raises(IntegrityError, match="gene.fna of entry .* fails its sha256; not stored"):
            pull(mirror, str(pub), with_blobs=True)
        local = mirror.cache_path / entry.path / "annotation"
        assert not local.exists() or not [f for f in local.iterdir() if f.name.endswith(".tmp") or f.name == "gene.fna"]
        published.write_bytes(good)
        pull(mirror, str(pub), with_blobs=True)
        assert (local / "gene.fna").read_bytes() == good


def test_a_publish_by_an_older_rgstore_without_cache_files_is_named_with_its_remedy_which_works(
    store: Store, server: UpstreamServer, tmp_path: Path
) -> None:
    """The upgrade path: a directory an older rgstore published with --with-blobs has segments and
    blobs but no cache/ (cache files did not follow their events yet). Pulls from it as a directory
    or from a static host say so (the host's was a bare '404 Not Found'); publishing again fixes it."""
    from rgstore.errors import NotFoundError
    from tests.httpfixture import serve_directory

    store.cache.regions(req(ENSEMBL, "gene"), base_url=base(server, "ensembl"))
    pub = tmp_path / "pub"
    publish(store, pub)  # the old layout: what an older `log publish --with-blobs` left, no cache/
    assert not (pub / "cache").exists()
    hint = "an older rgstore's publish copied no cache files: run it again"
    with Store.open(tmp_path / "mirror") as mirror:
        with pytest.raises(NotFoundError, match=f"{pub} has no cache file .*{hint}"):
            pull(mirror, str(pub), with_blobs=True)
    with serve_directory(pub) as host, Store.open(tmp_path / "mirror-http") as mirror:
        with pytest.raises(NotFoundError, match=f"404 Not Found \\({host.url} lacks it: publish with --with-blobs; {hint}"):
            pull(mirror, host.url, with_blobs=True)
        publish_cache(store, pub)  # the remedy the message names
        pull(mirror, host.url, with_blobs=True)
        entry = store.cache.ls(level=1)[0]
        assert (mirror.cache_path / entry.path / "annotation" / "gene.fna").is_file()


def _cached_files(store: Path) -> list[Path]:
    return [f for f in (store / "cache").rglob("*") if f.is_file() and not f.name.startswith(".")]


def test_a_mirror_pulled_without_blobs_fetches_a_cached_regions_file_on_first_read_by_cli(
    server: UpstreamServer, tmp_path: Path
) -> None:
    with Store.open(tmp_path / "primary") as primary:
        [built] = primary.cache.regions(req(ENSEMBL, "gene"), base_url=base(server, "ensembl"))
    want = Path(built.path).read_bytes()
    before = len(server.gets(""))
    with running_server(tmp_path / "primary") as upstream:
        for args in (("mirror", "pull", upstream.url),
                     ("cache", "regions", "--source", "ensembl", "--species", "Synthetica_testii",
                      "--release", "110", "--regions", "gene")):
            done = subprocess.run([sys.executable, "-m", "rgstore_cli", "--store", str(tmp_path / "mirror"), *args],
                                  cwd=REPO, capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr
            if args[0] == "mirror":
                assert _cached_files(tmp_path / "mirror") == []  # the events only
    status, region, path = done.stdout.split()
    assert (status, region) == ("hit", "gene")
    assert Path(path).read_bytes() == want
    assert [f.name for f in _cached_files(tmp_path / "mirror")] == ["gene.fna"]  # level 2 was not fetched
    assert len(server.gets("")) == before  # from the primary, not rebuilt from NCBI/Ensembl


def test_a_mirror_refuses_a_tampered_cache_file_fetched_on_first_read_and_stores_nothing(
    server: UpstreamServer, tmp_path: Path
) -> None:
    with Store.open(tmp_path / "primary") as primary:
        [built] = primary.cache.regions(req(ENSEMBL, "gene"), base_url=base(server, "ensembl"))
        publish(primary, tmp_path / "pub")
        publish_cache(primary, tmp_path / "pub")
    published = tmp_path / "pub" / "cache" / Path(built.path).relative_to(tmp_path / "primary" / "cache")
    good = published.read_bytes()
    published.write_bytes(good[:-2] + (b"A" if good[-2:-1] != b"A" else b"C") + b"\n")
    with Store.open(tmp_path / "mirror") as mirror:
        pull(mirror, str(tmp_path / "pub"))
        with pytest.raises(IntegrityError, match="gene.fna of entry .* fails its sha256; not stored"):
            mirror.cache.regions(req(ENSEMBL, "gene"))
        assert _cached_files(tmp_path / "mirror") == []
        published.write_bytes(good)
        [hit] = mirror.cache.regions(req(ENSEMBL, "gene"))
        assert hit.hit and Path(hit.path).read_bytes() == good


def test_a_mirror_of_an_export_file_names_the_pull_that_brings_cache_files(
    server: UpstreamServer, tmp_path: Path
) -> None:
    with Store.open(tmp_path / "primary") as primary:
        primary.cache.regions(req(ENSEMBL, "gene"), base_url=base(server, "ensembl"))
        export_log(primary, tmp_path / "log.rglog")
    with Store.open(tmp_path / "mirror") as mirror:
        pull(mirror, str(tmp_path / "log.rglog"))
        with pytest.raises(NotFoundError) as caught:
            mirror.cache.regions(req(ENSEMBL, "gene"))
    [line] = str(caught.value).splitlines()
    assert "gene.fna of entry" in line and "is not in this mirror" in line
    assert "rgstore mirror pull SOURCE --with-blobs" in line


def _entry_file(primary: Path, server: UpstreamServer) -> tuple[str, str, bytes]:
    """(entry key, relative path, bytes) of the level-1 gene file a primary at ``primary`` builds."""
    with Store.open(primary) as store:
        [built] = store.cache.regions(req(ENSEMBL, "gene"), base_url=base(server, "ensembl"))
        [relative] = store.cache.entry(built.key).files  # type: ignore[union-attr]
    return built.key, relative, Path(built.path).read_bytes()


def test_a_mirror_pulled_without_blobs_serves_a_cache_file_fetched_from_its_upstream_on_first_read(
    server: UpstreamServer, tmp_path: Path
) -> None:
    key, relative, want = _entry_file(tmp_path / "primary", server)
    before = len(server.gets(""))
    with running_server(tmp_path / "primary") as upstream:
        with Store.open(tmp_path / "mirror") as mirror:
            pull(mirror, upstream.url)
        assert _cached_files(tmp_path / "mirror") == []  # the events only
        with running_server(tmp_path / "mirror") as served:
            url = f"{served.url}/cache/entries/{key}/files"
            # Only what the log lists is fetched: not another path, not a path that leaves the entry.
            assert httpx.get(f"{url}/annotation/CDS.fna", timeout=120).status_code == 404
            assert httpx.get(f"{url}/annotation/../../../etc/passwd", timeout=120).status_code == 404
            assert _cached_files(tmp_path / "mirror") == []
            got = httpx.get(f"{url}/{relative}", timeout=120)
    assert (got.status_code, got.content) == (200, want), got.text
    assert [f.name for f in _cached_files(tmp_path / "mirror")] == ["gene.fna"]  # only the file asked for
    assert len(server.gets("")) == before  # from the primary, not rebuilt from Ensembl


def test_a_served_mirror_of_an_export_file_answers_502_naming_the_pull_with_blobs_and_stores_nothing(
    server: UpstreamServer, tmp_path: Path
) -> None:
    key, relative, _ = _entry_file(tmp_path / "primary", server)
    with Store.open(tmp_path / "primary") as primary:
        export_log(primary, tmp_path / "log.rglog")
    with Store.open(tmp_path / "mirror") as mirror:
        pull(mirror, str(tmp_path / "log.rglog"))
    with running_server(tmp_path / "mirror") as served:
        got = httpx.get(f"{served.url}/cache/entries/{key}/files/{relative}", timeout=120)
    assert got.status_code == 502 and "Retry-After" not in got.headers, (got.status_code, got.headers)
    [line] = got.json()["detail"].splitlines()
    assert "exported log file" in line and "rgstore mirror pull SOURCE --with-blobs" in line, line
    assert _cached_files(tmp_path / "mirror") == []


def test_a_served_mirror_refuses_a_cache_file_its_upstream_has_corrupt_and_stores_nothing(
    server: UpstreamServer, tmp_path: Path
) -> None:
    key, relative, want = _entry_file(tmp_path / "primary", server)
    with Store.open(tmp_path / "primary") as primary:
        publish(primary, tmp_path / "pub")
        publish_cache(primary, tmp_path / "pub")
        published = tmp_path / "pub" / "cache" / primary.cache.entry(key).path / relative  # type: ignore[union-attr]
    published.write_bytes(want[:-2] + (b"A" if want[-2:-1] != b"A" else b"C") + b"\n")
    with Store.open(tmp_path / "mirror") as mirror:
        pull(mirror, str(tmp_path / "pub"))
    with running_server(tmp_path / "mirror") as served:
        got = httpx.get(f"{served.url}/cache/entries/{key}/files/{relative}", timeout=120)
    assert got.status_code == 502 and "Retry-After" not in got.headers, (got.status_code, got.headers)
    assert "fails its sha256; not stored" in got.json()["detail"], got.text
    assert _cached_files(tmp_path / "mirror") == []
