"""getseq --sequence ID: a sequence read by its refget id (digest, MD5, CURIE, sequence alias) from any genome."""

from __future__ import annotations

import random
from pathlib import Path

import httpx
import pytest

from rgstore import remote
from rgstore.errors import InvalidInputError, NotFoundError, OutOfRangeError
from rgstore.genomes import revcomp
from rgstore.store import Store
from tests.server_fixture import running_server
from tests.test_remote import LONG, Served, remote_copy  # noqa: F401 - remote_copy is a fixture


def _fasta(path: Path) -> dict[str, str]:
    """A FASTA whose headers carry INSDC accessions (for --seq-namespace); its sequences by name."""
    rng = random.Random(11)
    seqs = {"chrA": "".join(rng.choice("ACGT") for _ in range(1500)), "chrM": "".join(rng.choice("ACGT") for _ in range(700))}
    accessions = {"chrA": "BK000001.1", "chrM": "BK000002.1"}
    path.write_text("".join(f">{name} insdc:{accessions[name]}\n{seq}\n" for name, seq in seqs.items()))
    return seqs


@pytest.fixture
def genome(store: Store, tmp_path: Path) -> tuple[Store, dict[str, str], dict[str, tuple[str, str]]]:
    """The store with one genome recorded with --seq-namespace insdc; (store, residues, name -> (SQ., md5))."""
    seqs = _fasta(tmp_path / "g.fa")
    info = store.genomes.init(tmp_path / "g.fa", ["g"], circular=["chrM"], seq_namespace="insdc").genome
    ids = {name: (sq, md5) for name, sq, md5 in zip(info.names, info.sequences, info.md5s)}
    return store, seqs, ids


def test_every_refget_id_form_reads_the_same_residues_from_the_python_api(genome) -> None:  # type: ignore[no-untyped-def]
    store, seqs, ids = genome
    sq, md5 = ids["chrA"]
    for ident in (sq, f"ga4gh:{sq}", md5, md5.upper(), f"md5:{md5}", "insdc:BK000001.1"):
        assert store.genomes.read_sequence(ident) == seqs["chrA"], ident
        assert store.read_sequence(ident, 10, 20) == seqs["chrA"][10:20], ident
    assert store.read_sequence(sq, 5, 9, revcomp=True) == revcomp(seqs["chrA"][5:9])


def test_regions_count_0_based_or_1_based_and_wrap_a_circular_sequence(genome) -> None:  # type: ignore[no-untyped-def]
    store, seqs, ids = genome
    chr_a, chr_m = seqs["chrA"], seqs["chrM"]
    found = store.genomes.stream_sequence(ids["chrA"][0], ["0-10", "1,400"], revcomp=True)
    assert [(r.start, r.end, size, "".join(p)) for r, size, p in found] == [
        (0, 10, 10, revcomp(chr_a[:10])), (1400, None, 100, revcomp(chr_a[1400:]))]
    one = store.genomes.stream_sequence("insdc:BK000001.1", ["1-10"], one_based=True)
    assert "".join(one[0][2]) == chr_a[:10]
    wrap = store.genomes.stream_sequence("insdc:BK000002.1", ["695-5"])
    assert "".join(wrap[0][2]) == chr_m[695:] + chr_m[:5]


def test_unknown_ids_bad_regions_and_bare_alias_names_are_refused_naming_what_was_wrong(genome) -> None:  # type: ignore[no-untyped-def]
    store, _, ids = genome
    sq = ids["chrA"][0]
    with pytest.raises(NotFoundError, match="no sequence 'SQ.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' in this store$"):
        store.read_sequence("SQ." + "A" * 32)
    with pytest.raises(NotFoundError, match="no sequence 'insdc:nope' in this store$"):
        store.read_sequence("insdc:nope")
    chr_m = ids["chrM"][0]
    store.aliases.set("BK000001.1", chr_m, namespace="refseq", sequence=True)  # the same name, another sequence
    with pytest.raises(NotFoundError, match=r"the sequence aliases named 'BK000001.1' are "
                       rf"insdc:BK000001.1 \({sq}\), refseq:BK000001.1 \({chr_m}\): give one as ns:NAME"):
        store.read_sequence("BK000001.1")
    with pytest.raises(OutOfRangeError, match=rf"^{sq}:1400-1600 is outside the sequence \(length 1500\)$"):
        store.genomes.stream_sequence(sq, ["1400-1600"])
    with pytest.raises(OutOfRangeError, match="start is after end"):
        store.genomes.stream_sequence(sq, ["10-5"])
    with pytest.raises(InvalidInputError, match="malformed region '5-'"):
        store.genomes.stream_sequence(sq, ["5-"])


def test_cli_reads_by_id_with_fasta_headers_as_given_and_refuses_names_digest_and_bed(  # type: ignore[no-untyped-def]
    cli, genome, tmp_path: Path
) -> None:
    store, seqs, ids = genome
    store.close()
    md5 = ids["chrA"][1]
    out = cli("getseq", "--sequence", md5, "0-7", "100-103")
    assert out.exit_code == 0 and out.output == f"{seqs['chrA'][:7]}\n{seqs['chrA'][100:103]}\n"
    out = cli("getseq", "--sequence", "insdc:BK000001.1", "--one-based", "1-70", "--fasta", "--revcomp")
    assert out.exit_code == 0
    assert out.output == f">insdc:BK000001.1:1-70/rc\n{revcomp(seqs['chrA'][:70])[:60]}\n{revcomp(seqs['chrA'][:70])[60:]}\n"
    whole = cli("getseq", "--sequence", ids["chrM"][0], "--fasta", "--width", "1000")
    assert whole.output == f">{ids['chrM'][0]}:0-700\n{seqs['chrM']}\n"
    bed = tmp_path / "r.bed"
    bed.write_text("chrA\t0\t5\n")
    for extra in (["g", "0-5"], ["--digest", "x", "0-5"], ["--bed", str(bed)]):
        refused = cli("getseq", "--sequence", md5, *extra)
        assert refused.exit_code == 2 and "--sequence ID" in refused.output, extra
    for args, message in ((["insdc:nope"], "no sequence 'insdc:nope'"), ([md5, "0-5000"], "is outside the sequence"),
                          ([md5, "5-"], "malformed region")):
        failed = cli("getseq", "--sequence", *args)
        assert failed.exit_code == 1 and message in failed.output and failed.output.count("\n") == 1, failed.output


def test_cli_reads_a_sequence_alias_set_by_alias_set_and_equals_what_the_server_serves(  # type: ignore[no-untyped-def]
    cli, genome, store_path: Path
) -> None:
    store, seqs, ids = genome
    store.close()
    assert cli("alias", "set", "--sequence", "refseq:NC_TEST.1", ids["chrM"][0]).exit_code == 0
    cases = (("refseq:NC_TEST.1", ["690-10"]), (ids["chrA"][1], ["3-33"]), (f"ga4gh:{ids['chrA'][0]}", []))
    with running_server(store_path) as server:  # one real server for every id
        for ident, region in cases:
            out = cli("getseq", "--sequence", ident, *region)
            assert out.exit_code == 0, out.output
            query = "?start={}&end={}".format(*region[0].split("-")) if region else ""
            served = httpx.get(f"{server.url}/sequence/{ident}{query}", timeout=30)
            assert served.status_code == 200 and out.output.encode() == served.content + b"\n", ident
    assert cli("getseq", "--sequence", "refseq:NC_TEST.1", "690-10").output == seqs["chrM"][690:] + seqs["chrM"][:10] + "\n"


def test_a_remote_genomes_sequence_is_fetched_on_its_first_read_by_id(remote_copy: Served, store: Store) -> None:  # noqa: F811
    server, _, digest = remote_copy
    remote.init_remote(store, server.url, ["tiny"], digest=digest)
    chr1 = store.genomes.show("tiny").sequences[0]
    assert not store.genomes.sequences.data_files() or not store.genomes.sequences.data_files().readable(chr1[3:], 5000)
    assert store.read_sequence(chr1, 100, 260) == LONG[100:260]  # fetched, verified and kept, as getseq does
    assert store.genomes.sequences.data_files().readable(chr1[3:], len(LONG))
