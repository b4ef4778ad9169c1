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


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("size", [0, 1, 0xFF00 - 1, 0xFF00, 0xFF00 + 1, 300_000])
def test_every_size_round_trips_through_gzip_in_blocks_that_name_their_size(size: int, threads: int) -> None:
    data = os.urandom(size // 2) + b"ACGT" * (size // 8) + b"N" * (size - size // 2 - 4 * (size // 8))
    raw = io.BytesIO()
    with BgzfWriter(raw, threads=threads) as out:
        for i in range(0, len(data), 7777):  # writes of any size
            out.write(data[i:i + 7777])
    packed = raw.getvalue()
    assert gzip.decompress(packed) == data
    assert packed.endswith(EOF_BLOCK)
    blocks = _blocks(packed)
    assert sum(size for _, size in blocks) == len(packed)
    assert all(size <= 65536 for _, size in blocks)
    assert len(blocks) == -(-len(data) // 0xFF00) + 1  # full blocks, then the EOF marker


def test_threads_compress_in_parallel_but_write_the_same_bytes_in_order() -> None:
    data = b"".join(os.urandom(64) + b"ACGTTGCA" * 4000 for _ in range(40))  # ~1.3 MB, ~20 blocks
    outputs = []
    for threads in (1, 2, 4):
        raw = io.BytesIO()
        with BgzfWriter(raw, threads=threads) as out:
            for i in range(0, len(data), 100_003):
                out.write(data[i:i + 100_003])
        outputs.append(raw.getvalue())
    assert outputs[0] == outputs[1] == outputs[2]
    assert gzip.decompress(outputs[0]) == data


def test_a_writer_left_by_an_exception_does_not_end_the_file_and_stops_its_threads() -> None:
    import threading

    raw = io.BytesIO()
    with pytest.raises(RuntimeError), BgzfWriter(raw, threads=2) as out:
        out.write(os.urandom(300_000))
        raise RuntimeError("interrupted")
    assert not raw.getvalue().endswith(EOF_BLOCK)  # the caller discards the temp file; no valid-looking half
    assert not any(t.name.startswith("rgstore-bgzf") for t in threading.enumerate())


def test_importing_the_genome_commands_does_not_load_the_thread_pool_until_a_bgzf_export() -> None:
    import subprocess
    import sys
    from pathlib import Path

    # concurrent.futures drags in logging, queue and traceback: ~10 ms on every getseq and genome command.
    code = ("import sys, io, rgstore.genomes, rgstore.bgzf\n"
            "before = 'concurrent.futures' in sys.modules\n"
            "rgstore.bgzf.BgzfWriter(io.BytesIO(), threads=2).close()\n"
            "print(before, 'concurrent.futures' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parent.parent)
    assert done.stdout.split() == ["False", "True"]
