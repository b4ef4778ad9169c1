"""Claims about the BGZF writer: any gzip reader reads it whole, and htslib can seek in it."""

from __future__ import annotations

import gzip
import io
import os
import struct

import pytest

from rgstore.bgzf import EOF_BLOCK, BgzfWriter


def _blocks(data: bytes) -> list[tuple[int, int]]:
    """(offset, size) of each BGZF member, read from its BC field."""
    out, pos = [], 0
    while pos < len(data):
        assert data[pos:pos + 4] == b"\x1f\x8b\x08\x04" and data[pos + 12:pos + 16] == b"BC\x02\x00"
        size = struct.unpack_from("<H", data, pos + 16)[0] + 1
        out.append((pos, size))
        pos += size
    return out


@pytest.mark.parametrize("size", [0, 1, 0xFF00 - 1, 0xFF00, 0xFF00 + 1, 300_000])
def test_every_size_round_trips_through_gzip_in_blocks_that_name_their_size(size: int) -> None:
    data = os.urandom(size // 2) + b"ACGT" * (size // 8) + b"N" * (size - size // 2 - 4 * (size // 8))
    raw = io.BytesIO()
    with BgzfWriter(raw) as out:
        for i in range(0, len(data), 7777):  # writes of any size
            out.write(data[i:i + 7777])
    packed = raw.getvalue()
    assert gzip.decompress(packed) == data
    assert packed.endswith(EOF_BLOCK)
    blocks = _blocks(packed)
    assert sum(size for _, size in blocks) == len(packed)
    assert all(size <= 65536 for _, size in blocks)
    assert len(blocks) == -(-len(data) // 0xFF00) + 1  # full blocks, then the EOF marker


def test_a_writer_left_by_an_exception_does_not_end_the_file() -> None:
    raw = io.BytesIO()
    with pytest.raises(RuntimeError), BgzfWriter(raw) as out:
        out.write(b"ACGT")
        raise RuntimeError("interrupted")
    assert not raw.getvalue().endswith(EOF_BLOCK)  # the caller discards the temp file; no valid-looking half
