"""Genome undo/redo: a removal comes back with every alias it took, FHR steps switch back, in one command each.

Real store, real LMDB, real gtars; through the Python API and the CLI. A change that the undo or redo would
clobber (an alias re-pointed since, a genome named anew) is refused and writes nothing; rebuilt views equal
the incremental ones.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import pytest

from rgstore.errors import ConflictError, NotFoundError, NothingToRedoError, NothingToUndoError
from rgstore.events import Envelope, GenomeAdded, GenomeRemoved, Redone, Undone
from rgstore.gc import collect_garbage
from rgstore.log import EventLog, NewEvent
from rgstore.store import Store
from rgstore.verify import verify_store, view_digests
from rgstore.views import FoldContext
from rgstore.views.genomes import genome_stream
from rgstore.views.history import HistoryView

TINY = Path(str(resources.files("rgstore") / "data" / "tiny.fa"))
FHR = {"schemaVersion": 1, "genome": "Tinyus testus", "version": "1"}


def _head(store: Store) -> int:
    with store.read() as txn:
        return store.log.head(txn)[0]


def _other(tmp_path: Path, store: Store, name: str = "other") -> str:
    fasta = tmp_path / f"{name}.fa"
    fasta.write_text(">a\nACGTACGT\n")
    return store.genomes.init(fasta, [name]).genome.digest


def test_undoing_a_removal_brings_back_the_genome_and_every_alias_in_one_command(store: Store) -> None:
    made = store.genomes.init(TINY, ["tiny", "ncbi:tiny-v1", "ucsc:t"]).genome
    seq_name = made.names[0]
    bases = store.genomes.getseq("tiny", seq_name)
    removal = store.genomes.remove_genome("tiny")
    with pytest.raises(NotFoundError):
        store.genomes.show("tiny")

    move = store.genomes.undo(made.digest, by_digest=True)

    assert (move.action, move.step, move.step_seq, move.present) == ("undo", "genome-removed", removal.seqs[0], True)
    assert sorted(move.aliases) == sorted(removal.aliases)
    events = list(store.events(after=removal.seqs[-1]))
    assert [(type(e.event), e.stream) for e in events] == [
        (Undone, genome_stream(made.digest)),
        *[(Undone, f"alias:{a.replace(':', '/')}") for a in removal.aliases]]
    shown = store.genomes.show("tiny")
    assert (shown.digest, sorted(shown.aliases), shown.added_seq) == (
        made.digest, sorted(made.aliases), made.added_seq)
    assert store.genomes.getseq("ncbi:tiny-v1", seq_name) == bases
    assert store.getseq("tiny", seq_name, 0, 4) == bases[:4]


def test_redo_removes_the_genome_and_its_aliases_again(store: Store) -> None:
    digest = store.genomes.init(TINY, ["tiny", "ncbi:tiny-v1"]).genome.digest
    store.genomes.remove("tiny")
    store.genomes.undo(digest, by_digest=True)

    move = store.genomes.redo("tiny")

    assert (move.action, move.present, sorted(move.aliases)) == ("redo", False, ["ncbi:tiny-v1", "refgenie:tiny"])
    assert [type(e.event) for e in store.events(after=move.seqs[0] - 1)] == [Redone, Redone, Redone]
    assert store.genomes.list() == []
    assert store.aliases.list() == []
    with pytest.raises(NothingToRedoError, match="nothing to redo"):
        store.genomes.redo(digest, by_digest=True)
    assert store.genomes.undo(digest, by_digest=True).present  # and back once more
    assert store.genomes.show("ncbi:tiny-v1").digest == digest


def test_undoing_fhr_set_restores_the_previous_document_and_redo_reapplies_it(store: Store) -> None:
    digest = store.genomes.init(TINY, ["tiny"], fhr=FHR).genome.digest
    store.genomes.fhr_set("tiny", {**FHR, "version": "2"})
    fhr_file = store.refget_path / "fhr" / f"{digest}.fhr.json"

    move = store.genomes.undo("tiny")

    assert (move.step, move.aliases, move.present) == ("fhr-set", [], True)
    assert store.genomes.fhr_get("tiny") == FHR
    assert json.loads(fhr_file.read_text()) == FHR  # gtars' copy follows
    store.genomes.undo("tiny")
    with pytest.raises(NotFoundError, match="no FHR metadata"):
        store.genomes.fhr_get("tiny")
    assert not fhr_file.exists()
    with pytest.raises(NothingToUndoError, match="genome remove"):  # an init is not undone here
        store.genomes.undo("tiny")
    store.genomes.redo("tiny")
    store.genomes.redo("tiny")
    assert store.genomes.fhr_get("tiny")["version"] == "2"


def test_a_new_change_discards_what_could_be_redone(store: Store) -> None:
    store.genomes.init(TINY, ["tiny"], fhr=FHR)
    store.genomes.fhr_set("tiny", {**FHR, "version": "2"})
    store.genomes.undo("tiny")
    store.genomes.fhr_set("tiny", {**FHR, "version": "3"})

    with pytest.raises(NothingToRedoError, match=r"genome tiny \(.*\) has nothing to redo"):
        store.genomes.redo("tiny")
    assert store.genomes.fhr_get("tiny")["version"] == "3"


def test_undoing_a_removal_after_one_of_its_aliases_was_repointed_is_refused_and_changes_nothing(
        store: Store, tmp_path: Path) -> None:
    digest = store.genomes.init(TINY, ["tiny", "ncbi:t"]).genome.digest
    store.genomes.remove("tiny")
    other = _other(tmp_path, store)
    store.aliases.set("ncbi:t", other)  # the name is free after the removal: another genome takes it
    head, views = _head(store), view_digests(store)

    with pytest.raises(ConflictError, match=f"alias ncbi:t changed since genome {digest} was removed "
                                            f"\\(it now names {other}\\); undo refused, nothing changed"):
        store.genomes.undo(digest, by_digest=True)

    assert (_head(store), view_digests(store)) == (head, views)
    assert store.aliases.get("ncbi:t") == other


def test_redo_is_refused_when_a_new_alias_names_the_genome_since_the_undo(store: Store) -> None:
    digest = store.genomes.init(TINY, ["tiny"]).genome.digest
    store.genomes.remove("tiny")
    store.genomes.undo(digest, by_digest=True)
    store.aliases.set("ucsc:t", digest)  # a removal must take it too: redo alone would leave it dangling
    head = _head(store)

    with pytest.raises(ConflictError, match="alias ucsc:t has named genome .* since its removal was undone"):
        store.genomes.redo("tiny")
    assert _head(store) == head
    assert store.genomes.show("ucsc:t").digest == digest


def test_undoing_a_removal_whose_sequences_gc_deleted_is_refused(store: Store) -> None:
    digest = store.genomes.init(TINY, ["tiny"]).genome.digest
    store.genomes.remove("tiny")
    assert collect_garbage(store, grace=0).collections_removed == [digest]
    head = _head(store)

    with pytest.raises(NotFoundError, match="collection index and all 3 of its sequences were deleted from the "
                                            "RefgetStore since its removal"):
        store.genomes.undo(digest, by_digest=True)
    assert _head(store) == head


def test_undoing_a_removal_whose_index_alone_gc_deleted_says_its_sequences_are_still_stored(
    tmp_path: Path, store: Store,
) -> None:
    # The same sequences under other names: gc deletes the removed genome's collection index but keeps the
    # sequences the other genome shares. The refusal said "genome X's sequences were deleted" regardless.
    renamed = tmp_path / "renamed.fa"
    renamed.write_text(TINY.read_text().replace(">chr", ">seq"))
    kept = store.genomes.init(TINY, ["tiny"]).genome
    digest = store.genomes.init(renamed, ["renamed"]).genome.digest
    store.genomes.remove("renamed")
    assert collect_garbage(store, grace=0).collections_removed == [digest]
    head = _head(store)

    with pytest.raises(NotFoundError) as refused:
        store.genomes.undo(digest, by_digest=True)
    assert str(refused.value) == (
        f"genome {digest}'s collection index was deleted from the RefgetStore since its removal (`rgstore gc`); "
        f"all {len(kept.sequences)} of its sequences are still stored (another genome shares them); "
        "add it again with `rgstore genome init`")
    assert _head(store) == head


def test_an_init_after_a_removal_starts_the_genomes_history_afresh(store: Store) -> None:
    digest = store.genomes.init(TINY, ["tiny"], fhr=FHR).genome.digest
    store.genomes.remove("tiny")
    store.genomes.init(TINY, ["tiny"])

    with pytest.raises(NothingToUndoError):  # neither the removal nor the old FHR step is reachable
        store.genomes.undo("tiny")
    assert [type(e.event) for e in store.events(stream=genome_stream(digest))].count(GenomeRemoved) == 1


def test_unknown_names_say_which_removed_genome_had_them_and_unknown_digests_are_refused(store: Store) -> None:
    digest = store.genomes.init(TINY, ["tiny"]).genome.digest
    store.genomes.remove("tiny")
    with pytest.raises(NotFoundError, match=f"genome {digest}, once named refgenie:tiny, was removed; .*"
                                            f"`rgstore genome undo --digest {digest}`"):
        store.genomes.undo("tiny")
    with pytest.raises(NotFoundError, match="no genome named 'nope'"):
        store.genomes.undo("nope")
    with pytest.raises(NotFoundError, match="stored or removed"):
        store.genomes.redo("A" * 32, by_digest=True)


def test_a_bare_name_of_a_removed_genome_never_undoes_the_genome_another_namespace_gives_that_name(
        store: Store, tmp_path: Path) -> None:
    digest = store.genomes.init(TINY, ["hg38"]).genome.digest
    fasta = tmp_path / "other.fa"
    fasta.write_text(">a\nACGTACGT\n")
    other = store.genomes.init(fasta, ["ucsc:hg38"], fhr=FHR).genome.digest
    store.genomes.remove("hg38")
    head = _head(store)

    with pytest.raises(NotFoundError, match=f"`rgstore genome undo --digest {digest}`; another namespace"):
        store.genomes.undo("hg38")  # bare hg38 now resolves to ucsc:hg38: its FHR set is not what was meant
    with pytest.raises(NotFoundError, match=f"--digest {digest}"):
        store.genomes.redo("hg38")

    assert _head(store) == head
    assert store.genomes.fhr_get("ucsc:hg38", by_digest=False) == FHR
    assert store.genomes.undo("ucsc:hg38").digest == other  # named in full, it is that genome's undo
    assert store.genomes.undo(digest, by_digest=True).present
    assert store.genomes.show("hg38").digest == digest


def test_rebuilt_views_equal_the_incremental_ones_after_undo_and_redo_and_verify_passes(
        store: Store, tmp_path: Path) -> None:
    digest = store.genomes.init(TINY, ["tiny", "ncbi:t"], fhr=FHR).genome.digest
    store.genomes.fhr_set("tiny", {**FHR, "version": "2"})
    store.genomes.remove("tiny")
    store.genomes.undo(digest, by_digest=True)
    store.genomes.undo("tiny")  # the FHR step below the removal
    store.genomes.redo("tiny")
    store.genomes.redo("tiny")  # removed again
    store.genomes.undo(digest, by_digest=True)
    _other(tmp_path, store)
    before = view_digests(store)

    store.rebuild()

    assert view_digests(store) == before
    assert store.genomes.fhr_get("ncbi:t")["version"] == "2"
    report = verify_store(store)
    assert report.ok, report.problems


class _PreviousHistory(HistoryView):
    """The history view of the release before genome undo: GenomeAdded and GenomeRemoved were not its steps."""

    def apply(self, ctx: FoldContext, envelope: Envelope) -> None:
        if not isinstance(envelope.event, (GenomeAdded, GenomeRemoved)):
            super().apply(ctx, envelope)

    def apply_batch(self, ctx: FoldContext, envelopes: Sequence[Envelope]) -> None:
        super().apply_batch(ctx, [e for e in envelopes if not isinstance(e.event, (GenomeAdded, GenomeRemoved))])


def test_a_log_whose_previous_release_undid_an_fhr_step_after_a_reinit_rebuilds_and_verifies(store: Store) -> None:
    # That release's zipper kept FHR steps across a removal and re-init, so its FHR undo after a re-init
    # popped the step before the removal. History v2 empties the stack at GenomeAdded: the one-time
    # rebuild on upgrade met an Undone with nothing to move, and every open failed (struct.error).
    digest = store.genomes.init(TINY, ["tiny"], fhr=FHR).genome.digest
    first = list(store.events(stream=genome_stream(digest)))
    added, fhr_seq = first[0].event, first[-1].seq
    previous = EventLog(store.environment, [_PreviousHistory() if isinstance(view, HistoryView) else view
                                            for view in store.views])
    store.environment.write(lambda txn: previous.append(txn, [
        NewEvent(stream=genome_stream(digest), event=GenomeRemoved(digest=digest)),
        NewEvent(stream=genome_stream(digest), event=added),
        NewEvent(stream=genome_stream(digest), event=Undone()),
        NewEvent(stream=genome_stream(digest), event=Redone()),
        NewEvent(stream=genome_stream(digest), event=Undone()),
    ], "old@lab"))
    assert [e.event for e in store.events(stream=genome_stream(digest))][-3:] == [
        Undone(undone_seq=fhr_seq), Redone(redone_seq=fhr_seq), Undone(undone_seq=fhr_seq)]  # the first init's FHR

    store.rebuild()  # as the upgrade to history v2 does

    assert store.genomes.show("tiny").fhr is None
    with pytest.raises(NothingToUndoError):
        store.genomes.undo("tiny")
    report = verify_store(store)
    assert report.ok, report.problems


def test_a_served_catalog_sees_a_genome_come_back_and_go_again(store: Store) -> None:
    from rgstore_api.catalog import GenomeCatalog

    digest = store.genomes.init(TINY, ["tiny"]).genome.digest
    catalog = GenomeCatalog(store)
    store.genomes.remove("tiny")
    with store.read() as txn:
        assert catalog.snapshot(txn).digests == []
    store.genomes.undo(digest, by_digest=True)
    with store.read() as txn:
        assert catalog.snapshot(txn).digests == [digest]  # updated from the log, not rebuilt
    store.genomes.redo(digest, by_digest=True)
    with store.read() as txn:
        assert catalog.snapshot(txn).digests == []
    assert catalog.builds == 1


def test_cli_undo_and_redo_of_a_removal_with_json_and_one_line_errors(cli) -> None:  # type: ignore[no-untyped-def]
    made = json.loads(cli("genome", "init", "--fasta", str(TINY), "--name", "tiny", "--name", "ncbi:t",
                          "--json").output)
    digest = made["genome"]["digest"]
    assert cli("genome", "remove", "tiny").exit_code == 0

    refused = cli("genome", "undo", "tiny")
    assert refused.exit_code != 0
    assert refused.stderr.count("\n") == 1 and f"--digest {digest}" in refused.stderr

    undone = cli("genome", "undo", "--digest", digest, "--json")
    assert undone.exit_code == 0, undone.output
    out = json.loads(undone.stdout)
    assert (out["action"], out["step"], out["present"], sorted(out["aliases"])) == (
        "undo", "genome-removed", True, ["ncbi:t", "refgenie:tiny"])
    assert cli("getseq", "tiny", "chr1:0-5").stdout.strip() == "ATTTG"

    redone = cli("genome", "redo", "tiny")
    assert redone.exit_code == 0
    assert redone.stdout == f"redid the removal of genome {digest} (seq {out['step_seq']}) (2 aliases removed)\n"
    nothing = cli("genome", "redo", "--digest", digest)
    assert nothing.exit_code != 0 and nothing.stderr == f"error: genome {digest} has nothing to redo\n"
    assert cli("rebuild").exit_code == 0
    assert cli("verify").exit_code == 0


def test_cli_undo_of_fhr_set(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    doc = tmp_path / "fhr.json"
    doc.write_text(json.dumps(FHR))
    cli("genome", "init", "--fasta", str(TINY), "--name", "tiny")
    assert cli("genome", "fhr", "set", "tiny", str(doc)).exit_code == 0
    undone = cli("genome", "undo", "tiny")
    assert undone.exit_code == 0 and undone.stdout.startswith("undid the FHR document set of genome ")
    assert cli("genome", "fhr", "get", "tiny").exit_code != 0
    log = [json.loads(line)["type"] for line in cli("log", "--json").stdout.splitlines()]
    assert log[-2:] == ["fhr-set", "undone"]
