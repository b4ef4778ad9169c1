"""Regions derived from the annotation rather than read from it: intergenic gaps and exon-exon junctions.

Both follow oligo_designer_toolsuite (ODT, ``database/_genomic_region_generator.py``), whose output
this cache stands in for; the differences are deliberate and listed here.

``intergenic``: per sequence and strand, the complement of the gene spans, as ODT's ``bedtools
complement`` per strand. Gene spans that overlap or touch are merged first, so no record is empty.
The gaps at both ends of a sequence are included (bedtools complement against the sequence lengths
reports them, and a strand with no gene is the whole sequence). Only sequences with at least one
gene get records (ODT groups by the genes' sequences; an assembly's thousands of unannotated
scaffolds would otherwise come back whole, twice). ID ``InterRegPlus<seq>_<n>`` or
``InterRegMinus<seq>_<n>``, ``n`` counting the strand's gaps from 0 in genomic order. Differences
from ODT: minus-strand gaps are numbered in genomic order too (ODT numbers them from the sequence's
end, so an ID would hang on the sequence length, known only while extracting); a gene on strand
``.`` covers both strands (ODT drops it, so its bases came back as intergenic). Minus-strand records
are reverse-complemented, as every region's are.

The last gap of a strand runs to the sequence's end, which the annotation does not know: it is
planned with end ``SEQUENCE_END`` and resolved once the sequence is read (``resolve_end``); when
the last gene ends on the sequence's last base that gap is empty and dropped.

``exon_exon_junction``: for each transcript with two or more exons, one record per junction between
consecutive exons (genomic order): the last ``min(block_size, exon length)`` bases of the exon
before it spliced to the first ``min(block_size, exon length)`` bases of the exon after it, so an
oligo of length L fits across the junction anywhere when ``block_size >= L - 1``. An inner exon
shorter than ``block_size`` does not end a junction: it is included whole, and the junction runs on
to the next exon (ODT's rule, so every junction record holds ``block_size`` bases on each side
where the transcript has them). ID gene_id; a junction with the same blocks in two transcripts of a
gene is written once (ODT collapses them too). The record's span is from its first block's start to
its last block's end; the blocks between are spliced. ``block_size`` defaults to 50 (ODT's
``exon_exon_junction_block_size``) and is part of the junction region's cache key.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from .errors import InvalidInputError, OutOfRangeError
from .gtf import Annotation, Interval

__all__ = [
    "DEFAULT_JUNCTION_BLOCK_SIZE",
    "SEQUENCE_END",
    "Span",
    "intergenic_spans",
    "junction_spans",
    "check_block_size",
    "resolve_end",
]

DEFAULT_JUNCTION_BLOCK_SIZE = 50
SEQUENCE_END = 1 << 62
"""End of a planned gap that runs to its sequence's end; above any real coordinate, so it sorts last."""

Span = tuple[str, int, int, str, str, tuple[Interval, ...]]
"""(seqid, start, end, strand, id, segments): the fields of an ``extract.Record``."""


def check_block_size(value: object) -> int:
    """``value`` as a junction block size: a positive int (bools refused), else InvalidInputError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInputError(f"exon-exon junction block size must be a positive integer, got {value!r}")
    return value


def _merged(spans: Iterable[Interval]) -> list[Interval]:
    """Sorted spans with overlapping and touching ones merged (a gap between them would be empty)."""
    out: list[Interval] = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1] + 1:
            if e > out[-1][1]:
                out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    return out


def intergenic_spans(annotation: Annotation) -> Iterator[Span]:
    """The gaps between each sequence's gene spans, per strand; the last one ends at ``SEQUENCE_END``."""
    by_strand: dict[tuple[str, str], list[Interval]] = {}
    seqids: list[str] = []
    for g in annotation.genes.values():
        if (g.seqid, "+") not in by_strand:
            seqids.append(g.seqid)
            by_strand[(g.seqid, "+")], by_strand[(g.seqid, "-")] = [], []
        for strand in ("+", "-") if g.strand == "." else (g.strand,):
            by_strand[(g.seqid, strand)].append((g.start, g.end))
    for seqid in seqids:
        for strand, label in (("+", "Plus"), ("-", "Minus")):
            prefix = f"InterReg{label}{seqid}_"
            n = 0
            at = 1
            for s, e in _merged(by_strand[(seqid, strand)]):
                if s > at:
                    yield seqid, at, s - 1, strand, f"{prefix}{n}", ((at, s - 1),)
                    n += 1
                at = e + 1
            yield seqid, at, SEQUENCE_END, strand, f"{prefix}{n}", ((at, SEQUENCE_END),)


def resolve_end(span: Span, length: int) -> Span | None:
    """``span`` with a ``SEQUENCE_END`` end set to ``length``; None if it is then empty.

    A gap starting past ``length + 1`` follows a gene that runs past the sequence: OutOfRangeError,
    as the ``gene`` region gives for it.
    """
    seqid, start, end, strand, ident, _segments = span
    if end != SEQUENCE_END:
        return span
    if start > length + 1:
        raise OutOfRangeError(f"a gene ends at {seqid}:{start - 1}, past the sequence's length {length}")
    if start > length:
        return None
    return seqid, start, length, strand, ident, ((start, length),)


def junction_spans(annotation: Annotation, block_size: int) -> Iterator[Span]:
    """Each transcript's exon-exon junctions (see the module docstring), once per gene and blocks."""
    check_block_size(block_size)
    seen: set[tuple[str, str, str, tuple[Interval, ...]]] = set()
    for t in annotation.transcripts.values():
        exons = t.exons
        if len(exons) < 2:
            continue
        up = exons[0]
        inner: list[Interval] = []
        for i in range(1, len(exons)):
            s, e = exons[i]
            if i + 1 < len(exons) and e - s + 1 < block_size:
                inner.append((s, e))  # too short to end a junction: spanned whole
                continue
            take_up = min(block_size, up[1] - up[0] + 1)
            take_down = min(block_size, e - s + 1)
            segments = ((up[1] - take_up + 1, up[1]), *inner, (s, s + take_down - 1))
            ident = (t.seqid, t.strand, t.gene_id, segments)
            if ident not in seen:
                seen.add(ident)
                yield t.seqid, segments[0][0], segments[-1][1], t.strand, t.gene_id, segments
            up, inner = (s, e), []
