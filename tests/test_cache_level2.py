"""Claims about how level 1 depends on level 2: hits without it, verified inputs, races, pins kept.

Everything runs against the loopback NCBI/Ensembl fixture with real files; the race is staged
with the real entry locks and a second process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rgstore.cachekeys import sha256_key
from rgstore.cachelock import LOCK_DIR, entry_lock
from rgstore.cachesynth import make_genome, write_ensembl_tree
from rgstore.errors import InvalidInputError, RemoteError
from rgstore.events import CacheEvicted, CacheInserted, CachePinned
from rgstore.log import NewEvent
from rgstore.store import Store
from tests.conftest import REPO
from tests.upstream_fixture import (  # noqa: F401 - tree and server are fixtures
    ENSEMBL,
    GENOME,
    NCBI,
    UpstreamServer,
    base,
    cache_events,
    duplicate_first_sequence,
    req,
    upstream_tree,
)

DAY = 86400.0
OFFLINE = "http://127.0.0.1:9"
"""A base URL nothing listens on: any request to it fails."""




def _evict_level2(store: Store) -> None:
    """Evict only the level-2 entry (level 1 pinned), as a monthly gc eventually does."""
    for e in store.cache.ls(level=1):
        store.cache.pin(e.key)
    store.cache.clock = lambda: time.time() + 40 * DAY
    store.cache.gc(max_age=30 * DAY)
    store.cache.clock = time.time
    assert store.cache.ls(level=2) == []


# -- 1. hits need no level 2 -------------------------------------------------------------------


@pytest.mark.parametrize("params", [NCBI, ENSEMBL], ids=["ncbi", "ensembl"])
def test_hits_are_served_offline_after_level2_is_evicted(
    store: Store, server: UpstreamServer, params: dict[str, str]
) -> None:
    source = params["source"]
    first = store.cache.regions(req(params, "gene,exon"), base_url=base(server, source))
    raw_dir = store.cache_path / store.cache.ls(level=2)[0].path
    _evict_level2(store)
    assert not raw_dir.exists()
    store.cache.retries = 0  # the offline miss below fails at once
    again = store.cache.regions(req(params, "gene,exon"), base_url=OFFLINE)
    assert [(r.key, r.path, r.hit) for r in again] == [(r.key, r.path, True) for r in first]
    assert [f.key for f in store.cache.keys(req(params, "gene,exon"))] == [r.key for r in first]
    assert len(server.gets(GENOME[source])) == 1
    # Only a miss needs level 2, and then it is fetched again.
    with pytest.raises(RemoteError):
        store.cache.regions(req(params, "gene,CDS"), base_url=OFFLINE)
    mixed = store.cache.regions(req(params, "gene,CDS"), base_url=base(server, source))
    assert [(r.region, r.hit) for r in mixed] == [("gene", True), ("CDS", False)]
    assert len(server.gets(GENOME[source])) == 2


def test_a_hit_does_not_touch_level2_because_it_does_not_read_it(store: Store, server: UpstreamServer) -> None:
    store.cache.regions(req(ENSEMBL, "gene"), base_url=base(server, "ensembl"))
    store.cache.clock = lambda: time.time() + 7200
    store.cache.regions(req(ENSEMBL, "gene"), base_url=OFFLINE)
    touched = {e.level: e.touches for e in store.cache.ls()}
    assert touched == {1: 1, 2: 0}


# -- 2. extraction reads only verified inputs ---------------------------------------------------


def _complement_sequences(path: Path) -> None:
    """A same-size corruption: complement every base line (headers untouched)."""
    table = bytes.maketrans(b"ACGTacgt", b"TGCAtgca")
    lines = path.read_bytes().split(b"\n")
    path.write_bytes(b"\n".join(line if line.startswith(b">") else line.translate(table) for line in lines))


def test_a_same_size_corrupt_genome_is_refetched_before_a_miss_extracts(
    store: Store, server: UpstreamServer, tmp_path: Path
) -> None:
    store.cache.regions(req(ENSEMBL, "gene"), base_url=base(server, "ensembl"))
    raw = store.cache.ls(level=2)[0]
    genome = store.cache_path / raw.path / "decompressed" / "genome.fna"
    pristine = genome.read_bytes()
    _complement_sequences(genome)
    assert genome.stat().st_size == len(pristine) and genome.read_bytes() != pristine

    problems = store.cache.verify().problems
    assert [(p.key, Path(p.file).name, p.problem.startswith("sha256")) for p in problems] == [
        (raw.key, "genome.fna", True)
    ]

    exon = store.cache.regions(req(ENSEMBL, "exon"), base_url=base(server, "ensembl"))[0]
    assert not exon.hit
    assert len(server.gets(GENOME["ensembl"])) == 2  # level 2 was fetched again
    assert genome.read_bytes() == pristine
    with Store.open(tmp_path / "clean") as clean:
        reference = clean.cache.regions(req(ENSEMBL, "exon"), base_url=base(server, "ensembl"))[0]
    assert reference.key == exon.key
    assert Path(exon.path).read_bytes() == Path(reference.path).read_bytes()
    assert store.cache.verify().ok


# -- 3. pins survive rebuilds --------------------------------------------------------------------


def test_rebuilding_a_damaged_pinned_entry_keeps_its_pin(store: Store, server: UpstreamServer) -> None:
    exon = store.cache.regions(req(ENSEMBL, "exon"), base_url=base(server, "ensembl"))[0]
    raw = store.cache.ls(level=2)[0]
    store.cache.pin(exon.key)
    store.cache.pin(raw.key)

    Path(exon.path).write_bytes(Path(exon.path).read_bytes().replace(b"A", b"C", 1))
    again = store.cache.regions(req(ENSEMBL, "exon"), base_url=base(server, "ensembl"))[0]
    assert (again.key, again.hit) == (exon.key, False)
    assert store.cache.entry(exon.key).pinned  # type: ignore[union-attr]
    assert cache_events(store)[-3:] == ["cache-evicted", "cache-inserted", "cache-pinned"]

    (store.cache_path / raw.path / "decompressed" / "annotation.gtf").unlink()
    assert not store.cache.fetch_raw(req(ENSEMBL), base_url=base(server, "ensembl")).hit
    assert store.cache.entry(raw.key).pinned  # type: ignore[union-attr]


def test_a_pinned_entry_evicted_as_corrupt_is_pinned_again_when_rebuilt(
    store: Store, server: UpstreamServer
) -> None:
    exon = store.cache.regions(req(ENSEMBL, "exon"), base_url=base(server, "ensembl"))[0]
    store.cache.pin(exon.key)
    Path(exon.path).write_text(">tampered\nACGT\n")
    assert store.cache.verify(evict=True).evicted == [exon.key]
    rebuilt = store.cache.regions(req(ENSEMBL, "exon"), base_url=base(server, "ensembl"))[0]
    assert (rebuilt.key, rebuilt.hit) == (exon.key, False)
    assert store.cache.entry(exon.key).pinned  # type: ignore[union-attr]


def test_an_entry_unpinned_before_eviction_stays_unpinned_when_rebuilt(
    store: Store, server: UpstreamServer
) -> None:
    gene = store.cache.regions(req(ENSEMBL, "gene"), base_url=base(server, "ensembl"))[0]
    store.cache.pin(gene.key)
    store.cache.unpin(gene.key)
    Path(gene.path).write_text(">tampered\nACGT\n")
    store.cache.regions(req(ENSEMBL, "gene"), base_url=base(server, "ensembl"))
    assert not store.cache.entry(gene.key).pinned  # type: ignore[union-attr]


# -- 5. keys are rechecked under the level-2 lock ------------------------------------------------


def _wait_until_blocked(lock_file: Path, proc: subprocess.Popen[bytes], limit: float = 60.0) -> None:
    """Wait until some process waits for ``lock_file``'s flock (Linux ``/proc/locks`` marks waiters ``->``)."""
    inode = os.stat(lock_file).st_ino
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        for line in Path("/proc/locks").read_text().splitlines():
            fields = line.split()
            if "->" in fields and fields[-3].endswith(f":{inode}"):
                return
        if proc.poll() is not None:
            raise AssertionError(f"the command ended before it waited: {proc.communicate()}")
        time.sleep(0.05)
    raise AssertionError(f"nothing waited for {lock_file} within {limit} s")


@pytest.mark.skipif(not Path("/proc/locks").exists(), reason="needs Linux /proc/locks to see lock waiters")
def test_a_level2_entry_replaced_while_waiting_for_locks_gives_new_keys(
    store_path: Path, tmp_path: Path
) -> None:
    up = tmp_path / "up"
    write_ensembl_tree(up, make_genome(total_bp=60_000, genes=10, seed=1))
    with UpstreamServer(up) as srv, Store.open(store_path) as store:
        store.cache.fetch_raw(req(ENSEMBL), base_url=srv.url)
        stale = store.cache.keys(req(ENSEMBL, "exon"))[0].key
        with entry_lock(store.cache_path, stale):
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "rgstore_cli",
                    "--store",
                    str(store_path),
                    "cache",
                    "regions",
                    "--source",
                    "ensembl",
                    "--species",
                    "synthetica_testii",
                    "--release",
                    "110",
                    "--regions",
                    "exon",
                    "--base-url",
                    srv.url,
                    "--json",
                ],
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            try:
                _wait_until_blocked(store.cache_path / LOCK_DIR / f"{stale}.lock", proc)
                # Meanwhile upstream re-issues the release and level 2 is rebuilt from it.
                write_ensembl_tree(up, make_genome(total_bp=60_000, genes=10, seed=2))
                raw = store.cache.ls(level=2)[0]
                (store.cache_path / raw.path / "decompressed" / "genome.fna").unlink()
                assert not store.cache.fetch_raw(req(ENSEMBL), base_url=srv.url).hit
            except BaseException:
                proc.kill()
                raise
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        result = json.loads(out)[0]
        fresh = store.cache.keys(req(ENSEMBL, "exon"))[0].key
        assert fresh != stale
        assert (result["key"], result["hit"]) == (fresh, False)
        assert store.cache.entry(stale) is None  # nothing recorded under the key of the replaced inputs
        assert store.cache.verify().ok


# -- 6. duplicate sequence names ----------------------------------------------------------------


def test_a_genome_with_a_duplicate_sequence_name_is_refused_and_caches_no_region(
    store: Store, tmp_path: Path
) -> None:
    up = tmp_path / "up"
    dna, _ = write_ensembl_tree(up, make_genome(total_bp=60_000, genes=10, seed=3))
    duplicate_first_sequence(dna)
    with UpstreamServer(up) as srv:
        with pytest.raises(InvalidInputError, match=r"genome\.fna.*duplicate sequence name '1'"):
            store.cache.regions(req(ENSEMBL, "gene,exon"), base_url=srv.url)
    assert store.cache.ls(level=1) == []
    assert not list(store.cache_path.glob("cached_genomic_*")) and not list(store.cache_path.glob(".tmp-*"))


# -- 7. NCBI labels ------------------------------------------------------------------------------


def test_another_ncbi_taxon_or_species_reuses_the_cached_accession(
    store: Store, server: UpstreamServer
) -> None:
    # The release is no label: another one is refused (tests/test_cache_release.py).
    first = store.cache.regions(req(NCBI, "gene"), base_url=base(server, "ncbi"))
    relabelled = {**NCBI, "taxon": "other", "species": "homo_sapiens"}
    again = store.cache.regions(req(relabelled, "gene,exon"), base_url=base(server, "ncbi"))
    assert [(r.key, r.hit) for r in again[:1]] == [(first[0].key, True)] and not again[1].hit
    assert len(server.gets(GENOME["ncbi"])) == 1
    assert [e.path for e in store.cache.ls(level=2)] == ["ncbi_raw/9606/GCF_000001405.40"]
    assert not (store.cache_path / "ncbi_raw" / "other").exists()
    exon = store.cache.entry(again[1].key)
    assert exon is not None and exon.request["labels"] == {
        "species": "homo_sapiens",
        "taxon": "other",
        "annotation_release": NCBI["release"],
    }


def test_a_level2_entry_recorded_under_an_older_key_is_superseded_and_its_directory_kept(
    store: Store, server: UpstreamServer
) -> None:
    raw = store.cache.fetch_raw(req(NCBI), base_url=base(server, "ncbi"))
    entry = store.cache.entry(raw.key)
    assert entry is not None
    # The state an older rgstore left: the same directory recorded under a key that held the taxon.
    legacy = sha256_key(
        {"level": 2, "source": "ncbi", "species": "", "taxon": "9606", "assembly": NCBI["assembly"], "release": ""}
    )
    store.append(
        [
            NewEvent(stream=f"cache:{raw.key}", event=CacheEvicted(key=raw.key, reason="older rgstore")),
            NewEvent(
                stream=f"cache:{legacy}",
                event=CacheInserted(
                    key=legacy, level=2, path=entry.path, files=entry.files, request=entry.request
                ),
            ),
            NewEvent(stream=f"cache:{legacy}", event=CachePinned(key=legacy)),
        ]
    )
    store.cache.gc(max_age=None)
    assert (store.cache_path / entry.path).is_dir()  # the legacy entry owns it
    store.cache.regions(req(NCBI, "gene"), base_url=base(server, "ncbi"))
    live = store.cache.ls(level=2)
    assert [(e.key, e.path, e.pinned) for e in live] == [(raw.key, entry.path, True)]
    assert store.cache.show(legacy).tombstone.reason == f"superseded by {raw.key}"  # type: ignore[union-attr]
    assert store.cache.gc(max_age=None).completed == []
    assert (store.cache_path / entry.path).is_dir()
    assert store.cache.verify().ok
