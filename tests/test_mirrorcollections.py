"""A mirror's RefgetStore gets each genome's collection, as the primary's gtars wrote it, once all its sequences are local."""

from __future__ import annotations

from pathlib import Path

import pytest

from rgstore.errors import IntegrityError
from rgstore.mirror import pull
from rgstore.segments import publish, publish_refget
from rgstore.store import Store
from tests.httpfixture import serve_directory

_FASTA = ">chr1 first chromosome, described\nACGTACGTNNNNACGTRYKM\nACG\n>chr2\nGGGGCCCCAAAATTTT\n>chrM mito\nacgtacgtac\n"


def _primary(tmp_path: Path) -> str:
    (tmp_path / "g.fa").write_text(_FASTA)
    with Store.open(tmp_path / "p") as primary:
        digest = primary.genomes.init(tmp_path / "g.fa", ["tiny"]).genome.digest
        publish(primary, tmp_path / "pub")
        publish_refget(primary, tmp_path / "pub")
    return digest


def _gtars(root: Path):  # type: ignore[no-untyped-def]
    from gtars.refget import RefgetStore

    handle = RefgetStore.open_local(str(root))
    handle.set_quiet(True)
    return handle


def _same_collection(mirror: Path, primary: Path, digest: str) -> None:
    rel = f"refget/collections/{digest}.rgsi"
    assert (mirror / rel).read_bytes() == (primary / rel).read_bytes()
    line = [ln for ln in (primary / "refget/collections.rgci").read_text().splitlines() if ln.startswith(digest)]
    assert line and line[0] in (mirror / "refget/collections.rgci").read_text().splitlines()


def test_a_pull_with_sequences_copies_the_primarys_collection_and_its_alias_resolves_in_gtars(tmp_path: Path) -> None:
    digest = _primary(tmp_path)
    with Store.open(tmp_path / "m") as mirror:
        assert pull(mirror, str(tmp_path / "pub"), with_sequences=True).sequences_fetched == 3
    _same_collection(tmp_path / "m", tmp_path / "p", digest)
    handle = _gtars(tmp_path / "m/refget")
    assert handle.get_collection_metadata_by_alias("refgenie", "tiny").digest == digest
    assert handle.get_substring(handle.get_collection_level2(digest)["sequences"][0], 0, 8) == "ACGTACGT"


def test_a_pull_over_http_fetches_the_collection_index_and_each_sequence_only_once(tmp_path: Path) -> None:
    digest = _primary(tmp_path)
    with serve_directory(tmp_path / "pub") as server, Store.open(tmp_path / "m") as mirror:
        pull(mirror, server.url, with_sequences=True)
        paths = server.paths()
    assert f"/refget/collections/{digest}.rgsi" in paths
    seqs = [p for p in paths if p.endswith(".seq")]
    assert len(seqs) == len(set(seqs)) == 3
    _same_collection(tmp_path / "m", tmp_path / "p", digest)


def test_a_lazy_pull_adds_no_collection_and_remove_then_gc_takes_it_like_on_a_primary(tmp_path: Path) -> None:
    digest = _primary(tmp_path)
    with Store.open(tmp_path / "m") as mirror:
        pull(mirror, str(tmp_path / "pub"))
        assert not (tmp_path / f"m/refget/collections/{digest}.rgsi").exists()
        pull(mirror, str(tmp_path / "pub"), with_sequences=True)
        assert (tmp_path / f"m/refget/collections/{digest}.rgsi").exists()
    with Store.open(tmp_path / "p") as primary:
        primary.genomes.remove("tiny")
        publish(primary, tmp_path / "pub")
    with Store.open(tmp_path / "m") as mirror:
        pull(mirror, str(tmp_path / "pub"), with_sequences=True)
        from rgstore.gc import collect_garbage

        assert collect_garbage(mirror, grace=0).collections_removed == [digest]
    assert not list((tmp_path / "m/refget/sequences").glob("*/*.seq"))
    assert _gtars(tmp_path / "m/refget").list_collections()["results"] == []


def test_an_upstream_collection_disagreeing_with_the_log_is_refused_and_not_kept(tmp_path: Path) -> None:
    digest = _primary(tmp_path)
    index = tmp_path / f"pub/refget/collections/{digest}.rgsi"
    index.write_text(index.read_text().replace("chr2\t", "chrX\t"))
    with Store.open(tmp_path / "m") as mirror, pytest.raises(IntegrityError, match="disagrees"):
        pull(mirror, str(tmp_path / "pub"), with_sequences=True)
    assert not (tmp_path / f"m/refget/collections/{digest}.rgsi").exists()


def test_a_follower_asks_an_upstream_that_lacks_a_collection_again_only_after_a_while(tmp_path: Path) -> None:
    import rgstore.mirrorcollections as mirrorcollections

    digest = _primary(tmp_path)
    (tmp_path / f"pub/refget/collections/{digest}.rgsi").unlink()  # an upstream that publishes none (a lazy mirror)
    with serve_directory(tmp_path / "pub") as server, Store.open(tmp_path / "m") as mirror:
        for _ in range(3):  # `serve --follow --with-sequences` pulls every few seconds
            pull(mirror, server.url, with_sequences=True)
        asked = [p for p in server.paths() if p.startswith("/refget/collections/")]
        assert asked == [f"/refget/collections/{digest}.rgsi"]
        mirrorcollections._missed.clear()  # RETRY_AFTER_S later
        pull(mirror, server.url, with_sequences=True)
        assert [p for p in server.paths() if p.startswith("/refget/collections/")] == asked * 2
    assert not (tmp_path / f"m/refget/collections/{digest}.rgsi").exists()


def test_a_pull_with_sequences_under_a_latin1_locale_copies_the_collection_from_a_utf8_named_directory(
    tmp_path: Path,
) -> None:
    import os

    from tests.conftest import run_rgstore
    from tests.locales import latin1_env

    env = latin1_env(tmp_path)
    (tmp_path / "g.fa").write_text(_FASTA)
    published = tmp_path / "pöb"  # UTF-8 bytes on disk; the upstream is recorded as file://.../p%C3%B6b/refget
    with Store.open(tmp_path / "p") as primary:
        digest = primary.genomes.init(tmp_path / "g.fa", ["tiny"]).genome.digest
        publish(primary, published)
        publish_refget(primary, published)
    pulled = run_rgstore("--store", str(tmp_path / "m"), "mirror", "pull", os.fsdecode(bytes(published)),
                         "--with-sequences", env=env)
    assert pulled.returncode == 0, pulled.stderr
    # Unquoted as text and re-encoded as Latin-1, the path named p\xf6b: no collection came, silently.
    _same_collection(tmp_path / "m", tmp_path / "p", digest)
