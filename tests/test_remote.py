"""Claims about remote genomes, against a real RefgetStore served over loopback HTTP with Range."""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from rgstore import remote, remotefetch
from rgstore.errors import ConflictError, IntegrityError, InvalidInputError, NotFoundError, RemoteError
from rgstore.refgetstore import open_refget
from rgstore.store import Store
from tests.hostile_http import HostileServer, Reply, endless, fixed
from tests.httpfixture import RangeServer, serve_directory

Served = tuple[RangeServer, Path, str]
"""(server, served RefgetStore directory, the genome digest it holds)."""

RNG = random.Random(7)
LONG = "".join(RNG.choices("ACGT", k=5000))
FASTA = f">chr1\n{LONG[:60]}\n{LONG[60:]}\n>chr2\nGGGAAATTTCNNRYACGT\n>chrM\nTTTTGGGGCCCCAAAA\n"


def build_refget(root: Path, fasta_text: str, *, encoded: bool = False) -> str:
    """A gtars RefgetStore at ``root`` holding one genome, aliased ucsc:tiny; returns its digest."""
    from gtars.refget import RefgetStore

    root.parent.mkdir(parents=True, exist_ok=True)
    fasta = root.parent / f"{root.name}.fa"
    fasta.write_text(fasta_text)
    handle = RefgetStore.on_disk(str(root))
    handle.set_quiet(True)
    if not encoded:
        handle.disable_encoding()
    meta, _ = handle.add_sequence_collection_from_fasta(str(fasta))
    handle.add_collection_alias("ucsc", "tiny", meta.digest)
    (root.parent / f"{root.name}.rgsi").unlink(missing_ok=True)
    return str(meta.digest)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A static RefgetStore at URL/ (Raw mode), served for the whole module."""
    root = tmp_path_factory.mktemp("remote") / "store"
    digest = build_refget(root, FASTA)
    with serve_directory(root) as server:
        yield server, root, digest


@pytest.fixture
def remote_copy(tmp_path: Path) -> Iterator[Served]:
    """A private served RefgetStore a test may damage."""
    root = tmp_path / "served" / "store"
    root.parent.mkdir()
    digest = build_refget(root, FASTA)
    with serve_directory(root) as server:
        yield server, root, digest


def seq_requests(server: RangeServer) -> list[tuple[str, str, str]]:
    return [r for r in server.requests if r[1].endswith(".seq")]


# -- finding the store ------------------------------------------------------------------------------


def test_a_static_refget_store_is_detected_by_its_manifest(served: Served) -> None:
    server, _, _ = served
    source = remote.detect(server.url + "/")
    assert (source.kind, source.store_url) == ("refget-store", server.url)
    assert source.manifest["mode"] == "Raw"


@pytest.mark.parametrize("service_path", ["service-info", "seqcol/service-info"])
def test_a_seqcol_server_is_followed_to_the_store_it_advertises(tmp_path: Path, service_path: str) -> None:
    site = tmp_path / "site"
    digest = build_refget(site / "refget_store", FASTA)
    info = site / service_path
    info.parent.mkdir(parents=True, exist_ok=True)
    info.write_text(json.dumps({
        "id": "org.refgenie.seqcol",
        "type": {"group": "org.ga4gh", "artifact": "refget-seqcol", "version": "1.0.0"},
        "seqcol": {"refget_store": {"enabled": True, "url": "/refget_store/"}},
    }))
    with serve_directory(site) as server, Store.open(tmp_path / "local") as store:
        source = remote.detect(server.url)
        assert (source.kind, source.store_url) == ("seqcol-server", server.url + "/refget_store")
        result = remote.init_remote(store, server.url, ["tiny"], alias="ucsc:tiny")
        assert result.genome.digest == digest
        assert result.genome.source.remote_url == server.url + "/refget_store"


def test_a_server_that_advertises_no_store_is_refused_clearly(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "service-info").write_text(json.dumps({"seqcol": {"refget_store": {"enabled": False}}}))
    with serve_directory(site) as server, pytest.raises(RemoteError, match="advertises no RefgetStore"):
        remote.detect(server.url)


def test_a_url_that_is_neither_store_nor_server_is_refused(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "rgstore.json").write_text(json.dumps({"version": 1}))  # not a manifest: keys missing
    with serve_directory(site) as server, pytest.raises(RemoteError, match="neither a RefgetStore"):
        remote.detect(server.url)


# -- recording ----------------------------------------------------------------------------------------


def test_init_by_digest_records_the_genome_and_fetches_no_sequence(
    served: Served, store: Store
) -> None:
    server, _, digest = served
    before = len(server.requests)
    result = remote.init_remote(store, server.url, ["tiny", "tiny2"], digest=digest, description="remote")
    assert result.added and result.aliases_added == ["refgenie:tiny", "refgenie:tiny2"]
    genome = store.genomes.show("tiny")
    assert genome.digest == digest
    assert genome.names == ["chr1", "chr2", "chrM"]
    assert genome.lengths == [5000, 18, 16]
    assert genome.source.remote_url == server.url
    assert genome.description == "remote"
    assert not any(path.endswith(".seq") for path in server.paths()[before:])


def test_init_by_remote_alias_resolves_the_stores_alias_file(
    served: Served, store: Store
) -> None:
    server, _, digest = served
    assert remote.init_remote(store, server.url, ["t"], alias="ucsc:tiny").genome.digest == digest
    with pytest.raises(NotFoundError, match="ucsc:nothing"):
        remote.init_remote(store, server.url, ["u"], alias="ucsc:nothing")


def test_a_bare_remote_alias_its_refgenie_namespace_lacks_resolves_in_the_one_other_namespace_holding_it(
    served: Served, store: Store
) -> None:
    # The rule `getseq tiny` and the server's /v4/aliases/tiny follow: the remote's only alias is ucsc:tiny.
    server, _, digest = served
    assert remote.init_remote(store, server.url, ["t"], alias="tiny").genome.digest == digest
    with pytest.raises(NotFoundError, match="refgenie:nothing"):
        remote.init_remote(store, server.url, ["u"], alias="nothing")
    with pytest.raises(NotFoundError, match="refgenie:tiny"):  # typed with its namespace: taken exactly
        remote.init_remote(store, server.url, ["u"], alias="refgenie:tiny")


def test_a_bare_remote_alias_two_namespaces_point_at_different_genomes_is_refused_naming_both(
    remote_copy: Served, store: Store
) -> None:
    server, root, digest = remote_copy
    manifest = json.loads((root / "rgstore.json").read_text())
    manifest["collection_alias_namespaces"] = ["ncbi", "ucsc"]
    (root / "rgstore.json").write_text(json.dumps(manifest))
    (root / "aliases/collections/ncbi.tsv").write_text("tiny\t" + "A" * 32 + "\n")
    with pytest.raises(ConflictError, match=rf"ambiguous.*ncbi:tiny -> {'A' * 32}, ucsc:tiny -> {digest}"):
        remote.init_remote(store, server.url, ["t"], alias="tiny")
    assert store.genomes.list() == []


def test_reinit_only_adds_new_names_and_never_repoints_silently(
    served: Served, store: Store, tmp_path: Path
) -> None:
    server, _, digest = served
    remote.init_remote(store, server.url, ["tiny"], digest=digest)
    again = remote.init_remote(store, server.url, ["tiny", "more"], digest=digest)
    assert not again.added and again.aliases_added == ["refgenie:more"]
    other = tmp_path / "other.fa"
    other.write_text(">x\nACGT\n")
    store.genomes.init(other, ["taken"])
    with pytest.raises(ConflictError, match="--force"):
        remote.init_remote(store, server.url, ["taken"], digest=digest)
    assert store.aliases.get("taken") != digest
    assert remote.init_remote(store, server.url, ["taken"], digest=digest, force=True).aliases_added == [
        "refgenie:taken"
    ]


def test_init_remote_records_ns_names_in_their_namespace_and_repoints_one_only_with_force(
    served: Served, store: Store, tmp_path: Path
) -> None:
    # Before: init_remote ran check_name on the whole "ncbi:t" and refused it (':').
    server, _, digest = served
    first = remote.init_remote(store, server.url, ["ncbi:t", "t"], digest=digest)
    assert first.aliases_added == ["ncbi:t", "refgenie:t"]
    assert store.aliases.get("ncbi:t") == store.aliases.get("t") == digest
    again = remote.init_remote(store, server.url, ["ncbi:t", "t"], digest=digest)
    assert not again.added and again.aliases_added == []
    other = tmp_path / "other.fa"
    other.write_text(">x\nACGT\n")
    store.genomes.init(other, ["ucsc:taken"])
    with pytest.raises(ConflictError, match="alias ucsc:taken already points at genome .*--force"):
        remote.init_remote(store, server.url, ["ucsc:taken"], digest=digest)
    assert store.aliases.get("ucsc:taken") != digest
    assert remote.init_remote(store, server.url, ["ucsc:taken"], digest=digest, force=True).aliases_added == [
        "ucsc:taken"
    ]
    assert store.aliases.get("ucsc:taken") == digest
    with pytest.raises(InvalidInputError, match="invalid alias namespace"):
        remote.init_remote(store, server.url, ["u/c:x"], digest=digest)


def test_init_remote_force_reports_each_alias_it_moved_with_the_genome_it_left(
    served: Served, store: Store, tmp_path: Path
) -> None:
    server, _, digest = served
    other = tmp_path / "other.fa"
    other.write_text(">x\nACGT\n")
    was = store.genomes.init(other, ["ucsc:taken"]).genome.digest
    forced = remote.init_remote(store, server.url, ["ucsc:taken", "new"], digest=digest, force=True)
    assert forced.aliases_added == ["ucsc:taken", "refgenie:new"]
    assert [(m.alias, m.was) for m in forced.aliases_moved] == [("ucsc:taken", was)]


def test_an_unreachable_url_is_a_clear_error_and_records_nothing(store: Store) -> None:
    head = store.head()
    with pytest.raises(RemoteError, match="cannot reach http://127.0.0.1:9/rgstore.json"):
        remote.init_remote(store, "http://127.0.0.1:9", ["x"], digest="A" * 32)
    assert store.head() == head
    from gtars.refget import RefgetStore

    # The store's (empty, Raw) RefgetStore exists from the first write; nothing was added to it.
    assert RefgetStore.open_local(str(store.refget_path)).list_collections()["pagination"]["total"] == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"digest": "A" * 32, "alias": "ucsc:tiny"}, "exactly one of --digest or --alias"),
        ({}, "exactly one of --digest or --alias"),
        ({"digest": "A" * 32, "fhr": "x.json"}, "x.json: no such FHR file"),  # read before any request
        ({"digest": "short"}, "invalid digest"),
    ],
)
def test_bad_remote_options_are_refused_before_any_request(
    store: Store, kwargs: dict[str, str], message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        remote.init_remote(store, "http://127.0.0.1:9", ["x"], **kwargs)  # type: ignore[arg-type]


def test_an_unknown_collection_is_not_found(served: Served, store: Store) -> None:
    server, _, _ = served
    with pytest.raises(NotFoundError, match="no sequence collection"):
        remote.init_remote(store, server.url, ["x"], digest="A" * 32)


def test_a_collection_that_does_not_hash_to_its_digest_is_refused(
    remote_copy: Served, store: Store
) -> None:
    server, root, digest = remote_copy
    rgsi = root / "collections" / f"{digest}.rgsi"
    rgsi.write_text(rgsi.read_text().replace("chr2\t", "chrX\t"))
    head = store.head()
    with pytest.raises(IntegrityError, match="corrupt"):
        remote.init_remote(store, server.url, ["x"], digest=digest)
    assert store.head() == head


@pytest.mark.parametrize(("names", "lengths", "reason"), [
    (["chr1", "chr1"], [8, 8], "appears twice"),
    (["", "chr2"], [8, 8], "has no name"),
    (["chr 1"], [8], "contains whitespace"),
    (["chr\x001"], [8], "control character"),
    (["chr1"], [-5], "negative length"),
])
def test_a_consistently_hashed_collection_with_unusable_records_is_refused(
    remote_copy: Served, store: Store, names: list[str], lengths: list[int], reason: str
) -> None:
    # The digest is computed over the bad records, so only the record rules can catch them.
    from rgstore import seqcol

    server, root, _ = remote_copy
    sequence = "SQ.iYtREV555dUFKg2_agSJW6suquUyPpMw"
    sequences = [sequence] * len(names)
    digest = seqcol.top_level_digest(seqcol.level1(names, lengths, sequences))
    (root / "collections" / f"{digest}.rgsi").write_text(
        "".join(f"{n}\t{n_len}\tdna\t{sequence[3:]}\tmd5\t\n" for n, n_len in zip(names, lengths))
    )
    head = store.head()
    with pytest.raises(RemoteError, match=f"not usable: sequence . .*{reason}"):
        remote.init_remote(store, server.url, ["bad"], digest=digest)
    assert store.head() == head


# -- fetching sequences ------------------------------------------------------------------------------------


def test_sequences_are_fetched_on_first_read_verified_and_cached(
    remote_copy: Served, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, _, digest = remote_copy
    monkeypatch.setattr(remotefetch, "_WINDOW", 1024)  # a 5 kb sequence then takes several ranged reads
    remote.init_remote(store, server.url, ["tiny"], digest=digest)
    chr1 = store.genomes.show("tiny").sequences[0]
    assert remotefetch.fetch_missing(store, chr1) is True
    ranged = [r for r in seq_requests(server) if r[2]]
    assert len(ranged) == 5 and all(r[2].startswith("bytes=") for r in ranged)
    assert store.genomes.getseq("tiny", "chr1") == LONG
    assert store.genomes.getseq("tiny", "chr1", 100, 260) == LONG[100:260]
    # Cached in our own RefgetStore: readable by gtars alone, and no carrier collection left behind.
    handle = open_refget(store, write=False)
    assert handle.get_substring(chr1[3:], 0, 5000) == LONG
    assert handle.list_collections()["results"] == []


def test_verify_does_not_ask_a_remote_genome_for_the_collection_index_only_a_local_one_keeps(
    remote_copy: Served, store: Store, tmp_path: Path
) -> None:
    server, _, digest = remote_copy
    remote.init_remote(store, server.url, ["tiny"], digest=digest)
    for seq in store.genomes.show("tiny").sequences:
        assert remotefetch.fetch_missing(store, seq)
    local = tmp_path / "local.fa"
    local.write_text(">a\nACGTTTGA\n")  # a local genome: verify then reads the RefgetStore's collection indexes
    mine = store.genomes.init(local, ["local"]).genome.digest
    collections = store.refget_path / "collections"
    assert (collections / f"{mine}.rgsi").is_file() and not (collections / f"{digest}.rgsi").exists()
    report = store.verify()
    assert report.ok, report.problems
    assert report.sequences == 4


def test_processes_reading_an_unfetched_sequence_at_once_all_get_it(
    remote_copy: Served, store: Store, store_path: Path
) -> None:
    # Each fetch imports, then removes, the same one-record carrier collection: unserialised,
    # one process removed it under another's import ("File not found locally ...").
    import subprocess
    import sys

    from tests.conftest import REPO

    server, _, digest = remote_copy
    remote.init_remote(store, server.url, ["tiny"], digest=digest)
    store.close()
    procs = [subprocess.Popen([sys.executable, "-m", "rgstore_cli", "--store", str(store_path), "getseq", "tiny",
                               "chr2", "chrM"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(6)]
    results = [(p.wait(timeout=120), *p.communicate()) for p in procs]
    assert [(rc, out, err) for rc, out, err in results] == [(0, b"GGGAAATTTCNNRYACGT\nTTTTGGGGCCCCAAAA\n", b"")] * 6
    with Store.open(store_path) as again:
        assert _carrier_collections(again) == 0


def _carrier_collections(store: Store) -> int:
    return sum(1 for _ in (store.refget_path / "collections").glob("*.rgsi"))


def test_fetch_missing_ignores_sequences_of_no_remote_genome(store: Store) -> None:
    assert remotefetch.fetch_missing(store, "SQ." + "A" * 32) is False


@pytest.mark.parametrize("residue", [None, 0xFF], ids=["another-base", "not-utf8"])
def test_a_corrupted_remote_sequence_is_detected_and_not_cached(
    remote_copy: Served, store: Store, residue: int | None
) -> None:
    server, root, digest = remote_copy
    remote.init_remote(store, server.url, ["tiny"], digest=digest)
    chr2 = store.genomes.show("tiny").sequences[1][3:]
    seq_file = root / "sequences" / chr2[:2] / f"{chr2}.seq"
    data = bytearray(seq_file.read_bytes())
    if residue is None:
        residue = ord("C") if data[3] != ord("C") else ord("G")  # Raw mode: one residue per byte
    data[3] = residue
    seq_file.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=f"sequence {chr2} from .* is corrupt"):
        remotefetch.fetch_missing(store, chr2)
    assert not (store.refget_path / "sequences" / chr2[:2] / f"{chr2}.seq").exists()
    assert not list(store.path.glob(".remote-*"))


def test_a_remote_sequence_shorter_than_recorded_is_detected(
    remote_copy: Served, store: Store
) -> None:
    server, _, digest = remote_copy
    remote.init_remote(store, server.url, ["tiny"], digest=digest)
    chrm = store.genomes.show("tiny").sequences[2]
    with pytest.raises(IntegrityError):
        remotefetch.fetch_sequence(store, server.url, chrm, 17)


def test_an_encoded_mode_remote_is_decoded_and_verified(tmp_path: Path, store: Store) -> None:
    root = tmp_path / "encoded" / "store"
    root.parent.mkdir()
    digest = build_refget(root, ">a\nACGTACGTAAAACCCC\n>b\nNNNNACGTTT\n", encoded=True)
    with serve_directory(root) as server:
        remote.init_remote(store, server.url, ["enc"], digest=digest)
        for seq in store.genomes.show("enc").sequences:
            assert remotefetch.fetch_missing(store, seq)
    assert store.genomes.getseq("enc", "a") == "ACGTACGTAAAACCCC"
    assert store.genomes.getseq("enc", "b") == "NNNNACGTTT"


# -- the CLI ------------------------------------------------------------------------------------------


def test_cli_genome_init_remote(cli, served: Served) -> None:  # type: ignore[no-untyped-def]
    server, _, digest = served
    result = cli("genome", "init", "--remote", server.url, "--digest", digest, "--name", "tiny")
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"{digest}  added: 3 sequences")
    shown = json.loads(cli("genome", "show", "tiny", "--json").output)
    assert shown["source"]["remote_url"] == server.url
    source_line = [line for line in cli("genome", "show", "tiny").output.splitlines() if line.startswith("source")]
    assert source_line == [f"source       {server.url} (remote; sequences fetched when first read)"]


def test_reinit_from_another_remote_records_nothing_new_and_says_which_source_the_genome_keeps(  # type: ignore[no-untyped-def]
    cli, served: Served, remote_copy: Served
) -> None:
    # A re-run pointing at a new upstream kept the old one without a word: reads still went to the old URL.
    old, _, digest = served
    new, _, _ = remote_copy
    init = ("genome", "init", "--digest", digest, "--name", "tiny", "--remote")
    assert json.loads(cli(*init, old.url, "--json").output)["remote_not_recorded"] is None
    assert json.loads(cli(*init, old.url, "--json").output)["remote_not_recorded"] is None  # the same upstream again
    moved = cli(*init, new.url)
    assert moved.exit_code == 0 and moved.output.splitlines()[1:] == [
        f"  remote {new.url} not recorded: the genome stays recorded from {old.url}, where its unfetched sequences "
        "come from"]
    assert json.loads(cli(*init, new.url, "--json").output)["remote_not_recorded"] == new.url
    assert json.loads(cli("genome", "show", "tiny", "--json").output)["source"]["remote_url"] == old.url
    assert "another --remote URL is not recorded" in " ".join(cli("genome", "init", "--help").output.split())


def test_remote_init_of_a_genome_recorded_from_its_fasta_says_the_url_is_not_recorded(
    served: Served, store: Store, tmp_path: Path
) -> None:
    server, _, digest = served
    (tmp_path / "tiny.fa").write_text(FASTA)
    store.genomes.init(tmp_path / "tiny.fa", ["tiny"])
    again = remote.init_remote(store, server.url, ["more"], digest=digest)
    assert (again.added, again.aliases_added, again.remote_not_recorded) == (False, ["refgenie:more"], server.url)
    assert again.genome.source.remote_url == "" and again.genome.source.path


def test_cli_genome_init_remote_errors_are_one_line_and_option_mistakes_exit_2(cli) -> None:  # type: ignore[no-untyped-def]
    unreachable = cli("genome", "init", "--remote", "http://127.0.0.1:9", "--digest", "A" * 32, "--name", "x")
    assert unreachable.exit_code == 1
    assert unreachable.output.startswith("error: cannot reach") and unreachable.output.count("\n") == 1
    neither = cli("genome", "init", "--name", "x")
    assert neither.exit_code == 2 and "--fasta PATH or --remote URL" in neither.output
    both = cli("genome", "init", "--fasta", "x.fa", "--remote", "http://127.0.0.1:9", "--digest", "A" * 32,
               "--name", "x")
    assert both.exit_code == 2 and "--fasta cannot be combined with --remote" in both.output


def test_documents_nested_thousands_deep_are_not_json_to_detect_not_a_recursion_error(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "rgstore.json").write_text("[" * 100_000)
    (site / "service-info").write_text("[" * 100_000)
    with serve_directory(site) as server, pytest.raises(RemoteError, match="neither a RefgetStore"):
        remote.detect(server.url)


def test_another_kind_of_service_is_not_mistaken_for_a_seqcol_server(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "service-info").write_text(json.dumps({"id": "x", "type": {"group": "org.ga4gh", "artifact": "drs"}}))
    with serve_directory(site) as server, pytest.raises(RemoteError, match="neither a RefgetStore"):
        remote.detect(server.url)


# -- export of a remote genome -------------------------------------------------------------------------------


def test_export_of_a_remote_genome_fetches_its_sequences_verified(
    remote_copy: Served, store: Store, store_path: Path, rgstore_proc
) -> None:  # type: ignore[no-untyped-def]
    server, _, digest = remote_copy
    remote.init_remote(store, server.url, ["tiny"], digest=digest)
    done = rgstore_proc("--store", str(store_path), "genome", "export", "tiny", "-", "--width", "60")
    assert done.returncode == 0, done.stderr.decode()
    assert done.stderr == b""
    expected = ">chr1\n" + "".join(LONG[i:i + 60] + "\n" for i in range(0, 5000, 60))
    expected += ">chr2\nGGGAAATTTCNNRYACGT\n>chrM\nTTTTGGGGCCCCAAAA\n"
    assert done.stdout.decode() == expected
    fetched = len(seq_requests(server))
    assert fetched >= 3  # every sequence came from the remote
    again = rgstore_proc("--store", str(store_path), "genome", "export", "tiny", "-", "--width", "60")
    assert again.stdout == done.stdout and len(seq_requests(server)) == fetched  # cached: no new fetch


def test_export_of_a_remote_genome_whose_remote_is_gone_is_one_line_and_writes_nothing(
    tmp_path: Path, store: Store, store_path: Path, rgstore_proc
) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "gone" / "store"
    root.parent.mkdir()
    digest = build_refget(root, FASTA)
    with serve_directory(root) as server:
        remote.init_remote(store, server.url, ["tiny"], digest=digest)
    out = tmp_path / "tiny.fa"
    to_file = rgstore_proc("--store", str(store_path), "genome", "export", "tiny", str(out))
    to_stdout = rgstore_proc("--store", str(store_path), "genome", "export", "tiny", "-")
    for done in (to_file, to_stdout):
        assert done.returncode != 0
        lines = done.stderr.decode().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in lines[0], lines
    assert to_stdout.stdout == b"" and not out.exists()
    assert not list(tmp_path.glob(".tiny.fa.*"))


def test_a_read_after_the_remote_is_gone_names_the_sequence_the_upstream_and_the_way_out(
    tmp_path: Path, store: Store
) -> None:
    # An unreachable upstream fails on its rgstore.json: that error alone named neither the sequence nor a remedy.
    root = tmp_path / "gone" / "store"
    root.parent.mkdir()
    digest = build_refget(root, FASTA)
    with serve_directory(root) as server:
        remote.init_remote(store, server.url, ["tiny"], digest=digest)
    chr2 = store.genomes.show("tiny").sequences[1][3:]
    with pytest.raises(RemoteError) as caught:
        store.genomes.getseq("tiny", "chr2")
    message = str(caught.value)
    assert f"cannot fetch sequence {chr2} from {server.url} (cannot reach {server.url}/rgstore.json" in message
    assert "retry once that upstream answers" in message and "genome init --fasta" in message
    assert "\n" not in message
    assert not (store.refget_path / "sequences" / chr2[:2] / f"{chr2}.seq").exists()


def test_remote_reinit_with_different_metadata_is_refused_and_same_metadata_accepted(
    served: Served, store: Store
) -> None:
    server, _, digest = served
    remote.init_remote(store, server.url, ["tiny"], digest=digest, species="Tinyus testus", circular=["chrM"])
    head = store.head()
    with pytest.raises(ConflictError, match=r"species 'Tinyus testus' \(not 'Mus musculus'\).*genome fhr set"):
        remote.init_remote(store, server.url, ["tiny", "more"], digest=digest, species="Mus musculus")
    with pytest.raises(ConflictError, match=r"circular chrM \(not chr2\)"):
        remote.init_remote(store, server.url, ["more"], digest=digest, circular=["chr2"])
    assert store.head() == head
    again = remote.init_remote(store, server.url, ["more"], digest=digest, species="Tinyus testus",
                               circular=["chrM"])
    assert again.aliases_added == ["refgenie:more"]


def test_a_genome_from_an_rgstore_server_keeps_its_circular_set_and_species(store: Store, tmp_path: Path) -> None:
    """What the user does not say on `genome init --remote`, the server's genome record supplies."""
    from tests.server_fixture import running_server

    fasta = tmp_path / "g.fa"
    fasta.write_text(FASTA)
    with Store.open(tmp_path / "primary") as primary:
        digest = primary.genomes.init(fasta, ["g"], species="Homo sapiens", circular=["chrM"]).genome.digest
        want = primary.getseq("g", "chrM", 12, 4)  # wraps
    with running_server(tmp_path / "primary") as server:
        genome = remote.init_remote(store, server.url, ["g"], digest=digest).genome
        assert (genome.circular, genome.species) == (["chrM"], "Homo sapiens")
        assert store.getseq("g", "chrM", 12, 4) == want
        other = remote.init_remote(store, server.url, ["g2"], digest=digest, circular=["chrM"]).genome
        assert other.digest == digest  # saying the same circular set again is accepted


def test_a_genome_named_through_the_servers_seqcol_url_also_keeps_its_circular_set_and_species(
    store: Store, tmp_path: Path
) -> None:
    """`--remote http://host/seqcol` (the URL refgenie's docs give) finds the genome record at the server's root."""
    from tests.server_fixture import running_server

    fasta = tmp_path / "g.fa"
    fasta.write_text(FASTA)
    with Store.open(tmp_path / "primary") as primary:
        digest = primary.genomes.init(fasta, ["g"], species="Homo sapiens", circular=["chrM"]).genome.digest
    with running_server(tmp_path / "primary") as server:
        genome = remote.init_remote(store, f"{server.url}/seqcol", ["g"], digest=digest).genome
    assert (genome.circular, genome.species) == (["chrM"], "Homo sapiens")


def test_reinit_adding_a_name_is_not_refused_for_metadata_only_the_server_supplied(
    store: Store, tmp_path: Path
) -> None:
    """A genome first recorded from the bare store (no species) takes a new name through the server's root URL."""
    from tests.server_fixture import running_server

    fasta = tmp_path / "g.fa"
    fasta.write_text(FASTA)
    with Store.open(tmp_path / "primary") as primary:
        digest = primary.genomes.init(fasta, ["g"], species="Homo sapiens", circular=["chrM"]).genome.digest
    with running_server(tmp_path / "primary") as server:
        first = remote.init_remote(store, f"{server.url}/store", ["g"], digest=digest).genome
        assert (first.species, first.circular) == ("", [])  # a bare RefgetStore has no genome record
        again = remote.init_remote(store, server.url, ["g2"], digest=digest)
    assert again.aliases_added == ["refgenie:g2"]
    assert (again.genome.species, again.genome.circular) == ("", [])  # init never changes a stored genome


_SEQ_FAILS = """
import sys
from functools import partial
from http.server import ThreadingHTTPServer
from tests.httpfixture import _Handler

class Failing(_Handler):
    log_path = sys.argv[2]

    def do_GET(self):
        if self.path.endswith(".seq"):  # the store's index is fine; its sequence files answer an outage
            self.send_response(int(sys.argv[3]))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        super().do_GET()

httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Failing, directory=sys.argv[1]))
print(f"http://127.0.0.1:{httpd.server_address[1]}", flush=True)
httpd.serve_forever()
"""


@pytest.mark.parametrize(("status", "error"), [(500, RemoteError), (503, RemoteError), (404, NotFoundError)])
def test_a_remote_outage_is_a_remote_error_naming_the_status_and_only_404_means_not_found(
    remote_copy: Served, store: Store, tmp_path: Path, status: int, error: type[Exception]
) -> None:
    import subprocess
    import sys

    _, root, digest = remote_copy
    proc = subprocess.Popen([sys.executable, "-c", _SEQ_FAILS, str(root), str(tmp_path / "log"), str(status)],
                            cwd=Path(__file__).resolve().parent.parent, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        chr1 = remote.remote_collection(remote.detect(url), digest, remote._Http(5.0)).sequences[0]
        with pytest.raises(error) as caught:
            remotefetch.fetch_sequence(store, url, chr1, 5000)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    message = str(caught.value)
    assert (f"http status: {status}" in message) if error is RemoteError else ("has no sequence" in message)
    bare = chr1[3:]
    assert not (store.refget_path / "sequences" / bare[:2] / f"{bare}.seq").exists()
    assert not list(store.path.glob(".remote-*"))


# -- credentials, size caps, scheme case ---------------------------------------------------------------------


def _routes_of(root: Path) -> dict[str, Reply]:
    return {f"/{p.relative_to(root).as_posix()}": fixed("200 OK", p.read_bytes()) for p in root.rglob("*") if p.is_file()}


def test_cli_genome_init_remote_with_a_password_in_the_url_is_refused_before_anything_is_recorded(
    cli, served: Served  # type: ignore[no-untyped-def]
) -> None:
    server, _, digest = served
    secret = server.url.replace("http://", "http://reader:s3cret@")
    result = cli("genome", "init", "--remote", secret, "--digest", digest, "--name", "tiny")
    assert result.exit_code == 1 and "s3cret" not in result.output
    assert result.output.strip().splitlines() == [
        f"error: remote URL {server.url.replace('http://', 'http://***@')!r} carries credentials, which would be "
        "printed and recorded; put credentials in ~/.netrc (or the file $NETRC names) instead"]
    assert cli("log", "--json").output.strip() in ("", "[]")


def test_a_seqcol_server_advertising_a_store_url_with_a_password_is_refused(
    served: Served, store: Store, tmp_path: Path
) -> None:
    server, _, digest = served
    site = tmp_path / "site"
    site.mkdir()
    advertised = server.url.replace("http://", "http://reader:s3cret@")
    (site / "service-info").write_text(json.dumps({"seqcol": {"refget_store": {"enabled": True, "url": advertised}}}))
    with serve_directory(site) as seqcol_server:
        with pytest.raises(RemoteError, match="advertises a RefgetStore URL with credentials") as caught:
            remote.init_remote(store, seqcol_server.url, ["tiny"], digest=digest)
    assert "s3cret" not in str(caught.value) and store.head()[0] == 0


def test_a_remote_store_behind_basic_auth_is_read_with_netrc_credentials_and_recorded_without_them(
    remote_copy: Served, store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, root, digest = remote_copy
    with HostileServer(_routes_of(root)) as srv:
        srv.basic_auth = ("reader", "s3cret")
        monkeypatch.delenv("NETRC", raising=False)
        monkeypatch.setenv("HOME", str(tmp_path))
        with pytest.raises(RemoteError):
            remote.init_remote(store, srv.url, ["tiny"], digest=digest)  # no credentials: 401s
        (tmp_path / ".netrc").write_text("machine 127.0.0.1 login reader password s3cret\n")
        genome = remote.init_remote(store, srv.url, ["tiny"], digest=digest).genome
    assert genome.source.remote_url == srv.url


def test_an_uppercase_scheme_is_accepted_and_recorded_lowercase(served: Served, store: Store) -> None:
    server, _, digest = served
    genome = remote.init_remote(store, server.url.replace("http://", "HTTP://"), ["tiny"], digest=digest).genome
    assert genome.source.remote_url == server.url


def test_a_remote_url_with_a_query_string_is_refused(store: Store) -> None:
    with pytest.raises(InvalidInputError, match="has a query string or fragment"):
        remote.init_remote(store, "http://127.0.0.1:9/store?sig=abc", ["tiny"], digest="A" * 32)


@pytest.mark.parametrize("oversized", ["/rgstore.json", "/collections/"])
def test_an_oversized_manifest_or_index_is_refused_not_buffered(
    remote_copy: Served, store: Store, monkeypatch: pytest.MonkeyPatch, oversized: str
) -> None:
    _, root, digest = remote_copy
    monkeypatch.setattr(remote, "DOC_LIMIT", 1 << 20)
    routes = _routes_of(root)
    if oversized == "/collections/":
        routes = {path: reply for path, reply in routes.items() if not path.startswith("/collections/")}
    with HostileServer({**routes, oversized: endless()}) as srv:
        with pytest.raises(RemoteError, match=rf"^{srv.url}{oversized}.*: the answer runs past 1,048,576 bytes"):
            remote.init_remote(store, srv.url, ["tiny"], digest=digest)
    assert store.head()[0] == 0


def test_a_sequence_route_answering_more_than_the_window_asked_for_is_refused(store: Store) -> None:
    bare = "iYtREV555dUFKg2_agSJW6suquUyPpMw"
    with HostileServer({"/sequence/": fixed("200 OK", b"ACGT" * 1000)}) as srv:
        with pytest.raises(RemoteError, match=r"answers more than the 16 residues asked for \(0-16\); nothing was cached"):
            remotefetch.fetch_sequence(store, srv.url, bare, 16, via_refget_api=True)
    assert not list(store.path.glob(".remote-*"))


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to switch users")
def test_a_reader_who_may_not_write_the_store_is_told_an_unfetched_sequence_cannot_be_fetched_here(
    remote_copy: Served,
) -> None:
    # A store of remote genomes baked read-only into an image, read by a service uid: the lazy fetch
    # would have to write; say so (and how to fetch it) before any download, not a bare EACCES.
    import rgstore.refgetstore
    import rgstore.sharing  # noqa: F401  (loaded before the fork: the reader may not read the interpreter's tree)
    from tests.forked import in_forked_child

    server, _, digest = remote_copy
    lab = Path(tempfile.mkdtemp(prefix="rgstore-readonly-"))
    try:
        os.chmod(lab, 0o755)
        root = lab / "store"
        with Store.open(root) as store:
            remote.init_remote(store, server.url, ["tiny"], digest=digest)
            chr1 = store.genomes.show("tiny").sequences[0]
        os.chmod(root / "log" / "lock.mdb", 0o666)  # every reader must lock (docs/deployment.md)
        for path in [root, *root.rglob("*")]:
            if path != root / "log" / "lock.mdb":
                os.chmod(path, path.stat().st_mode & ~0o222)

        def reader() -> str:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            if os.access(root, os.W_OK):
                return "permissions not enforced"
            with Store.open(root, readonly=True) as store:
                return store.genomes.getseq("tiny", "chr1", 0, 10)

        result = in_forked_child(reader)
        if result == "ok: permissions not enforced":
            pytest.skip("file modes are not enforced here")
        assert result == (
            f"UnfetchableError: sequence {chr1} is not in this store yet and cannot be fetched into it: this user "
            "may not write its directory; fetch it where the store is writable (a read of it there, or "
            "`rgstore mirror pull SOURCE --with-sequences`)"
        )
        assert seq_requests(server) == []  # refused before any download
        with Store.open(root) as store:  # its owner (root) still fetches it
            assert store.genomes.getseq("tiny", "chr1", 0, 10) == LONG[:10]
    finally:
        shutil.rmtree(lab, ignore_errors=True)
