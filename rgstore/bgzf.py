"""BGZF: the blocked gzip that samtools, htslib and pysam index (``samtools faidx x.fa.gz``).

A BGZF file is a series of gzip members of at most 64 KiB each, every one naming its own size in
a ``BC`` extra field, and ends with an empty member. Any gzip reader (``zcat``) reads it whole;
htslib can seek in it, which a plain gzip stream does not allow. Headers carry no time or file
name, so the same input always gives the same bytes (the same bytes as htslib's ``bgzip``).
"""

from __future__ import annotations

import os
import struct
import zlib
from collections import deque
from typing import TYPE_CHECKING, BinaryIO, Final

if TYPE_CHECKING:
    from concurrent.futures import Future

__all__ = ["BgzfWriter", "BGZF_SUFFIXES", "EOF_BLOCK", "compress_block"]

BGZF_SUFFIXES: Final = (".gz", ".bgz", ".bgzf")
"""File names an export writes as BGZF rather than plain text."""

# htslib's BGZF_BLOCK_SIZE: an incompressible block still fits the 16-bit size field.
_BLOCK_INPUT: Final = 0xFF00
_HEADER = struct.Struct("<4BI2BH2BHH")
EOF_BLOCK: Final = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")
_MAX_THREADS: Final = 8


def compress_block(data: bytes, level: int = 6) -> bytes:
    """One BGZF member holding ``data`` (at most 0xFF00 bytes)."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, -15)
    body = compressor.compress(data) + compressor.flush()
    size = _HEADER.size + len(body) + 8
    header = _HEADER.pack(31, 139, 8, 4, 0, 0, 255, 6, 66, 67, 2, size - 1)
    return header + body + struct.pack("<II", zlib.crc32(data), len(data))


class BgzfWriter:
    """A binary file-like ``write``r that compresses into BGZF blocks on ``raw``; ``close`` ends the file.

    Blocks are compressed on ``threads`` threads (default: the CPUs, at most 8; zlib releases the
    GIL) and written in order, like ``bgzip -@``. ``close`` writes the rest and the EOF marker but
    leaves ``raw`` open (the caller owns it); leaving the ``with`` block by an exception writes no
    EOF marker, so a half-written file never looks complete.
    """

    def __init__(self, raw: BinaryIO, *, level: int = 6, threads: int | None = None) -> None:
        self._raw = raw
        self._level = level
        self._pending = bytearray()
        # Imported here: concurrent.futures (with logging, queue, traceback) costs ~10 ms of start-up, and
        # every getseq and genome command imports this module through rgstore.genomes.
        from concurrent.futures import ThreadPoolExecutor

        workers = threads if threads is not None else min(os.cpu_count() or 1, _MAX_THREADS)
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="rgstore-bgzf") if workers > 1 else None
        self._window = 2 * workers  # blocks in flight: enough to keep every thread busy, bounded memory
        self._inflight: deque[Future[bytes]] = deque()

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Buffer ``data``, compressing every full block; returns ``len(data)``."""
        self._pending += data
        if len(self._pending) >= _BLOCK_INPUT:
            done = 0
            while len(self._pending) - done >= _BLOCK_INPUT:
                self._block(bytes(self._pending[done:done + _BLOCK_INPUT]))
                done += _BLOCK_INPUT
            del self._pending[:done]
        return len(data)

    def close(self) -> None:
        """Write what is buffered and the EOF marker block."""
        try:
            if self._pending:
                self._block(bytes(self._pending))
                self._pending.clear()
            while self._inflight:
                self._raw.write(self._inflight.popleft().result())
            self._raw.write(EOF_BLOCK)
        finally:
            self._stop()

    def _block(self, data: bytes) -> None:
        if self._pool is None:
            self._raw.write(compress_block(data, self._level))
            return
        self._inflight.append(self._pool.submit(compress_block, data, self._level))
        while len(self._inflight) > self._window:
            self._raw.write(self._inflight.popleft().result())

    def _stop(self) -> None:
        self._inflight.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> BgzfWriter:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self._stop()
