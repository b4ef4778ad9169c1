"""Synthetic genomes for benchmarks: hg38-like contig sizes, N gaps, soft-masked stretches, 60-col lines."""

from __future__ import annotations

import os
import random
from pathlib import Path

__all__ = ["HG38_FRACTIONS", "write_genome"]

# Relative sizes of hg38 chr1..22, X, Y (Mbp); chrM is added at its real 16.6 kb.
HG38_FRACTIONS = [
    248.9, 242.2, 198.3, 190.2, 181.5, 170.8, 159.3, 145.1, 138.4, 133.8, 135.1, 133.3,
    114.4, 107.0, 102.0, 90.3, 83.3, 80.4, 58.6, 64.4, 46.7, 50.8, 156.0, 57.2,
]
_ACGT = bytes(b"ACGT"[i & 3] for i in range(256))
_LOWER = bytes.maketrans(b"ACGTN", b"acgtn")


def _contig(rng: random.Random, length: int) -> bytes:
    body = bytearray(os.urandom(length).translate(_ACGT))
    telomere = min(10_000, length // 10)
    body[:telomere] = b"N" * telomere
    body[length - telomere:] = b"N" * telomere
    for _ in range(5):  # assembly gaps of 1-50 kb
        size = min(rng.randint(1_000, 50_000), length // 20)
        at = rng.randrange(0, max(1, length - size))
        body[at:at + size] = b"N" * size
    for _ in range(20):  # soft-masked repeats
        size = min(rng.randint(100, 5_000), length // 40)
        at = rng.randrange(0, max(1, length - size))
        body[at:at + size] = bytes(body[at:at + size]).translate(_LOWER)
    return bytes(body)


def write_genome(path: Path, total_bp: int = 200_000_000, contigs: int = 25, seed: int = 7,
                 width: int = 60) -> dict[str, int]:
    """Write a FASTA of ``contigs`` sequences summing to about ``total_bp``; returns name -> length."""
    rng = random.Random(seed)
    fractions = HG38_FRACTIONS[: max(1, contigs - 1)]
    chrm = min(16_569, max(1_000, total_bp // 100))
    scale = (total_bp - chrm) / sum(fractions)
    sizes = {f"chr{i + 1}": max(1_000, int(f * scale)) for i, f in enumerate(fractions)}
    sizes["chrM"] = chrm
    with open(path, "wb") as out:
        for name, length in sizes.items():
            out.write(f">{name} synthetic contig\n".encode())
            seq = _contig(rng, length)
            for start in range(0, length, width * 100_000):
                block = seq[start:start + width * 100_000]
                out.write(b"\n".join(block[i:i + width] for i in range(0, len(block), width)))
                out.write(b"\n")
    return sizes
