"""Claims about GTF parsing: NCBI and Ensembl quirks, derived spans, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from rgstore.errors import InvalidInputError
from rgstore.gtf import _GENE_ID, _TRANSCRIPT_ID, _attr, merge_intervals, parse_gtf


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
@pytest.mark.parametrize("genes_only", [False, True])
def test_malformed_rows_are_reported_with_their_line_number(
    tmp_path: Path, row: str, message: str, genes_only: bool
) -> None:
    # The genes-only parse checks every row too, though the gene row makes this one's bases unneeded.
    path = _write(tmp_path, ['c\tx\tgene\t1\t5\t.\t+\t.\tgene_id "G";', row])
    with pytest.raises(InvalidInputError, match=f"a.gtf line 3: {message}"):
        parse_gtf(path, genes_only=genes_only)


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


_MIXED = [
    # Gene row first, wider than its transcripts: the gene row's span wins.
    'c\tx\tgene\t5\t500\t.\t+\t.\tgene_id "A";',
    'c\tx\texon\t10\t50\t.\t+\t.\tgene_id "A"; transcript_id "A1";',
    # No gene row: the span of its transcripts' exons, strand from its first transcript's first row.
    'c\tx\texon\t300\t400\t.\t-\t.\tgene_id "B"; transcript_id "B1";',
    'c\tx\tCDS\t250\t420\t.\t-\t0\tgene_id "B"; transcript_id "B1";',  # outside the exons: not the span
    'c\tx\texon\t350\t600\t.\t+\t.\tgene_id "B"; transcript_id "B2";',
    # No gene row, no exon rows: the span of CDS and stop codon rows, a CDS inside another included.
    'c\tx\tCDS\t700\t760\t.\t+\t0\tgene_id "C"; transcript_id "C1";',
    'c\tx\tCDS\t710\t720\t.\t+\t0\tgene_id "C"; transcript_id "C1";',
    'c\tx\tstop_codon\t761\t763\t.\t+\t0\tgene_id "C"; transcript_id "C1";',
    # Gene row after its transcripts: still the gene row's span.
    'c\tx\texon\t900\t950\t.\t+\t.\tgene_id "D"; transcript_id "D1";',
    'c\tx\tgene\t890\t990\t.\t+\t.\tgene_id "D";',
    # A transcript whose later rows name another gene belongs to its first row's gene.
    'c\tx\texon\t1000\t1010\t.\t+\t.\tgene_id "E"; transcript_id "E1";',
    'c\tx\texon\t1020\t1030\t.\t+\t.\tgene_id "A"; transcript_id "E1";',
    'c\tx\texon\t1040\t1050\t.\t+\t.\tgene_id "F"; transcript_id "E1";',
    # The same gene id on another sequence, without a gene row there.
    'd\tx\texon\t1\t9\t.\t+\t.\tgene_id "A"; transcript_id "A1";',
]


@pytest.mark.parametrize("gene_rows", [True, False])
def test_the_genes_only_parse_gives_the_full_parses_genes_and_no_transcripts(tmp_path: Path, gene_rows: bool) -> None:
    rows = [r for r in _MIXED if gene_rows or "\tgene\t" not in r]
    path = _write(tmp_path, rows)
    full, genes_only = parse_gtf(path), parse_gtf(path, genes_only=True)
    assert list(genes_only.genes.items()) == list(full.genes.items())  # same genes, spans and order
    assert genes_only.transcripts == {} and len(full.transcripts) == 7
    spans = {k: (g.strand, g.start, g.end) for k, g in full.genes.items()}
    assert spans[("B", "c")] == ("-", 300, 600) and spans[("C", "c")] == ("+", 700, 763)
    assert spans[("E", "c")] == ("+", 1000, 1050) and ("F", "c") not in spans
    assert spans[("A", "d")] == ("+", 1, 9)
    assert spans[("A", "c")] == ("+", 5, 500) if gene_rows else ("+", 10, 50)
    assert spans[("D", "c")] == ("+", 890, 990) if gene_rows else ("+", 900, 950)


@pytest.mark.parametrize(
    "attrs",
    [
        b'gene_id "G"; transcript_id "T"; exon_number "1";',  # Ensembl
        b'gene_id "G"; transcript_id ""; db_xref "GeneID:1";',  # NCBI gene row
        b'gene_id "G"; db_xref "GeneID:1"; gbkey "mRNA"; transcript_id "T";',  # NCBI
        b'gene_id "a; transcript_id "; transcript_id "T";',  # the key inside another value
        b'transcript_id "T"; gene_id "G";',
        b'gene_id  "G";transcript_id\t"T";',  # other spacing
        b'xgene_id "X"; gene_id "G"; old_transcript_id "U"; transcript_id "T";',
        b'gene_id "G; transcript_id "T";',  # a value left open
        b'gene_id "G"; transcript_id "T',
        b'gene_id G; transcript_id T;',
        b"",
    ],
)
def test_attribute_values_are_the_first_match_of_the_attribute_pattern(attrs: bytes) -> None:
    # The parser reads plain layouts without the regex; it must find what the regex finds, whatever the layout.
    for key, pattern in ((b"gene_id", _GENE_ID), (b"transcript_id", _TRANSCRIPT_ID)):
        m = pattern.search(attrs)
        assert _attr(attrs, key, pattern) == (None if m is None else m.group(1)), (key, attrs)


def test_a_genes_only_annotation_refuses_to_plan_a_transcript_region_rather_than_plan_nothing(tmp_path: Path) -> None:
    from rgstore.extract import plan_region

    gtf = tmp_path / "a.gtf"
    gtf.write_text('chr1\tt\tgene\t1\t50\t.\t+\t.\tgene_id "g1";\n'
                   'chr1\tt\texon\t1\t20\t.\t+\t.\tgene_id "g1"; transcript_id "t1";\n'
                   'chr1\tt\texon\t30\t50\t.\t+\t.\tgene_id "g1"; transcript_id "t1";\n')
    annotation = parse_gtf(gtf, genes_only=True)
    assert plan_region(annotation, "gene")["chr1"][0].id == "g1"
    with pytest.raises(ValueError, match="needs transcripts"):
        plan_region(annotation, "exon")
    assert plan_region(parse_gtf(gtf), "exon")["chr1"]  # the full parse plans it
