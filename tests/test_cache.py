"""Claims about the cache service: real downloads from a loopback NCBI/Ensembl, hits, touches, locking."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rgstore.cachesynth import make_genome, write_ensembl_tree
from rgstore.errors import IntegrityError, InvalidInputError, NotFoundError, RemoteError
from rgstore.gtf import parse_gtf
from rgstore.store import Store
from rgstore.verify import view_digests
from tests.conftest import REPO
from tests.progress_recorder import Bars
from tests.signalled import signal_when
from tests.upstream_fixture import (  # noqa: F401 - tree and server are fixtures
    ENSEMBL,
    GENOME,
    NCBI,
    UpstreamServer,
    base,
    cache_events,
    req,
    upstream_tree,
)


@pytest.mark.parametrize("params", [NCBI, ENSEMBL], ids=["ncbi", "ensembl"])
def test_regions_download_verify_and_extract_from_the_real_layout(
    store: Store, server: UpstreamServer, params: dict[str, str]
) -> None:
    source = params["source"]
    results = store.cache.regions(req(params), base_url=base(server, source))
    assert [(r.region, r.hit) for r in results] == [("gene", False), ("exon", False), ("CDS", False)]
    for r in results:
        assert Path(r.path).is_file() and Path(r.path).read_text().startswith(">")
        assert Path(r.path).parent.parent.name == f"cached_genomic_{r.key}"
    raw = store.cache.ls(level=2)
    assert len(raw) == 1
    expected_dir = (
        "ncbi_raw/9606/GCF_000001405.40" if source == "ncbi" else "ensembl_raw/synthetica_testii/110"
    )
    assert raw[0].path == expected_dir
    assert sorted(raw[0].files) == [
        "decompressed/annotation.gtf",
        "decompressed/genome.fna",
        "raw/annotation.gtf.gz",
        "raw/genome.fna.gz",
    ]
    assert cache_events(store) == ["cache-inserted"] * 4
    fetched = [r.path.rsplit("/", 1)[1] for r in server.requests]
    checksum_file = "md5checksums.txt" if source == "ncbi" else "CHECKSUMS"
    assert checksum_file in fetched
    # Decoys a suffix match would pick are never downloaded.
    assert not any("cds_from_genomic" in f or ".chr.gtf" in f or ".dna.toplevel" in f for f in fetched)


def test_a_repeated_request_is_all_hits_without_downloads_or_events(
    store: Store, server: UpstreamServer
) -> None:
    first = store.cache.regions(req(ENSEMBL), base_url=base(server, "ensembl"))
    n_requests, head = len(server.requests), store.head()
    again = store.cache.regions(req(ENSEMBL), base_url=base(server, "ensembl"))
    assert [r.hit for r in again] == [True, True, True]
    assert [r.path for r in again] == [r.path for r in first]
    assert (len(server.requests), store.head()) == (n_requests, head)  # touches coalesce within the hour


def test_hits_after_an_hour_record_one_touch_per_entry_read(store: Store, server: UpstreamServer) -> None:
    store.cache.regions(req(ENSEMBL, "gene,exon"), base_url=base(server, "ensembl"))
    store.cache.clock = lambda: time.time() + 7200
    store.cache.regions(req(ENSEMBL, "gene,exon"), base_url=base(server, "ensembl"))
    # Both regions; level 2 is not read by hits (their keys come from the log), so it is not touched.
    assert cache_events(store).count("cache-touched") == 2
    store.cache.clock = time.time
    store.cache.regions(req(ENSEMBL, "gene,exon"), base_url=base(server, "ensembl"))
    assert cache_events(store).count("cache-touched") == 2
    assert all(e.touches == 1 for e in store.cache.ls(level=1))


def test_a_hit_after_the_clock_was_set_back_records_a_touch(store: Store, server: UpstreamServer) -> None:
    store.cache.regions(req(ENSEMBL, "gene"), base_url=base(server, "ensembl"))
    # The clock ran two hours fast when the entry was stamped and has since been corrected: the
    # recorded last use lies in the clock's future, and hits must not wait two hours to be recorded.
    store.cache.clock = lambda: time.time() - 7200
    store.cache.regions(req(ENSEMBL, "gene"), base_url=base(server, "ensembl"))
    assert cache_events(store).count("cache-touched") == 1
    store.cache.clock = time.time  # re-anchored at the corrected time: hits coalesce again
    store.cache.regions(req(ENSEMBL, "gene"), base_url=base(server, "ensembl"))
    assert cache_events(store).count("cache-touched") == 1


@pytest.mark.parametrize("params", [NCBI, ENSEMBL], ids=["ncbi-md5", "ensembl-bsd-sum"])
def test_a_checksum_mismatch_caches_nothing(
    store: Store, server: UpstreamServer, params: dict[str, str]
) -> None:
    server.corrupt(GENOME[params["source"]])
    with pytest.raises(IntegrityError, match="checksum mismatch"):
        store.cache.regions(req(params), base_url=base(server, params["source"]))
    assert store.head()[0] == 0
    assert store.cache.ls() == []
    assert sorted(p.name for p in store.cache_path.iterdir()) == [".locks"]


def test_an_interrupted_download_resumes_with_range_on_the_next_run(
    store: Store, server: UpstreamServer
) -> None:
    server.drop_after("_genomic.fna.gz", 20_000)
    store.cache.retries = 0
    with pytest.raises(RemoteError, match="next run resumes"):
        store.cache.fetch_raw(req(NCBI), base_url=base(server, "ncbi"))
    assert store.head()[0] == 0
    result = store.cache.fetch_raw(req(NCBI), base_url=base(server, "ncbi"))
    assert not result.hit
    genome_gets = server.gets("_genomic.fna.gz")
    assert [g.range for g in genome_gets] == [None, "bytes=20000-"]
    assert genome_gets[-1].status == 206
    assert store.cache.verify().ok


def _trickled_part(store_path: Path) -> Path | None:
    """The genome download's .part once it holds bytes (the trickled file: the GTF comes whole, first)."""
    parts = [p for p in store_path.rglob("genome*.part") if p.stat().st_size > 0]
    assert len(parts) <= 1, parts
    return parts[0] if parts else None


def _kept_part(store_path: Path) -> tuple[Path, int]:
    """The interrupted download's .part and its size: bytes kept, with the .json a resume reads."""
    part = _trickled_part(store_path)
    assert part is not None
    kept = part.stat().st_size
    assert kept > 0 and part.with_name(part.name + ".json").is_file()
    return part, kept


def _rerun_resumes(server: UpstreamServer, args: list[str], kept: int) -> None:
    """The same command run again, untrickled, asks for the rest from ``kept`` (206) and succeeds."""
    server.slow(GENOME["ncbi"], 0.0)
    again = subprocess.run([sys.executable, "-m", "rgstore_cli", *args], cwd=REPO, capture_output=True, timeout=120)
    assert again.returncode == 0, again.stderr.decode()
    resumed = server.gets(GENOME["ncbi"])[-1]
    assert (resumed.range, resumed.status) == (f"bytes={kept}-", 206)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_sigterm_mid_download_keeps_the_part_as_ctrl_c_does_and_the_next_run_resumes_it(
    store_path: Path, tmp_path: Path, signum: int
) -> None:
    # `cache fetch-raw` ran without signals_unwind: a SIGTERM killed it outright (exit -15) and the bytes its
    # file object still buffered never reached the .part. Ctrl-C kept the part whole, with a one-line exit.
    upstream_tree(tmp_path / "up", total_bp=1_000_000)  # each of the 20 trickled pieces outgrows a file buffer
    with UpstreamServer(tmp_path / "up") as server:
        server.slow(GENOME["ncbi"], 600.0)  # a piece every 30 s: the run waits for the second one
        args = ["--store", str(store_path), "cache", "fetch-raw", "--source", "ncbi", "--species", NCBI["species"],
                "--taxon", NCBI["taxon"], "--release", NCBI["release"], "--assembly", NCBI["assembly"],
                "--base-url", base(server, "ncbi")]
        proc = subprocess.Popen([sys.executable, "-m", "rgstore_cli", *args], cwd=REPO,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        err = signal_when(proc, lambda: _trickled_part(store_path) is not None, signum)
        assert proc.returncode == 128 + signum and b"Traceback" not in err, err.decode()
        if signum == signal.SIGINT:
            assert err.decode().strip() == "error: interrupted"
        part, kept = _kept_part(store_path)
        with Store.open(store_path) as store:
            assert store.head()[0] == 0

        _rerun_resumes(server, args, kept)
    with Store.open(store_path) as store:
        assert store.cache.verify().ok and not part.exists()


def test_sigterm_mid_download_of_cache_regions_unwinds_keeping_only_the_part_and_the_rerun_completes(
    store_path: Path, tmp_path: Path
) -> None:
    # `cache regions` ran without signals_unwind: a SIGTERM killed it outright (exit -15) mid-download, the bytes
    # its file object still buffered never reached the .part, and nothing else of the run was cleaned up.
    upstream_tree(tmp_path / "up", total_bp=1_000_000)  # each of the 20 trickled pieces outgrows a file buffer
    with UpstreamServer(tmp_path / "up") as server:
        server.slow(GENOME["ncbi"], 600.0)  # a piece every 30 s: the run waits for the second one
        args = ["--store", str(store_path), "cache", "regions", "--source", "ncbi", "--species", NCBI["species"],
                "--taxon", NCBI["taxon"], "--release", NCBI["release"], "--assembly", NCBI["assembly"],
                "--regions", "gene,exon", "--base-url", base(server, "ncbi")]
        proc = subprocess.Popen([sys.executable, "-m", "rgstore_cli", *args], cwd=REPO,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        err = signal_when(proc, lambda: _trickled_part(store_path) is not None, signal.SIGTERM)
        assert proc.returncode == 143 and b"Traceback" not in err, err.decode()
        part, kept = _kept_part(store_path)
        # Under cache/ only the download's staging directory is left, and in it only what a resume reads.
        cache_root = store_path / "cache"
        staged = [p for p in cache_root.iterdir() if p.name.startswith(".tmp-")]
        assert staged == [part.parent.parent], staged
        left = sorted(p.relative_to(part.parent) for p in part.parent.parent.rglob("*") if p.is_file())
        assert part.relative_to(part.parent) in left and all(".part" in p.name or p.suffix == ".gz" for p in left), left
        with Store.open(store_path) as store:
            assert store.head()[0] == 0

        _rerun_resumes(server, args, kept)
    assert not [p for p in cache_root.iterdir() if p.name.startswith(".tmp-")]
    with Store.open(store_path) as store:
        assert store.cache.verify().ok and not part.exists()
        assert len(store.cache.ls(level=1)) == 2 and len(store.cache.ls(level=2)) == 1
    verified = subprocess.run([sys.executable, "-m", "rgstore_cli", "--store", str(store_path), "verify"], cwd=REPO,
                              capture_output=True, timeout=120)
    assert verified.returncode == 0, verified.stdout.decode() + verified.stderr.decode()


def _fetch_in_subprocess(store_path: Path, url: str) -> subprocess.Popen[bytes]:
    args = [
        "--store",
        str(store_path),
        "cache",
        "fetch-raw",
        "--source",
        "ensembl",
        "--species",
        "synthetica_testii",
        "--release",
        "110",
        "--base-url",
        url,
        "--json",
    ]
    return subprocess.Popen(
        [sys.executable, "-m", "rgstore_cli", *args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def test_two_processes_asking_for_the_same_asset_download_it_once(
    store_path: Path, server: UpstreamServer
) -> None:
    Store.open(store_path).close()
    server.slow(GENOME["ensembl"], 1.0)
    procs = [_fetch_in_subprocess(store_path, base(server, "ensembl")) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1] for o in outs]
    results = [json.loads(o[0]) for o in outs]
    assert sorted(r["hit"] for r in results) == [False, True]
    assert results[0]["path"] == results[1]["path"]
    assert len(server.gets(GENOME["ensembl"])) == 1
    with Store.open(store_path) as store:
        assert cache_events(store) == ["cache-inserted"]


def test_a_tampered_region_file_is_rebuilt_not_served(store: Store, server: UpstreamServer) -> None:
    first = store.cache.regions(req(ENSEMBL, "exon"), base_url=base(server, "ensembl"))[0]
    original = Path(first.path).read_bytes()
    Path(first.path).write_bytes(original.replace(b"A", b"C", 1))
    again = store.cache.regions(req(ENSEMBL, "exon"), base_url=base(server, "ensembl"))[0]
    assert (again.hit, again.key) == (False, first.key)
    assert Path(again.path).read_bytes() == original
    assert cache_events(store)[-2:] == ["cache-evicted", "cache-inserted"]


def test_a_region_entry_whose_directory_became_a_file_is_rebuilt_not_a_not_a_directory_error(
    store: Store, server: UpstreamServer
) -> None:
    # The hit check and the publish both failed with a bare "Not a directory" (stat, then rmtree).
    first = store.cache.regions(req(ENSEMBL, "exon"), base_url=base(server, "ensembl"))[0]
    original = Path(first.path).read_bytes()
    directory = store.cache_path / f"cached_genomic_{first.key}"
    for child in sorted(directory.rglob("*"), reverse=True):
        child.rmdir() if child.is_dir() else child.unlink()
    directory.rmdir()
    directory.write_text("not a directory\n")
    again = store.cache.regions(req(ENSEMBL, "exon"), base_url=base(server, "ensembl"))[0]
    assert (again.hit, again.key) == (False, first.key)
    assert Path(again.path).read_bytes() == original
    assert store.verify().ok


def test_a_raw_tree_symlinked_to_another_disk_serves_fetch_raw_hits(
    store: Store, server: UpstreamServer, tmp_path: Path
) -> None:
    # The mirror-only "fetch missing files" step ran on a primary too, and its placement check
    # refused the symlinked tree as "a file outside the cache" although regions read it fine.
    first = store.cache.fetch_raw(req(NCBI), base_url=base(server, "ncbi"))
    raw = store.cache_path / "ncbi_raw"
    raw.rename(tmp_path / "bigdisk")
    raw.symlink_to(tmp_path / "bigdisk", target_is_directory=True)
    again = store.cache.fetch_raw(req(NCBI), base_url=base(server, "ncbi"))
    assert (again.hit, again.key) == (True, first.key)
    assert store.verify().ok


def test_keys_change_when_the_upstream_inputs_change(store: Store, tmp_path: Path) -> None:
    root = tmp_path / "up"
    write_ensembl_tree(root, make_genome(total_bp=60_000, genes=10, seed=1))
    with UpstreamServer(root) as srv:
        old = store.cache.regions(req(ENSEMBL, "gene"), base_url=srv.url)
        assert store.cache.keys(req(ENSEMBL, "gene"))[0].key == old[0].key
        # Upstream re-issues the release (new bytes, new CHECKSUMS); the old raw entry is evicted.
        write_ensembl_tree(root, make_genome(total_bp=60_000, genes=10, seed=2))
        store.cache.clock = lambda: time.time() + 86400
        store.cache.gc(max_age=3600)
        store.cache.clock = time.time
        new = store.cache.regions(req(ENSEMBL, "gene"), base_url=srv.url)
    assert new[0].key != old[0].key and not new[0].hit
    assert Path(new[0].path).read_bytes() != b""


def test_keys_need_the_raw_inputs_cached(store: Store) -> None:
    with pytest.raises(NotFoundError, match="fetch-raw"):
        store.cache.keys(req(ENSEMBL))


def test_an_ensembl_assembly_that_does_not_match_is_refused(store: Store, server: UpstreamServer) -> None:
    with pytest.raises(NotFoundError, match="assembly GRCh38"):
        store.cache.fetch_raw(req({**ENSEMBL, "assembly": "GRCh38"}), base_url=base(server, "ensembl"))
    store.cache.fetch_raw(req({**ENSEMBL, "assembly": "SYN1"}), base_url=base(server, "ensembl"))
    with pytest.raises(InvalidInputError, match="is assembly SYN1, not GRCh38"):
        store.cache.regions(req({**ENSEMBL, "assembly": "GRCh38"}), base_url=base(server, "ensembl"))


def test_an_unknown_ncbi_accession_is_not_found(store: Store, server: UpstreamServer) -> None:
    with pytest.raises(NotFoundError, match="404|no assembly directory"):
        store.cache.fetch_raw(req({**NCBI, "assembly": "GCF_000009999.1"}), base_url=base(server, "ncbi"))
    assert store.head()[0] == 0


def test_rebuilding_the_views_reproduces_the_cache_view(store: Store, server: UpstreamServer) -> None:
    store.cache.regions(req(ENSEMBL), base_url=base(server, "ensembl"))
    store.cache.pin(store.cache.ls(level=2)[0].path)
    before = view_digests(store)["cache"]
    store.rebuild()
    assert view_digests(store)["cache"] == before
    assert store.verify().ok


def test_pins_resolve_keys_and_directories(store: Store, server: UpstreamServer) -> None:
    result = store.cache.regions(req(ENSEMBL, "gene"), base_url=base(server, "ensembl"))[0]
    key, changed = store.cache.pin(str(Path(result.path).parent.parent))
    assert (key, changed) == (result.key, True)
    assert store.cache.pin(result.key) == (result.key, False)
    assert store.cache.unpin(f"cached_genomic_{result.key}") == (result.key, True)
    assert store.cache.show(result.path).entry.pinned is False  # type: ignore[union-attr]
    assert [e.event.__struct_config__.tag for e in store.cache.show(result.key).events] == [
        "cache-inserted",
        "cache-pinned",
        "cache-unpinned",
    ]
    with pytest.raises(NotFoundError, match="no cache entry"):
        store.cache.pin(os.fspath(Path("/nonexistent/dir")))


def test_refs_that_name_no_directory_are_not_found_not_crashes(store: Store, tmp_path: Path) -> None:
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    for ref in ("~no_such_user_rgstore", str(loop / "x"), "a\0b"):
        with pytest.raises(NotFoundError, match="no cache entry"):
            store.cache.show(ref)


def test_a_damaged_raw_entry_is_fetched_again(store: Store, server: UpstreamServer) -> None:
    store.cache.fetch_raw(req(ENSEMBL), base_url=base(server, "ensembl"))
    raw = store.cache.ls(level=2)[0]
    (store.cache_path / raw.path / "decompressed" / "genome.fna").unlink()
    again = store.cache.fetch_raw(req(ENSEMBL), base_url=base(server, "ensembl"))
    assert not again.hit and (Path(again.path) / "decompressed" / "genome.fna").is_file()
    assert len(server.gets(GENOME["ensembl"])) == 2
    assert cache_events(store) == ["cache-inserted", "cache-evicted", "cache-inserted"]
    assert store.cache.verify().ok


def test_downloads_decompression_and_extraction_report_progress(store: Store, server: UpstreamServer) -> None:
    recorder = Bars()
    store.cache.regions(req(NCBI, "gene"), base_url=base(server, "ncbi"), progress=recorder)
    descs = [b[0] for b in recorder.totals()]
    assert descs == [
        "download annotation.gtf.gz",  # first: its release is checked before the genome is fetched
        "download genome.fna.gz",
        "gunzip genome.fna.gz",
        "gunzip annotation.gtf.gz",
        "parse annotation.gtf",
        "plan gene",
        "extract gene",
        "hash gene.fna",
    ]
    for desc, total, done in recorder.totals():
        assert total == done and isinstance(total, int) and total > 0, desc  # every bar runs to its total


def test_a_miss_reports_planning_in_features_and_hashing_in_bytes(store: Store, server: UpstreamServer) -> None:
    # At human scale planning (~7 s) and hashing + fsyncing the new region files (~13 s) showed nothing.
    recorder = Bars()
    results = store.cache.regions(req(ENSEMBL, "gene,exon,CDS"), base_url=base(server, "ensembl"), progress=recorder)
    inputs = store.cache_path / store.cache.ls(level=2)[0].path / "decompressed"
    annotation = parse_gtf(inputs / "annotation.gtf")
    features = len(annotation.genes) + 2 * len(annotation.transcripts)  # gene reads genes; exon and CDS transcripts
    genome, (gene, exon, cds) = (inputs / "genome.fna").stat().st_size, [Path(r.path).stat().st_size for r in results]
    first = [desc for desc, _total, _done in recorder.totals()].index("plan gene,exon,CDS")
    assert recorder.totals()[first:] == [
        ["plan gene,exon,CDS", features, features],
        ["extract gene,exon,CDS", genome, genome],
        ["hash gene.fna", gene, gene],
        ["hash exon.fna", exon, exon],
        ["hash CDS.fna", cds, cds],
    ]
    assert recorder.units[first:] == ["feature", "B", "B", "B", "B"]


def test_a_level1_hit_reports_its_checksum_reads_as_progress(store: Store, server: UpstreamServer) -> None:
    # A hit re-hashes every region FASTA (3 GB for human genes: ~10 s that showed nothing on a terminal).
    store.cache.regions(req(ENSEMBL, "gene,CDS"), base_url=base(server, "ensembl"))
    recorder = Bars()
    results = store.cache.regions(req(ENSEMBL, "gene,CDS"), base_url=base(server, "ensembl"), progress=recorder)
    assert all(r.hit for r in results)
    sizes = [Path(r.path).stat().st_size for r in results]
    assert recorder.totals() == [["verify gene.fna", sizes[0], sizes[0]], ["verify CDS.fna", sizes[1], sizes[1]]]


def test_a_batch_of_cache_events_folds_to_the_bytes_of_one_event_commands(tmp_path: Path) -> None:
    from rgstore.events import CacheEvicted, CacheInserted, CachePinned, CacheTouched, CacheUnpinned
    from rgstore.log import NewEvent

    a, b = "a" * 64, "b" * 64
    script = [
        CacheInserted(key=a, level=1, path="l1/a"), CacheTouched(key=a), CachePinned(key=a), CacheTouched(key=a),
        CacheTouched(key=b),  # no live entry: ignored
        CacheInserted(key=b, level=2, path="l2/b"), CacheEvicted(key=b, reason="lru"), CacheTouched(key=b),
        CacheUnpinned(key=a), CacheEvicted(key=a, reason="manual"), CacheInserted(key=a, level=1, path="l1/a2"),
        CacheTouched(key=a),
    ]
    with Store.open(tmp_path / "s") as store:
        for event in script:  # one command per event: the single-event fold
            store.append([NewEvent(stream=f"cache:{event.key}", event=event)])
        one_by_one = view_digests(store)["cache"]
        store.rebuild()  # the whole log as one batch
        assert view_digests(store)["cache"] == one_by_one
        entry = store.cache.entry(a)
        assert entry is not None and entry.path == "l1/a2" and entry.touches == 1 and not entry.pinned
        assert store.cache.entry(b) is None


def _much_used_entry(store: Store, touches: int, *, key: str = "ab" * 32) -> str:
    """An entry touched ``touches`` times (four months of hourly use is ~3,000), amid another entry's events."""
    from rgstore.events import CacheInserted, CacheTouched
    from rgstore.log import NewEvent

    other = "cd" * 32
    store.append([NewEvent(stream=f"cache:{k}", event=CacheInserted(key=k, level=1, path=f"cached_genomic_{k}"))
                  for k in (key, other)])
    for start in range(0, touches, 1000):
        batch = [NewEvent(stream=f"cache:{k}", event=CacheTouched(key=k))
                 for _ in range(min(1000, touches - start)) for k in (key, other)]
        store.append(batch)
    return key


def _forbid(monkeypatch: pytest.MonkeyPatch, obj: object, *names: str) -> None:
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("read the event history")

    for name in names:
        monkeypatch.setattr(obj, name, refuse)


def test_show_with_last_reads_only_the_newest_events_from_the_head_down_and_counts_the_rest(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = _much_used_entry(store, 3000)
    everything = store.cache.show(key)
    assert len(everything.events) == 3001 and everything.older_events == 0
    read: list[int] = []
    get = store.log.get

    def counted(txn, seq):  # type: ignore[no-untyped-def]
        read.append(seq)
        return get(txn, seq)

    monkeypatch.setattr(store.log, "get", counted)
    _forbid(monkeypatch, store.log, "envelopes", "envelopes_backwards")  # no scan of the log
    newest = store.cache.show(key[:8], last=5)
    assert [e.seq for e in newest.events] == [e.seq for e in everything.events[-5:]]
    assert newest.older_events == 2996 and len(read) == 5
    none = store.cache.show(key, last=0)
    assert (none.events, none.older_events, none.state) == ([], 3001, "live")
    with pytest.raises(InvalidInputError, match="0 or more"):
        store.cache.show(key, last=-1)


def test_ls_and_gc_plans_read_no_entry_history_however_often_entries_were_touched(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = _much_used_entry(store, 3000)
    _forbid(monkeypatch, store.log, "get", "envelopes", "envelopes_backwards")
    _forbid(monkeypatch, store, "events", "iter_events")
    listed = store.cache.ls()
    assert [e.touches for e in listed] == [3000, 3000] and listed[0].key == key
    store.cache.clock = lambda: time.time() + 2 * 86400
    report = store.cache.gc(max_age=86400.0, dry_run=True)
    assert sorted(i.key for i in report.evicted) == sorted(e.key for e in listed)
