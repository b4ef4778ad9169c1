"""Genomes: init records one atomic command, is idempotent, refuses silent repointing, and records nothing on bad input."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import shutil
import time
from importlib import resources
from pathlib import Path

import pytest
from msgspec import UNSET

from rgstore.errors import ConflictError, InvalidInputError, NotFoundError
from rgstore.events import (
    AliasRemoved,
    AliasSet,
    FhrSet,
    GenomeAdded,
    GenomeRemoved,
    SequenceAliasSet,
    Undone,
)
from rgstore.log import NewEvent
from rgstore.store import Store
from rgstore.views.genomes import genome_stream, genomes_with_sequence

TINY = Path(str(resources.files("rgstore") / "data" / "tiny.fa"))
FHR = {
    "schema": "https://raw.githubusercontent.com/FAIR-bioHeaders/FHR-Specification/main/fhr.json",
    "schemaVersion": 1.0,
    "genome": "Tinyus testus",
    "taxon": {"name": "Tinyus testus", "uri": "https://identifiers.org/taxonomy:0"},
    "version": "1",
    "vitalStats": {"N50": 3000},
    "labNotes": "kept verbatim",
}


def _t24u(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha512(data).digest()[:24]).decode()


def _write(path: Path, records: dict[str, str]) -> Path:
    path.write_text("".join(f">{n}\n{s}\n" for n, s in records.items()))
    return path


def _collections(store: Store) -> int:
    manifest = store.refget_path / "collections.rgci"
    if not manifest.exists():
        return 0
    return sum(1 for line in manifest.read_text().splitlines() if line and not line.startswith("#"))


def test_init_appends_genome_added_and_one_alias_per_name_in_one_command(store: Store) -> None:
    result = store.genomes.init(TINY, ["tiny", "tiny-v1"], description="tiny test", species="Tinyus testus",
                                circular=["chrM"])
    events = store.events()
    assert [type(e.event) for e in events] == [GenomeAdded, AliasSet, AliasSet]
    assert [e.seq for e in events] == result.seqs
    assert len({e.time for e in events}) == 1  # one transaction
    added = events[0].event
    assert isinstance(added, GenomeAdded)
    assert events[0].stream == genome_stream(added.digest)
    assert added.names == ["chr1", "chr2", "chrM"] and added.lengths == [3000, 2000, 1000]
    assert added.circular == ["chrM"] and added.species == "Tinyus testus"
    assert added.source.md5 == hashlib.md5(TINY.read_bytes()).hexdigest()
    assert added.source.size == TINY.stat().st_size and added.source.path == str(TINY.resolve())
    assert len(added.md5s) == 3 and set(added.level1) >= {"names", "lengths", "sequences"}
    assert [(e.stream, e.event.name) for e in events[1:]] == [  # type: ignore[union-attr]
        ("alias:refgenie/tiny", "tiny"), ("alias:refgenie/tiny-v1", "tiny-v1"),
    ]
    assert result.added and result.aliases_added == ["refgenie:tiny", "refgenie:tiny-v1"]


def test_genome_digest_and_sequences_match_an_independent_reading(store: Store) -> None:
    info = store.genomes.init(TINY, ["tiny"]).genome
    records: dict[str, str] = {}
    for block in TINY.read_text().split(">")[1:]:
        header, *lines = block.splitlines()
        records[header.split()[0]] = "".join(lines).upper()
    assert info.sequences == ["SQ." + _t24u(s.encode()) for s in records.values()]
    assert info.md5s == [hashlib.md5(s.encode()).hexdigest() for s in records.values()]


def test_reinit_of_identical_content_only_adds_new_names(store: Store, tmp_path: Path) -> None:
    store.genomes.init(TINY, ["tiny"])
    head = store.head()[0]
    again = store.genomes.init(TINY, ["tiny"])
    assert not again.added and again.aliases_added == [] and store.head()[0] == head
    gz = tmp_path / "tiny.fa.gz"  # same content, other bytes: still the same genome
    gz.write_bytes(gzip.compress(TINY.read_bytes()))
    more = store.genomes.init(gz, ["tiny", "tiny2"])
    assert not more.added and more.aliases_added == ["refgenie:tiny2"]
    assert [type(e.event) for e in store.events(after=head)] == [AliasSet]


def test_name_pointing_at_another_genome_is_refused_before_anything_is_stored(store: Store, tmp_path: Path) -> None:
    store.genomes.init(TINY, ["tiny"])
    head, collections = store.head()[0], _collections(store)
    other = _write(tmp_path / "other.fa", {"c1": "ACGT"})
    with pytest.raises(ConflictError, match="refgenie:tiny already points at genome .*--force"):
        store.genomes.init(other, ["fresh", "tiny"])
    assert store.head()[0] == head
    assert _collections(store) == collections  # refused before gtars imported anything
    with pytest.raises(NotFoundError):
        store.genomes.resolve("fresh")


@pytest.mark.parametrize("header", [b">c1 AC:1\tgi:2", b">#c1"])
def test_a_header_the_refget_index_cannot_hold_is_refused_and_the_store_still_verifies(
    store: Store, tmp_path: Path, header: bytes
) -> None:
    # Before: init succeeded, then every later process lost the record (gtars' TSV index read it
    # back as a comment or with a column too many) and `rgstore verify` failed.
    fasta = tmp_path / "odd.fa"
    fasta.write_bytes(header + b"\nACGT\n")
    with pytest.raises(InvalidInputError, match="line 1, column 1: "):
        store.genomes.init(fasta, ["odd"])
    assert store.head()[0] == 0 and _collections(store) == 0 and store.verify().ok


def test_same_shape_different_sequence_is_refused_inside_the_command(store: Store, tmp_path: Path) -> None:
    a = store.genomes.init(_write(tmp_path / "a.fa", {"c1": "ACGT"}), ["g"]).genome
    head = store.head()[0]
    with pytest.raises(ConflictError):
        store.genomes.init(_write(tmp_path / "b.fa", {"c1": "TTTT"}), ["g"])
    assert store.head()[0] == head and store.genomes.resolve("g") == a.digest


def test_force_repoints_a_name_and_keeps_the_old_target_in_its_history(store: Store, tmp_path: Path) -> None:
    first = store.genomes.init(TINY, ["tiny"]).genome
    second = store.genomes.init(_write(tmp_path / "b.fa", {"c1": "ACGT"}), ["tiny"], force=True)
    assert second.added and second.aliases_added == ["refgenie:tiny"]
    assert store.genomes.resolve("tiny") == second.genome.digest
    targets = [e.event.digest for e in store.events(stream="alias:refgenie/tiny")]  # type: ignore[union-attr]
    assert targets == [first.digest, second.genome.digest]
    assert store.getseq("tiny", "c1") == "ACGT"  # the cached resolution followed the repoint


def test_init_records_an_ns_name_in_its_namespace_beside_a_bare_refgenie_name(store: Store) -> None:
    # Before: init ran check_name on the whole "ucsc:tiny" and refused it (':'), unlike `alias set`.
    result = store.genomes.init(TINY, ["ucsc:tiny", "tiny"])
    aliases = [(e.stream, e.event) for e in store.events() if isinstance(e.event, AliasSet)]
    assert [(stream, a.namespace, a.name) for stream, a in aliases] == [
        ("alias:ucsc/tiny", "ucsc", "tiny"), ("alias:refgenie/tiny", "refgenie", "tiny"),
    ]
    assert result.aliases_added == ["ucsc:tiny", "refgenie:tiny"]
    assert store.aliases.get("ucsc:tiny") == store.aliases.get("tiny") == result.genome.digest
    head = store.head()[0]
    again = store.genomes.init(TINY, ["ucsc:tiny", "refgenie:tiny", "tiny"])
    assert not again.added and again.aliases_added == [] and store.head()[0] == head
    more = store.genomes.init(TINY, ["ucsc:tiny", "ncbi:tiny"])
    assert more.aliases_added == ["ncbi:tiny"]


def test_an_ns_name_naming_another_genome_is_refused_unless_force_which_repoints_it(
    store: Store, tmp_path: Path
) -> None:
    first = store.genomes.init(TINY, ["tiny", "ucsc:hg"]).genome
    head, collections = store.head()[0], _collections(store)
    other = _write(tmp_path / "other.fa", {"c1": "ACGT"})
    with pytest.raises(ConflictError, match="alias ucsc:hg already points at genome .*--force"):
        store.genomes.init(other, ["fresh", "ucsc:hg"])
    assert store.head()[0] == head and _collections(store) == collections
    forced = store.genomes.init(other, ["fresh", "ucsc:hg"], force=True)
    assert forced.aliases_added == ["refgenie:fresh", "ucsc:hg"]
    assert store.aliases.get("ucsc:hg") == forced.genome.digest
    assert store.aliases.get("tiny") == first.digest
    targets = [e.event.digest for e in store.events(stream="alias:ucsc/hg")]  # type: ignore[union-attr]
    assert targets == [first.digest, forced.genome.digest]


def test_an_ns_name_another_namespace_holds_is_no_conflict_and_takes_no_bare_name(
    store: Store, tmp_path: Path
) -> None:
    # Only a new refgenie name takes the bare name from other namespaces (aliases.shadowed_by).
    store.genomes.init(TINY, ["ncbi:x"])
    other = store.genomes.init(_write(tmp_path / "other.fa", {"c1": "ACGT"}), ["ucsc:x"])
    assert other.aliases_added == ["ucsc:x"] and other.shadows is UNSET
    assert store.aliases.get("ucsc:x") == other.genome.digest


@pytest.mark.parametrize(("name", "message"), [
    ("u/c:x", "invalid alias namespace 'u/c'"), ("ucsc:", "invalid alias name ''"), ("ucsc:a:b", "invalid alias name"),
])
def test_cli_init_with_an_invalid_ns_name_is_one_line_and_records_nothing(  # type: ignore[no-untyped-def]
    cli, store_path: Path, name: str, message: str,
) -> None:
    out = cli("genome", "init", "--fasta", str(TINY), "--name", name)
    assert out.exit_code != 0 and out.output.count("\n") == 1
    assert out.output.startswith(f"error: {message}")
    with Store.open(store_path) as reopened:
        assert reopened.head()[0] == 0


def test_cli_init_names_a_genome_in_another_namespace_as_alias_set_does(cli) -> None:  # type: ignore[no-untyped-def]
    out = cli("genome", "init", "--fasta", str(TINY), "--name", "ucsc:hg38", "--name", "hg38")
    assert out.exit_code == 0, out.output
    assert out.output.splitlines()[1:] == ["  alias ucsc:hg38", "  alias refgenie:hg38"]
    digest = out.output.split()[0]
    assert cli("alias", "get", "ucsc:hg38").output.split()[0] == digest
    again = cli("genome", "init", "--fasta", str(TINY), "--name", "ucsc:hg38")
    assert again.exit_code == 0 and again.output.splitlines()[1:] == []


def test_cli_init_force_says_which_alias_it_moved_and_from_where_as_alias_set_does(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path
) -> None:
    # Before: a repointed alias printed as "  alias ncbi:hg19", like a new one, and --json could not tell them apart.
    old = json.loads(cli("genome", "init", "--fasta", str(TINY), "--name", "ncbi:hg19", "--json").output)
    other = str(_write(tmp_path / "other.fa", {"c1": "ACGT"}))
    out = cli("genome", "init", "--fasta", other, "--name", "ncbi:hg19", "--name", "fresh", "--force")
    assert out.exit_code == 0, out.output
    was = old["genome"]["digest"]
    assert out.output.splitlines()[1:] == [f"  alias ncbi:hg19 (was {was})", "  alias refgenie:fresh"]
    back = cli("alias", "set", "ncbi:hg19", was, "--force").output  # alias set --force's wording, moving it back
    assert back == f"ncbi:hg19 -> {was} (was {out.output.split()[0]})\n"
    again = json.loads(cli("genome", "init", "--fasta", other, "--name", "ncbi:hg19", "--force", "--json").output)
    assert again["aliases_added"] == ["ncbi:hg19"]  # kept as it was: moved aliases are added ones too
    assert again["aliases_moved"] == [{"alias": "ncbi:hg19", "was": was}]
    fresh = json.loads(cli("genome", "init", "--fasta", other, "--name", "new2", "--force", "--json").output)
    assert (fresh["aliases_added"], fresh["aliases_moved"]) == (["refgenie:new2"], [])


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"", "empty"), (b">a\nAC GT\n", "whitespace"), (b">a\nAC\n>a\nGT\n", "duplicate"), (b"ACGT\n", "before the first")],
    ids=["empty", "whitespace", "duplicate", "headerless"],
)
def test_malformed_fasta_records_nothing_anywhere(store: Store, tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "bad.fa"
    path.write_bytes(content)
    with pytest.raises(InvalidInputError, match=reason):
        store.genomes.init(path, ["bad"])
    assert store.head()[0] == 0
    assert _collections(store) == 0
    assert not list(store.path.glob(".ingest-*"))  # the private import copy is gone too


def test_names_ending_at_any_ascii_whitespace_agree_with_gtars(store: Store, tmp_path: Path) -> None:
    fasta = tmp_path / "ws.fa"
    fasta.write_bytes(b">chr1\x0bone\nACGT\n>chr2\x0ctwo\nGGCC\n>chr3\t three\nTTAA\n")
    assert store.genomes.init(fasta, ["ws"]).genome.names == ["chr1", "chr2", "chr3"]


def test_a_circular_sequence_named_twice_is_recorded_once(store: Store) -> None:
    genome = store.genomes.init(TINY, ["tiny"], circular=["chrM", "chrM"]).genome
    assert genome.circular == ["chrM"]


def test_unknown_circular_name_and_bad_alias_name_are_refused(store: Store) -> None:
    with pytest.raises(InvalidInputError, match="--circular chrX"):
        store.genomes.init(TINY, ["tiny"], circular=["chrX"])
    with pytest.raises(InvalidInputError, match="invalid alias name"):
        store.genomes.init(TINY, ["has space"])
    assert store.head()[0] == 0


def test_stale_rgsi_sidecar_next_to_the_fasta_cannot_poison_the_import(store: Store, tmp_path: Path) -> None:
    from gtars.refget import RefgetStore

    fasta = _write(tmp_path / "g.fa", {"c1": "ACGTACGT"})
    side = RefgetStore.on_disk(str(tmp_path / "elsewhere"))  # a plain gtars import leaves g.rgsi behind
    side.set_quiet(True)
    side.disable_encoding()
    side.add_sequence_collection_from_fasta(str(fasta))
    assert (tmp_path / "g.rgsi").exists()
    _write(fasta, {"c1": "TTTTTTTT"})
    info = store.genomes.init(fasta, ["g"]).genome
    assert info.sequences == ["SQ." + _t24u(b"TTTTTTTT")]
    assert store.getseq("g", "c1") == "TTTTTTTT"


def test_gzip_content_under_a_plain_name_is_ingested(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "looks-plain.fa"
    path.write_bytes(gzip.compress(TINY.read_bytes()))
    info = store.genomes.init(path, ["tiny"]).genome
    assert info.names == ["chr1", "chr2", "chrM"] and info.source.md5 == hashlib.md5(path.read_bytes()).hexdigest()


def test_a_relative_symlink_to_the_fasta_is_ingested(store: Store, tmp_path: Path) -> None:
    # The private hard link gtars imports must be of the file, not of the symlink (whose
    # relative target would then point inside the scratch directory).
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "tiny.fa.gz").write_bytes(gzip.compress(TINY.read_bytes()))
    link = tmp_path / "data" / "hg.fa"
    link.symlink_to("tiny.fa.gz")
    info = store.genomes.init(link, ["tiny"]).genome
    assert info.names == ["chr1", "chr2", "chrM"]
    assert info.source.path == str((tmp_path / "data" / "tiny.fa.gz").resolve())


def test_iupac_codes_round_trip_in_raw_mode(store: Store, tmp_path: Path) -> None:
    residues = "ACGTURYKMSWBDHVN"
    store.genomes.init(_write(tmp_path / "iupac.fa", {"s": residues, "p": "MKBUJOZX*-"}), ["iupac"])
    assert store.getseq("iupac", "s") == residues
    assert store.getseq("iupac", "p") == "MKBUJOZX*-"


def test_seq_namespace_records_header_tokens_as_sequence_aliases(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "ncbi.fa"
    path.write_text(">chr1 insdc:CM000663.2 other:x\nACGT\n>chr2 insdc:CM000664.2\nGGCC\n>chr3\nTT\n")
    result = store.genomes.init(path, ["g"], seq_namespace="insdc")
    assert result.sequence_aliases_added == 2
    events = [e for e in store.events() if isinstance(e.event, SequenceAliasSet)]
    assert [(e.stream, e.event.digest) for e in events] == [  # type: ignore[union-attr]
        ("seqalias:insdc/CM000663.2", _t24u(b"ACGT")), ("seqalias:insdc/CM000664.2", _t24u(b"GGCC")),
    ]


def test_remove_drops_the_genome_and_its_aliases_and_reinit_restores_it(store: Store) -> None:
    digest = store.genomes.init(TINY, ["tiny", "tiny2"]).genome.digest
    store.getseq("tiny", "chr1", 0, 10)
    head = store.head()[0]
    store.genomes.remove("tiny")
    assert [type(e.event) for e in store.events(after=head)] == [GenomeRemoved, AliasRemoved, AliasRemoved]
    assert store.genomes.list() == []
    with pytest.raises(NotFoundError):
        store.getseq("tiny", "chr1", 0, 10)
    with store.read() as txn:
        assert genomes_with_sequence(txn, store.environment, store.events()[0].event.sequences[0][3:]) == []  # type: ignore[union-attr]
    again = store.genomes.init(TINY, ["tiny"])
    assert again.added and again.genome.digest == digest
    assert store.getseq("tiny", "chr1", 0, 10) == TINY.read_text().splitlines()[1][:10].upper()


def test_a_bare_name_its_namespace_lacks_resolves_in_the_one_other_namespace_holding_it(
    store: Store, tmp_path: Path, cli  # type: ignore[no-untyped-def]
) -> None:
    # The refgenie server's order, shared with /v4/aliases: getseq and the server agree on a name.
    digest = store.genomes.init(TINY, ["tiny"]).genome.digest
    store.aliases.set("ucsc:tinyu", digest)
    store.aliases.set("ncbi:tinyu", digest)  # the same genome in two namespaces is no ambiguity
    assert store.genomes.resolve("tinyu") == digest
    assert store.getseq("tinyu", "chr1", 0, 10) == TINY.read_text().splitlines()[1][:10].upper()
    store.close()  # the CLI opens the store itself (once per process)
    result = cli("getseq", "tinyu", "chr1:0-10")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == TINY.read_text().splitlines()[1][:10].upper()
    result = cli("getseq", "refgenie:tinyu", "chr1:0-10")  # a namespace typed out is taken exactly
    assert result.exit_code != 0 and "no genome named 'refgenie:tinyu'" in result.stderr


def test_a_bare_name_two_other_namespaces_point_at_different_genomes_is_refused_naming_both(
    store: Store, tmp_path: Path, cli  # type: ignore[no-untyped-def]
) -> None:
    first = store.genomes.init(TINY, ["tiny"]).genome.digest
    second = store.genomes.init(_write(tmp_path / "other.fa", {"x": "ACGT" * 10}), ["other"]).genome.digest
    store.aliases.set("ucsc:dup", first)
    store.aliases.set("ncbi:dup", second)
    assert store.genomes.resolve("ucsc:dup") == first
    with pytest.raises(ConflictError, match=rf"'dup' is ambiguous: ncbi:dup -> {second}, ucsc:dup -> {first}"):
        store.genomes.resolve("dup")
    store.aliases.set("dup", second)  # the default namespace wins outright
    assert store.genomes.resolve("dup") == second
    store.aliases.remove("dup")
    store.close()  # the CLI opens the store itself (once per process)
    result = cli("getseq", "dup", "chr1:0-10")
    assert result.exit_code != 0 and "ambiguous" in result.stderr and "Traceback" not in result.stderr


def test_a_genome_digest_given_as_a_name_is_refused_pointing_at_digest(store: Store) -> None:
    digest = store.genomes.init(TINY, ["hg38"]).genome.digest
    with pytest.raises(NotFoundError, match=f"{digest} is a genome digest: give it with --digest"):
        store.genomes.show(digest)
    with pytest.raises(NotFoundError, match="see `rgstore genome list`"):
        store.genomes.show("A" * 32)  # digest-shaped, but no genome's
    assert store.genomes.show(digest, by_digest=True).digest == digest


def test_a_repeated_remove_of_a_bare_name_never_removes_the_genome_another_namespace_names(
    store: Store, tmp_path: Path, cli  # type: ignore[no-untyped-def]
) -> None:
    # A retried `genome remove hg38` (a script run twice) found ucsc:hg38 once refgenie:hg38 was gone
    # and removed that other genome too: a removal takes a bare name from the refgenie namespace only.
    mine = store.genomes.init(TINY, ["hg38"]).genome.digest
    theirs = store.genomes.init(_write(tmp_path / "ucsc.fa", {"x": "ACGT" * 10}), ["ucschg38"]).genome.digest
    store.aliases.set("ucsc:hg38", theirs)
    assert store.genomes.remove("hg38")
    assert store.genomes.resolve("hg38") == theirs  # reads still fall through to the other namespace
    with pytest.raises(NotFoundError, match=r"no genome named 'hg38'.*did you mean 'ucsc:hg38'\?"):
        store.genomes.remove("hg38")
    store.close()  # the CLI opens the store itself (once per process)
    result = cli("genome", "remove", "hg38")
    assert result.exit_code != 0 and "did you mean 'ucsc:hg38'?" in result.stderr
    assert "Traceback" not in result.stderr
    result = cli("genome", "list", "--json")
    assert result.exit_code == 0 and theirs in result.stdout and mine not in result.stdout
    assert cli("genome", "remove", "ucsc:hg38").exit_code == 0  # typed out, the namespace is taken exactly


def test_fhr_keeps_unknown_keys_and_undo_restores_the_previous_document(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "tiny.fhr.json"
    path.write_text(json.dumps(FHR))
    store.genomes.init(TINY, ["tiny"], fhr=path)
    assert store.genomes.fhr_get("tiny") == FHR
    second = {**FHR, "version": "2"}
    store.genomes.fhr_set("tiny", second)
    assert store.genomes.fhr_get("tiny")["version"] == "2"
    digest = store.genomes.resolve("tiny")
    store.append([NewEvent(stream=genome_stream(digest), event=Undone())])
    assert store.genomes.fhr_get("tiny") == FHR
    assert store.genomes.fhr_set("tiny", FHR) == []  # identical: nothing recorded
    assert [type(e.event) for e in store.events(stream=genome_stream(digest))].count(FhrSet) == 2


def test_init_with_a_different_fhr_replaces_it_and_says_so(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # A re-run of init with another --fhr replaced the stored document without a word, while the
    # help said FHR provenance was changed only with `rgstore genome fhr set`.
    first, second = tmp_path / "one.fhr.json", tmp_path / "two.fhr.json"
    first.write_text(json.dumps(FHR))
    second.write_text(json.dumps({**FHR, "version": "2"}))
    init = ("genome", "init", "--fasta", str(TINY), "--name", "tiny", "--fhr")
    made = cli(*init, str(first), "--json")
    assert made.exit_code == 0, made.output
    assert (json.loads(made.output)["fhr_set"], json.loads(made.output)["fhr_replaced"]) == (True, False)
    same = json.loads(cli(*init, str(first), "--json").output)
    assert (same["fhr_set"], same["fhr_replaced"], same["seqs"]) == (False, False, [])
    replaced = cli(*init, str(second))
    digest = json.loads(cli("genome", "show", "tiny", "--json").output)["digest"]
    assert replaced.exit_code == 0 and replaced.output.splitlines()[1:] == [
        f"  fhr replaced (earlier documents: rgstore log --type fhr-set --stream genome:{digest})"]
    assert json.loads(cli("genome", "fhr", "get", "tiny").output)["version"] == "2"
    again = json.loads(cli(*init, str(first), "--json").output)
    assert (again["fhr_set"], again["fhr_replaced"]) == (True, True)
    logged = [json.loads(line)["seq"] for line in cli("log", "--type", "fhr-set", "--stream", f"genome:{digest}",
                                                      "--json").output.splitlines()]
    shown = [json.loads(cli("log", "show", str(seq), "--json").output) for seq in logged]
    assert [e["event"]["fhr"]["version"] for e in shown] == ["1", "2", "1"], shown
    help_text = " ".join(cli("genome", "init", "--help").output.split())
    assert "A different --fhr replaces the stored FHR document" in help_text


@pytest.mark.parametrize(
    ("doc", "reason"),
    [([1, 2], "JSON object"), ({"genome": 5}, "not a valid FHR"), ({"schemaVersion": 3}, "not FHR 1.x"),
     ({"extra": 2**70}, "a number is too large to store")],  # msgpack: OverflowError when the event was written
    ids=["not-object", "wrong-type", "wrong-version", "int-beyond-u64"],
)
def test_invalid_fhr_is_refused(store: Store, doc: object, reason: str) -> None:
    store.genomes.init(TINY, ["tiny"])
    with pytest.raises(InvalidInputError, match=reason):
        store.genomes.fhr_set("tiny", doc)  # type: ignore[arg-type]
    with pytest.raises(NotFoundError, match="no FHR"):
        store.genomes.fhr_get("tiny")


def test_an_fhr_file_with_a_5000_digit_number_is_one_line(store: Store, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    store.genomes.init(TINY, ["tiny"])
    store.close()
    doc = tmp_path / "big.json"
    doc.write_bytes(b'{"extra": ' + b"1" * 5000 + b"}")  # json.loads raised a bare ValueError
    result = cli("genome", "fhr", "set", "tiny", str(doc))
    assert result.exit_code == 1
    assert result.output == f"error: {doc}: a number in the JSON has more than 4,300 digits\n"


def test_fhr_set_dash_reads_the_document_from_standard_input_and_names_it_when_bad(  # type: ignore[no-untyped-def]
    store: Store, cli
) -> None:
    # Before: "-: no such FHR file", though `genome init --fasta -` reads standard input.
    store.genomes.init(TINY, ["tiny"])
    store.close()
    done = cli("genome", "fhr", "set", "tiny", "-", "--json", input=json.dumps(FHR))
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["changed"] is True
    assert json.loads(cli("genome", "fhr", "get", "tiny").stdout) == FHR
    bad = cli("genome", "fhr", "set", "tiny", "-", input="{not json")
    assert (bad.exit_code, bad.output) == (1, "error: standard input: not JSON (line 1, column 2: "
                                              "Expecting property name enclosed in double quotes)\n")
    wrong = cli("genome", "fhr", "set", "tiny", "-", input='{"schemaVersion": 3}')
    assert wrong.output.startswith("error: standard input: schemaVersion 3 is not FHR 1.x")


def test_fhr_set_dash_from_a_terminal_is_refused_rather_than_waiting_for_typing(store: Store, store_path: Path) -> None:
    import os
    import subprocess
    import sys

    from tests.conftest import REPO

    store.genomes.init(TINY, ["tiny"])
    store.close()
    leader, terminal = os.openpty()
    try:
        done = subprocess.run([sys.executable, "-m", "rgstore_cli", "--store", str(store_path), "genome", "fhr", "set",
                               "tiny", "-"], cwd=REPO, stdin=terminal, capture_output=True, timeout=60)
    finally:
        os.close(terminal)
        os.close(leader)
    assert done.returncode == 2 and b"pipe one in" in done.stderr


def test_an_fhr_file_nested_too_deeply_for_the_json_parser_is_one_line(
    store: Store, tmp_path: Path, cli
) -> None:  # type: ignore[no-untyped-def]
    store.genomes.init(TINY, ["tiny"])
    store.close()
    deep = tmp_path / "deep.json"
    deep.write_text('{"a":' * 100_000 + "1" + "}" * 100_000)
    result = cli("genome", "fhr", "set", "tiny", str(deep))
    assert result.exit_code == 1
    assert result.output == f"error: {deep}: JSON nested too deeply to be an FHR document\n"


@pytest.mark.parametrize("damage", ["gone", "cut-short"])
def test_export_with_a_sequence_file_gone_is_one_line_before_any_output(
    store: Store, store_path: Path, rgstore_proc, tmp_path: Path, damage: str
) -> None:  # type: ignore[no-untyped-def]
    genome = store.genomes.init(TINY, ["tiny"]).genome
    store.close()
    chr2 = genome.sequences[1].removeprefix("SQ.")
    data = next((store_path / "refget" / "sequences").rglob(f"{chr2}.seq"))
    if damage == "gone":
        data.unlink()
    else:  # export reads data files directly: a short one must not pass for the sequence
        data.write_bytes(data.read_bytes()[:-7])
    done = rgstore_proc("--store", str(store_path), "genome", "export", "tiny", "-")
    assert done.returncode == 1 and done.stdout == b""  # chr1 is readable, but nothing is written
    assert done.stderr.decode() == (
        f"error: sequence chr2 ({chr2}) of genome tiny is recorded but missing from "
        f"{store_path / 'refget'}, and no remote genome or upstream holds it (its data file is gone or damaged: "
        "adding the genome's FASTA again with `rgstore genome init` rewrites it)\n"
    )
    out = tmp_path / "tiny.fa"
    assert rgstore_proc("--store", str(store_path), "genome", "export", "tiny", str(out)).returncode == 1
    assert list(tmp_path.glob("*tiny.fa*")) == []


def test_export_writes_the_upper_cased_genome_atomically(store: Store, tmp_path: Path) -> None:
    store.genomes.init(TINY, ["tiny"])
    out = tmp_path / "out" / "tiny.fa"
    with pytest.raises(NotFoundError, match="does not exist"):  # no directories are created on the way
        store.genomes.export("tiny", out, width=60)
    out.parent.mkdir()
    store.genomes.export("tiny", out, width=60)
    expected = "".join(line.upper() if not line.startswith(">") else line.split()[0] + "\n"
                       for line in TINY.read_text().splitlines(keepends=True))
    assert out.read_text() == expected
    assert [p.name for p in out.parent.iterdir()] == ["tiny.fa"]


@pytest.mark.parametrize("empty", ["", Path("")], ids=["str", "Path"])
def test_export_to_an_empty_path_or_a_directory_is_one_line_and_writes_nothing(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, empty: str | Path,
) -> None:
    store.genomes.init(TINY, ["tiny"])
    work = tmp_path / "work"
    (work / "d").mkdir(parents=True)
    monkeypatch.chdir(work)  # Path("") is the working directory: nothing may be written into it
    with pytest.raises(InvalidInputError, match=r"^(empty path for the FASTA file; name one|cannot write \.: it is a "
                                                r"directory \(the working directory\); name the FASTA file)$"):
        store.genomes.export("tiny", empty)
    with pytest.raises(InvalidInputError, match=r"^cannot write d: it is a directory; name the FASTA file$"):
        store.genomes.export("tiny", "d")
    assert sorted(p.name for p in work.rglob("*")) == ["d"]


def test_init_fhr_set_and_bed_refuse_an_empty_path_by_name(store: Store) -> None:
    with pytest.raises(InvalidInputError, match="^empty path for the FASTA file; name one$"):
        store.genomes.init("", ["tiny"])
    store.genomes.init(TINY, ["tiny"])
    with pytest.raises(InvalidInputError, match="^empty path for the FHR file; name one$"):
        store.genomes.fhr_set("tiny", "")
    with pytest.raises(InvalidInputError, match="^empty path for the BED file; name one$"):
        store.genomes.read_loci("tiny", [], bed="")  # type: ignore[arg-type]  # a Python caller's str


def test_export_to_a_fifo_or_device_writes_into_it_and_never_replaces_the_node(store: Store, tmp_path: Path) -> None:
    import os
    import stat
    import threading

    store.genomes.init(TINY, ["tiny"])
    out = tmp_path / "out"
    out.mkdir()
    expected = out / "tiny.fa"
    store.genomes.export("tiny", expected)
    fifo = out / "pipe"  # a shell's >(gzip > x) or /dev/stdout is one of these
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    store.genomes.export("tiny", fifo)
    reader.join(timeout=60)
    assert got == [expected.read_bytes()] and stat.S_ISFIFO(fifo.lstat().st_mode)
    null = out / "null"  # what /dev/null is: `rgstore genome export hg38 /dev/null` as root replaced it
    try:
        os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        return  # not root (CI is): the FIFO above made the claim
    store.genomes.export("tiny", null)
    assert stat.S_ISCHR(null.lstat().st_mode) and sorted(p.name for p in out.iterdir()) == ["null", "pipe", "tiny.fa"]


def test_export_through_a_symlink_replaces_its_target_and_keeps_the_link(store: Store, tmp_path: Path) -> None:
    store.genomes.init(TINY, ["tiny"])
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "tiny.fa").write_text(">old\nAC\n")
    (shared / "tiny.fa.fai").write_text("old\t2\t5\t2\t3\n")
    link = tmp_path / "tiny.fa"
    link.symlink_to(shared / "tiny.fa")
    (tmp_path / "tiny.fa.fai").write_text("old\t2\t5\t2\t3\n")
    store.genomes.export("tiny", link)
    assert link.is_symlink() and link.read_text().startswith(">chr1")
    assert not (shared / "tiny.fa.fai").exists() and not (tmp_path / "tiny.fa.fai").exists()
    assert sorted(p.name for p in shared.iterdir()) == ["tiny.fa"]


def test_export_to_dev_stdout_appends_to_the_shells_file_instead_of_replacing_it(store: Store, tmp_path: Path) -> None:
    import os

    store.genomes.init(TINY, ["tiny"])
    expected = tmp_path / "tiny.fa"
    store.genomes.export("tiny", expected)
    combined = tmp_path / "combined.fa"  # `rgstore genome export tiny /dev/stdout >> combined.fa`
    combined.write_bytes(b">phix\nACGT\n")
    fd = os.open(combined, os.O_WRONLY | os.O_APPEND)
    try:
        store.genomes.export("tiny", f"/dev/fd/{fd}")
        link = tmp_path / "out.fa"  # a link to the descriptor, as /dev/stdout is
        link.symlink_to(f"/proc/self/fd/{fd}")
        store.genomes.export("tiny", link)
        os.write(fd, b">end\nT\n")  # what the shell writes next lands after the genome, in the same file
    finally:
        os.close(fd)
    assert combined.read_bytes() == b">phix\nACGT\n" + expected.read_bytes() * 2 + b">end\nT\n"
    assert link.is_symlink()
    reading = os.open(combined, os.O_RDONLY)  # `export tiny /dev/stdin < combined.fa` replaced the input
    try:
        with pytest.raises(InvalidInputError, match="open for reading only"):
            store.genomes.export("tiny", f"/dev/fd/{reading}")
    finally:
        os.close(reading)
    assert combined.read_bytes().startswith(b">phix\n")


def test_re_exporting_over_an_indexed_fasta_leaves_no_stale_index_for_samtools_to_misread(
    store: Store, tmp_path: Path
) -> None:
    pysam = pytest.importorskip("pysam")
    store.genomes.init(TINY, ["tiny"])
    out = tmp_path / "tiny.fa"
    store.genomes.export("tiny", out, width=80)
    pysam.faidx(str(out))  # `samtools faidx tiny.fa`, as a lab does before using the file
    assert Path(f"{out}.fai").exists()

    store.genomes.export("tiny", out, width=60)  # new line layout: the old index's offsets are wrong

    assert not Path(f"{out}.fai").exists()
    with pysam.FastaFile(str(out)) as fasta:  # indexes the new file
        for name in fasta.references:
            assert fasta.fetch(name) == store.getseq("tiny", name).upper()


def test_an_export_named_gz_is_bgzf_that_zcat_reads_and_samtools_indexes(store: Store, tmp_path: Path) -> None:
    import gzip

    pysam = pytest.importorskip("pysam")
    store.genomes.init(TINY, ["tiny"])
    store.genomes.export("tiny", tmp_path / "tiny.fa", width=60)
    packed = tmp_path / "tiny.fa.gz"
    store.genomes.export("tiny", packed, width=60)
    assert gzip.decompress(packed.read_bytes()) == (tmp_path / "tiny.fa").read_bytes()
    pysam.faidx(str(packed))  # htslib refuses plain gzip: "please use bgzip"
    assert Path(f"{packed}.gzi").exists()
    first = packed.read_bytes()
    store.genomes.export("tiny", packed, width=80)  # a new layout: the old .fai and .gzi would misread it
    assert not Path(f"{packed}.fai").exists() and not Path(f"{packed}.gzi").exists()
    with pysam.FastaFile(str(packed)) as fasta:
        for name in fasta.references:
            assert fasta.fetch(name, 5, 70) == store.getseq("tiny", name, 5, 70).upper()
    store.genomes.export("tiny", packed, width=60)
    assert packed.read_bytes() == first  # no time or name in the headers: the same bytes every time


def test_list_show_and_compare(store: Store, tmp_path: Path) -> None:
    tiny = store.genomes.init(TINY, ["tiny"], description="tiny test").genome
    sub = store.genomes.init(_write(tmp_path / "sub.fa", {"chr1": store.getseq("tiny", "chr1")}), ["sub"]).genome
    assert [g.aliases for g in store.genomes.list()] == [["sub"], ["tiny"]]
    shown = store.genomes.show(tiny.digest, by_digest=True)
    assert shown.aliases == ["tiny"] and shown.description == "tiny test" and shown.total_length == 6000
    result = store.genomes.compare("tiny", "sub")
    assert result["digests"] == {"a": tiny.digest, "b": sub.digest}
    assert result["array_elements"]["a_and_b_count"]["sequences"] == 1


def test_rebuild_reproduces_the_genome_view(store: Store, tmp_path: Path) -> None:
    store.genomes.init(TINY, ["tiny"], fhr=FHR)
    store.genomes.init(_write(tmp_path / "b.fa", {"c1": "ACGT"}), ["b"])
    store.genomes.remove("b")
    view = next(v for v in store.views if v.name == "genomes")
    with store.read() as txn:
        before = list(view.contents(txn, store.environment))
    store.rebuild([view])
    with store.read() as txn:
        assert list(view.contents(txn, store.environment)) == before
    assert before  # the view is not trivially empty


def test_another_process_imports_and_repoints_are_seen_by_a_long_lived_handle(
    store: Store, store_path: Path, tmp_path: Path, rgstore_proc  # type: ignore[no-untyped-def]
) -> None:
    store.genomes.init(TINY, ["tiny"])
    assert store.getseq("tiny", "chr1", 0, 5) == TINY.read_text().splitlines()[1][:5].upper()
    new = _write(tmp_path / "n.fa", {"chr1": "GATTACA"})
    done = rgstore_proc("--store", str(store_path), "genome", "init", "--fasta", str(new), "--name", "new")
    assert done.returncode == 0, done.stderr
    assert store.getseq("new", "chr1", 1, 4) == "ATT"  # this gtars handle predates the import: reopened
    done = rgstore_proc("--store", str(store_path), "genome", "init", "--fasta", str(new), "--name", "tiny",
                        "--force")
    assert done.returncode == 0, done.stderr
    # Cached resolutions are re-checked against the log head every 0.1 s: poll, as a slow CI VM may lag.
    deadline = time.monotonic() + 30
    while store.getseq("tiny", "chr1", 0, 5) != "GATTA" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert store.getseq("tiny", "chr1", 0, 5) == "GATTA"


def test_store_without_genomes_reports_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError, match="no genome named 'hg38'"):
        store.getseq("hg38", "chr1")
    shutil.rmtree(store.refget_path, ignore_errors=True)
    with pytest.raises(NotFoundError):
        store.genomes.show("hg38")


def test_genome_benchmark_smoke_run_at_a_tiny_size(capsys: pytest.CaptureFixture[str]) -> None:
    from tools.bench.genome import main

    assert main(["--size", "300000", "--contigs", "5", "--calls", "200", "--reps", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["size_bp"] > 290_000 and result["contigs"] == 5
    for key in ("ingest_ratio", "read_ratio_vs_gtars", "read_speedup_vs_pyfaidx", "rgstore_rss_mb"):
        assert result[key] > 0


def test_closing_the_store_stops_the_sequence_cache_watcher(store_path: Path) -> None:
    import threading

    def watchers() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == "rgstore-sequence-cache"]

    with Store.open(store_path) as s:
        s.genomes.init(TINY, ["tiny"])
        s.getseq("tiny", "chr1", 0, 5)
        assert len(watchers()) == 1
    assert watchers() == []


def _seq_files(store: Store) -> set[str]:
    return {p.name for p in (store.refget_path / "sequences").rglob("*.seq")}


@pytest.mark.parametrize(("option", "value", "shown"), [
    ("description", "another description", "description 'tiny test' (not 'another description')"),
    ("species", "Homo sapiens", "species 'Tinyus testus' (not 'Homo sapiens')"),
    ("circular", ["chr2"], "circular chrM (not chr2)"),
])
def test_reinit_with_different_metadata_is_refused_naming_what_differs(
    store: Store, option: str, value: object, shown: str
) -> None:
    store.genomes.init(TINY, ["tiny"], description="tiny test", species="Tinyus testus", circular=["chrM"])
    head = store.head()[0]
    with pytest.raises(ConflictError) as refused:
        store.genomes.init(TINY, ["tiny", "tiny2"], **{option: value})  # type: ignore[arg-type]
    message = str(refused.value)
    assert shown in message and "\n" not in message
    assert "rgstore genome fhr set" in message and "rgstore genome remove" in message
    assert store.head()[0] == head  # not even the new name
    genome = store.genomes.show("tiny")
    assert (genome.description, genome.species, genome.circular) == ("tiny test", "Tinyus testus", ["chrM"])


def test_reinit_repeating_or_omitting_the_stored_metadata_is_accepted(store: Store) -> None:
    store.genomes.init(TINY, ["tiny"], description="tiny test", species="Tinyus testus", circular=["chrM"])
    same = store.genomes.init(TINY, ["tiny", "t2"], description="tiny test", species="Tinyus testus",
                              circular=["chrM"])
    omitted = store.genomes.init(TINY, ["t3"])
    assert same.aliases_added == ["refgenie:t2"] and omitted.aliases_added == ["refgenie:t3"]


def test_cli_reinit_with_a_different_description_exits_nonzero_with_one_line(cli) -> None:  # type: ignore[no-untyped-def]
    assert cli("genome", "init", "--fasta", str(TINY), "--name", "tiny", "-d", "old").exit_code == 0
    refused = cli("genome", "init", "--fasta", str(TINY), "--name", "tiny", "-d", "new")
    assert refused.exit_code != 0
    assert refused.output.count("\n") == 1 and refused.output.startswith("error: genome ")
    assert "description 'old' (not 'new')" in refused.output


def test_a_refused_reinit_leaves_no_orphan_collection_or_sequence_files(store: Store, tmp_path: Path) -> None:
    store.genomes.init(_write(tmp_path / "a.fa", {"c1": "ACGTACGT", "c2": "GGGG"}), ["g"])
    collections, files = _collections(store), _seq_files(store)
    with pytest.raises(ConflictError, match="refgenie:g already points"):
        store.genomes.init(_write(tmp_path / "b.fa", {"c1": "TTTTTTTT", "c2": "GGGG"}), ["g"])
    assert _collections(store) == collections
    assert _seq_files(store) == files  # c2's shared file stays, c1's new one is gone
    assert not (store.refget_path / ".rgstore.lock").exists()
    from rgstore.refgetstore import open_refget

    assert open_refget(store, write=False).list_collections()["pagination"]["total"] == 1


def test_a_refused_reinit_keeps_a_collection_it_did_not_add(store: Store, tmp_path: Path) -> None:
    b = _write(tmp_path / "b.fa", {"c1": "TTTTTTTT"})
    kept = store.genomes.init(b, ["b"]).genome
    store.genomes.remove("b")  # the collection and its sequences stay in the RefgetStore
    store.genomes.init(_write(tmp_path / "a.fa", {"c1": "ACGTACGT"}), ["g"])
    collections, files = _collections(store), _seq_files(store)
    with pytest.raises(ConflictError):
        store.genomes.init(b, ["g"])  # b's collection was already there: this import added nothing
    assert _collections(store) == collections and _seq_files(store) == files
    assert store.genomes.init(b, ["b"]).genome.digest == kept.digest


def test_init_sweeps_stale_unused_scratch_dirs_and_keeps_live_or_young_ones(store: Store, tmp_path: Path) -> None:
    import fcntl
    import os

    from rgstore.refgetstore import STALE_SCRATCH_S

    store.genomes.init(TINY, ["tiny"])
    old = time.time() - STALE_SCRATCH_S - 60
    dead = store.path / ".ingest-dead"  # killed before it marked itself in use
    (dead / "input.fa").parent.mkdir()
    (dead / "input.fa").write_text(">x\nACGT\n")
    released = store.path / ".remote-released"  # its process died: the flock died with it
    released.mkdir()
    (released / ".in-use").touch()
    live = store.path / ".ingest-live"  # an import still running, for a long time already
    live.mkdir()
    fd = os.open(live / ".in-use", os.O_CREAT | os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    young = store.path / ".ingest-young"  # just created, not marked yet
    young.mkdir()
    for path in (dead, released, live):
        os.utime(path, (old, old))
    try:
        store.genomes.init(_write(tmp_path / "b.fa", {"c1": "ACGT"}), ["b"])
        assert sorted(p.name for p in store.path.glob(".*-*")) == [".ingest-live", ".ingest-young"]
    finally:
        os.close(fd)


@pytest.mark.slow
@pytest.mark.parametrize(("signame", "status", "group", "in_child"), [
    ("SIGTERM", 143, False, True), ("SIGINT", 130, False, True), ("SIGINT", 130, True, True),
    ("SIGTERM", 143, False, False), ("SIGINT", 130, False, False), ("SIGHUP", 129, True, True)])
def test_sigterm_or_ctrl_c_during_the_import_removes_its_scratch_dir_and_records_nothing(
    tmp_path: Path, store_path: Path, signame: str, status: int, group: bool, in_child: bool
) -> None:
    # SIGINT (Ctrl-C) too: Python's own handler raised as the gtars import returned, before its
    # result was bound, so the collection it had added stayed in the RefgetStore. A terminal's
    # Ctrl-C reaches the whole process group, so the gtars import's child process gets it too.
    # This genome's import runs in a child (CHILD_IMPORT_MIN_BYTES); ``in_child`` False raises the
    # threshold in the CLI's process, so gtars imports in-process as smaller FASTAs do.
    import os
    import signal
    import subprocess
    import sys

    from tests.conftest import REPO
    from tools.bench.synth import write_genome

    fasta = tmp_path / "big.fa"
    write_genome(fasta, 60_000_000, contigs=25, seed=3)
    Store.open(store_path).close()
    in_process = ("import runpy, rgstore.refgetstore as r; r.CHILD_IMPORT_MIN_BYTES = 1 << 62; "
                  "runpy.run_module('rgstore_cli', run_name='__main__', alter_sys=True)")
    launch = ["-m", "rgstore_cli"] if in_child else ["-c", in_process]
    proc = subprocess.Popen([sys.executable, *launch, "--store", str(store_path), "genome", "init",
                             "--fasta", str(fasta), "--name", "big"], cwd=REPO, stderr=subprocess.PIPE,
                            start_new_session=group)
    try:
        deadline = time.monotonic() + 120
        # Once gtars writes sequence files, its import is under way (the signal lands inside it).
        while not _seq_files_on_disk(store_path) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        assert _seq_files_on_disk(store_path), "the import never started"
        if group:
            os.killpg(proc.pid, getattr(signal, signame))
        else:
            proc.send_signal(getattr(signal, signame))
        assert proc.wait(timeout=120) == status
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert list(store_path.glob(".ingest-*")) == []
    stderr = proc.stderr.read() if proc.stderr else b""
    assert b"Traceback" not in stderr
    if signame == "SIGINT":  # one line, the shell's 128 + SIGINT, not click's "Aborted!" and 1
        assert stderr.decode().splitlines() == ["error: interrupted"]
    with Store.open(store_path) as store:
        assert store.head()[0] == 0 and store.genomes.list() == []
        assert _collections(store) == 0 and _seq_files(store) == set()


def _seq_files_on_disk(store_path: Path) -> bool:
    return any((store_path / "refget" / "sequences").glob("*/*.seq"))


def _gtars_fhr(store: Store, digest: str) -> dict[str, object] | None:
    from gtars.refget import RefgetStore

    handle = RefgetStore.open_local(str(store.refget_path))  # a fresh handle: they never refresh
    handle.set_quiet(True)
    found = handle.get_fhr_metadata(digest)
    return None if found is None else found.to_dict()  # type: ignore[no-any-return]


def test_fhr_is_projected_where_gtars_reads_it_and_follows_set_undo_and_remove(store: Store) -> None:
    digest = store.genomes.init(TINY, ["tiny"], fhr=FHR).genome.digest
    path = store.refget_path / "fhr" / f"{digest}.fhr.json"
    assert json.loads(path.read_text()) == FHR
    assert _gtars_fhr(store, digest) == FHR  # unknown keys (labNotes, vitalStats) included
    second = {**FHR, "version": "2"}
    store.genomes.fhr_set("tiny", second)
    assert _gtars_fhr(store, digest) == second
    store.append([NewEvent(stream=genome_stream(digest), event=Undone())])
    assert _gtars_fhr(store, digest) == FHR
    store.append([NewEvent(stream=genome_stream(digest), event=Undone())])  # back before the first FhrSet
    assert not path.exists() and _gtars_fhr(store, digest) is None
    store.genomes.fhr_set("tiny", second)
    store.genomes.remove("tiny")
    assert list((store.refget_path / "fhr").iterdir()) == []
    assert not (store.refget_path / ".rgstore.lock").exists()


def test_rebuild_rewrites_damaged_fhr_files_and_drops_strays(store: Store, cli, store_path: Path) -> None:  # type: ignore[no-untyped-def]
    digest = store.genomes.init(TINY, ["tiny"], fhr=FHR).genome.digest
    fhr_dir = store.refget_path / "fhr"
    (fhr_dir / f"{digest}.fhr.json").write_text('{"genome": "tampered"}')
    (fhr_dir / f"{'A' * 32}.fhr.json").write_text("{}")  # no such genome has FHR
    store.close()
    assert cli("rebuild").exit_code == 0
    assert [p.name for p in fhr_dir.iterdir()] == [f"{digest}.fhr.json"]
    with Store.open(store_path) as reopened:
        assert _gtars_fhr(reopened, digest) == FHR



def test_an_fhr_file_refresh_the_disk_refuses_after_the_commit_says_the_change_was_recorded(
    store: Store, store_path: Path
) -> None:
    # The bare OSError (e.g. ENOSPC) reached the CLI as "error: No space left on device": a failure, though committed.
    from rgstore.errors import ExternalSyncError

    digest = store.genomes.init(TINY, ["tiny"]).genome.digest
    fhr_dir = store.refget_path / "fhr"
    shutil.rmtree(fhr_dir)
    fhr_dir.write_text("")  # the refresh cannot write there, as on a full disk
    head = store.head()[0]
    with pytest.raises(ExternalSyncError, match=r"^FHR change recorded, but .* not refreshed \(.*: .*fhr\); the next"):
        store.genomes.fhr_set("tiny", FHR)
    assert store.head()[0] == head + 1 and store.genomes.fhr_get("tiny") == FHR
    store.close()
    fhr_dir.unlink()
    with Store.open(store_path) as reopened:  # its pending mark: the next writable open refreshes the copy
        assert json.loads((fhr_dir / f"{digest}.fhr.json").read_text()) == FHR
        assert reopened.verify().ok

class _TakeBackAfterImport:
    """A progress factory whose import bar, on closing, lets another process's interrupted import
    of the same FASTA take its collection back (``discard_import``): after gtars' import, before the read-back."""

    def __init__(self, store: Store, digest: str) -> None:
        self.store, self.digest, self.fired = store, digest, False

    def __call__(self, desc: str, total: int | None = None, unit: str = "it") -> _TakeBackAfterImport:
        self.desc = desc
        return self

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        from rgstore.refgetstore import discard_import

        if self.desc.startswith("import ") and not self.fired:
            self.fired = True
            discard_import(self.store, self.digest, True)


@pytest.mark.parametrize("in_child", [False, True])
def test_a_collection_taken_back_during_the_import_is_a_one_line_conflict_and_a_rerun_works(
        store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, in_child: bool) -> None:
    from rgstore import refgetstore
    from rgstore.refgetstore import open_refget

    monkeypatch.setattr(refgetstore, "CHILD_IMPORT_MIN_BYTES", 0 if in_child else 1 << 62)
    other = tmp_path / "other"  # the other process's private copy of the same FASTA
    other.mkdir()
    shutil.copy(TINY, other / "tiny.fa")
    meta, was_new = open_refget(store, write=True).add_sequence_collection_from_fasta(str(other / "tiny.fa"))
    assert was_new
    hook = _TakeBackAfterImport(store, str(meta.digest))
    with pytest.raises(ConflictError) as caught:
        store.genomes.init(TINY, ["tiny"], progress=hook)
    assert hook.fired and str(caught.value) == (
        f"the RefgetStore collection {meta.digest} was removed while this import ran (by `rgstore gc` or an "
        "interrupted import of the same FASTA); run the command again")
    assert store.head()[0] == 0 and store.genomes.list() == []
    assert store.genomes.init(TINY, ["tiny"]).genome.digest == str(meta.digest)
    assert store.getseq("tiny", "chrM", 0, 4) == TINY.read_text().split(">chrM")[1].splitlines()[1][:4].upper()


def test_only_gtars_collection_gone_error_for_an_absent_collection_maps_to_the_conflict(
        store: Store, tmp_path: Path) -> None:
    from gtars.refget import RefgetStore

    from rgstore.refgetstore import open_refget, removed_meanwhile

    copy = tmp_path / "tiny.fa"
    shutil.copy(TINY, copy)
    digest = str(open_refget(store, write=True).add_sequence_collection_from_fasta(str(copy))[0].digest)
    stale = RefgetStore.open_local(str(store.refget_path))  # knows the collection, has not read it yet
    stale.set_quiet(True)
    rgsi = store.refget_path / "collections" / f"{digest}.rgsi"
    kept = rgsi.read_bytes()
    assert open_refget(store, write=True).remove_collection(digest, remove_orphan_sequences=True)
    errors = []
    for read in (lambda: stale.get_collection_level2(digest), lambda: RefgetStore.open_local(
            str(store.refget_path)).get_collection_level1(digest)):
        with pytest.raises(OSError) as caught:
            read()
        errors.append(caught.value)
    assert [removed_meanwhile(store, e, digest) for e in errors] == [digest, digest]
    assert removed_meanwhile(store, errors[0], "x" * 32) is None  # another collection's error
    with pytest.raises(OSError) as unreadable:
        open_refget(store, write=True).add_sequence_collection_from_fasta(str(tmp_path / "missing.fa"))
    assert removed_meanwhile(store, unreadable.value) is None
    rgsi.write_bytes(kept)  # present again: whatever gtars said, it was not removed
    assert removed_meanwhile(store, errors[0], digest) is None


def test_genome_remove_and_fhr_set_take_json_like_the_rest_of_the_group(store: Store, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    store.genomes.init(TINY, ["tiny", "small"])
    store.close()
    doc = tmp_path / "fhr.json"
    doc.write_text('{"schema": "https://example.org/fhr.json", "schemaVersion": 1.0, "genome": "tiny"}')
    first, again = cli("genome", "fhr", "set", "tiny", str(doc), "--json"), cli("genome", "fhr", "set", "tiny", str(doc), "--json")
    assert json.loads(first.stdout)["changed"] is True and json.loads(again.stdout)["changed"] is False
    removed = json.loads(cli("genome", "remove", "tiny", "--json").stdout)
    assert removed["removed"] == "tiny" and removed["aliases_removed"] == 2 and len(removed["seqs"]) == 3
    assert json.loads(cli("genome", "list", "--json").stdout) == []


def test_genome_remove_json_lists_the_aliases_it_removed_as_init_and_undo_name_them(store: Store, cli) -> None:  # type: ignore[no-untyped-def]
    # Before: only their count ("aliases_removed"); init's "aliases_added" and undo's "aliases" list ns:name.
    store.genomes.init(TINY, ["tiny", "ucsc:small"])
    store.close()
    removed = json.loads(cli("genome", "remove", "tiny", "--json").stdout)
    assert sorted(removed["aliases"]) == ["refgenie:tiny", "ucsc:small"] and removed["aliases_removed"] == 2
    undone = json.loads(cli("genome", "undo", "--digest", removed["digest"], "--json").stdout)
    assert sorted(undone["aliases"]) == sorted(removed["aliases"])


def test_genome_fhr_get_accepts_json_as_log_show_does(store: Store, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    # Before: `fhr get --json` was a usage error (exit 2), though its output is JSON either way.
    store.genomes.init(TINY, ["tiny"])
    store.close()
    doc = tmp_path / "fhr.json"
    doc.write_text('{"schema": "https://example.org/fhr.json", "schemaVersion": 1.0, "genome": "tiny"}')
    assert cli("genome", "fhr", "set", "tiny", str(doc)).exit_code == 0
    plain, flagged = cli("genome", "fhr", "get", "tiny"), cli("genome", "fhr", "get", "tiny", "--json")
    assert flagged.exit_code == 0 and flagged.stdout == plain.stdout
    assert json.loads(flagged.stdout)["genome"] == "tiny"


def test_genome_remove_json_names_the_digest_it_removed_beside_the_name_as_typed(store: Store, cli) -> None:  # type: ignore[no-untyped-def]
    # Before: only "removed", the name as typed: a script could not tell which genome a bare name had meant.
    digest = store.genomes.init(TINY, ["tiny", "ucsc:small"]).genome.digest
    store.close()
    removed = json.loads(cli("genome", "remove", "tiny", "--json").stdout)
    assert (removed["removed"], removed["digest"], removed["aliases_removed"]) == ("tiny", digest, 2)
    with Store.open(store.path) as reopened:
        again = reopened.genomes.init(TINY, ["tiny", "ucsc:small"]).genome.digest
        removal = reopened.genomes.remove_genome(again, by_digest=True)
        assert (removal.digest, sorted(removal.aliases)) == (digest, ["refgenie:tiny", "ucsc:small"])
        assert [type(e.event) for e in reopened.events() if e.seq in removal.seqs] == [
            GenomeRemoved, AliasRemoved, AliasRemoved]


class _GcWhenImportStarts:
    """A progress factory that, once the import's RefgetStore handle is open and before gtars imports, runs
    `rgstore gc --grace 0` (as another process would), or with ``unmarked`` removes the collection ``digest``
    as a gc that ignores the import mark would (an older rgstore): it deletes sequences the handle believes present."""

    def __init__(self, store: Store, digest: str, *, unmarked: bool) -> None:
        self.store, self.digest, self.unmarked, self.fired = store, digest, unmarked, False
        self.kept: list[str] = []

    def __call__(self, desc: str, total: int | None = None, unit: str = "it") -> _GcWhenImportStarts:
        from rgstore.gc import collect_garbage
        from rgstore.refgetstore import open_refget

        if desc.startswith("import ") and not self.fired:
            self.fired = True
            if self.unmarked:
                handle = open_refget(self.store, write=True)
                handle.lock_for_batch("an-unmarked-gc")
                try:
                    assert handle.remove_collection(self.digest, remove_orphan_sequences=True)
                finally:
                    handle.release_batch_lock()
            else:
                report = collect_garbage(self.store, grace=0)
                assert report.collections_removed == []
                self.kept = report.collections_kept_recent
        return self

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.mark.parametrize("in_child", [False, True])
def test_gc_while_an_import_runs_keeps_the_collections_it_may_reuse_and_the_import_records_its_genome(
        store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, in_child: bool) -> None:
    # gc judged an unreferenced collection by its files' age, and one an import reuses is as old as its
    # first import: gc could delete its sequences between gtars' import and the genome being recorded.
    from rgstore import refgetstore

    monkeypatch.setattr(refgetstore, "CHILD_IMPORT_MIN_BYTES", 0 if in_child else 1 << 62)
    chr1 = TINY.read_text().split(">chr2")[0]
    other = tmp_path / "other.fa"
    other.write_text(chr1 + ">extra\nACGTTGCAACGT\n")
    digest = store.genomes.init(TINY, ["tiny"]).genome.digest
    store.genomes.remove("tiny")
    hook = _GcWhenImportStarts(store, digest, unmarked=False)
    store.genomes.init(other, ["other"], progress=hook)
    assert hook.fired and digest in hook.kept
    assert store.getseq("other", "chr1", 0, 10) == "".join(chr1.splitlines()[1:])[:10].upper()
    assert store.verify().ok


@pytest.mark.parametrize("in_child", [False, True])
def test_a_shared_sequence_gc_deletes_during_the_import_is_a_one_line_conflict_and_a_rerun_works(
        store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, in_child: bool) -> None:
    # The import's RefgetStore handle (a child's: once it said ready) is open when gc runs.
    from rgstore import refgetstore

    monkeypatch.setattr(refgetstore, "CHILD_IMPORT_MIN_BYTES", 0 if in_child else 1 << 62)
    chr1 = TINY.read_text().split(">chr2")[0]  # ">chr1\n..." shared with the removed genome
    other = tmp_path / "other.fa"
    other.write_text(chr1 + ">extra\nACGTTGCAACGT\n")
    digest = store.genomes.init(TINY, ["tiny"]).genome.digest
    store.genomes.remove("tiny")
    hook = _GcWhenImportStarts(store, digest, unmarked=True)
    with pytest.raises(ConflictError) as caught:
        store.genomes.init(other, ["other"], progress=hook)
    message = str(caught.value)
    assert hook.fired and "\n" not in message and "  " not in message
    assert message.startswith(f"{other}: sequence SQ.") and message.endswith(
        "was removed from the RefgetStore while this import ran (by `rgstore gc` after a `genome remove`); "
        "run the command again")
    assert store.genomes.list() == []
    store.genomes.init(other, ["other"])
    assert store.getseq("other", "extra", 0, 4) == "ACGT"
    assert store.getseq("other", "chr1", 0, 10) == "".join(chr1.splitlines()[1:])[:10].upper()
    assert store.verify().ok


def test_genome_show_marks_empty_fields_with_a_dash_and_ends_no_line_in_spaces(cli, store: Store) -> None:  # type: ignore[no-untyped-def]
    store.genomes.init(TINY, ["tiny"])
    store.close()
    result = cli("genome", "show", "tiny")
    out = result.stdout
    assert result.exit_code == 0, result.stderr
    assert "species      -\n" in out and "description  -\n" in out
    assert not [line for line in out.splitlines() if line != line.rstrip()]


def test_genome_show_escapes_a_newline_in_a_fasta_file_name_so_it_cannot_forge_a_line(  # type: ignore[no-untyped-def]
    cli, store: Store, tmp_path: Path
) -> None:
    # A FASTA from someone else may be named anything: here, a name that would print a fake "added" line.
    fasta = tmp_path / "x.fa\nadded        2020-01-01T00:00:00Z by admin@lab (seq 1)"
    shutil.copy(TINY, fasta)
    store.genomes.init(fasta, ["tiny"], description="line one\nspecies      Mus musculus")
    store.close()
    result = cli("genome", "show", "tiny")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines[:8]] == ["digest", "names", "description", "species", "sequences",
                                                      "source", "added", "fhr"]
    assert "x.fa\\nadded" in lines[5] and lines[2] == "description  line one\\nspecies      Mus musculus"


# -- Python callers' habits: a str where a list or a Path is expected --------------------------


def test_init_takes_a_lone_str_name_and_circular_as_one_name_not_its_letters(store: Store) -> None:
    result = store.genomes.init(TINY, "tiny", circular="chrM")
    assert result.aliases_added == ["refgenie:tiny"]
    assert [a.name for a in store.aliases.list()] == ["tiny"]
    assert store.genomes.show("tiny").circular == ["chrM"]


def test_export_and_fhr_take_str_paths_like_pathlib_paths(store: Store, tmp_path: Path) -> None:
    store.genomes.init(TINY, ["tiny"])
    out = tmp_path / "out.fa"
    store.genomes.export("tiny", str(out))
    assert out.read_text().startswith(">chr1\n")
    doc = tmp_path / "fhr.json"
    doc.write_text(json.dumps(FHR))
    store.genomes.fhr_set("tiny", str(doc))
    assert store.genomes.fhr_get("tiny") == FHR
    with pytest.raises(InvalidInputError, match="no such FHR file"):
        store.genomes.init(TINY, ["tiny"], fhr=str(tmp_path / "missing.json"))


def test_a_fasta_whose_file_name_is_not_utf8_is_added_with_that_byte_escaped_in_its_source(
    store: Store, tmp_path: Path
) -> None:
    import os

    fasta = Path(os.fsdecode(bytes(tmp_path) + b"/tiny\xff.fa"))  # a Latin-1 name: a lone surrogate in Python
    shutil.copyfile(TINY, fasta)
    info = store.genomes.init(fasta, ["tiny"]).genome
    assert info.source.path == os.fsdecode(bytes(tmp_path)) + "/tiny\\xff.fa"  # the same text under every locale
    assert store.genomes.show("tiny").source.path == info.source.path


def test_seq_namespace_takes_several_namespaces_and_records_the_tokens_of_each(store: Store, tmp_path: Path) -> None:
    # One sequence's header holds tokens of both namespaces: both become its aliases; a namespace given twice is one.
    path = tmp_path / "ns.fa"
    path.write_text(">insdc:AB123.1 some desc\nACGT\n>chrM refseq:NC_1.1 insdc:J01415.2\nGGCC\n")
    result = store.genomes.init(path, ["nsg"], seq_namespace=("insdc", "refseq", "insdc"))
    assert result.sequence_aliases_added == 3
    events = [e for e in store.events() if isinstance(e.event, SequenceAliasSet)]
    assert sorted((e.stream, e.event.digest) for e in events) == [  # type: ignore[union-attr]
        ("seqalias:insdc/AB123.1", _t24u(b"ACGT")), ("seqalias:insdc/J01415.2", _t24u(b"GGCC")),
        ("seqalias:refseq/NC_1.1", _t24u(b"GGCC")),
    ]


def test_cli_seq_namespace_is_repeatable_and_keeps_every_namespace_given(  # type: ignore[no-untyped-def]
    cli, store_path: Path, tmp_path: Path,
) -> None:
    # Click kept only the last --seq-namespace: insdc's alias was dropped without a word, exit 0.
    path = tmp_path / "ns.fa"
    path.write_text(">insdc:AB123.1 some desc\nACGT\n>chrM refseq:NC_1.1\nGGCC\n")
    out = cli("genome", "init", "--fasta", str(path), "--name", "nsg",
              "--seq-namespace", "insdc", "--seq-namespace", "refseq")
    assert out.exit_code == 0, out.output
    assert "2 sequence aliases (insdc, refseq)" in out.output
    with Store.open(store_path) as reopened:
        streams = sorted(e.stream for e in reopened.events() if isinstance(e.event, SequenceAliasSet))
    assert streams == ["seqalias:insdc/AB123.1", "seqalias:refseq/NC_1.1"]


def test_cli_counts_of_one_are_said_in_the_singular(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path,
) -> None:
    # A one-sequence genome printed "1 sequences" and "1 sequence aliases"; remove and undo "1 alias(es)".
    path = tmp_path / "one.fa"
    path.write_text(">chrM insdc:J01415.2\nGGCC\n")
    out = cli("genome", "init", "--fasta", str(path), "--name", "one", "--seq-namespace", "insdc")
    assert out.exit_code == 0, out.output
    first, alias, seq_alias = out.stdout.splitlines()
    assert first.endswith("  added: 1 sequence, 4 bp") and alias == "  alias refgenie:one"
    assert seq_alias == "  1 sequence alias (insdc)"
    digest = first.split()[0]
    removed = cli("genome", "remove", "one")
    assert removed.exit_code == 0 and removed.stdout == "removed genome one and 1 alias naming it\n"
    undone = cli("genome", "undo", "--digest", digest)
    assert undone.exit_code == 0 and undone.stdout.endswith(" (1 alias back)\n"), undone.output


@pytest.mark.parametrize("chunk", [0, -1])
def test_genome_stream_with_a_chunk_below_one_is_an_invalid_input_error(store: Store, chunk: int) -> None:
    store.genomes.init(TINY, ["tiny"])
    with pytest.raises(InvalidInputError, match="chunk must be a positive number of genomes"):
        list(store.genomes.stream(chunk=chunk))
