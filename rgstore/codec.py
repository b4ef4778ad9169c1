"""The one msgpack encoder/decoder pair for log records, plus the stored-record framing.

A stored record is ``header || payload-as-stored``. The header is 34 bytes: codec (1 byte),
dictionary id (1 byte, 0 = none), and the record's chain hash (32 bytes). The chain hash
is over the *uncompressed* payload, so re-compressing a record never changes the chain.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Final

import msgspec
import zstandard

from .errors import ChainError
from .events import AnyEvent, Envelope

__all__ = [
    "CODEC_RAW",
    "CODEC_ZSTD",
    "HEADER_SIZE",
    "encode_envelope",
    "decode_envelope",
    "encode_event",
    "decode_event",
    "frame",
    "unframe",
    "chain_hash",
    "genesis_hash",
    "encode_value",
    "decode_value",
]

CODEC_RAW: Final = 0
CODEC_ZSTD: Final = 1
HEADER_SIZE: Final = 34
_HEADER = struct.Struct(">BB32s")
_SEQ = struct.Struct(">Q")

# Compression pays only on larger records (GenomeAdded with many contigs, refpkg manifests):
# measured in tools/bench/log.py, zstd without a dictionary grows ~200-byte records.
COMPRESS_MIN_BYTES: Final = 512

_ENCODER = msgspec.msgpack.Encoder()
_ENVELOPE_DECODER = msgspec.msgpack.Decoder(Envelope)
_EVENT_DECODER = msgspec.msgpack.Decoder(AnyEvent)  # type: ignore[arg-type]
_VALUE_DECODER = msgspec.msgpack.Decoder()
_ZC = zstandard.ZstdCompressor(level=3)
_ZD = zstandard.ZstdDecompressor()


def encode_envelope(envelope: Envelope) -> bytes:
    """Serialise an envelope to canonical msgpack (field order fixed by the Struct)."""
    return _ENCODER.encode(envelope)


def decode_envelope(payload: bytes | memoryview) -> Envelope:
    """Parse an uncompressed payload into an Envelope; raises msgspec.DecodeError if malformed."""
    return _ENVELOPE_DECODER.decode(payload)


def encode_event(event: AnyEvent) -> bytes:
    """Serialise a bare event (used for idempotency fingerprints)."""
    return _ENCODER.encode(event)


def decode_event(payload: bytes) -> AnyEvent:
    """Parse a bare event."""
    return _EVENT_DECODER.decode(payload)  # type: ignore[no-any-return]


def encode_value(value: object) -> bytes:
    """Serialise a view value (plain msgpack; views store dicts, lists and Structs)."""
    return _ENCODER.encode(value)


def decode_value(raw: bytes | memoryview) -> object:
    """Parse a plain msgpack view value."""
    return _VALUE_DECODER.decode(raw)


def genesis_hash(log_id: str) -> bytes:
    """h[0]: ties the chain to one log, so records cannot be spliced in from another."""
    return hashlib.sha256(b"rgstore-v1" + log_id.encode()).digest()


def chain_hash(prev: bytes, seq: int, payload: bytes) -> bytes:
    """h[n] = sha256(h[n-1] || seq as 8-byte big-endian || uncompressed payload)."""
    return hashlib.sha256(prev + _SEQ.pack(seq) + payload).digest()


def frame(payload: bytes, chain: bytes, *, compress: bool = True) -> bytes:
    """Build a stored record: header plus the payload, zstd-compressed when that pays."""
    if compress and len(payload) >= COMPRESS_MIN_BYTES:
        packed = _ZC.compress(payload)
        if len(packed) < len(payload) * 0.9:
            return _HEADER.pack(CODEC_ZSTD, 0, chain) + packed
    return _HEADER.pack(CODEC_RAW, 0, chain) + payload


def unframe(record: bytes | memoryview, seq: int = 0) -> tuple[bytes, bytes]:
    """Split a stored record into (chain hash, uncompressed payload); ChainError if unreadable."""
    if len(record) < HEADER_SIZE:
        raise ChainError(seq, "record shorter than its header")
    codec, dict_id, chain = _HEADER.unpack_from(record)
    body = bytes(record[HEADER_SIZE:])
    if codec == CODEC_RAW:
        return chain, body
    if codec == CODEC_ZSTD and dict_id == 0:
        try:
            return chain, _ZD.decompress(body)
        except zstandard.ZstdError as exc:
            raise ChainError(seq, f"zstd payload does not decompress ({exc})") from None
    raise ChainError(seq, f"unknown codec {codec}/{dict_id} (written by a newer rgstore?)")
