"""The peer of the ``intergenic`` region for tools/bench/cache.py: bedtools complement per strand, then getfasta -s.

This is the pipeline ODT runs (and tests/test_extractderived.py cross-checks), written as the shell
script a user would write, so its time covers everything from the GTF to the FASTA: ``awk`` takes
the gene rows' spans into one BED per strand (a gene on strand ``.`` into both, as our region
counts it on both), ``sort`` orders them, the genome file lists the ``.fai`` lengths of the
sequences with a gene (ours gives records for those alone), ``bedtools complement`` per strand
gives the gaps, and one ``bedtools getfasta -s`` writes them, minus strand reverse-complemented.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

__all__ = ["PEER_TOOLS", "missing_peer_tools", "bedtools_intergenic", "sequence_digests"]

PEER_TOOLS = ("bedtools", "bash", "awk", "sort", "cut")

# $1 GTF, $2 the FASTA's .fai, $3 the FASTA, $4 the directory written to; LC_ALL=C so sort and
# bedtools agree on the order of sequence names.
_SCRIPT = r"""
set -euo pipefail
export LC_ALL=C
gtf=$1 fai=$2 fasta=$3
cd "$4"
: > plus.unsorted
: > minus.unsorted
awk -F'\t' -v OFS='\t' '$3 == "gene" { s = $4 - 1
  if ($7 != "-") print $1, s, $5 > "plus.unsorted"
  if ($7 != "+") print $1, s, $5 > "minus.unsorted" }' "$gtf"
sort -k1,1 -k2,2n plus.unsorted > plus.bed
sort -k1,1 -k2,2n minus.unsorted > minus.bed
cut -f1 plus.bed minus.bed | sort -u > seqids.txt
awk -F'\t' -v OFS='\t' 'NR == FNR { want[$1]; next } $1 in want { print $1, $2 }' seqids.txt "$fai" \
  | sort -k1,1 > genome.txt
{
  bedtools complement -i plus.bed -g genome.txt | awk -v OFS='\t' '{ print $1, $2, $3, ".", 0, "+" }'
  bedtools complement -i minus.bed -g genome.txt | awk -v OFS='\t' '{ print $1, $2, $3, ".", 0, "-" }'
} > gaps.bed
bedtools getfasta -s -fi "$fasta" -bed gaps.bed > intergenic.fa
"""


def missing_peer_tools() -> list[str]:
    """The tools of the pipeline not on PATH (empty when it can run)."""
    return [tool for tool in PEER_TOOLS if shutil.which(tool) is None]


def bedtools_intergenic(gtf: Path, fasta: Path, out_dir: Path) -> Path:
    """Run the pipeline on ``gtf`` and ``fasta`` (its ``.fai`` beside it), writing into ``out_dir``; the FASTA written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    fai = fasta.with_name(fasta.name + ".fai")
    subprocess.run(
        ["bash", "-c", _SCRIPT, "bedtools-intergenic", str(gtf), str(fai), str(fasta), str(out_dir)],
        check=True,
        capture_output=True,
    )
    return out_dir / "intergenic.fa"


def sequence_digests(path: Path) -> list[bytes]:
    """The md5 of each record's sequence in a FASTA of any line width, sorted: a multiset to compare two outputs by."""
    digests: list[bytes] = []
    h = None
    with open(path, "rb") as fh:
        for line in fh:
            if line.startswith(b">"):
                if h is not None:
                    digests.append(h.digest())
                h = hashlib.md5()
            elif h is not None:
                h.update(line.rstrip(b"\r\n"))
    if h is not None:
        digests.append(h.digest())
    return sorted(digests)
