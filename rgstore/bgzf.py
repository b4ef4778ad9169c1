"""BGZF: the blocked gzip that samtools, htslib and pysam index (``samtools faidx x.fa.gz``).

A BGZF file is a series of gzip members of at most 64 KiB each, every one naming its own size in
a ``BC`` extra field, and ends with an empty member. Any gzip reader (``zcat``) reads it whole;
htslib can seek in it, which a plain gzip stream does not allow. Headers carry no time or file
name, so the same input always gives the same bytes.
"""

from __future__ import annotations

import struct
import zlib
from typing import BinaryIO, Final

__all__ = ["BgzfWriter", "BGZF_SUFFIXES", "EOF_BLOCK"]

BGZF_SUFFIXES: Final = (".gz", ".bgz", ".bgzf")
"""File names an export writes as BGZF rather than plain text."""

# htslib's BGZF_BLOCK_SIZE: an incompressible block still fits the 16-bit size field.
_BLOCK_INPUT: Final = 0xFF00
_HEADER = struct.Struct("<4BI2BH2BHH")
EOF_BLOCK: Final = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")


class BgzfWriter:
    """A binary file-like ``write``r that compresses into BGZF blocks on ``raw``; ``close`` ends the file.

    ``close`` writes the final block and the EOF marker but leaves ``raw`` open (the caller owns it).
    """

    def __init__(self, raw: BinaryIO, *, level: int = 6) -> None:
        self._raw = raw
        self._level = level
        self._pending = bytearray()

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Buffer ``data``, writing every full block; returns ``len(data)``."""
        self._pending += data
        if len(self._pending) >= _BLOCK_INPUT:
            view = memoryview(self._pending)
            done = 0
            while len(self._pending) - done >= _BLOCK_INPUT:
                self._block(view[done:done + _BLOCK_INPUT])
                done += _BLOCK_INPUT
            view.release()
            del self._pending[:done]
        return len(data)

    def close(self) -> None:
        """Write what is buffered and the EOF marker block."""
        if self._pending:
            self._block(memoryview(self._pending))
            self._pending.clear()
        self._raw.write(EOF_BLOCK)

    def _block(self, data: memoryview) -> None:
        compressor = zlib.compressobj(self._level, zlib.DEFLATED, -15)
        body = compressor.compress(data) + compressor.flush()
        size = _HEADER.size + len(body) + 8
        header = _HEADER.pack(31, 139, 8, 4, 0, 0, 255, 6, 66, 67, 2, size - 1)
        self._raw.write(header + body + struct.pack("<II", zlib.crc32(data), len(data)))

    def __enter__(self) -> BgzfWriter:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.close()
