"""Synthetic upstream trees for tests and benchmarks: a seeded genome and GTF in NCBI and Ensembl layouts.

The genome has soft-masked (lowercase) stretches, N runs and a few IUPAC codes; genes lie on both
strands with 1-3 transcripts sharing exons, and most transcripts are coding with start and stop
codons (the stop sometimes split across an exon junction). The same genes are written twice:
NCBI style (``NC_*`` sequence names, empty ``transcript_id`` on gene rows, repeated ``db_xref``,
no UTR rows) and Ensembl style (numbered sequences, ``exon_id``, repeated ``tag``, explicit
``five_prime_utr``/``three_prime_utr`` rows that exclude the stop codon). Each tree carries its
real checksum file (``md5checksums.txt`` or BSD-sum ``CHECKSUMS``) and decoy files that a
careless suffix match would pick (``_cds_from_genomic.fna.gz``, ``.chr.gtf.gz``, ``dna.toplevel``).
"""

from __future__ import annotations

import gzip
import hashlib
import random
from dataclasses import dataclass, field
from pathlib import Path

from .checksums import bsd_sum

__all__ = [
    "SynthGene",
    "SynthTranscript",
    "SynthGenome",
    "make_genome",
    "write_ncbi_tree",
    "write_ensembl_tree",
    "NCBI_ACCESSION",
    "NCBI_ASSEMBLY_NAME",
    "NCBI_RELEASE",
    "ENSEMBL_SPECIES",
    "ENSEMBL_ASSEMBLY",
    "ncbi_dir",
]

NCBI_ACCESSION = "GCF_000001405.40"
NCBI_ASSEMBLY_NAME = "SYN1"
NCBI_RELEASE = "RS_2024_01"
"""The annotation release the NCBI tree's GTF header names unless told otherwise."""
ENSEMBL_SPECIES = "synthetica_testii"
ENSEMBL_ASSEMBLY = "SYN1"

_ACGT = bytes(b"ACGT"[i & 3] for i in range(256))
_LOWER = bytes.maketrans(b"ACGTNRYKM", b"acgtnrykm")
Interval = tuple[int, int]


@dataclass
class SynthTranscript:
    """A transcript: genomic exons (ascending), and in transcript order the CDS, stop and UTR segments."""

    id: str
    exons: list[Interval]
    cds: list[Interval] = field(default_factory=list)
    start_codon: list[Interval] = field(default_factory=list)
    stop_codon: list[Interval] = field(default_factory=list)
    five_utr: list[Interval] = field(default_factory=list)
    three_utr: list[Interval] = field(default_factory=list)


@dataclass
class SynthGene:
    """A gene on contig ``contig`` (index), with its transcripts."""

    id: str
    number: int
    contig: int
    strand: str
    transcripts: list[SynthTranscript]

    @property
    def start(self) -> int:
        """First base of any exon."""
        return min(t.exons[0][0] for t in self.transcripts)

    @property
    def end(self) -> int:
        """Last base of any exon."""
        return max(t.exons[-1][1] for t in self.transcripts)


@dataclass
class SynthGenome:
    """Sequences (index = contig number) and genes, sorted by contig and start."""

    sequences: list[bytes]
    genes: list[SynthGene]


def _sequence(rng: random.Random, length: int) -> bytes:
    body = bytearray(rng.randbytes(length).translate(_ACGT))
    for _ in range(max(1, length // 20_000)):  # soft-masked repeats cover ~10%
        size = min(rng.randint(200, 4_000), max(1, length // 10))
        at = rng.randrange(0, max(1, length - size))
        body[at : at + size] = bytes(body[at : at + size]).translate(_LOWER)
    for _ in range(max(1, length // 200_000)):  # assembly gaps
        size = min(rng.randint(50, 500), max(1, length // 50))
        at = rng.randrange(0, max(1, length - size))
        body[at : at + size] = b"N" * size
    for _ in range(max(1, length // 50_000)):  # IUPAC ambiguity codes
        at = rng.randrange(0, length)
        body[at] = rng.choice(b"RYKMrykm")
    return bytes(body)


def _segments(exons: list[Interval], strand: str, lo: int, hi: int) -> list[Interval]:
    """Genomic intervals of transcript offsets [lo, hi) (0-based, transcript orientation)."""
    ordered = exons if strand == "+" else exons[::-1]
    out: list[Interval] = []
    offset = 0
    for s, e in ordered:
        length = e - s + 1
        u, v = max(lo, offset) - offset, min(hi, offset + length) - offset
        if u < v:
            out.append((s + u, s + v - 1) if strand == "+" else (e - v + 1, e - u))
        offset += length
    return out


def _gene(rng: random.Random, number: int, contig: int, length: int, style_id: str) -> SynthGene | None:
    n_exons = rng.randint(1, 8)
    span = 0
    blocks: list[tuple[int, int]] = []
    for i in range(n_exons):
        exon_len = rng.randint(60, 400)
        intron = rng.randint(60, 2_500) if i else 0
        blocks.append((span + intron, exon_len))
        span += intron + exon_len
    if span + 10 >= length:
        return None
    origin = rng.randrange(1, length - span)
    candidates = [(origin + off, origin + off + ln - 1) for off, ln in blocks]
    strand = rng.choice("+-")
    transcripts: list[SynthTranscript] = []
    for k in range(rng.randint(1, 3)):
        exons = candidates if k == 0 else sorted(rng.sample(candidates, rng.randint(1, len(candidates))))
        t = SynthTranscript(id=f"{style_id}T{number:07d}.{k + 1}", exons=list(exons))
        total = sum(e - s + 1 for s, e in exons)
        if total >= 30 and rng.random() < 0.85:
            a = rng.randrange(0, total // 3)
            codons = rng.randint(1, (total - a - 3) // 3)
            cds_end = a + 3 * codons
            t.cds = _segments(exons, strand, a, cds_end)
            t.start_codon = _segments(exons, strand, a, a + 3)
            t.stop_codon = _segments(exons, strand, cds_end, cds_end + 3)
            t.five_utr = _segments(exons, strand, 0, a)
            t.three_utr = _segments(exons, strand, cds_end + 3, total)
        transcripts.append(t)
    return SynthGene(
        id=f"{style_id}G{number:07d}", number=number, contig=contig, strand=strand, transcripts=transcripts
    )


def make_genome(total_bp: int = 200_000, contigs: int = 3, genes: int = 40, seed: int = 1) -> SynthGenome:
    """A seeded genome of about ``total_bp`` bases over ``contigs`` sequences with ``genes`` genes."""
    rng = random.Random(seed)
    weights = [rng.uniform(0.5, 1.5) for _ in range(contigs)]
    sizes = [max(5_000, int(total_bp * w / sum(weights))) for w in weights]
    sequences = [_sequence(rng, n) for n in sizes]
    out: list[SynthGene] = []
    number = 0
    while len(out) < genes:
        contig = rng.choices(range(contigs), weights=sizes)[0]
        gene = _gene(rng, number + 1, contig, sizes[contig], "SYN")
        number += 1
        if gene is not None:
            out.append(gene)
    out.sort(key=lambda g: (g.contig, g.start, g.id))
    return SynthGenome(sequences=sequences, genes=out)


def _fasta(
    path: Path,
    names: list[str],
    descriptions: list[str],
    genome: SynthGenome,
    width: int,
    upper: bool = False,
) -> None:
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1, mtime=0) as out:
        for name, desc, seq in zip(names, descriptions, genome.sequences):
            if upper:
                seq = seq.upper()
            out.write(f">{name} {desc}\n".encode())
            out.write(b"\n".join(seq[i : i + width] for i in range(0, len(seq), width)))
            out.write(b"\n")


def _gtf_rows(genome: SynthGenome, names: list[str], ncbi: bool) -> list[str]:
    rows: list[str] = []
    src = "BestRefSeq" if ncbi else "ensembl"
    for g in genome.genes:
        gid = g.id if ncbi else g.id.replace("SYNG", "ENSSYNG")
        seqid = names[g.contig]

        def row(kind: str, s: int, e: int, attrs: str, phase: str = ".", seqid: str = seqid) -> None:
            rows.append(f"{seqid}\t{src}\t{kind}\t{s}\t{e}\t.\t{g.strand}\t{phase}\t{attrs}")

        base = f'gene_id "{gid}"; ' + (
            f'db_xref "GeneID:{g.number}"; db_xref "HGNC:{g.number}"; ' if ncbi else 'gene_version "1"; '
        )
        row(
            "gene",
            g.start,
            g.end,
            base
            + (
                'transcript_id ""; gbkey "Gene"; gene_biotype "protein_coding";'
                if ncbi
                else 'gene_source "ensembl"; gene_biotype "protein_coding";'
            ),
        )
        for t in g.transcripts:
            tid = t.id.replace("SYNT", "XM_SYN") if ncbi else t.id.replace("SYNT", "ENSSYNT")
            tattrs = (
                base
                + f'transcript_id "{tid}"; '
                + ('gbkey "mRNA"; ' if ncbi else 'transcript_version "1"; tag "basic"; tag "canonical"; ')
            )
            row("transcript", t.exons[0][0], t.exons[-1][1], tattrs.rstrip())
            ordered = t.exons if g.strand == "+" else t.exons[::-1]
            for i, (s, e) in enumerate(ordered, 1):
                extra = "" if ncbi else f' exon_id "{gid}E{i}"; exon_version "1";'
                row("exon", s, e, tattrs + f'exon_number "{i}";' + extra)
            done = 0
            for s, e in t.cds:
                row("CDS", s, e, tattrs + 'protein_id "P1";', phase=str((3 - done % 3) % 3))
                done += e - s + 1
            for kind, segs in (("start_codon", t.start_codon), ("stop_codon", t.stop_codon)):
                for s, e in segs:
                    row(kind, s, e, tattrs.rstrip())
            if not ncbi:
                for kind, segs in (("five_prime_utr", t.five_utr), ("three_prime_utr", t.three_utr)):
                    for s, e in segs:
                        row(kind, s, e, tattrs.rstrip())
    return rows


def _gz_text(path: Path, lines: list[str]) -> None:
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1, mtime=0) as out:
        out.write(("\n".join(lines) + "\n").encode())


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def ncbi_dir(accession: str = NCBI_ACCESSION, name: str = NCBI_ASSEMBLY_NAME) -> str:
    """``genomes/all/GCF/000/001/405/GCF_000001405.40_SYN1`` for an accession and assembly name."""
    digits = accession[4:13]
    return f"genomes/all/{accession[:3]}/{digits[0:3]}/{digits[3:6]}/{digits[6:9]}/{accession}_{name}"


def write_ncbi_tree(
    root: Path,
    genome: SynthGenome,
    accession: str = NCBI_ACCESSION,
    name: str = NCBI_ASSEMBLY_NAME,
    release: str | None = NCBI_RELEASE,
) -> Path:
    """Write (or overwrite) the NCBI assembly directory under ``root``; returns it.

    The GTF header names annotation release ``release`` as NCBI does: ``#!annotation-source NCBI
    RefSeq <accession>-RS_2024_01`` for an ``RS_`` release, ``... Annotation Release 110`` for a
    numbered one; ``None`` writes no ``#!annotation-source`` line.
    """
    directory = root / ncbi_dir(accession, name)
    directory.mkdir(parents=True, exist_ok=True)
    stem = f"{accession}_{name}"
    names = [f"NC_{90001 + i:06d}.1" for i in range(len(genome.sequences))]
    descs = [f"Synthetica testii chromosome {i + 1}, {name} Primary Assembly" for i in range(len(names))]
    _fasta(directory / f"{stem}_genomic.fna.gz", names, descs, genome, 80)
    header = ["#gtf-version 2.2", f"#!genome-build {name}", f"#!genome-build-accession NCBI_Assembly:{accession}"]
    if release is not None:
        source = (
            f"NCBI RefSeq {accession}-{release}"
            if release.upper().startswith("RS_")
            else f"NCBI Synthetica testii Annotation Release {release}"
        )
        header.append(f"#!annotation-source {source}")
    _gz_text(directory / f"{stem}_genomic.gtf.gz", [*header, *_gtf_rows(genome, names, ncbi=True)])
    _gz_text(directory / f"{stem}_cds_from_genomic.fna.gz", [">decoy_cds", "ATG"])
    (directory / f"{stem}_assembly_report.txt").write_text(
        f"# Assembly name:  {name}\n# RefSeq assembly accession: {accession}\n"
    )
    files = sorted(p.name for p in directory.iterdir() if p.name != "md5checksums.txt")
    (directory / "md5checksums.txt").write_text("".join(f"{_md5(directory / f)}  ./{f}\n" for f in files))
    return directory


def write_ensembl_tree(
    root: Path,
    genome: SynthGenome,
    release: int = 110,
    species: str = ENSEMBL_SPECIES,
    assembly: str = ENSEMBL_ASSEMBLY,
) -> tuple[Path, Path]:
    """Write ``release-N/fasta/<species>/dna`` and ``release-N/gtf/<species>`` under ``root``; return both."""
    prefix = species[0].upper() + species[1:]
    dna = root / f"release-{release}" / "fasta" / species / "dna"
    gtf = root / f"release-{release}" / "gtf" / species
    dna.mkdir(parents=True, exist_ok=True)
    gtf.mkdir(parents=True, exist_ok=True)
    names = [str(i + 1) for i in range(len(genome.sequences))]
    descs = [
        f"dna_sm:chromosome chromosome:{assembly}:{n}:1:{len(s)}:1 REF"
        for n, s in zip(names, genome.sequences)
    ]
    _fasta(dna / f"{prefix}.{assembly}.dna_sm.toplevel.fa.gz", names, descs, genome, 60)
    _fasta(dna / f"{prefix}.{assembly}.dna.toplevel.fa.gz", names, descs, genome, 60, upper=True)
    (dna / "README").write_text("synthetic Ensembl-style DNA directory\n")
    rows = _gtf_rows(genome, names, ncbi=False)
    header = [f"#!genome-build {assembly}", f"#!genome-version {assembly}"]
    _gz_text(gtf / f"{prefix}.{assembly}.{release}.gtf.gz", header + rows)
    _gz_text(gtf / f"{prefix}.{assembly}.{release}.chr.gtf.gz", header + rows[: len(rows) // 2])
    _gz_text(gtf / f"{prefix}.{assembly}.{release}.abinitio.gtf.gz", header)
    for directory in (dna, gtf):
        files = sorted(p.name for p in directory.iterdir() if p.name != "CHECKSUMS")
        lines = []
        for f in files:
            checksum, blocks = bsd_sum(directory / f)
            lines.append(f"{checksum}\t{blocks}\t{f}")  # tabs here; the parser also accepts spaces
        (directory / "CHECKSUMS").write_text("\n".join(lines) + "\n")
    return dna, gtf
