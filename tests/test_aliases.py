"""Claims about aliases: no silent repointing, the undo/redo laws, history, sequence aliases,
and the RefgetStore alias files that gtars itself reads."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rgstore.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    NothingToRedoError,
    NothingToUndoError,
)
from rgstore.events import AliasSet, Noted, SequenceAliasSet
from rgstore.log import NewEvent
from rgstore.refgetstore import ingest_fasta
from rgstore.store import Store
from rgstore.verify import view_digests
from rgstore.views import FoldContext
from rgstore.views.aliases import AliasView

Digests = dict[str, str]
Template = tuple[Path, Digests]

FASTAS = {
    "a": ">chr1\nACGTACGTNN\n>chr2\nGGGAAATTTC\n",
    "b": ">x\nACGTTT\n",
    "c": ">chrM\nTTTTGGGGCCCCAAAA\n",
}


def add_genome(store: Store, tmp_path: Path, key: str) -> str:
    """Add one small genome through `genome init`, then drop its name so tests start alias-free."""
    path = tmp_path / f"{key}.fa"
    path.write_text(FASTAS[key])
    digest = store.genomes.init(path, [f"fixture-{key}"]).genome.digest
    store.aliases.remove(f"fixture-{key}")
    return digest


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    """A closed store holding the three genomes, copied by tests that need many fresh stores."""
    root = tmp_path_factory.mktemp("template")
    with Store.open(root / "store") as store:
        digests = {key: add_genome(store, root, key) for key in FASTAS}
    return root / "store", digests


@pytest.fixture
def store(template: Template, store_path: Path) -> Iterator[Store]:
    """A fresh copy of the template store (three genomes, no aliases)."""
    shutil.copytree(template[0], store_path)
    with Store.open(store_path, actor="tester@test") as s:
        yield s


@pytest.fixture
def genomes(template: Template) -> dict[str, str]:
    return template[1]


def tsv(store: Store, kind: str, namespace: str) -> str:
    return (store.refget_path / "aliases" / kind / f"{namespace}.tsv").read_text()


def alias_files(store: Store) -> list[tuple[str, bytes]]:
    return sorted((str(p), p.read_bytes()) for p in (store.refget_path / "aliases").rglob("*.tsv"))


def manifest(store: Store) -> dict[str, object]:
    data: dict[str, object] = json.loads((store.refget_path / "rgstore.json").read_text())
    return data


def open_gtars(store: Store):  # type: ignore[no-untyped-def]
    from gtars.refget import RefgetStore

    handle = RefgetStore.open_local(str(store.refget_path))
    handle.set_quiet(True)
    return handle


# -- set / get / remove ---------------------------------------------------------------------------


def test_set_points_an_alias_and_get_resolves_it(store: Store, genomes: Digests) -> None:
    change = store.aliases.set("hg38", genomes["a"])
    assert (change.namespace, change.name, change.previous) == ("refgenie", "hg38", None)
    assert change.digest == genomes["a"]
    assert change.seq > 0
    assert store.aliases.get("hg38") == genomes["a"]
    assert store.aliases.get("refgenie:hg38") == genomes["a"]
    assert store.aliases.get("hg38", namespace="refgenie") == genomes["a"]


def test_an_empty_namespace_is_invalid_not_the_default_one(store: Store, genomes: Digests) -> None:
    # namespace="" (an unset variable passed on) read the refgenie alias, and set wrote one.
    store.aliases.set("hg38", genomes["a"])
    head = store.head()
    for call in (lambda: store.aliases.get("hg38", namespace=""), lambda: store.aliases.get("refgenie:hg38", namespace=""),
                 lambda: store.aliases.set("hg39", genomes["a"], namespace=""),
                 lambda: store.aliases.remove("hg38", namespace=""), lambda: store.aliases.history("hg38", namespace=""),
                 lambda: store.aliases.undo("hg38", namespace="")):
        with pytest.raises(InvalidInputError, match="invalid alias namespace ''"):
            call()
    assert store.head() == head and store.aliases.get("hg38") == genomes["a"]


def test_an_overlong_alias_name_is_echoed_cut_in_the_middle_with_its_length(store: Store) -> None:
    # It was quoted as its first 80 characters, unmarked: a valid name, shown as the invalid one.
    with pytest.raises(InvalidInputError) as caught:
        store.aliases.get("a" * 299 + "Z")
    text = str(caught.value)
    assert "characters left out" in text and "aZ' (300 characters)" in text, text


def test_setting_the_same_target_again_appends_nothing(store: Store, genomes: Digests) -> None:
    store.aliases.set("hg38", genomes["a"])
    head = store.head()
    again = store.aliases.set("hg38", genomes["a"])
    assert again.seq == 0
    assert store.head() == head


def test_repointing_without_force_is_refused_and_writes_nothing(store: Store, genomes: Digests) -> None:
    store.aliases.set("hg38", genomes["a"])
    head = store.head()
    with pytest.raises(ConflictError, match="--force"):
        store.aliases.set("hg38", genomes["b"])
    assert store.head() == head
    assert store.aliases.get("hg38") == genomes["a"]


def test_force_repoints_and_the_old_target_stays_in_history(store: Store, genomes: Digests) -> None:
    store.aliases.set("hg38", genomes["a"])
    change = store.aliases.set("hg38", genomes["b"], force=True)
    assert (change.previous, change.digest) == (genomes["a"], genomes["b"])
    assert store.aliases.get("hg38") == genomes["b"]
    steps = store.aliases.history("hg38")
    assert [(s.action, s.digest, s.state) for s in steps] == [
        ("alias-set", genomes["a"], "done"),
        ("alias-set", genomes["b"], "current"),
    ]
    assert all(s.actor == "tester@test" for s in steps)


def test_an_alias_to_a_digest_that_is_not_a_genome_is_refused(store: Store, genomes: Digests) -> None:
    head = store.head()
    with pytest.raises(NotFoundError, match="no genome"):
        store.aliases.set("hg38", "A" * 32)
    assert store.head() == head


@pytest.mark.parametrize(
    ("name", "digest"),
    [
        ("bad name", "A" * 32),
        ("ns:", "A" * 32),
        ("-x", "A" * 32),
        ("a/b", "A" * 32),
        ("bad ns:x", "A" * 32),
        ("hg38", "tooshort"),
        ("hg38", "A" * 31 + "!"),
    ],
)
def test_malformed_names_and_digests_are_refused(store: Store, name: str, digest: str) -> None:
    head = store.head()
    with pytest.raises(InvalidInputError):
        store.aliases.set(name, digest)
    assert store.head() == head


def test_a_name_starting_with_a_non_ascii_letter_is_refused_saying_ascii(store: Store, genomes: Digests) -> None:
    with pytest.raises(InvalidInputError, match="starting with an ASCII letter"):
        store.aliases.set("\u00fcber", genomes["a"])
    assert store.aliases.set("x\u00fcber", genomes["a"]).digest == genomes["a"]  # non-ASCII later is fine


@pytest.mark.parametrize("name", [".", "..", "ucsc:.."])
def test_a_dot_segment_is_refused_as_a_new_alias_name(
    store: Store, genomes: Digests, tmp_path: Path, name: str
) -> None:
    """HTTP clients drop dot-segments: GET /v4/aliases/. answered the alias listing with 200."""
    head = store.head()
    with pytest.raises(InvalidInputError, match="path segments"):
        store.aliases.set(name, genomes["a"])
    fasta = tmp_path / "a.fa"
    fasta.write_text(FASTAS["a"])
    with pytest.raises(InvalidInputError, match="path segments"):
        store.genomes.init(fasta, [name])
    assert store.head() == head
    assert store.aliases.set("..x", genomes["a"]).name == "..x"  # only the bare segments


@pytest.mark.parametrize("invisible", ["\u200b", "\u202e", "\u00ad", "\x9b"])
def test_a_name_holding_an_invisible_character_is_refused_as_an_alias_name(
    store: Store, genomes: Digests, tmp_path: Path, invisible: str
) -> None:
    head = store.head()
    with pytest.raises(InvalidInputError, match="invalid alias name .*printable"):
        store.aliases.set(f"x{invisible}y", genomes["a"])
    # A FASTA header token is checked the same way: init names the token, not an internal stream.
    fasta = tmp_path / "z.fa"
    fasta.write_text(f">c1 insdc:X{invisible}Y.1\nACGTAAAAAAA\n")
    with pytest.raises(InvalidInputError, match="header token .*invalid alias name"):
        store.genomes.init(fasta, ["z"], seq_namespace="insdc")
    assert store.head() == head


def test_a_prefix_and_a_conflicting_namespace_option_are_refused(store: Store, genomes: Digests) -> None:
    with pytest.raises(InvalidInputError, match="--namespace"):
        store.aliases.set("ucsc:hg38", genomes["a"], namespace="ensembl")
    store.aliases.set("hg38", genomes["a"], namespace="ucsc")
    assert store.aliases.get("ucsc:hg38") == genomes["a"]
    with pytest.raises(NotFoundError):
        store.aliases.get("hg38")


def test_remove_deletes_the_alias_and_unknown_aliases_are_not_found(store: Store, genomes: Digests) -> None:
    store.aliases.set("hg38", genomes["a"])
    change = store.aliases.remove("hg38")
    assert (change.previous, change.digest) == (genomes["a"], None)
    with pytest.raises(NotFoundError, match="refgenie:hg38"):
        store.aliases.get("hg38")
    with pytest.raises(NotFoundError):
        store.aliases.remove("hg38")
    assert store.aliases.list() == []


# -- undo / redo ------------------------------------------------------------------------------------


def test_undo_returns_to_the_previous_target_and_redo_comes_back(store: Store, genomes: Digests) -> None:
    store.aliases.set("hg38", genomes["a"])
    store.aliases.set("hg38", genomes["b"], force=True)
    assert store.aliases.undo("hg38").digest == genomes["a"]
    assert store.aliases.get("hg38") == genomes["a"]
    assert store.aliases.undo("hg38").digest is None
    with pytest.raises(NotFoundError):
        store.aliases.get("hg38")
    with pytest.raises(NothingToUndoError):
        store.aliases.undo("hg38")
    assert store.aliases.redo("hg38").digest == genomes["a"]
    assert store.aliases.redo("hg38").digest == genomes["b"]
    with pytest.raises(NothingToRedoError):
        store.aliases.redo("hg38")


def test_undo_of_a_remove_brings_the_alias_back(store: Store, genomes: Digests) -> None:
    store.aliases.set("hg38", genomes["a"])
    store.aliases.remove("hg38")
    store.aliases.undo("hg38")
    assert store.aliases.get("hg38") == genomes["a"]


def test_a_new_step_after_undo_discards_the_redo(store: Store, genomes: Digests) -> None:
    store.aliases.set("hg38", genomes["a"])
    store.aliases.set("hg38", genomes["b"], force=True)
    store.aliases.undo("hg38")
    store.aliases.remove("hg38")
    with pytest.raises(NothingToRedoError):
        store.aliases.redo("hg38")
    states = [(s.action, s.state) for s in store.aliases.history("hg38")]
    assert states == [
        ("alias-set", "done"), ("alias-set", "discarded"), ("undone", ""), ("alias-removed", "current"),
    ]


def test_undo_refuses_to_bring_back_an_alias_of_a_removed_genome(store: Store, genomes: Digests) -> None:
    store.aliases.set("hg38", genomes["a"])
    store.genomes.remove("hg38")  # removes the genome and, in the same command, its aliases
    assert not (store.refget_path / "aliases" / "collections" / "refgenie.tsv").exists()
    head = store.head()
    with pytest.raises(NotFoundError, match="undo of refgenie:hg38"):
        store.aliases.undo("hg38")
    assert store.head() == head


def test_undo_refuses_to_bring_back_a_sequence_alias_whose_sequence_gc_deleted(store: Store, genomes: Digests) -> None:
    from rgstore.gc import collect_garbage

    only_b = store.genomes.show(genomes["b"], by_digest=True).sequences[0].removeprefix("SQ.")
    store.aliases.set("insdc:X1", only_b, sequence=True)
    store.aliases.remove("insdc:X1", sequence=True)
    store.genomes.remove(genomes["b"], by_digest=True)
    collect_garbage(store, grace=0)  # no genome lists it and no alias names it: its file goes
    head = store.head()
    with pytest.raises(NotFoundError, match="undo of insdc:X1"):
        store.aliases.undo("insdc:X1", sequence=True)
    assert store.head() == head
    # gtars opened on STORE/refget agrees: no alias name left that resolves to nothing.
    assert "X1" not in (open_gtars(store).list_sequence_aliases("insdc") or [])


def test_an_unrelated_undoable_event_on_an_alias_stream_keeps_the_target(
    store: Store, genomes: Digests
) -> None:
    store.aliases.set("hg38", genomes["a"])
    store.append([NewEvent(stream="alias:refgenie/hg38", event=Noted(text="audited"))])
    assert store.aliases.get("hg38") == genomes["a"]
    store.aliases.undo("hg38")  # takes back the note: the target stays
    assert store.aliases.get("hg38") == genomes["a"]
    store.aliases.undo("hg38")
    with pytest.raises(NotFoundError):
        store.aliases.get("hg38")


OPS = st.lists(
    st.tuples(st.sampled_from(["set", "force", "remove", "undo", "redo"]), st.sampled_from(["a", "b", "c"])),
    max_size=14,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_aliases_follow_the_zipper_model_and_rebuild_to_identical_views(
    tmp_path_factory: pytest.TempPathFactory, template: Template, ops: list[tuple[str, str]]
) -> None:
    root = tmp_path_factory.mktemp("zipper")
    shutil.copytree(template[0], root / "store")
    digests = template[1]
    with Store.open(root / "store", actor="tester@test") as store:
        done: list[str | None] = []  # the model: targets of the done steps, current last
        undone: list[str | None] = []
        for op, key in ops:
            current = done[-1] if done else None
            try:
                if op in ("set", "force"):
                    store.aliases.set("g", digests[key], force=op == "force")
                    assert op == "force" or current in (None, digests[key])
                    if current != digests[key]:
                        done.append(digests[key])
                        undone.clear()
                elif op == "remove":
                    store.aliases.remove("g")
                    assert current is not None
                    done.append(None)
                    undone.clear()
                elif op == "undo":
                    store.aliases.undo("g")
                    undone.append(done.pop())
                else:
                    store.aliases.redo("g")
                    done.append(undone.pop())
            except (ConflictError, NotFoundError) as exc:
                expected_refusal = (
                    (op == "set" and current not in (None, digests[key]))
                    or (op == "remove" and current is None)
                    or (op == "undo" and not done)
                    or (op == "redo" and not undone)
                )
                assert expected_refusal, f"{op} {key} refused unexpectedly: {exc}"
            expected = done[-1] if done else None
            got = [e.digest for e in store.aliases.list()]
            assert got == ([expected] if expected else [])
        before = view_digests(store)
        files = alias_files(store)
        store.rebuild()
        assert view_digests(store) == before
        assert alias_files(store) == files


def alias_view_bytes(store: Store) -> list[tuple[str, bytes, bytes]]:
    view = next(v for v in store.views if isinstance(v, AliasView))
    with store.read() as txn:
        return list(view.contents(txn, store.environment))


def refold_aliases_in_batches(store: Store, size: int) -> list[tuple[str, bytes, bytes]]:
    """Empty the alias view, fold the whole log back into it ``size`` events per batch, return its bytes."""
    view = next(v for v in store.views if isinstance(v, AliasView))

    def run(txn):  # type: ignore[no-untyped-def]
        view.clear(txn, store.environment)
        head, _ = store.log.head(txn)
        ctx = FoldContext(txn, store.environment)
        for start in range(0, head, size):
            store.log.fold_batch(ctx, store.log.envelope_list(txn, start, min(start + size, head)), [view])

    store.environment.write(run)
    return alias_view_bytes(store)


def test_set_undo_redo_remove_on_one_alias_fold_in_batches_to_the_bytes_of_one_event_commands(
    store: Store, genomes: Digests
) -> None:
    a, b, c = genomes["a"], genomes["b"], genomes["c"]
    chr1, chr2 = open_gtars(store).get_collection_level2(a)["sequences"]
    aliases = store.aliases
    aliases.set("hg38", a)
    aliases.set("hg38", b, force=True)
    aliases.undo("hg38")
    aliases.undo("hg38")
    aliases.redo("hg38")
    aliases.remove("hg38")
    aliases.undo("hg38")  # back to a, from the snapshot of an earlier event
    aliases.redo("hg38")
    aliases.undo("hg38")
    aliases.set("hg38", c, force=True)
    aliases.set("mm10", b)
    aliases.remove("mm10")
    aliases.undo("mm10")
    aliases.set("insdc:C", chr1, sequence=True)  # sequence digests often hold '-' or '_'
    aliases.set("insdc:C", chr2, sequence=True, force=True)
    aliases.undo("insdc:C", sequence=True)
    aliases.redo("insdc:C", sequence=True)
    # Raw appends the service never writes: a note, a sequence event on a collection stream,
    # a malformed digest. Each gets a snapshot and leaves the target where it was.
    stream = "alias:refgenie/hg38"
    store.append([NewEvent(stream=stream, event=Noted(text="audited"))])
    store.append([NewEvent(stream=stream, event=SequenceAliasSet(namespace="refgenie", name="hg38", digest=chr1[3:]))])
    store.append([NewEvent(stream=stream, event=AliasSet(namespace="refgenie", name="hg38", digest="x" * 31 + "!"))])
    incremental = alias_view_bytes(store)
    ours = [row for row in incremental if row[0] == "aliases.snapshots" and b"fixture-" not in row[1]]
    assert len(ours) == 20  # one per event on these aliases' streams (the template's aliases aside)
    assert (aliases.get("hg38"), aliases.get("mm10"), aliases.get("insdc:C", sequence=True)) == (c, b, chr2[3:])

    for size in (1, 2, 3, 7, 1000):
        assert refold_aliases_in_batches(store, size) == incremental, f"batches of {size}"
    store.rebuild([next(v for v in store.views if isinstance(v, AliasView))])
    assert alias_view_bytes(store) == incremental


# -- listing and history ------------------------------------------------------------------------------


def test_list_filters_by_namespace_and_by_digest(store: Store, genomes: Digests) -> None:
    store.aliases.set("hg38", genomes["a"])
    store.aliases.set("ucsc:hg38", genomes["a"])
    store.aliases.set("ucsc:tiny", genomes["b"])
    assert [(e.namespace, e.name) for e in store.aliases.list()] == [
        ("refgenie", "hg38"), ("ucsc", "hg38"), ("ucsc", "tiny"),
    ]
    assert [e.name for e in store.aliases.list(namespace="ucsc")] == ["hg38", "tiny"]
    assert [(e.namespace, e.name) for e in store.aliases.list(digest=genomes["a"])] == [
        ("refgenie", "hg38"), ("ucsc", "hg38"),
    ]
    assert [e.name for e in store.aliases.list(digest=genomes["a"], namespace="ucsc")] == ["hg38"]
    assert all(e.seq > 0 for e in store.aliases.list(digest=genomes["a"]))


def test_history_of_an_alias_that_never_existed_is_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError, match="no history"):
        store.aliases.history("nothing")


# -- sequence aliases -----------------------------------------------------------------------------------


def test_sequence_aliases_accept_sq_prefixed_and_md5_digests(store: Store, genomes: Digests) -> None:
    handle = open_gtars(store)
    level2 = handle.get_collection_level2(genomes["a"])
    chr1 = level2["sequences"][0]
    md5 = handle.get_sequence_metadata(chr1[3:]).md5
    assert store.aliases.set("insdc:CHR1.1", chr1, sequence=True).digest == chr1[3:]
    assert store.aliases.set("insdc:CHR1.2", md5, sequence=True).digest == chr1[3:]
    assert store.aliases.set("insdc:CHR1.3", md5.upper(), sequence=True).digest == chr1[3:]  # pasted in capitals
    assert store.aliases.get("insdc:CHR1.1", sequence=True) == chr1[3:]
    assert [e.name for e in store.aliases.list(sequence=True, digest=chr1)] == ["CHR1.1", "CHR1.2", "CHR1.3"]
    assert [e.name for e in store.aliases.list(sequence=True, digest=md5.upper())] == ["CHR1.1", "CHR1.2", "CHR1.3"]
    assert store.aliases.list() == []  # collection aliases are a separate kind


@pytest.mark.parametrize("namespace", ["ga4gh", "md5", "trunc512", "GA4GH", "Md5"])
def test_a_sequence_alias_in_a_checksum_namespace_is_refused(
    store: Store, genomes: Digests, tmp_path: Path, namespace: str
) -> None:
    """refget reads ga4gh:/md5:/trunc512: ids as checksums: ``ga4gh:SQ.<chr1> -> chr2`` was recorded,
    was unreachable (/sequence/ga4gh:SQ.<chr1> serves chr1) and made chr2's metadata list chr1's ids."""
    level2 = open_gtars(store).get_collection_level2(genomes["a"])
    chr1, chr2 = level2["sequences"][:2]
    head = store.head()
    with pytest.raises(InvalidInputError, match="checksum"):
        store.aliases.set(f"{namespace}:{chr1}", chr2, sequence=True)
    fasta = tmp_path / "md5.fa"
    fasta.write_text(f">c1 {namespace}:0123456789abcdef0123456789abcdef\nACGTAAAAAAA\n")
    with pytest.raises(InvalidInputError, match="checksum"):
        store.genomes.init(fasta, ["z"], seq_namespace=namespace)
    assert store.head() == head
    # A genome alias has no checksum form to clash with, and insdc is any other namespace.
    assert store.aliases.set(f"{namespace}:x", genomes["a"]).digest == genomes["a"]
    assert store.aliases.set("insdc:x", chr2, sequence=True).digest == chr2[3:]


def test_listing_sequence_aliases_by_an_md5_lists_the_aliases_of_its_sequence(  # type: ignore[no-untyped-def]
        cli, store_path: Path, template: Template) -> None:
    """`alias list --sequence --digest` takes what `alias set --sequence` takes: an MD5 silently listed nothing."""
    shutil.copytree(template[0], store_path)
    with Store.open(store_path, actor="tester@test") as store:
        chr1 = open_gtars(store).get_collection_level2(template[1]["a"])["sequences"][0]
        md5 = open_gtars(store).get_sequence_metadata(chr1[3:]).md5
        store.aliases.set("insdc:CHR1.1", md5, sequence=True)
        by_md5 = [e.name for e in store.aliases.list(sequence=True, digest=md5)]
        by_sq_md5 = [e.name for e in store.aliases.list(sequence=True, digest="SQ." + md5)]
        unknown = store.aliases.list(sequence=True, digest="0" * 32)
    listed = cli("alias", "list", "--sequence", "--digest", md5).output.splitlines()[1:]
    assert by_md5 == by_sq_md5 == ["CHR1.1"] and unknown == []
    assert [row.split() for row in listed] == [["insdc", "CHR1.1", chr1]]


def test_a_sequence_alias_to_an_unknown_sequence_is_refused(store: Store, genomes: Digests) -> None:
    with pytest.raises(NotFoundError, match="no sequence"):
        store.aliases.set("insdc:X", "B" * 32, sequence=True)
    assert store.aliases.list(sequence=True) == []


def test_sequence_aliases_undo_like_collection_aliases(store: Store, genomes: Digests) -> None:
    chr1, chr2 = open_gtars(store).get_collection_level2(genomes["a"])["sequences"]
    store.aliases.set("insdc:C", chr1, sequence=True)
    with pytest.raises(ConflictError):
        store.aliases.set("insdc:C", chr2, sequence=True)
    store.aliases.set("insdc:C", chr2, sequence=True, force=True)
    store.aliases.undo("insdc:C", sequence=True)
    assert store.aliases.get("insdc:C", sequence=True) == chr1[3:]
    history = store.aliases.history("insdc:C", sequence=True)
    assert [s.digest for s in history] == [chr1[3:], chr2[3:], chr1[3:]]


# -- the RefgetStore projection -------------------------------------------------------------------------


def test_gtars_resolves_the_aliases_rgstore_records(store: Store, genomes: Digests) -> None:
    chr1 = open_gtars(store).get_collection_level2(genomes["a"])["sequences"][0][3:]
    store.aliases.set("hg38", genomes["a"])
    store.aliases.set("ucsc:tiny", genomes["b"])
    store.aliases.set("insdc:CHR1.1", chr1, sequence=True)
    handle = open_gtars(store)
    assert handle.get_collection_metadata_by_alias("refgenie", "hg38").digest == genomes["a"]
    assert handle.get_collection_metadata_by_alias("ucsc", "tiny").digest == genomes["b"]
    assert handle.get_sequence_metadata_by_alias("insdc", "CHR1.1").sha512t24u == chr1
    assert sorted(handle.list_collection_alias_namespaces()) == ["refgenie", "ucsc"]
    assert handle.list_sequence_alias_namespaces() == ["insdc"]
    assert tsv(store, "collections", "refgenie") == f"hg38\t{genomes['a']}\n"
    assert tsv(store, "sequences", "insdc") == f"CHR1.1\t{chr1}\n"


def test_repointing_and_undo_are_visible_to_gtars(store: Store, genomes: Digests) -> None:
    store.aliases.set("hg38", genomes["a"])
    store.aliases.set("hg38", genomes["b"], force=True)
    assert open_gtars(store).get_collection_metadata_by_alias("refgenie", "hg38").digest == genomes["b"]
    store.aliases.undo("hg38")
    assert open_gtars(store).get_collection_metadata_by_alias("refgenie", "hg38").digest == genomes["a"]


def test_removing_the_last_alias_of_a_namespace_deletes_its_file(store: Store, genomes: Digests) -> None:
    store.aliases.set("hg38", genomes["a"])
    store.aliases.set("ucsc:hg38", genomes["a"])
    assert manifest(store)["collection_alias_namespaces"] == ["refgenie", "ucsc"]
    store.aliases.remove("ucsc:hg38")
    assert not (store.refget_path / "aliases" / "collections" / "ucsc.tsv").exists()
    assert manifest(store)["collection_alias_namespaces"] == ["refgenie"]
    store.aliases.remove("hg38")
    assert list((store.refget_path / "aliases" / "collections").iterdir()) == []
    assert "collection_alias_namespaces" not in manifest(store)
    assert "aliases_digest" not in manifest(store)
    assert open_gtars(store).get_collection_metadata_by_alias("refgenie", "hg38") is None


def test_the_manifest_aliases_digest_is_the_one_gtars_computes(store: Store, genomes: Digests) -> None:
    store.aliases.set("hg38", genomes["a"])
    ours = manifest(store)["aliases_digest"]
    # A gtars commit (this import) recomputes aliases_digest from the same files: it must agree.
    (store.path / "c.fa").write_text(FASTAS["c"])
    ingest_fasta(store, store.path / "c.fa")
    assert manifest(store)["aliases_digest"] == ours
    assert manifest(store)["collection_alias_namespaces"] == ["refgenie"]


def test_rebuild_rewrites_damaged_alias_files(store: Store, genomes: Digests) -> None:
    store.aliases.set("hg38", genomes["a"])
    store.aliases.set("ucsc:tiny", genomes["b"])
    aliases_dir = store.refget_path / "aliases"
    originals = {p: p.read_bytes() for p in aliases_dir.rglob("*.tsv")}
    (aliases_dir / "collections" / "refgenie.tsv").write_text("hg38\tWRONG\n")
    (aliases_dir / "collections" / "ucsc.tsv").unlink()
    (aliases_dir / "collections" / "stray.tsv").write_text(f"x\t{genomes['a']}\n")
    store.rebuild()
    assert {p: p.read_bytes() for p in aliases_dir.rglob("*.tsv")} == originals
    assert manifest(store)["collection_alias_namespaces"] == ["refgenie", "ucsc"]


def test_raw_appends_of_malformed_aliases_never_reach_the_files(store: Store, genomes: Digests) -> None:
    from rgstore.events import AliasSet

    store.append([
        NewEvent(
            stream="alias:../evil/x", event=AliasSet(namespace="../evil", name="x", digest=genomes["a"])
        ),
        NewEvent(stream="alias:ok/x", event=AliasSet(namespace="ok", name="x", digest="not\ta digest")),
    ])
    assert store.aliases.list() == []
    assert alias_files(store) == []
    assert not (store.path / "evil").exists()


# -- the CLI ------------------------------------------------------------------------------------------


def test_cli_set_get_list_history_undo_redo(  # type: ignore[no-untyped-def]
    cli, store_path: Path, template: Template
) -> None:
    shutil.copytree(template[0], store_path)
    a, b = template[1]["a"], template[1]["b"]
    assert cli("alias", "set", "hg38", a).output == f"refgenie:hg38 -> {a}\n"
    refused = cli("alias", "set", "hg38", b)
    assert refused.exit_code == 1
    assert refused.output.count("\n") == 1 and "--force" in refused.output
    assert cli("alias", "set", "hg38", b, "--force").output == f"refgenie:hg38 -> {b} (was {a})\n"
    assert cli("alias", "get", "refgenie:hg38").output == f"{b}\n"
    listed = json.loads(cli("alias", "list", "--json").output)
    assert [(e["namespace"], e["name"], e["digest"]) for e in listed] == [("refgenie", "hg38", b)]
    assert cli("alias", "undo", "hg38").output == f"refgenie:hg38 -> {a} (was {b})\n"
    assert cli("alias", "redo", "hg38").exit_code == 0
    history = json.loads(cli("alias", "history", "hg38", "--json").output)
    assert [h["action"] for h in history] == ["alias-set", "alias-set", "undone", "redone"]
    assert [h["state"] for h in history[:2]] == ["done", "current"]
    assert cli("alias", "remove", "hg38").output == f"refgenie:hg38 removed (was {b})\n"
    missing = cli("alias", "get", "hg38")
    assert missing.exit_code == 1 and "no alias refgenie:hg38" in missing.output


def test_cli_sequence_aliases(  # type: ignore[no-untyped-def]
    cli, store_path: Path, template: Template
) -> None:
    shutil.copytree(template[0], store_path)
    with Store.open(store_path) as store:
        chr1 = open_gtars(store).get_collection_level2(template[1]["a"])["sequences"][0]
    assert cli("alias", "set", "--sequence", "insdc:CHR1.1", chr1).exit_code == 0
    assert cli("alias", "get", "--sequence", "insdc:CHR1.1").output == f"{chr1}\n"  # SQ., as `genome show`
    table = cli("alias", "list", "--sequence").output.splitlines()
    assert table[0].split() == ["NAMESPACE", "NAME", "DIGEST"]
    assert table[1].split() == ["insdc", "CHR1.1", chr1]
    assert cli("alias", "list").output.splitlines()[1:] == []  # genome aliases: none


def test_every_alias_command_has_an_example_in_its_help(cli) -> None:  # type: ignore[no-untyped-def]
    for command in ("set", "get", "remove", "list", "history", "undo", "redo"):
        result = cli("alias", command, "--help")
        assert result.exit_code == 0
        assert "Example:" in result.output


def test_concurrent_alias_commands_in_separate_processes_all_reach_the_files(
    store_path: Path, template: Template
) -> None:
    import subprocess
    import sys

    from tests.conftest import REPO

    shutil.copytree(template[0], store_path)
    a = template[1]["a"]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "rgstore_cli", "--store", str(store_path), "alias", "set", f"ns{i % 2}:n{i}", a],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        for i in range(6)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    with Store.open(store_path) as store:
        assert len(store.aliases.list()) == 6
        handle = open_gtars(store)
        assert sorted(handle.list_collection_alias_namespaces()) == ["ns0", "ns1"]
        assert all(handle.get_collection_metadata_by_alias(f"ns{i % 2}", f"n{i}") is not None for i in range(6))


def test_cli_undo_and_redo_with_nothing_to_do_name_the_alias_not_its_stream(  # type: ignore[no-untyped-def]
    cli, store_path: Path, template: Template
) -> None:
    shutil.copytree(template[0], store_path)
    assert cli("alias", "set", "base", template[1]["a"]).exit_code == 0
    redo = cli("alias", "redo", "base")
    assert redo.exit_code == 1 and redo.output == "error: alias refgenie:base has nothing to redo\n"
    assert cli("alias", "undo", "base").exit_code == 0
    undo = cli("alias", "undo", "refgenie:base")
    assert undo.exit_code == 1 and undo.output == "error: alias refgenie:base has nothing to undo\n"
    never = cli("alias", "undo", "--sequence", "insdc:NEVER.1")
    assert never.output == "error: sequence alias insdc:NEVER.1 has nothing to undo\n"


def test_a_command_rewrites_only_the_lines_of_its_own_aliases(store: Store, genomes: Digests) -> None:
    store.aliases.set("hg38", genomes["a"])
    store.aliases.set("ucsc:hg19", genomes["b"])
    ucsc = store.refget_path / "aliases" / "collections" / "ucsc.tsv"
    refgenie = store.refget_path / "aliases" / "collections" / "refgenie.tsv"
    assert ucsc.read_text() == f"hg19\t{genomes['b']}\n"
    ucsc.write_text(f"hg19\t{genomes['c']}\n")  # damage outside rgstore, in another namespace
    store.aliases.set("mm10", genomes["b"])  # a refgenie command: touches refgenie.tsv only
    assert refgenie.read_text() == f"hg38\t{genomes['a']}\nmm10\t{genomes['b']}\n"
    assert ucsc.read_text() == f"hg19\t{genomes['c']}\n"
    # A ucsc command edits its own alias's line in place: no pass over the namespace (which would
    # cost every alias of it per command), so the damaged line stays for verify and rebuild.
    store.aliases.set("ucsc:hg38", genomes["a"])
    assert ucsc.read_text() == f"hg19\t{genomes['c']}\nhg38\t{genomes['a']}\n"
    assert AliasView().external_drift(store) == ["refget/aliases/collections/ucsc.tsv"]
    store.rebuild()  # a rebuild renders every namespace
    assert ucsc.read_text() == f"hg19\t{genomes['b']}\nhg38\t{genomes['a']}\n"
    assert manifest(store)["collection_alias_namespaces"] == ["refgenie", "ucsc"]
    ucsc.unlink()  # a missing (or malformed) file is rendered whole from the view
    store.aliases.set("ucsc:mm10", genomes["c"])
    assert ucsc.read_text() == f"hg19\t{genomes['b']}\nhg38\t{genomes['a']}\nmm10\t{genomes['c']}\n"
    ucsc.write_text("no tab here\n")
    store.aliases.remove("ucsc:mm10")
    assert ucsc.read_text() == f"hg19\t{genomes['b']}\nhg38\t{genomes['a']}\n"


# Names that sort next to each other by bytes (prefixes, '.', '_', upper case, non-ASCII).
PATCH_NAMES = ["a", "a.b", "a_", "ab", "B", "b", "_x", "0", "z\u00e9", "e\u00e9t\u00e9", "ez"]


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(st.tuples(st.sampled_from(["set", "remove", "undo", "redo"]), st.sampled_from(PATCH_NAMES),
                              st.sampled_from(["a", "b", "c"])), min_size=1, max_size=25))
def test_alias_files_edited_line_by_line_equal_a_full_render_after_every_command(
    tmp_path_factory: pytest.TempPathFactory, template: Template, ops: list[tuple[str, str, str]]
) -> None:
    from rgstore.views.aliases import list_aliases
    from rgstore.views.aliasfiles import render_tsvs

    root = tmp_path_factory.mktemp("patch")
    shutil.copytree(template[0], root / "store")
    digests = template[1]
    with Store.open(root / "store", actor="tester@test") as store:
        for op, name, key in ops:
            try:
                if op == "set":
                    store.aliases.set(f"ns:{name}", digests[key], force=True)
                elif op == "remove":
                    store.aliases.remove(f"ns:{name}")
                elif op == "undo":
                    store.aliases.undo(f"ns:{name}")
                else:
                    store.aliases.redo(f"ns:{name}")
            except (NotFoundError, NothingToUndoError, NothingToRedoError):
                pass
            with store.read() as txn:
                rendered = render_tsvs(list_aliases(txn, store.environment, "collection", "ns")).get("ns")
            path = store.refget_path / "aliases" / "collections" / "ns.tsv"
            assert (path.read_bytes() if path.exists() else None) == rendered
        files = alias_files(store)
        assert AliasView().external_drift(store) == []
        store.rebuild()
        assert alias_files(store) == files


def test_a_writer_committing_during_another_alias_sync_cannot_leave_an_older_file(store: Store) -> None:
    import subprocess
    import sys

    from rgstore.events import AliasSet
    from rgstore.views.aliases import list_aliases
    from rgstore.views.aliasfiles import render_tsvs, write_alias_files
    from tests.conftest import REPO

    d0, d1, stream = "A" * 32, "B" * 32, "alias:n1/a"
    store.append([NewEvent(stream=stream, event=AliasSet(namespace="n1", name="a", digest=d0))])
    # Commit a -> d1 without the command's own sync, to run that sync by hand below.
    store.environment.write(lambda txn: store.log.append(
        txn, [NewEvent(stream=stream, event=AliasSet(namespace="n1", name="a", digest=d1))], "test"))
    other = ("from rgstore.store import Store\nfrom rgstore.log import NewEvent\nfrom rgstore.events import Undone\n"
             f"with Store.open({str(store.path)!r}) as s: s.append([NewEvent(stream={stream!r}, event=Undone())])")
    calls: list[int] = []

    def head_and_meanwhile_another_writer() -> int:
        head = store.head()[0]
        if not calls:  # right after this sync's check, a second process undoes a -> d1; its own sync
            calls.append(head)  # finds the file already saying d0 and skips the lock
            subprocess.run([sys.executable, "-c", other], cwd=REPO, check=True)
        return head

    def wanted() -> tuple[int, dict]:  # type: ignore[type-arg]
        with store.read() as txn:
            files = {"n1": None, **render_tsvs(list_aliases(txn, store.environment, "collection", "n1"))}
            return store.log.head(txn)[0], {"collection": files}

    write_alias_files(store.refget_path, wanted, head_and_meanwhile_another_writer, complete=False)
    assert calls and store.aliases.get("n1:a") == d0  # the view: the undo won
    assert (store.refget_path / "aliases" / "collections" / "n1.tsv").read_text() == f"a\t{d0}\n"


def test_a_long_non_ascii_alias_name_is_refused_by_its_utf8_size(store: Store, genomes: Digests) -> None:
    fits = "a" + "é" * 199  # 399 bytes
    store.aliases.set(fits, genomes["a"])
    assert store.aliases.get(fits) == genomes["a"]
    with pytest.raises(InvalidInputError, match="at most 400"):
        store.aliases.set("a" + "é" * 200, genomes["a"])  # 201 characters (the regex allows 255), 401 bytes


def test_a_line_edit_reads_the_file_again_under_the_lock_so_another_writers_line_stays(store: Store) -> None:
    from rgstore.events import AliasSet
    from rgstore.views.aliases import alias_target
    from rgstore.views.aliasfiles import patched_tsv, tsv_path, write_alias_files

    d0, d1 = "A" * 32, "B" * 32
    store.append([NewEvent(stream="alias:n1/z", event=AliasSet(namespace="n1", name="z", digest=d0))])
    for name, digest in (("b", d1), ("a", d0)):  # b, then a, committed without their syncs
        store.environment.write(lambda txn, n=name, d=digest: store.log.append(
            txn, [NewEvent(stream=f"alias:n1/{n}", event=AliasSet(namespace="n1", name=n, digest=d))], "test"))
    path = tsv_path(store.refget_path, "collection", "n1")
    calls: list[int] = []

    def wanted() -> tuple[int, dict]:  # type: ignore[type-arg]
        with store.read() as txn:
            content = patched_tsv(path, {"a": alias_target(txn, store.environment, "collection", "n1", "a")})
            head = store.log.head(txn)[0]
        if not calls:  # a's edit is built on a file without b; b's writer now syncs before a takes the lock
            calls.append(head)
            AliasView().sync_external(store, {"alias:n1/b"})
        return head, {"collection": {"n1": content}}

    write_alias_files(store.refget_path, wanted, lambda: store.head()[0], complete=False, reads_files=True)
    assert calls and path.read_text() == f"a\t{d0}\nb\t{d1}\nz\t{d0}\n"


def test_a_hand_garbled_rgstore_json_is_left_to_verify_not_a_traceback_on_every_later_open(tmp_path: Path) -> None:
    """The alias sync refreshes rgstore.json's alias lists; a manifest it cannot parse must not crash every open."""
    from tests.conftest import run_rgstore
    from tests.test_genomes import TINY

    store_path = tmp_path / "s"
    with Store.open(store_path) as store:
        digest = store.genomes.init(TINY, ["tiny"]).genome.digest
    manifest = store_path / "refget" / "rgstore.json"
    manifest.write_text("{broken")
    for args in (("alias", "set", "other", digest), ("rebuild",), ("getseq", "tiny", "chr1:0-4")):
        out = run_rgstore("--store", str(store_path), *args)
        assert b"Traceback" not in out.stderr, (args, out.stderr)
    assert (store_path / "refget" / "aliases" / "collections" / "refgenie.tsv").read_text().count(digest) == 2
    verify = run_rgstore("--store", str(store_path), "verify")
    assert verify.returncode == 1 and b"move it aside" in verify.stderr + verify.stdout
    manifest.rename(tmp_path / "damaged.json")  # what the message says; the rebuild recreates the manifest
    assert run_rgstore("--store", str(store_path), "rebuild").returncode == 0
    assert run_rgstore("--store", str(store_path), "verify").returncode == 0
    assert run_rgstore("--store", str(store_path), "getseq", "tiny", "chr1:0-4").stdout.strip()


# -- gaps found by mutation testing -------------------------------------------------------------


def test_listing_one_namespace_leaves_out_namespaces_that_start_with_its_name(store: Store, genomes: Digests) -> None:
    store.aliases.set("ucsc:hg38", genomes["a"])
    store.aliases.set("ucsc2:hg19", genomes["b"])
    assert [(e.namespace, e.name) for e in store.aliases.list(namespace="ucsc")] == [("ucsc", "hg38")]
    assert [(e.namespace, e.name) for e in store.aliases.list(namespace="ucsc2")] == [("ucsc2", "hg19")]


def test_undo_to_before_an_aliases_first_target_never_resolves_to_another_aliases_target(
    store: Store, genomes: Digests
) -> None:
    """An undo back over a foreign step (no snapshot) must not read the snapshot of the alias sorted before it."""
    from rgstore.events import FhrSet

    store.aliases.set("a", genomes["a"])
    store.append([NewEvent(stream="alias:refgenie/b", event=FhrSet(digest=genomes["b"], fhr={}))])
    store.aliases.set("b", genomes["b"])
    store.aliases.undo("b")  # back to just after the foreign step: b did not exist yet
    with pytest.raises(NotFoundError):
        store.aliases.get("b")
    assert store.aliases.list(digest=genomes["a"])[0].name == "a" and len(store.aliases.list()) == 1


def test_a_sequence_alias_takes_an_sq_colon_prefixed_digest(store: Store, genomes: Digests) -> None:
    chr1 = open_gtars(store).get_collection_level2(genomes["a"])["sequences"][0]
    assert store.aliases.set("insdc:CHR1.1", "SQ:" + chr1[3:], sequence=True).digest == chr1[3:]


def test_listing_with_skip_and_counting_agree_with_the_full_listing_in_every_namespace(store: Store) -> None:
    from rgstore.views.aliases import COLLECTION, alias_names, count_aliases, list_aliases

    names = [("a", "x1"), ("a", "x2"), ("ab", "y"), ("b", "z1"), ("b", "z2"), ("b", "z3")]
    store.append([NewEvent(stream=f"alias:{ns}/{n}", event=AliasSet(namespace=ns, name=n, digest="d" * 32))
                  for ns, n in names])
    env = store.environment
    with store.read() as txn:
        for namespace in (None, "a", "ab", "b", "c"):
            full = list(list_aliases(txn, env, COLLECTION, namespace))
            assert count_aliases(txn, env, COLLECTION, namespace) == len(full)
            assert list(alias_names(txn, env, COLLECTION, namespace)) == [(ns, n) for ns, n, _, _ in full]
            assert [list(list_aliases(txn, env, COLLECTION, namespace, skip=k)) for k in range(8)] == [
                full[k:] for k in range(8)]
        assert [(ns, n) for ns, n, _, _ in list_aliases(txn, env, COLLECTION, "a")] == [("a", "x1"), ("a", "x2")]
    assert store.aliases.names() == names and store.aliases.names(namespace="b") == names[3:]


# -- one vocabulary for sequence digests ---------------------------------------------------------------------


def test_sequence_alias_commands_take_every_digest_form_and_name_it_as_genome_show_does(  # type: ignore[no-untyped-def]
    cli, store_path: Path, template: Template
) -> None:
    shutil.copytree(template[0], store_path)
    shown = json.loads(cli("genome", "show", "--digest", template[1]["a"], "--json").output)["sequences"]
    chr1, chr2 = shown[0], shown[1]
    assert chr1.startswith("SQ.")
    for name, form in (("B", chr1[3:]), ("S", chr1), ("G", "ga4gh:" + chr1), ("L", "GA4GH:" + chr1)):
        assert cli("alias", "set", "--sequence", f"insdc:{name}", form).output == f"insdc:{name} -> {chr1}\n", form
        assert cli("alias", "get", "--sequence", f"insdc:{name}").output == f"{chr1}\n"
    moved = cli("alias", "set", "--sequence", "insdc:B", chr2, "--force")
    assert moved.output == f"insdc:B -> {chr2} (was {chr1})\n"
    refused = cli("alias", "set", "--sequence", "insdc:B", chr1)
    assert refused.exit_code == 1 and f"already points at {chr2}; use --force to repoint it to {chr1}" in refused.output
    assert [row.split()[2] for row in cli("alias", "list", "--sequence").output.splitlines()[1:]] == [chr2, chr1, chr1, chr1]
    assert [line.split()[-1] for line in cli("alias", "list", "--sequence", "--digest", "ga4gh:" + chr1).output
            .splitlines()[1:]] == [chr1, chr1, chr1]
    history = cli("alias", "history", "--sequence", "insdc:B").output.splitlines()[1:]
    assert [row.split()[4] for row in history] == [chr1, chr2]
    assert cli("alias", "remove", "--sequence", "insdc:B").output == f"insdc:B removed (was {chr2})\n"
    # JSON keeps `digest` as it was (bare, as scripts read it) and adds `ga4gh`, the SQ. form.
    got = json.loads(cli("alias", "get", "--sequence", "insdc:S", "--json").output)
    assert got == {"kind": "sequence", "namespace": "insdc", "name": "S", "digest": chr1[3:], "ga4gh": chr1}
    listed = json.loads(cli("alias", "list", "--sequence", "--json").output)
    assert [(e["digest"], e["ga4gh"]) for e in listed] == [(chr1[3:], chr1)] * 3
    change = json.loads(cli("alias", "set", "--sequence", "insdc:S", chr2, "--force", "--json").output)
    assert (change["digest"], change["ga4gh"], change["previous"], change["previous_ga4gh"]) == (
        chr2[3:], chr2, chr1[3:], chr1)
    steps = json.loads(cli("alias", "history", "--sequence", "insdc:S", "--json").output)
    assert [(s["digest"], s["ga4gh"]) for s in steps] == [(chr1[3:], chr1), (chr2[3:], chr2)]


def test_genome_alias_json_gains_no_sequence_fields(store: Store, genomes: Digests) -> None:
    change = store.aliases.set("hg38", genomes["a"])
    entry = store.aliases.entry("hg38")
    assert (entry.digest, entry.seq) == (genomes["a"], change.seq)
    assert sorted(msgspec.to_builtins(change)) == ["digest", "kind", "name", "namespace", "previous", "seq"]
    assert sorted(msgspec.to_builtins(entry)) == ["digest", "kind", "name", "namespace", "seq"]


# -- a new refgenie name over another namespace's ------------------------------------------------------------


def test_a_refgenie_alias_taking_a_bare_name_from_another_namespace_says_so_on_stderr(  # type: ignore[no-untyped-def]
    cli, store_path: Path, template: Template
) -> None:
    shutil.copytree(template[0], store_path)
    a, b = template[1]["a"], template[1]["b"]
    assert cli("alias", "set", "ncbi:hg38", a).stderr == ""
    assert json.loads(cli("genome", "show", "hg38", "--json").output)["digest"] == a  # bare hg38: ncbi's
    taken = cli("alias", "set", "hg38", b, "--json")
    assert taken.stderr == f"note: hg38 now names {b} in refgenie; ncbi:hg38 still names {a}\n"
    assert json.loads(taken.stdout)["shadows"] == {"ncbi:hg38": a}  # stdout: the JSON alone
    assert json.loads(cli("genome", "show", "hg38", "--json").output)["digest"] == b
    again = cli("alias", "set", "hg38", a, "--force")  # refgenie:hg38 existed: bare hg38 was already its
    assert again.exit_code == 0 and again.stderr == ""
    assert cli("alias", "set", "ncbi:mm10", a).exit_code == 0
    same = cli("alias", "set", "mm10", a)  # the other namespace names the same genome: nothing changes for mm10
    assert same.exit_code == 0 and same.stderr == ""


def test_genome_init_notes_a_name_other_namespaces_give_another_genome(store: Store, genomes: Digests,
                                                                       tmp_path: Path) -> None:
    store.aliases.set("ncbi:hg38", genomes["a"])
    store.aliases.set("ucsc:hg38", genomes["a"])
    store.aliases.set("ncbi:tiny", genomes["b"])
    path = tmp_path / "b.fa"
    path.write_text(FASTAS["b"])
    result = store.genomes.init(path, ["hg38", "tiny"])
    assert result.genome.digest == genomes["b"]
    assert result.shadows == {"ncbi:hg38": genomes["a"], "ucsc:hg38": genomes["a"]}
    assert store.genomes.init(path, ["hg38"]).shadows is msgspec.UNSET  # nothing new: nothing taken


def test_genome_init_prints_the_note_on_stderr(cli, store_path: Path, template: Template,  # type: ignore[no-untyped-def]
                                               tmp_path: Path) -> None:
    shutil.copytree(template[0], store_path)
    a, b = template[1]["a"], template[1]["b"]
    assert cli("alias", "set", "ncbi:hg38", a).exit_code == 0
    path = tmp_path / "b.fa"
    path.write_text(FASTAS["b"])
    done = cli("genome", "init", "--fasta", str(path), "--name", "hg38", "--json")
    assert done.stderr == f"note: hg38 now names {b} in refgenie; ncbi:hg38 still names {a}\n"
    assert json.loads(done.stdout)["aliases_added"] == ["refgenie:hg38"]


# -- listings read in chunks ---------------------------------------------------------------------------------


def test_a_streamed_listing_equals_the_list_in_every_namespace_and_chunk_size(store: Store, genomes: Digests) -> None:
    names = [("a", "x1"), ("a", "x2"), ("ab", "y"), ("b", "z1"), ("b", "z2"), ("b", "z3")]
    for ns, name in names:
        store.aliases.set(f"{ns}:{name}", genomes["a"] if name < "z" else genomes["b"])
    for namespace in (None, "a", "ab", "b", "c"):
        for chunk in (1, 2, 3, 100):
            assert list(store.aliases.stream(namespace=namespace, chunk=chunk)) == store.aliases.list(namespace=namespace)
        assert list(store.aliases.stream(namespace=namespace, digest=genomes["b"])) == store.aliases.list(
            namespace=namespace, digest=genomes["b"])


def test_a_streamed_listing_holds_no_read_transaction_between_chunks(store: Store, genomes: Digests) -> None:
    for name in ("a1", "a2", "a3"):
        store.aliases.set(name, genomes["a"])
    listing = store.aliases.stream(chunk=2)
    assert [next(listing).name, next(listing).name] == ["a1", "a2"]
    store.aliases.set("a4", genomes["a"])  # written while the listing is paused: its next chunk is read afresh
    assert [e.name for e in listing] == ["a3", "a4"]


def test_genome_stream_lists_what_genome_list_does(store: Store, genomes: Digests) -> None:
    store.aliases.set("zz", genomes["a"])
    store.aliases.set("ncbi:mm", genomes["b"])  # a first alias in another namespace sorts as "ncbi:mm"
    for chunk in (1, 2, 32):
        assert list(store.genomes.stream(chunk=chunk)) == store.genomes.list()
    assert [g.aliases for g in store.genomes.stream()] == [["ncbi:mm"], ["zz"], []]


@pytest.mark.parametrize("chunk", [0, -1])
def test_a_streamed_listing_with_a_chunk_below_one_is_an_invalid_input_error_not_an_index_error(
    store: Store, genomes: Digests, chunk: int,
) -> None:
    store.aliases.set("a1", genomes["a"])
    with pytest.raises(InvalidInputError, match="chunk must be a positive number of aliases"):
        list(store.aliases.stream(chunk=chunk))
