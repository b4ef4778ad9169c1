"""Claims about the derived regions (intergenic, exon_exon_junction): hand-built cases and bedtools."""

from __future__ import annotations

import gzip
import shutil
import subprocess
from pathlib import Path

import pytest

from rgstore.cachesynth import make_genome, write_ensembl_tree
from rgstore.errors import InvalidInputError, OutOfRangeError
from rgstore.extract import extract_regions, plan_region, reverse_complement
from rgstore.gtf import Annotation, Gene, Transcript, parse_gtf
from tests.test_extract import read_fasta

# 40 bases on chr1, 12 on chr2 (no gene), distinct enough that every slice is recognisable.
CHR1 = "ACGTTGCAAGCTTAGCCGATAAGGCTTCAGGTCATGCAGT"
CHR2 = "GGGGAAAACCCC"


def _fasta(tmp: Path, seqs: dict[str, str] | None = None) -> Path:
    path = tmp / "genome.fa"
    seqs = seqs if seqs is not None else {"chr1": CHR1, "chr2": CHR2}
    path.write_text("".join(f">{name}\n{seq}\n" for name, seq in seqs.items()))
    return path


def _annotation(genes: list[Gene] | None = None, transcripts: list[Transcript] | None = None) -> Annotation:
    return Annotation(
        genes={(g.id, g.seqid): g for g in genes or []}, transcripts={(t.id, t.seqid): t for t in transcripts or []}
    )


def _extract(tmp: Path, annotation: Annotation, region: str, block_size: int = 50,
             fasta: Path | None = None) -> list[tuple[str, str]]:
    """(header, sequence) of each record ``region`` writes, in file order."""
    out = tmp / f"{region}.fna"
    with open(out, "wb") as fh:
        counts = extract_regions(fasta or _fasta(tmp), {region: plan_region(annotation, region, block_size=block_size)},
                                 {region: fh})
    records = list(read_fasta(out).items())
    assert counts[region] == len(records)
    return records


def _plus(start: int, end: int, seq: str = CHR1) -> str:
    return seq[start - 1 : end]


def _minus(start: int, end: int, seq: str = CHR1) -> str:
    return reverse_complement(seq[start - 1 : end].encode()).decode()


# -- intergenic ----------------------------------------------------------------------------


def test_intergenic_is_the_per_strand_complement_of_genes_including_both_sequence_ends(tmp_path: Path) -> None:
    ann = _annotation([Gene("p1", "chr1", "+", 5, 10), Gene("p2", "chr1", "+", 21, 30), Gene("m1", "chr1", "-", 15, 25)])
    got = _extract(tmp_path, ann, "intergenic")
    assert got == [
        ("InterRegPluschr1_0|chr1:1-4(+)", _plus(1, 4)),
        ("InterRegMinuschr1_0|chr1:1-14(-)", _minus(1, 14)),
        ("InterRegPluschr1_1|chr1:11-20(+)", _plus(11, 20)),
        ("InterRegMinuschr1_1|chr1:26-40(-)", _minus(26, 40)),
        ("InterRegPluschr1_2|chr1:31-40(+)", _plus(31, 40)),
    ]


def test_overlapping_and_touching_genes_leave_no_empty_intergenic_record(tmp_path: Path) -> None:
    genes = [
        Gene("a", "chr1", "+", 1, 10),  # starts on the first base: no leading gap
        Gene("b", "chr1", "+", 8, 15),  # overlaps a
        Gene("c", "chr1", "+", 16, 20),  # touches b
        Gene("d", "chr1", "+", 22, 40),  # one-base gap, then ends on the last base: no trailing gap
        Gene("e", "chr1", "-", 12, 18),
    ]
    got = _extract(tmp_path, _annotation(genes), "intergenic")
    assert got == [
        ("InterRegMinuschr1_0|chr1:1-11(-)", _minus(1, 11)),
        ("InterRegMinuschr1_1|chr1:19-40(-)", _minus(19, 40)),
        ("InterRegPluschr1_0|chr1:21-21(+)", _plus(21, 21)),
    ]
    assert all(seq for _, seq in got)


def test_a_strand_without_genes_is_whole_and_a_sequence_without_genes_has_no_intergenic_record(
    tmp_path: Path,
) -> None:
    got = _extract(tmp_path, _annotation([Gene("a", "chr1", "+", 11, 20)]), "intergenic")
    assert ("InterRegMinuschr1_0|chr1:1-40(-)", _minus(1, 40)) in got
    assert not [h for h, _ in got if "chr2" in h]  # ODT too: only sequences with genes
    assert len(got) == 3


def test_an_unstranded_gene_is_not_intergenic_on_either_strand(tmp_path: Path) -> None:
    got = _extract(tmp_path, _annotation([Gene("a", "chr1", ".", 1, 30)]), "intergenic")
    assert [h for h, _ in got] == ["InterRegPluschr1_0|chr1:31-40(+)", "InterRegMinuschr1_0|chr1:31-40(-)"]


def test_a_gene_past_the_sequence_end_is_an_out_of_range_error_not_a_gap(tmp_path: Path) -> None:
    with pytest.raises(OutOfRangeError, match="chr1:45, past the sequence's length 40"):
        _extract(tmp_path, _annotation([Gene("a", "chr1", "+", 30, 45)]), "intergenic")


def test_a_gene_past_the_end_with_genes_after_it_is_named_by_its_coordinates_not_by_a_gap(tmp_path: Path) -> None:
    # chr1 is 40 long: the gap after "a" (ends at 45) and the gap before "c" (starts at 60) both lie past it.
    runs_past = [Gene("a", "chr1", "+", 30, 45), Gene("b", "chr1", "+", 60, 70)]
    with pytest.raises(OutOfRangeError, match=r"^intergenic: a gene ends at chr1:45, past the sequence's length 40$"):
        _extract(tmp_path, _annotation(runs_past), "intergenic")
    wholly_past = [Gene("a", "chr1", "+", 1, 10), Gene("b", "chr1", "+", 50, 55)]
    with pytest.raises(OutOfRangeError, match=r"^intergenic: a gene starts at chr1:50, past the sequence's length 40$"):
        _extract(tmp_path, _annotation(wholly_past), "intergenic")


needs_bedtools = pytest.mark.skipif(shutil.which("bedtools") is None, reason="bedtools is not installed")


@needs_bedtools
def test_intergenic_equals_bedtools_complement_then_getfasta_s_on_a_synthetic_genome(tmp_path: Path) -> None:
    genome = make_genome(total_bp=250_000, contigs=3, genes=50, seed=11)
    dna, gtf_dir = write_ensembl_tree(tmp_path / "up", genome)
    fasta, gtf = tmp_path / "genome.fa", tmp_path / "annotation.gtf"
    fasta.write_bytes(gzip.decompress(next(dna.glob("*.dna_sm.toplevel.fa.gz")).read_bytes()))
    gtf.write_bytes(gzip.decompress(next(gtf_dir.glob("*.110.gtf.gz")).read_bytes()))
    ann = parse_gtf(gtf)
    assert {g.strand for g in ann.genes.values()} == {"+", "-"}
    ours = {h.split("|", 1)[1]: s for h, s in _extract(tmp_path, ann, "intergenic", fasta=fasta)}
    lengths = {name: len(seq) for name, seq in read_fasta(fasta).items()}
    with_genes = sorted({g.seqid for g in ann.genes.values()})
    (tmp_path / "g.txt").write_text("".join(f"{n}\t{lengths[n]}\n" for n in with_genes))
    theirs: dict[str, str] = {}
    for strand in "+-":
        genes = sorted((g.seqid, g.start - 1, g.end) for g in ann.genes.values() if g.strand == strand)
        (tmp_path / "genes.bed").write_text("".join(f"{c}\t{s}\t{e}\n" for c, s, e in genes))
        gaps = subprocess.run(["bedtools", "complement", "-i", str(tmp_path / "genes.bed"), "-g", str(tmp_path / "g.txt")],
                              capture_output=True, text=True, check=True).stdout
        (tmp_path / "gaps.bed").write_text("".join(f"{line}\tx\t0\t{strand}\n" for line in gaps.splitlines()))
        fa = subprocess.run(["bedtools", "getfasta", "-s", "-fi", str(fasta), "-bed", str(tmp_path / "gaps.bed")],
                            capture_output=True, text=True, check=True).stdout
        (tmp_path / "gaps.fa").write_text(fa)
        for locus, seq in read_fasta(tmp_path / "gaps.fa").items():
            name, rest = locus.rsplit(":", 1)
            span, st = rest[:-3], rest[-2]
            start, end = span.split("-")
            theirs[f"{name}:{int(start) + 1}-{end}({st})"] = seq
    assert ours == theirs
    assert len(ours) > 20


# -- exon_exon_junction ------------------------------------------------------------------


def _t(ident: str, strand: str, exons: list[tuple[int, int]], gene: str = "g1", seqid: str = "chr1") -> Transcript:
    return Transcript(id=ident, gene_id=gene, seqid=seqid, strand=strand, exons=exons)


def test_a_junction_joins_block_size_bases_either_side(tmp_path: Path) -> None:
    ann = _annotation(transcripts=[_t("t1", "+", [(1, 10), (21, 30), (35, 40)])])
    got = _extract(tmp_path, ann, "exon_exon_junction", block_size=3)
    assert got == [
        ("g1|chr1:8-23(+)", _plus(8, 10) + _plus(21, 23)),
        ("g1|chr1:28-37(+)", _plus(28, 30) + _plus(35, 37)),
    ]


def test_minus_strand_junctions_are_the_reverse_complement_of_the_spliced_blocks(tmp_path: Path) -> None:
    ann = _annotation(transcripts=[_t("t1", "-", [(1, 10), (21, 30)])])
    got = _extract(tmp_path, ann, "exon_exon_junction", block_size=4)
    assert got == [("g1|chr1:7-24(-)", _minus(21, 24) + _minus(7, 10))]


def test_single_exon_transcripts_have_no_junction(tmp_path: Path) -> None:
    ann = _annotation(transcripts=[_t("t1", "+", [(1, 30)]), _t("t2", "-", [(5, 9)], gene="g2")])
    assert _extract(tmp_path, ann, "exon_exon_junction") == []


def test_a_block_size_beyond_the_outer_exons_takes_them_whole(tmp_path: Path) -> None:
    ann = _annotation(transcripts=[_t("t1", "+", [(3, 6), (21, 25)])])
    got = _extract(tmp_path, ann, "exon_exon_junction", block_size=50)
    assert got == [("g1|chr1:3-25(+)", _plus(3, 6) + _plus(21, 25))]


def test_an_inner_exon_shorter_than_the_block_is_spanned_whole_not_a_junction_end(tmp_path: Path) -> None:
    # ODT's rule: exon 2 (4 bases < 5) is kept whole inside the exon 1 -> exon 3 junction.
    ann = _annotation(transcripts=[_t("t1", "+", [(1, 10), (15, 18), (25, 40)])])
    got = _extract(tmp_path, ann, "exon_exon_junction", block_size=5)
    assert got == [("g1|chr1:6-29(+)", _plus(6, 10) + _plus(15, 18) + _plus(25, 29))]


def test_the_same_junction_in_two_transcripts_of_a_gene_is_written_once(tmp_path: Path) -> None:
    ann = _annotation(transcripts=[_t("t1", "+", [(1, 10), (21, 30)]), _t("t2", "+", [(5, 10), (21, 35)]),
                                   _t("t3", "+", [(1, 10), (21, 30)], gene="g2")])
    got = _extract(tmp_path, ann, "exon_exon_junction", block_size=3)
    assert [h for h, _ in got] == ["g1|chr1:8-23(+)", "g2|chr1:8-23(+)"]


def test_the_junction_block_size_changes_the_output(tmp_path: Path) -> None:
    ann = _annotation(transcripts=[_t("t1", "+", [(1, 10), (21, 30)])])
    small = _extract(tmp_path, ann, "exon_exon_junction", block_size=2)
    large = _extract(tmp_path, ann, "exon_exon_junction", block_size=8)
    assert [len(s) for _, s in small] == [4] and [len(s) for _, s in large] == [16]


@pytest.mark.parametrize("bad", [0, -1, True, 2.5])
def test_a_block_size_that_is_not_a_positive_integer_is_refused(bad: object) -> None:
    with pytest.raises(InvalidInputError, match="positive integer"):
        plan_region(_annotation(), "exon_exon_junction", block_size=bad)  # type: ignore[arg-type]
