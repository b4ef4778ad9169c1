"""GTF parsing into genes and transcripts: just the rows and attributes region extraction needs.

Reads ``gene``, ``exon``, ``CDS`` and ``stop_codon`` rows (1-based, closed coordinates); transcript
spans come from their exons. GTF CDS rows exclude the stop codon; a transcript's coding segments
here are its CDS rows plus the ``stop_codon`` bases no CDS row covers, which is what ``gffread -x``
outputs. CDS rows that overlap stay separate segments, so a shared base is read twice: NCBI writes a
-1 ribosomal slippage (SARS-CoV-2 ORF1ab, PEG10) as two CDS rows sharing one base. Exons that
overlap are merged; exons that only touch stay apart (NCBI splits an exon where the RefSeq mRNA
has an insertion), so each annotated exon is its own interval. A transcript
with CDS but no exon rows gets its exons from the coding segments (gffread does the same). NCBI's
empty ``transcript_id ""`` on gene rows and repeated keys (``db_xref``, ``tag``) are fine: only
``gene_id`` and ``transcript_id`` are read. The same id on two sequences (pseudo-autosomal copies)
makes two objects.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InvalidInputError
from .gcpause import gc_paused  # its own module, so reads need not load this one
from .progress import ProgressFactory, null_progress

__all__ = ["Gene", "Transcript", "Annotation", "parse_gtf", "merge_intervals", "coding_segments", "gc_paused"]

_GENE_ID = re.compile(rb'(?:^|;)\s*gene_id\s+"([^"]*)"')
_TRANSCRIPT_ID = re.compile(rb'(?:^|;)\s*transcript_id\s+"([^"]*)"')
_WANTED = frozenset({b"gene", b"exon", b"CDS", b"stop_codon"})  # transcript rows add nothing
_STRANDS = {b"+": "+", b"-": "-", b".": "."}

Interval = tuple[int, int]


@dataclass(slots=True)
class Gene:
    """A gene's span on one sequence."""

    id: str
    seqid: str
    strand: str
    start: int
    end: int


@dataclass(slots=True)
class Transcript:
    """A transcript: sorted exons (overlaps merged) and coding segments (CDS plus stop codon, sorted)."""

    id: str
    gene_id: str
    seqid: str
    strand: str
    exons: list[Interval] = field(default_factory=list)
    coding: list[Interval] = field(default_factory=list)

    @property
    def start(self) -> int:
        """First base of the first exon."""
        return self.exons[0][0]

    @property
    def end(self) -> int:
        """Last base of the last exon."""
        return self.exons[-1][1]


@dataclass(slots=True)
class Annotation:
    """Genes and transcripts of one GTF, keyed by (id, seqid); no transcripts from ``parse_gtf(genes_only=True)``."""

    genes: dict[tuple[str, str], Gene]
    transcripts: dict[tuple[str, str], Transcript]
    genes_only: bool = False
    """Parsed with ``genes_only``: ``transcripts`` is empty because none were built, not because the GTF has none."""

    def seqids(self) -> set[str]:
        """Every sequence a gene or transcript lies on."""
        return {g.seqid for g in self.genes.values()} | {t.seqid for t in self.transcripts.values()}


def merge_intervals(intervals: list[Interval], *, touching: bool = True) -> list[Interval]:
    """Sort closed intervals and merge those that overlap, and (unless ``touching=False``) those that touch."""
    gap = 1 if touching else 0
    out: list[Interval] = []
    for start, end in sorted(intervals):
        if out and start <= out[-1][1] + gap:
            if end > out[-1][1]:
                out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


def coding_segments(cds: list[Interval], stops: list[Interval]) -> list[Interval]:
    """CDS rows (overlapping ones kept apart) plus the stop-codon bases they do not cover, sorted.

    Segments that only touch are joined (the same bytes either way); CDS rows that overlap partly are
    not, because the shared base belongs to both reading frames (ribosomal slippage); a row inside
    another, or repeated, adds nothing (as with ``gffread -x``).
    """
    segments: list[Interval] = []
    reach = 0
    # Longest first among rows starting together: a row inside an earlier one (or a repeated row) is read
    # once, as `gffread -x` reads it; only rows that overlap partly keep their shared bases twice.
    for start, end in sorted(set(cds), key=lambda row: (row[0], -row[1])):
        if end > reach:
            segments.append((start, end))
            reach = end
    for start, end in merge_intervals(stops):
        for c_start, c_end in merge_intervals(segments):
            if c_end < start or c_start > end:
                continue
            if c_start > start:
                segments.append((start, c_start - 1))
            start = max(start, c_end + 1)
            if start > end:
                break
        if start <= end:
            segments.append((start, end))
    out: list[Interval] = []
    for start, end in sorted(segments):
        if out and start == out[-1][1] + 1:
            out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


def _bad(path: Path, lineno: int, why: str) -> InvalidInputError:
    return InvalidInputError(f"{path.name} line {lineno}: {why}")


def parse_gtf(path: Path, *, progress: ProgressFactory = null_progress, genes_only: bool = False) -> Annotation:
    """Parse a plain-text GTF; InvalidInputError names the first malformed line.

    ``genes_only`` gives the same genes and no transcripts (for regions planned from gene spans
    alone): every row is still read and checked, but intervals are kept only for transcripts whose
    gene has no gene row so far, and only those become spans.
    """
    with gc_paused():
        return _parse(path, progress, genes_only)


def _attr(attrs: bytes, key: bytes, pattern: re.Pattern[bytes]) -> bytes | None:
    """The value ``pattern`` (``(?:^|;)\\s*key\\s+"([^"]*)"``) finds first, without the regex when the layout is plain.

    The regex has no literal prefix, so it is tried at every position; ``find`` jumps to the key's
    first occurrence. When that occurrence starts the text or follows ``"; "`` and is followed by
    ``' "'`` and a closing quote, no match can start earlier (one would need whitespace where the
    ``;`` or the key's own letters are), so it is the regex's match. Any other layout asks the regex.
    """
    j = attrs.find(key)
    k = j + len(key)
    if (j == 0 or (j >= 2 and attrs[j - 2 : j] == b"; ")) and attrs[k : k + 2] == b' "':
        q = attrs.find(b'"', k + 2)
        if q >= 0:
            return attrs[k + 2 : q]
    m = pattern.search(attrs)
    return None if m is None else m.group(1)


def _parse(path: Path, progress: ProgressFactory, genes_only: bool) -> Annotation:
    genes: dict[tuple[str, str], Gene] = {}
    gene_rows: dict[tuple[str, str], tuple[str, int, int]] = {}
    exons: dict[tuple[str, str], list[Interval]] = {}
    coding: dict[tuple[str, str], list[Interval]] = {}
    stops: dict[tuple[str, str], list[Interval]] = {}
    meta: dict[tuple[str, str], tuple[str, str]] = {}  # (tid, seqid) -> (gene_id, strand)
    bar = progress(f"parse {path.name}", total=path.stat().st_size, unit="B")
    # Work on bytes and decode only the few fields kept: ~2x faster than decoding every line.
    seen = 0
    lineno = 0
    try:
        with open(path, "rb") as fh:
            for lineno, raw in enumerate(fh, 1):
                if lineno & 0xFFFF == 0:
                    pos = fh.tell()
                    bar.update(pos - seen)
                    seen = pos
                if raw[:1] == b"#" or not raw.strip():
                    continue
                fields = raw.rstrip(b"\r\n").split(b"\t")
                if len(fields) != 9:
                    raise _bad(path, lineno, f"expected 9 tab-separated columns, found {len(fields)}")
                kind = fields[2]
                if kind not in _WANTED:
                    continue
                try:
                    start, end = int(fields[3]), int(fields[4])
                except ValueError:
                    raise _bad(
                        path,
                        lineno,
                        f"start/end must be integers, got {fields[3].decode()!r}, {fields[4].decode()!r}",
                    ) from None
                if start < 1 or end < start:
                    raise _bad(path, lineno, f"invalid interval {start}-{end} (1-based, start <= end)")
                strand = _STRANDS.get(fields[6])
                if strand is None:
                    raise _bad(path, lineno, f"strand must be +, - or ., got {fields[6].decode()!r}")
                attrs = fields[8]
                gid = _attr(attrs, b"gene_id", _GENE_ID)
                if gid is None:
                    raise _bad(path, lineno, "no gene_id attribute")
                gene_id = gid.decode()
                seqid = fields[0].decode()
                if kind == b"gene":
                    gene_rows[(gene_id, seqid)] = (strand, start, end)
                    continue
                tid = _attr(attrs, b"transcript_id", _TRANSCRIPT_ID)
                if not tid:
                    raise _bad(path, lineno, f"{kind.decode()} row without a transcript_id")
                tkey = (tid.decode(), seqid)
                owner = meta.get(tkey)
                if owner is None:
                    owner = meta[tkey] = (gene_id, strand)
                if genes_only and (owner[0], seqid) in gene_rows:
                    continue  # its gene's span is the gene row's: this row's bases are never read
                if kind == b"exon":
                    exons.setdefault(tkey, []).append((start, end))
                elif kind == b"CDS":
                    coding.setdefault(tkey, []).append((start, end))
                else:
                    stops.setdefault(tkey, []).append((start, end))
            bar.update(fh.tell() - seen)
    except UnicodeDecodeError:
        # Ids are matched against FASTA names and written into headers, so they must be text.
        raise _bad(path, lineno, "not UTF-8 text") from None
    finally:
        bar.close()
    for (gene_id, seqid), (strand, start, end) in gene_rows.items():
        genes[(gene_id, seqid)] = Gene(id=gene_id, seqid=seqid, strand=strand, start=start, end=end)
    if genes_only:
        _spans_from_transcripts(genes, gene_rows, meta, exons, coding, stops)
        return Annotation(genes=genes, transcripts={}, genes_only=True)
    transcripts: dict[tuple[str, str], Transcript] = {}
    for tkey, (gene_id, strand) in meta.items():
        cds = coding_segments(coding.get(tkey, []), stops.get(tkey, []))
        exon_list = merge_intervals(exons.get(tkey, []), touching=False) or merge_intervals(cds)
        if not exon_list:
            continue  # a bare transcript row: nothing to extract
        transcripts[tkey] = Transcript(
            id=tkey[0], gene_id=gene_id, seqid=tkey[1], strand=strand, exons=exon_list, coding=cds
        )
    for t in transcripts.values():
        # GTFs without gene rows (allowed by the format) get gene spans from their transcripts.
        _widen(genes, gene_rows, t.gene_id, t.seqid, t.strand, t.start, t.end)
    return Annotation(genes=genes, transcripts=transcripts)


def _widen(
    genes: dict[tuple[str, str], Gene],
    gene_rows: dict[tuple[str, str], tuple[str, int, int]],
    gene_id: str,
    seqid: str,
    strand: str,
    start: int,
    end: int,
) -> None:
    """Widen (or make) the span of a gene without a gene row to take in one transcript's span."""
    gkey = (gene_id, seqid)
    if gkey in gene_rows:
        return
    g = genes.get(gkey)
    if g is None:
        genes[gkey] = Gene(id=gene_id, seqid=seqid, strand=strand, start=start, end=end)
    else:
        g.start, g.end = min(g.start, start), max(g.end, end)


def _spans_from_transcripts(
    genes: dict[tuple[str, str], Gene],
    gene_rows: dict[tuple[str, str], tuple[str, int, int]],
    meta: dict[tuple[str, str], tuple[str, str]],
    exons: dict[tuple[str, str], list[Interval]],
    coding: dict[tuple[str, str], list[Interval]],
    stops: dict[tuple[str, str], list[Interval]],
) -> None:
    """The genes-only parse's spans of genes without gene rows: those the full parse derives, in its order.

    A transcript's span is its exons' (first start, last end, which merging keeps), or without exons
    that of its CDS and stop-codon rows (``coding_segments`` covers exactly their union).
    """
    for tkey, (gene_id, strand) in meta.items():
        if (gene_id, tkey[1]) in gene_rows:
            continue
        rows = exons.get(tkey) or coding.get(tkey, []) + stops.get(tkey, [])
        _widen(genes, gene_rows, gene_id, tkey[1], strand, min(s for s, _ in rows), max(e for _, e in rows))
