"""Claims about GTF parsing: NCBI and Ensembl quirks, derived spans, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from rgstore.errors import InvalidInputError
from rgstore.gtf import merge_intervals, parse_gtf


def _write(tmp_path: Path, rows: list[str]) -> Path:
    path = tmp_path / "a.gtf"
    path.write_text("#gtf-version 2.2\n" + "\n".join(rows) + "\n")
    return path


def test_ncbi_gene_rows_with_an_empty_transcript_id_and_repeated_keys_parse(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        [
            'NC_1\tBestRefSeq\tgene\t10\t90\t.\t-\t.\tgene_id "G"; transcript_id ""; '
            'db_xref "GeneID:1"; db_xref "HGNC:2";',
            'NC_1\tBestRefSeq\texon\t60\t90\t.\t-\t.\tgene_id "G"; transcript_id "T"; db_xref "A"; tag "B";',
            'NC_1\tBestRefSeq\texon\t10\t30\t.\t-\t.\tgene_id "G"; transcript_id "T";',
            'NC_1\tBestRefSeq\tCDS\t70\t85\t.\t-\t0\tgene_id "G"; transcript_id "T";',
            'NC_1\tBestRefSeq\tstop_codon\t67\t69\t.\t-\t0\tgene_id "G"; transcript_id "T";',
        ],
    )
    ann = parse_gtf(path)
    gene = ann.genes[("G", "NC_1")]
    assert (gene.start, gene.end, gene.strand) == (10, 90, "-")
    t = ann.transcripts[("T", "NC_1")]
    assert t.exons == [(10, 30), (60, 90)]
    assert t.coding == [(67, 85)]  # CDS plus its stop codon, merged


def test_genes_without_gene_rows_get_their_span_from_transcripts(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        [
            'c\tx\texon\t100\t200\t.\t+\t.\tgene_id "G"; transcript_id "T1";',
            'c\tx\texon\t150\t400\t.\t+\t.\tgene_id "G"; transcript_id "T2";',
        ],
    )
    gene = parse_gtf(path).genes[("G", "c")]
    assert (gene.start, gene.end) == (100, 400)


def test_a_transcript_with_cds_but_no_exons_uses_the_cds_as_exons(tmp_path: Path) -> None:
    path = _write(tmp_path, ['c\tx\tCDS\t5\t10\t.\t+\t0\tgene_id "G"; transcript_id "T";'])
    assert parse_gtf(path).transcripts[("T", "c")].exons == [(5, 10)]


def test_the_same_id_on_two_sequences_makes_two_transcripts(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        [
            'X\tx\texon\t1\t5\t.\t+\t.\tgene_id "G"; transcript_id "T";',
            'Y\tx\texon\t1\t5\t.\t+\t.\tgene_id "G"; transcript_id "T";',
        ],
    )
    assert set(parse_gtf(path).transcripts) == {("T", "X"), ("T", "Y")}


@pytest.mark.parametrize(
    "row,message",
    [
        ("c\tx\texon\t1\t5\t.\t+\t.", "expected 9 tab-separated columns"),
        ('c\tx\texon\tone\t5\t.\t+\t.\tgene_id "G"; transcript_id "T";', "start/end must be integers"),
        ('c\tx\texon\t9\t5\t.\t+\t.\tgene_id "G"; transcript_id "T";', "invalid interval 9-5"),
        ('c\tx\texon\t1\t5\t.\t*\t.\tgene_id "G"; transcript_id "T";', "strand must be"),
        ('c\tx\texon\t1\t5\t.\t+\t.\ttranscript_id "T";', "no gene_id"),
        ('c\tx\texon\t1\t5\t.\t+\t.\tgene_id "G"; transcript_id "";', "exon row without a transcript_id"),
    ],
)
def test_malformed_rows_are_reported_with_their_line_number(tmp_path: Path, row: str, message: str) -> None:
    path = _write(tmp_path, ['c\tx\tgene\t1\t5\t.\t+\t.\tgene_id "G";', row])
    with pytest.raises(InvalidInputError, match=f"a.gtf line 3: {message}"):
        parse_gtf(path)


def test_merge_intervals_joins_overlapping_and_touching_ones() -> None:
    assert merge_intervals([(10, 20), (1, 3), (4, 5), (15, 30), (40, 41)]) == [(1, 5), (10, 30), (40, 41)]


@pytest.mark.parametrize(
    "row",
    [
        b'c\tx\texon\t1\t5\t.\t+\t.\tgene_id "G\xff"; transcript_id "T";',
        b'c\xe9\tx\texon\t1\t5\t.\t+\t.\tgene_id "G"; transcript_id "T";',
        b'c\tx\texon\t\xff\t5\t.\t+\t.\tgene_id "G"; transcript_id "T";',
    ],
)
def test_a_row_that_is_not_utf8_is_reported_with_its_line_number(tmp_path: Path, row: bytes) -> None:
    path = tmp_path / "a.gtf"
    path.write_bytes(b'c\tx\tgene\t1\t5\t.\t+\t.\tgene_id "G";\n' + row + b"\n")
    with pytest.raises(InvalidInputError, match="a.gtf line 2: not UTF-8 text"):
        parse_gtf(path)


def test_overlapping_cds_rows_stay_apart_and_stop_codons_add_only_uncovered_bases(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        [
            # NCBI's -1 ribosomal slippage: two CDS rows share base 30 (SARS-CoV-2 ORF1ab, PEG10).
            'c\tx\texon\t1\t60\t.\t+\t.\tgene_id "G"; transcript_id "T";',
            'c\tx\tCDS\t1\t30\t.\t+\t0\tgene_id "G"; transcript_id "T";',
            'c\tx\tCDS\t30\t54\t.\t+\t0\tgene_id "G"; transcript_id "T";',
            'c\tx\tstop_codon\t55\t57\t.\t+\t0\tgene_id "G"; transcript_id "T";',
            # A GFF3-derived CDS that already holds its stop codon: the stop adds nothing.
            'c\tx\texon\t70\t99\t.\t-\t.\tgene_id "H"; transcript_id "U";',
            'c\tx\tCDS\t73\t99\t.\t-\t0\tgene_id "H"; transcript_id "U";',
            'c\tx\tstop_codon\t73\t75\t.\t-\t0\tgene_id "H"; transcript_id "U";',
            # A row inside another, and a repeated row, are read once, as gffread -x reads them.
            'c\tx\texon\t110\t200\t.\t+\t.\tgene_id "K"; transcript_id "V";',
            'c\tx\tCDS\t120\t160\t.\t+\t0\tgene_id "K"; transcript_id "V";',
            'c\tx\tCDS\t120\t140\t.\t+\t0\tgene_id "K"; transcript_id "V";',
            'c\tx\tCDS\t130\t150\t.\t+\t0\tgene_id "K"; transcript_id "V";',
            'c\tx\tCDS\t170\t180\t.\t+\t0\tgene_id "K"; transcript_id "V";',
            'c\tx\tCDS\t170\t180\t.\t+\t0\tgene_id "K"; transcript_id "V";',
        ],
    )
    ann = parse_gtf(path)
    assert ann.transcripts[("T", "c")].coding == [(1, 30), (30, 57)]
    assert ann.transcripts[("U", "c")].coding == [(73, 99)]
    assert ann.transcripts[("V", "c")].coding == [(120, 160), (170, 180)]


def test_exons_that_only_touch_stay_apart(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        [
            # NCBI splits an exon where the RefSeq mRNA has an insertion: no intron between them.
            'c\tx\texon\t1\t20\t.\t+\t.\tgene_id "G"; transcript_id "T";',
            'c\tx\texon\t21\t40\t.\t+\t.\tgene_id "G"; transcript_id "T";',
            'c\tx\texon\t35\t50\t.\t+\t.\tgene_id "G"; transcript_id "T";',
        ],
    )
    assert parse_gtf(path).transcripts[("T", "c")].exons == [(1, 20), (21, 50)]
