"""``rgstore getseq``: print regions of a genome's sequences (bare lines or FASTA)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .main import Context, store_option

__all__ = ["getseq_cmd"]

pass_ctx = click.make_pass_decorator(Context)


@click.command("getseq")
@click.argument("name", required=False)
@click.argument("loci", nargs=-1)
@click.option("--digest", metavar="D", help="Read from the genome with this digest (then every argument is a LOCUS).")
@click.option("--bed", type=click.Path(path_type=Path, dir_okay=False), help="Also read regions from a BED file.")
@click.option("--revcomp", "-i", is_flag=True, help="Reverse-complement every region.")
@click.option("--fasta", "as_fasta", is_flag=True, help="FASTA output with >seq:start-end headers.")
@click.option("--width", type=click.IntRange(min=1), default=60, show_default=True,
              help="Residues per line with --fasta.")
@store_option
@pass_ctx
def getseq_cmd(
    ctx: Context, name: str | None, loci: tuple[str, ...], digest: str | None, bed: Path | None,
    revcomp: bool, as_fasta: bool, width: int,
) -> None:
    """Print regions of genome NAME (an alias: hg38 or ns:name); LOCUS is seq, seq:start or seq:start-end.

    Coordinates are 0-based and half-open (chr1:0-10 is the first ten bases). Output is upper
    case, one line per region, or FASTA with --fasta.

    \b
    Example:
        rgstore getseq hg38 chr1:0-60 chrM
        rgstore getseq --digest XZlrcEGi6mlopZ2uD8ObHkQB1d0oDwKk chrX:2-6 --revcomp --fasta
        rgstore getseq hg38 --bed regions.bed --fasta --width 80
    """
    from rgstore.locus import parse_locus, read_bed

    if digest is not None:
        loci = ((name,) if name is not None else ()) + loci
        genome, by_digest = digest, True
    elif name is None:
        raise click.UsageError("give a genome NAME (or --digest D) and at least one LOCUS")
    else:
        genome, by_digest = name, False
    regions = [parse_locus(locus) for locus in loci]
    if bed is not None:
        regions += list(read_bed(bed))
    if not regions:
        raise click.UsageError("give at least one LOCUS or --bed FILE")
    with ctx.open(readonly=True) as store:
        seqs = store.genomes.getseqs(genome, regions, by_digest=by_digest, revcomp=revcomp)
    out: list[str] = []
    for region, residues in zip(regions, seqs):
        if as_fasta:
            start = region.start or 0
            end = region.end if region.end is not None else start + len(residues)
            out.append(f">{region.seq}:{start}-{end}{'/rc' if revcomp else ''}\n")
            out.extend(residues[i:i + width] + "\n" for i in range(0, len(residues), width))
        else:
            out.append(residues + "\n")
    sys.stdout.write("".join(out))
