"""Claims about `mirror pull --with-blobs` while its upstream frees content the pulled events still list: a cache
entry `cache gc` evicts, a refpkg blob `refpkg strip` and `gc` free. The pull fetches the events that free it and
ends equal to the upstream, never failing on the file it no longer needs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rgstore.gc import collect_garbage
from rgstore.mirror import pull
from rgstore.progress import Progress, null_progress
from rgstore.store import Store
from tests.server_fixture import running_server
from tests.upstream_fixture import ENSEMBL, UpstreamServer, base, req


def _at_content_fetch(action: Callable[[], None]) -> Callable[..., Progress]:
    """A progress factory that runs ``action`` once, when the pull starts fetching content (its events applied)."""
    done: list[bool] = []

    def factory(desc: str, total: int | None = None, unit: str = "it") -> Progress:
        if desc == "fetch blobs" and not done:
            done.append(True)
            action()
        return null_progress(desc, total, unit)

    return factory


def _views(store: Store) -> tuple[object, ...]:
    return (sorted(e.key for e in store.cache.ls()), store.refpkgs.list_all(), store.head())


def test_a_pull_with_blobs_whose_upstream_evicts_a_cache_entry_meanwhile_succeeds_equal_to_it(
    server: UpstreamServer, tmp_path: Path
) -> None:
    # Was: "…/cache/entries/KEY/files/raw/genome.fna.gz: 404 Not Found", and only the next pull succeeded.
    with Store.open(tmp_path / "primary") as primary:
        primary.cache.regions(req(ENSEMBL, "gene"), base_url=base(server, "ensembl"))
        assert primary.cache.ls()

    def evict() -> None:
        with Store.open(tmp_path / "primary") as primary:
            assert primary.cache.gc(max_age=0).evicted  # every entry, files and all

    with running_server(tmp_path / "primary") as upstream:
        with Store.open(tmp_path / "mirror") as mirror:
            result = pull(mirror, upstream.url, with_blobs=True, progress=_at_content_fetch(evict))
            assert result.head_seq == result.applied == result.upstream_head  # both rounds' events counted
            assert mirror.cache.ls() == [] and mirror.verify().ok
            with Store.open(tmp_path / "primary", readonly=True) as primary:
                assert _views(mirror) == _views(primary)


def test_a_pull_with_blobs_whose_upstream_strips_and_gcs_a_refpkg_blob_meanwhile_succeeds_equal_to_it(
    tmp_path: Path
) -> None:
    first, second = tmp_path / "v1.txt", tmp_path / "v2.txt"
    first.write_text("first version\n")
    second.write_text("second version\n")
    with Store.open(tmp_path / "primary") as primary:
        primary.refpkgs.create("pkg", locus="L", files=[("a", first)])
        primary.refpkgs.update_files("pkg", [f"a={second}"])  # the first version stays in its history

    def strip() -> None:
        with Store.open(tmp_path / "primary") as primary:
            primary.refpkgs.strip("pkg")
            assert len(collect_garbage(primary, grace=0).removed) == 1  # the first version's blob

    with running_server(tmp_path / "primary") as upstream:
        with Store.open(tmp_path / "mirror") as mirror:
            pull(mirror, upstream.url, with_blobs=True, progress=_at_content_fetch(strip))
            assert mirror.refpkgs.resource_path("pkg", "a").read_text() == "second version\n"
            assert mirror.verify().ok
            with Store.open(tmp_path / "primary", readonly=True) as primary:
                assert _views(mirror) == _views(primary)


def test_a_pull_with_sequences_whose_upstream_removes_the_genome_and_gcs_meanwhile_succeeds_equal_to_it(
    tmp_path: Path
) -> None:
    # Was: the sequence fetch's 404 from the upstream's /store failed the pull; only the next pull succeeded.
    from rgstore.gc import collect_garbage as gc
    from tests.conftest import REPO

    with Store.open(tmp_path / "primary") as primary:
        primary.genomes.init(REPO / "rgstore" / "data" / "tiny.fa", ["tiny"])
    done: list[bool] = []

    def remove_and_gc(desc: str, total: int | None = None, unit: str = "it") -> Progress:
        if desc == "fetch sequences" and not done:  # the genome's events are applied, its sequences not fetched
            done.append(True)
            with Store.open(tmp_path / "primary") as primary:
                primary.genomes.remove("tiny")
                assert gc(primary, grace=0).collections_removed  # its sequences too, gone from the upstream's store
        return null_progress(desc, total, unit)

    with running_server(tmp_path / "primary") as upstream:
        with Store.open(tmp_path / "mirror") as mirror:
            result = pull(mirror, upstream.url, with_sequences=True, progress=remove_and_gc)
            assert done and result.head_seq == result.applied == result.upstream_head
            assert mirror.genomes.list() == [] and mirror.verify().ok
            with Store.open(tmp_path / "primary", readonly=True) as primary:
                assert mirror.head() == primary.head()
