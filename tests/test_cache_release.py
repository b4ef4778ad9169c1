"""Claims about NCBI annotation releases: the release a download's GTF names is recorded and enforced.

NCBI serves only an accession's current annotation and re-annotates it in place, so the release a
request names is checked against the ``#!annotation-source`` header of the GTF actually fetched
(or cached): another release is refused in one line and nothing is cached for it. Everything runs
against the loopback NCBI fixture and a real store.
"""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import pytest

from rgstore.cacherelease import gtf_release, gtf_source
from rgstore.cachesynth import make_genome, ncbi_dir, write_ncbi_tree
from rgstore.errors import ConflictError, NotFoundError
from rgstore.events import CacheInserted
from rgstore.log import NewEvent
from rgstore.store import Store
from rgstore.views.cache import CacheEntry
from tests.upstream_fixture import (  # noqa: F401 - tree and server are fixtures
    GENOME,
    NCBI,
    UpstreamServer,
    base,
    cache_events,
    req,
    upstream_tree,
)

MOVED_ON = "RS_2099_01"
"""A release the fixture upstream re-annotates its accession to."""


def _move_upstream_on(up: Path, release: str | None = MOVED_ON) -> None:
    """Re-annotate the NCBI accession in place, as NCBI does: the same directory, a new GTF and md5checksums."""
    write_ncbi_tree(up / "ncbi", make_genome(total_bp=120_000, contigs=3, genes=30, seed=5), release=release)


def _leftovers(store: Store) -> list[str]:
    """Staging directories and NCBI entry directories under the cache root."""
    root = store.cache_path
    return sorted(p.relative_to(root).as_posix() for p in [*root.glob(".tmp-*"), *root.glob("ncbi_raw/*/*")])


def _as_legacy(store: Store, level: int | None = None) -> list[CacheEntry]:
    """Re-record the cache's entries as an rgstore before release checks wrote them: the same files, no release.

    Its ``CacheInserted`` had no ``annotation_release`` field (as tests/golden/log-v1's), which decodes as "".
    """
    entries = store.cache.ls(level)
    store.append([
        NewEvent(stream=f"cache:{e.key}", event=CacheInserted(
            key=e.key, level=e.level, path=e.path, files=e.files, request=e.request
        ))
        for e in entries
    ])
    legacy = store.cache.ls(level)
    assert [e.annotation_release for e in legacy] == [""] * len(entries)
    return legacy


# -- the header ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "release"),
    [
        ("NCBI RefSeq GCF_000001405.40-RS_2023_10", "RS_2023_10"),
        ("NCBI Homo sapiens Updated Annotation Release 105.20220307", "105.20220307"),
        ("NCBI Homo sapiens Annotation Release 110", "110"),
        ("NCBI RefSeq", ""),
        ("NCBI", ""),
    ],
)
def test_the_release_is_read_from_a_real_ncbi_annotation_source_line(
    tmp_path: Path, source: str, release: str
) -> None:
    gtf = tmp_path / "a.gtf.gz"
    header = f"#gtf-version 2.2\n#!genome-build GRCh38.p14\n#!annotation-source {source}\n"
    gtf.write_bytes(gzip.compress((header + "NC_000001.11\tBestRefSeq\tgene\t1\t9\t.\t+\t.\tgene_id \"A\";\n").encode()))
    assert gtf_release(gtf) == release


def test_a_gtf_without_an_annotation_source_line_names_no_release_and_its_rows_are_not_read(tmp_path: Path) -> None:
    gtf = tmp_path / "a.gtf"  # plain text too; a row that looks like a header line after the first row is data
    gtf.write_text("#gtf-version 2.2\nchr1\tx\tgene\t1\t9\t.\t+\t.\tgene_id \"A\";\n#!annotation-source NCBI RefSeq X-RS_2023_10\n")
    assert gtf_release(gtf) == ""


@pytest.mark.parametrize(
    ("source", "accession"),
    [
        ("NCBI RefSeq GCF_000001405.40-RS_2023_10", "GCF_000001405.40"),
        ("NCBI RefSeq GCA_000001405.29-RS_2023_10", "GCA_000001405.29"),
        ("NCBI Homo sapiens Updated Annotation Release 105.20220307", ""),
        ("NCBI RefSeq", ""),
    ],
)
def test_the_accession_is_read_from_the_annotation_source_line_where_it_names_one(
    tmp_path: Path, source: str, accession: str
) -> None:
    gtf = tmp_path / "a.gtf"
    gtf.write_text(f"#gtf-version 2.2\n#!annotation-source {source}\nNC_1\tx\tgene\t1\t9\t.\t+\t.\tgene_id \"A\";\n")
    assert gtf_source(gtf)[1] == accession


@pytest.mark.parametrize(
    ("header", "accession"),
    [
        ("#!genome-build-accession NCBI_Assembly:GCF_000001405.25\n#!annotation-source \n", "GCF_000001405.25"),
        ("#!genome-build-accession NCBI_Assembly:GCF_013753865.1\n"
         "#!annotation-source NCBI Acropora millepora Annotation Release 101\n", "GCF_013753865.1"),
        ("#!genome-build-accession NCBI_Assembly:GCF_000001405.39\n"
         "#!annotation-source NCBI RefSeq GCF_000001405.40-RS_2023_10\n", "GCF_000001405.40"),
    ],
)
def test_without_an_accession_in_the_annotation_source_the_genome_build_accession_line_names_it(
    tmp_path: Path, header: str, accession: str
) -> None:
    gtf = tmp_path / "a.gtf"
    gtf.write_text(f"#gtf-version 2.2\n#!genome-build X\n{header}NC_1\tx\tgene\t1\t9\t.\t+\t.\tgene_id \"A\";\n")
    assert gtf_source(gtf)[1] == accession


def _annotate_as(up: Path, accession: str) -> None:
    """Make the fixture's NCBI GTF name ``accession`` in its ``#!annotation-source`` line (md5checksums.txt kept true)."""
    directory = up / "ncbi" / ncbi_dir()
    gtf = next(directory.glob("*_genomic.gtf.gz"))
    text = gzip.decompress(gtf.read_bytes()).decode()
    wrong = text.replace(f"NCBI RefSeq {NCBI['assembly']}-", f"NCBI RefSeq {accession}-")
    assert wrong != text
    gtf.write_bytes(gzip.compress(wrong.encode()))
    sums = {n: hashlib.md5((directory / n).read_bytes()).hexdigest()
            for n in sorted(p.name for p in directory.iterdir() if p.name != "md5checksums.txt")}
    (directory / "md5checksums.txt").write_text("".join(f"{md5}  ./{n}\n" for n, md5 in sums.items()))


@pytest.mark.parametrize("other", ["GCF_000009999.1", "GCF_000001405.39"])  # another assembly; another version of it
def test_a_fresh_gtf_annotating_another_assembly_than_asked_is_refused_in_one_line_and_caches_nothing(
    store: Store, tmp_path: Path, other: str
) -> None:
    up = tmp_path / "up"
    upstream_tree(up)
    _annotate_as(up, other)
    with UpstreamServer(up) as srv:
        for call in (store.cache.fetch_raw, store.cache.regions):
            with pytest.raises(ConflictError) as refused:
                call(req(NCBI, "gene"), base_url=base(srv, "ncbi"))
            assert str(refused.value) == (
                f"the NCBI GTF fetched for {NCBI['assembly']} is annotation of assembly {other} (its "
                f"#!annotation-source header names {other}), not of {NCBI['assembly']}: check --assembly and "
                "--base-url; nothing was cached"
            )
        assert srv.gets(GENOME["ncbi"]) == []  # the GTF is checked before the genome is fetched
    assert store.cache.ls() == [] and cache_events(store) == [] and _leftovers(store) == []


# -- fetches ------------------------------------------------------------------------------------


def test_a_download_records_the_release_its_gtf_names_on_both_levels(store: Store, server: UpstreamServer) -> None:
    results = store.cache.regions(req(NCBI, "gene,exon"), base_url=base(server, "ncbi"))
    (raw,) = store.cache.ls(level=2)
    assert raw.annotation_release == NCBI["release"]
    assert [store.cache.entry(r.key).annotation_release for r in results] == [NCBI["release"]] * 2  # type: ignore[union-attr]
    inserted = [e.event for e in store.events(stream="cache:*") if isinstance(e.event, CacheInserted)]
    assert {e.annotation_release for e in inserted} == {NCBI["release"]}
    again = store.cache.regions(req(NCBI, "gene,exon"), base_url=base(server, "ncbi"))
    assert all(r.hit for r in again)


def test_a_first_fetch_naming_a_release_upstream_does_not_hold_is_refused_and_caches_nothing(
    store: Store, server: UpstreamServer
) -> None:
    wrong = {**NCBI, "release": "RS_2023_10"}
    with pytest.raises(ConflictError) as refused:
        store.cache.regions(req(wrong, "gene"), base_url=base(server, "ncbi"))
    message = str(refused.value)
    assert "\n" not in message and "RS_2024_01" in message and "RS_2023_10" in message
    assert "--release RS_2024_01" in message and "nothing was cached" in message
    with pytest.raises(ConflictError, match="holds annotation release RS_2024_01 of"):
        store.cache.fetch_raw(req(wrong), base_url=base(server, "ncbi"))
    assert store.cache.ls() == [] and cache_events(store) == [] and _leftovers(store) == []
    assert server.gets(GENOME["ncbi"]) == []  # the GTF is checked before the genome is fetched
    assert store.verify().ok
    right = store.cache.regions(req(NCBI, "gene"), base_url=base(server, "ncbi"))
    assert [r.hit for r in right] == [False] and len(server.gets(GENOME["ncbi"])) == 1


def test_a_numbered_release_matches_only_itself(store: Store, tmp_path: Path) -> None:
    up = tmp_path / "up"
    upstream_tree(up, ncbi_release="105.20220307")
    with UpstreamServer(up) as srv:
        with pytest.raises(ConflictError, match="holds annotation release 105.20220307 of GCF_000001405.40, not 105 "):
            store.cache.fetch_raw(req({**NCBI, "release": "105"}), base_url=base(srv, "ncbi"))
        raw = store.cache.fetch_raw(req({**NCBI, "release": "105.20220307"}), base_url=base(srv, "ncbi"))
    assert store.cache.entry(raw.key).annotation_release == "105.20220307"  # type: ignore[union-attr]


def _refused_from_what_is_held(store: Store, srv: UpstreamServer, moved: dict[str, str], raw_key: str) -> int:
    """``regions``, ``fetch_raw`` and ``keys`` refuse release ``moved`` of a download holding RS_2024_01, in one
    line saying what to do, asking upstream nothing and recording nothing; the requests upstream has seen."""
    asked, events = len(srv.requests), cache_events(store)
    for call in (store.cache.regions, store.cache.fetch_raw):
        with pytest.raises(ConflictError) as refused:
            call(req(moved, "gene"), base_url=base(srv, "ncbi"))
        message = str(refused.value)
        assert "\n" not in message and f"holds annotation release RS_2024_01, not {moved['release']}" in message
        assert "--release RS_2024_01" in message and f"rgstore cache evict {raw_key[:12]}" in message
    with pytest.raises(ConflictError):
        store.cache.keys(req(moved, "gene"))
    assert len(srv.requests) == asked and cache_events(store) == events
    return asked


def test_a_cached_download_is_refused_for_the_release_upstream_moved_on_to_until_it_is_evicted(
    store: Store, tmp_path: Path
) -> None:
    up = tmp_path / "up"
    upstream_tree(up)
    with UpstreamServer(up) as srv:
        old = store.cache.regions(req(NCBI, "gene"), base_url=base(srv, "ncbi"))
        (raw,) = store.cache.ls(level=2)
        _move_upstream_on(up)
        moved = {**NCBI, "release": MOVED_ON}
        _refused_from_what_is_held(store, srv, moved, raw.key)
        assert [r.hit for r in store.cache.regions(req(NCBI, "gene"), base_url=base(srv, "ncbi"))] == [True]

        store.cache.evict([raw.key])  # level 1 stays: its inputs were RS_2024_01's
        new = store.cache.regions(req(moved, "gene"), base_url=base(srv, "ncbi"))
    assert [r.hit for r in new] == [False] and new[0].key != old[0].key
    (fresh,) = store.cache.ls(level=2)
    assert fresh.key == raw.key and fresh.annotation_release == MOVED_ON
    assert store.cache.entry(new[0].key).annotation_release == MOVED_ON  # type: ignore[union-attr]
    with pytest.raises(ConflictError, match=f"holds annotation release {MOVED_ON}, not RS_2024_01"):
        store.cache.regions(req(NCBI, "gene"), base_url="http://127.0.0.1:9")
    assert store.verify().ok


def test_after_level2_is_evicted_a_request_for_the_new_release_is_not_served_the_old_regions(
    store: Store, tmp_path: Path
) -> None:
    up = tmp_path / "up"
    upstream_tree(up)
    with UpstreamServer(up) as srv:
        old = store.cache.regions(req(NCBI, "gene"), base_url=base(srv, "ncbi"))
        store.cache.evict([store.cache.ls(level=2)[0].key])
        _move_upstream_on(up, release="RS_2023_10")  # NCBI now serves an older one; asked for the newer: refused
        with pytest.raises(ConflictError, match="NCBI now holds annotation release RS_2023_10"):
            store.cache.regions(req({**NCBI, "release": MOVED_ON}, "gene"), base_url=base(srv, "ncbi"))
        assert store.cache.ls(level=2) == [] and _leftovers(store) == []
        assert [e.key for e in store.cache.ls(level=1)] == [old[0].key]


def test_keys_for_another_release_after_level2_is_evicted_name_the_release_fetched_not_a_fetch_never_made(
    store: Store, tmp_path: Path
) -> None:
    up = tmp_path / "up"
    upstream_tree(up)
    with UpstreamServer(up) as srv:
        store.cache.regions(req(NCBI, "gene"), base_url=base(srv, "ncbi"))
    store.cache.evict([store.cache.ls(level=2)[0].key])
    with pytest.raises(NotFoundError) as refused:
        store.cache.keys(req({**NCBI, "release": MOVED_ON}, "gene"))
    message = str(refused.value)
    assert "never fetched" not in message and "\n" not in message
    assert f"held annotation release RS_2024_01, not {MOVED_ON}" in message
    assert f"fetch-raw --release {MOVED_ON}" in message


def test_a_gtf_naming_no_release_keeps_the_release_a_label(store: Store, tmp_path: Path) -> None:
    up = tmp_path / "up"
    upstream_tree(up, ncbi_release=None)
    with UpstreamServer(up) as srv:
        first = store.cache.regions(req(NCBI, "gene"), base_url=base(srv, "ncbi"))
        other = store.cache.regions(req({**NCBI, "release": "110"}, "gene"), base_url=base(srv, "ncbi"))
        assert len(srv.gets(GENOME["ncbi"])) == 1
    assert [(r.key, r.hit) for r in other] == [(first[0].key, True)]
    assert [e.annotation_release for e in store.cache.ls()] == ["", ""]


def test_the_cli_refuses_another_release_in_one_line(cli, store_path: Path, server: UpstreamServer) -> None:  # type: ignore[no-untyped-def]
    opts = ["--source", "ncbi", "--species", "synthetica_testii", "--assembly", NCBI["assembly"],
            "--base-url", base(server, "ncbi")]
    out = cli("cache", "fetch-raw", *opts, "--release", "RS_2023_10")
    assert out.exit_code == 1 and out.stderr.count("\n") == 1
    assert out.stderr.startswith("error: NCBI now holds annotation release RS_2024_01 of GCF_000001405.40, not RS_2023_10")


# -- entries inserted before releases were recorded -----------------------------------------------


def test_a_live_legacy_download_is_refused_for_another_release_by_the_release_its_cached_gtf_names(
    store: Store, tmp_path: Path
) -> None:
    up = tmp_path / "up"
    upstream_tree(up)
    with UpstreamServer(up) as srv:
        store.cache.regions(req(NCBI, "gene"), base_url=base(srv, "ncbi"))
        _as_legacy(store)  # both levels, as an older rgstore left them
        (raw,) = store.cache.ls(level=2)
        _move_upstream_on(up)
        moved = {**NCBI, "release": MOVED_ON}
        asked = _refused_from_what_is_held(store, srv, moved, raw.key)
        assert store.cache.entry(raw.key).annotation_release == ""  # type: ignore[union-attr]
        served = store.cache.regions(req(NCBI, "gene,exon"), base_url=base(srv, "ncbi"))
    assert [r.hit for r in served] == [True, False] and len(srv.requests) == asked
    # A region extracted from it now records the release its GTF names.
    assert store.cache.entry(served[1].key).annotation_release == NCBI["release"]  # type: ignore[union-attr]


def test_a_legacy_download_without_its_raw_gtf_is_checked_by_its_decompressed_copy(
    store: Store, tmp_path: Path
) -> None:
    up = tmp_path / "up"
    upstream_tree(up, seed=6, ncbi_release="RS_2023_10")  # bytes no other test caches (releases are remembered)
    with UpstreamServer(up) as srv:
        store.cache.regions(req({**NCBI, "release": "RS_2023_10"}, "gene"), base_url=base(srv, "ncbi"))
    (raw,) = _as_legacy(store, level=2)
    (store.cache_path / raw.path / "raw" / "annotation.gtf.gz").unlink()
    with pytest.raises(ConflictError, match=f"holds annotation release RS_2023_10, not {NCBI['release']}:"):
        store.cache.regions(req(NCBI, "gene"), base_url="http://127.0.0.1:9")


def test_a_legacy_downloads_release_is_read_once_per_process_so_level1_hits_do_not_read_it_again(
    store: Store, server: UpstreamServer
) -> None:
    store.cache.regions(req(NCBI, "gene"), base_url=base(server, "ncbi"))
    (raw,) = _as_legacy(store, level=2)
    moved = req({**NCBI, "release": MOVED_ON}, "gene")
    with pytest.raises(ConflictError, match="holds annotation release RS_2024_01"):
        store.cache.regions(moved, base_url=base(server, "ncbi"))
    for name in ("raw/annotation.gtf.gz", "decompressed/annotation.gtf"):
        (store.cache_path / raw.path / name).unlink()
    with pytest.raises(ConflictError, match="holds annotation release RS_2024_01"):
        store.cache.regions(moved, base_url=base(server, "ncbi"))
    assert [r.hit for r in store.cache.regions(req(NCBI, "gene"), base_url=base(server, "ncbi"))] == [True]
