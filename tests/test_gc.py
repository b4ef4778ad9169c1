"""Claims about `rgstore gc`: it frees only what nothing references, and never young content."""

from __future__ import annotations

from pathlib import Path

from gtars.refget import RefgetStore

from rgstore.gc import collect_garbage
from rgstore.store import Store


def _fasta(path: Path, records: dict[str, str]) -> Path:
    path.write_text("".join(f">{name}\n{seq}\n" for name, seq in records.items()))
    return path


def _collections(store: Store) -> set[str]:
    return {p.stem for p in (store.refget_path / "collections").glob("*.rgsi")}


def test_gc_removes_the_collection_of_a_removed_genome_and_keeps_shared_sequences(tmp_path: Path,
                                                                                   store: Store) -> None:
    shared = "ACGTACGTAAAACCCCGGGGTTTT"
    a = store.genomes.init(_fasta(tmp_path / "a.fa", {"c1": shared, "c2": "TTTTGGGGAAAA"}), ["a"])
    b = store.genomes.init(_fasta(tmp_path / "b.fa", {"c1": shared, "x": "GATTACAGATTACA"}), ["b"])
    a_digest, b_digest = store.genomes.resolve("a"), store.genomes.resolve("b")
    only_b = store.genomes.show("b").sequences[1].removeprefix("SQ.")
    only_b_file = store.refget_path / "sequences" / only_b[:2] / f"{only_b}.seq"
    assert only_b_file.is_file()
    assert (a, b) and {a_digest, b_digest} <= _collections(store)
    store.genomes.remove("b")
    # Young content is kept: it may belong to a command that has not committed yet.
    assert collect_garbage(store).collections_kept_recent == [b_digest]
    assert collect_garbage(store, grace=0, dry_run=True).collections_removed == [b_digest]
    assert b_digest in _collections(store)
    report = collect_garbage(store, grace=0)
    assert report.collections_removed == [b_digest]
    assert _collections(store) == {a_digest}
    assert not only_b_file.exists()  # its own sequence went with it
    # The remaining genome reads as before, the shared sequence included, and gtars agrees.
    assert store.getseq("a", "c1", 0, 24) == shared
    handle = RefgetStore.open_local(str(store.refget_path))
    assert handle.list_collections()["pagination"]["total"] == 1
    assert store.verify().ok


def test_gc_keeps_every_collection_a_genome_names(tmp_path: Path, store: Store) -> None:
    store.genomes.init(_fasta(tmp_path / "a.fa", {"c1": "ACGTACGT"}), ["a"])
    assert collect_garbage(store, grace=0).collections_removed == []
    assert store.getseq("a", "c1", 0, 8) == "ACGTACGT"


def test_a_grace_that_is_not_a_number_of_seconds_is_refused_and_removes_nothing(store: Store) -> None:
    import pytest

    from rgstore.errors import InvalidInputError

    info, _ = store.blobs.put_bytes(b"written by a command that has not committed yet")
    for grace in (float("nan"), -1.0):
        with pytest.raises(InvalidInputError, match="grace"):
            collect_garbage(store, grace=grace)
    assert store.blobs.exists(info.sha256)
    assert collect_garbage(store, grace=float("inf")).kept_recent == [info.sha256]


def test_gc_keeps_blobs_only_the_undo_and_redo_history_references(tmp_path: Path, store: Store) -> None:
    first = _fasta(tmp_path / "a.fa", {"s1": "ACGT"})
    second = _fasta(tmp_path / "b.fa", {"s1": "GGCC"})
    store.refpkgs.create("p", locus="16S", files=[("aln_fasta", first)])
    store.refpkgs.update_files("p", [("aln_fasta", str(second))])
    store.refpkgs.rollback("p")  # `second` is now only on the redo side
    assert collect_garbage(store, grace=0).removed == []
    store.refpkgs.rollforward("p")
    assert store.refpkgs.resource_path("p", "aln_fasta").read_text() == second.read_text()
    store.refpkgs.strip("p")  # history dropped: `first` is referenced by nothing
    removed = collect_garbage(store, grace=0).removed
    assert len(removed) == 1 and store.verify().ok
