"""Exported logs and record streams: the self-describing file behind `rgstore log export` / `replay`.

File layout: the magic line ``RGSTORE-LOG 1\\n``, a 4-byte big-endian length and a msgpack
header (log id, first and last seq, the chain hash before the first record, the head hash),
then one zstd stream of *frames*. A frame is ``seq (8 bytes BE) || length (4 bytes BE) ||
stored record``. The same frame encoding is the binary body of the server's ``/events`` feed
and of published log segments, so every transport shares one parser.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

import msgspec
import zstandard

from .codec import chain_of
from .errors import ChainError, InvalidInputError, NewerRgstoreError, NotFoundError
from .outputs import output_file

__all__ = [
    "MAGIC",
    "LogHeader",
    "encode_frame",
    "frame_list",
    "iter_frames",
    "write_log_file",
    "write_log_stream",
    "read_log_file",
    "read_log_stream",
]

MAGIC = b"RGSTORE-LOG 1\n"
_FRAME = struct.Struct(">QI")
_LEN = struct.Struct(">I")
_HEX64 = re.compile(r"[0-9a-f]{64}")
MAX_RECORD = 1 << 30


class LogHeader(msgspec.Struct, frozen=True, kw_only=True):
    """What an exported log (or segment) covers and how to check it continues a local log."""

    log_id: str
    first_seq: int
    last_seq: int
    prev_hash: str
    """Hex chain hash of the record before ``first_seq`` (h[0] when first_seq is 1)."""
    head_hash: str
    """Hex chain hash of ``last_seq``."""
    format: int = 1


def encode_frame(seq: int, record: bytes) -> bytes:
    """One frame: seq, length, stored record."""
    return _FRAME.pack(seq, len(record)) + record


def frame_list(body: bytes) -> list[tuple[int, bytes]]:
    """``list(iter_frames(io.BytesIO(body)))`` for a body already in memory (an ``/events`` page), with the same ChainErrors."""
    size, unpack, limit, end_of_body = _FRAME.size, _FRAME.unpack_from, MAX_RECORD, len(body)
    out: list[tuple[int, bytes]] = []
    add = out.append
    pos = 0
    while pos < end_of_body:
        if end_of_body - pos < size:
            raise ChainError(0, "stream ends inside a frame header (truncated)")
        seq, length = unpack(body, pos)
        if length > limit:
            raise ChainError(seq, f"frame claims {length} bytes")
        end = pos + size + length
        if end > end_of_body:
            raise ChainError(seq, "stream ends inside a record (truncated)")
        add((seq, body[pos + size:end]))
        pos = end
    return out


def _read_exact(fh: BinaryIO, n: int) -> bytes:
    buf = fh.read(n)
    while len(buf) < n:
        more = fh.read(n - len(buf))
        if not more:
            break
        buf += more
    return buf


def iter_frames(fh: BinaryIO, chunk: int = 1 << 20) -> Iterator[tuple[int, bytes]]:
    """(seq, record) from a stream of frames; ChainError on a truncated frame."""
    # Frames are parsed out of large reads: two small reads per record cost more than the fold.
    size, unpack = _FRAME.size, _FRAME.unpack_from
    buf, pos = b"", 0
    while True:
        if len(buf) - pos < size:
            more = fh.read(chunk)
            if not more:
                if len(buf) > pos:
                    raise ChainError(0, "stream ends inside a frame header (truncated)")
                return
            buf, pos = buf[pos:] + more, 0
            continue
        seq, length = unpack(buf, pos)
        if length > MAX_RECORD:
            raise ChainError(seq, f"frame claims {length} bytes")
        end = pos + size + length
        if end > len(buf):
            more = fh.read(max(chunk, end - len(buf)))
            if not more:
                raise ChainError(seq, "stream ends inside a record (truncated)")
            buf, pos = buf[pos:] + more, 0
            continue
        yield seq, buf[pos + size:end]
        pos = end


def write_log_stream(out: BinaryIO, header: LogHeader, records: Iterable[tuple[int, bytes]]) -> int:
    """Write an export (magic, header, zstd frames) to an open binary stream; returns the records written."""
    count = 0
    raw_header = msgspec.msgpack.encode(header)
    out.write(MAGIC + _LEN.pack(len(raw_header)) + raw_header)
    cctx = zstandard.ZstdCompressor(level=3)
    with cctx.stream_writer(out, closefd=False) as zout:
        for seq, record in records:
            zout.write(encode_frame(seq, record))
            count += 1
    out.flush()
    return count


def write_log_file(path: Path, header: LogHeader, records: Iterable[tuple[int, bytes]]) -> int:
    """Write an exported log durably, whole or not at all (``rgstore.outputs``); returns the number of records."""
    with output_file(path, durable=True) as out:
        return write_log_stream(out, header, records)


def _header_problem(header: LogHeader) -> str:
    """Why a decoded header cannot describe a log range ("" if it can): the frames are checked against it."""
    if header.format != 1:
        return f"format {header.format}; this rgstore reads format 1"
    for label, value in (("prev_hash", header.prev_hash), ("head_hash", header.head_hash)):
        if not _HEX64.fullmatch(value):
            return f"{label} {value[:80]!r} is not a 64-digit hex hash"
    if header.first_seq < 1 or header.last_seq < header.first_seq - 1:
        return f"seq range {header.first_seq}-{header.last_seq}"
    return ""


def read_log_file(path: Path) -> tuple[LogHeader, Iterator[tuple[int, bytes]]]:
    """Open an exported log: its header, and an iterator over its (seq, record) frames.

    NotFoundError if there is no such file, InvalidInputError if this user may not read it.
    """
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        raise NotFoundError(f"{path}: no such log export file") from None
    except PermissionError:
        raise InvalidInputError(f"{path}: permission denied; this user may not read the log export file") from None
    return read_log_stream(fh, str(path))


def read_log_stream(fh: BinaryIO, path: str) -> tuple[LogHeader, Iterator[tuple[int, bytes]]]:
    """Like ``read_log_file`` for an open binary stream (closed when the frames are exhausted)."""
    if fh.read(len(MAGIC)) != MAGIC:
        fh.close()
        raise InvalidInputError(f"{path} is not an rgstore log export (bad magic)")
    try:
        (n,) = _LEN.unpack(_read_exact(fh, 4))
        header = msgspec.msgpack.decode(_read_exact(fh, n), type=LogHeader)
    except (struct.error, msgspec.DecodeError) as exc:
        fh.close()
        raise InvalidInputError(f"{path}: unreadable export header ({exc})") from None
    if header.format > 1:
        fh.close()
        raise NewerRgstoreError(f"{path} was written by a newer rgstore (export format {header.format}, this one "
                                "reads 1); upgrade rgstore to read it")
    problem = _header_problem(header)
    if problem:
        fh.close()
        raise InvalidInputError(f"{path}: damaged export header ({problem})")

    def frames() -> Iterator[tuple[int, bytes]]:
        last_seq, last_chain = header.first_seq - 1, bytes.fromhex(header.prev_hash)
        try:
            reader = zstandard.ZstdDecompressor().stream_reader(fh, read_across_frames=True)
            try:
                last_record = b""
                for seq, record in iter_frames(reader):
                    if seq != last_seq + 1:
                        # Named by the seq expected there: a damaged frame header's own seq can be any number.
                        raise ChainError(last_seq + 1, f"{path}: the frame there says seq {seq} "
                                                       "(damaged, or frames out of order)")
                    last_seq, last_record = seq, record
                    yield seq, record
                if last_record:
                    last_chain = chain_of(last_record)
            except zstandard.ZstdError as exc:
                raise ChainError(last_seq + 1, f"{path}: compressed body is damaged ({exc})") from None
        finally:
            fh.close()
        # The header promises a range and its last hash: a short or altered file is not "all of it".
        if last_seq != header.last_seq:
            raise ChainError(last_seq + 1, f"{path} is truncated: it ends at seq {last_seq}, its header says {header.last_seq}")
        if last_seq and last_chain.hex() != header.head_hash:
            raise ChainError(last_seq, f"{path}: the last record's chain hash differs from the header's head hash")

    return header, frames()
