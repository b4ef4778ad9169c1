"""The one msgpack encoder/decoder pair for log records, plus the stored-record framing.

A stored record is ``header || payload-as-stored``. The header is 37 bytes: codec (1 byte),
zstd dictionary id (4 bytes, 0 = none), and the record's chain hash (32 bytes). The chain hash
is over the *uncompressed* payload, so re-compressing a record never changes the chain.

Dictionaries travel in the log itself (``CodecDictionaryAdded`` events, folded by the codec
view), so every copy of a log, mirrors included, can decode every record after them.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from typing import Any, Final, cast

import msgspec
import zstandard

from .errors import ChainError
from .events import AnyEvent, Envelope

__all__ = [
    "CODEC_RAW",
    "CODEC_ZSTD",
    "CODEC_ZSTD_DICT",
    "HEADER_SIZE",
    "chain_of",
    "register_dictionary",
    "known_dictionary",
    "train_dictionary",
    "record_dictionary",
    "encode_envelope",
    "decode_envelope",
    "encode_event",
    "decode_event",
    "frame",
    "frame_all",
    "unframe",
    "payload_of",
    "payloads",
    "chain_hash",
    "genesis_hash",
    "encode_value",
    "decode_value",
]

CODEC_RAW: Final = 0
CODEC_ZSTD: Final = 1
CODEC_ZSTD_DICT: Final = 2
HEADER_SIZE: Final = 37
_HEADER = struct.Struct(">BI32s")
_PREFIX = struct.Struct(">BI")
"""The header up to the chain hash: codec and dictionary id."""
_SEQ = struct.Struct(">Q")

# Without a dictionary, compression pays only on larger records (GenomeAdded with many contigs):
# measured in tools/bench/log.py, plain zstd barely shrinks ~200-byte records; with a trained
# dictionary they shrink by half or more, so small records use the dictionary when one exists.
COMPRESS_MIN_BYTES: Final = 512
DICT_MIN_BYTES: Final = 64

MAX_PAYLOAD: Final = 1 << 30
"""Most bytes a compressed payload may inflate to (the size a frame may hold, ``logfile.MAX_RECORD``):
zstd writes the size in the frame header and the decompressor allocates it up front, so a record
from another copy of a log could otherwise claim, or really inflate to, any size."""

_ENCODER = msgspec.msgpack.Encoder()
_ENVELOPE_DECODER = msgspec.msgpack.Decoder(Envelope)
_EVENT_DECODER = msgspec.msgpack.Decoder(AnyEvent)
_VALUE_DECODER = msgspec.msgpack.Decoder()
_ZC = zstandard.ZstdCompressor(level=3)
_ZD = zstandard.ZstdDecompressor()
_content_size = zstandard.frame_content_size


def encode_envelope(envelope: Envelope) -> bytes:
    """Serialise an envelope to canonical msgpack (field order fixed by the Struct)."""
    return _ENCODER.encode(envelope)


def decode_envelope(payload: bytes | memoryview) -> Envelope:
    """Parse an uncompressed payload into an Envelope; raises msgspec.DecodeError if malformed."""
    try:
        return _ENVELOPE_DECODER.decode(payload)
    except RecursionError:  # msgpack nested past the interpreter's limit inside an ``Any`` field
        raise msgspec.DecodeError("payload nests too deeply to decode") from None


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
    import hashlib  # here and in chain_hash: OpenSSL's ~3 ms import is not a short read's to pay

    return hashlib.sha256(b"rgstore-v1" + log_id.encode()).digest()


def chain_hash(prev: bytes, seq: int, payload: bytes, _sha256: Any = None, _pack: Any = _SEQ.pack) -> bytes:
    """h[n] = sha256(h[n-1] || seq as 8-byte big-endian || uncompressed payload)."""
    # One hasher per record dominates the cost; defaults bind the lookups. A hot loop passes
    # hashlib.sha256 as _sha256: the import statement below costs a call ~2 us.
    if _sha256 is None:
        from hashlib import sha256 as _sha256
    digest: bytes = _sha256(prev + _pack(seq) + payload).digest()
    return digest


_DICTS: dict[int, tuple[zstandard.ZstdCompressor, zstandard.ZstdDecompressor]] = {}


def register_dictionary(data: bytes) -> int:
    """Make a zstd dictionary usable by ``frame``/``unframe`` in this process; returns its id."""
    zdict = zstandard.ZstdCompressionDict(data)
    dict_id: int = zdict.dict_id()
    if dict_id not in _DICTS:
        # Digested once here, not per compress() call; level 1 measured ~0.4 us faster than 3 at the same size.
        zdict.precompute_compress(level=1)
        _DICTS[dict_id] = (
            zstandard.ZstdCompressor(dict_data=zdict, write_content_size=True),
            zstandard.ZstdDecompressor(dict_data=zdict),
        )
    return dict_id


def known_dictionary(dict_id: int) -> bool:
    """Whether ``dict_id`` has been registered in this process."""
    return dict_id in _DICTS


def train_dictionary(samples: list[bytes], size: int = 16384) -> bytes:
    """A zstd dictionary trained on sample payloads (their common field names and values)."""
    return bytes(zstandard.train_dictionary(size, list[bytes | bytearray | memoryview](samples)).as_bytes())


def chain_of(record: bytes | memoryview) -> bytes:
    """The chain hash stored in a record's header."""
    return bytes(record[5:HEADER_SIZE])


def frame(payload: bytes, chain: bytes, *, compress: bool = True, dict_id: int = 0) -> bytes:
    """Build a stored record: header plus the payload, zstd-compressed when that pays."""
    if compress:
        n = len(payload)
        if dict_id and DICT_MIN_BYTES <= n < COMPRESS_MIN_BYTES * 8 and dict_id in _DICTS:
            packed = _DICTS[dict_id][0].compress(payload)
            if len(packed) < n * 0.9:
                return _HEADER.pack(CODEC_ZSTD_DICT, dict_id, chain) + packed
        elif n >= COMPRESS_MIN_BYTES:
            packed = _ZC.compress(payload)
            if len(packed) < n * 0.9:
                return _HEADER.pack(CODEC_ZSTD, 0, chain) + packed
    return _HEADER.pack(CODEC_RAW, 0, chain) + payload


def frame_all(payloads: Sequence[bytes], chains: Sequence[bytes], *, compress: bool = True,
              dict_id: int = 0) -> list[bytes]:
    """``frame`` of each (payload, chain) pair, in order, with the same bytes.

    The records a dictionary compresses go through zstd in one call: ``multi_compress_to_buffer``
    gives each the frame ``compress`` would (same parameters, a fresh frame each; a test holds the
    bytes equal), at ~1.0 us a ~220-byte record instead of ~1.5 us plus a Python call (zstandard 0.25).
    """
    if not compress:
        pack = _HEADER.pack
        return [pack(CODEC_RAW, 0, chain) + payload for payload, chain in zip(payloads, chains)]
    pair = _DICTS.get(dict_id) if dict_id else None
    lo, hi = DICT_MIN_BYTES, COMPRESS_MIN_BYTES * 8
    small = [p for p in payloads if lo <= len(p) < hi] if pair is not None else []
    if pair is None or len(small) < 2:
        return [frame(payload, chain, compress=True, dict_id=dict_id) for payload, chain in zip(payloads, chains)]
    packed = iter(_compress_many(pair[0], small))
    join, raw, zdict = b"".join, _PREFIX.pack(CODEC_RAW, 0), _PREFIX.pack(CODEC_ZSTD_DICT, dict_id)
    if len(small) == len(payloads):  # the usual batch: every record in the dictionary's range
        return [join((zdict, chain, body)) if len(body) < len(payload) * 0.9 else join((raw, chain, payload))
                for payload, chain, body in zip(payloads, chains, packed)]
    out: list[bytes] = []
    add = out.append
    for payload, chain in zip(payloads, chains):
        n = len(payload)
        if lo <= n < hi:
            body = next(packed)
            if len(body) < n * 0.9:
                add(join((zdict, chain, body)))
            else:
                add(join((raw, chain, payload)))
        else:
            add(frame(payload, chain, compress=True, dict_id=dict_id))
    return out


def _compress_many(compressor: zstandard.ZstdCompressor, payloads: list[bytes]) -> Iterable[Any]:
    """``[compressor.compress(p) for p in payloads]`` (as buffers), in one call where the zstandard backend can."""
    try:
        batch = compressor.multi_compress_to_buffer(cast("list[bytes | bytearray | memoryview]", payloads), threads=0)
        return cast("Iterable[Any]", batch)  # a sequence of buffers (its stub lacks __iter__)
    except NotImplementedError:  # the cffi backend (PyPy) has no batch API
        return [compressor.compress(p) for p in payloads]


def record_dictionary(record: bytes | memoryview) -> int:
    """The dictionary id a stored record needs (0: none)."""
    codec, dict_id, _ = _HEADER.unpack_from(record)
    return int(dict_id) if codec == CODEC_ZSTD_DICT else 0


def payload_of(record: bytes | memoryview, seq: int = 0) -> bytes:
    """The uncompressed payload of a stored record (``unframe`` without the chain hash)."""
    # The hot path of rebuilds: dictionary records first, without building the header tuple.
    if len(record) > HEADER_SIZE and record[0] == CODEC_ZSTD_DICT:
        pair = _DICTS.get(int.from_bytes(record[1:5], "big"))
        if pair is not None:
            body = record[HEADER_SIZE:]
            try:
                if _content_size(body) <= MAX_PAYLOAD:  # else unframe refuses it (the size check of _inflate, inline)
                    out: bytes = pair[1].decompress(body)
                    return out
            except zstandard.ZstdError:
                pass  # unframe names the problem
    return unframe(record, seq)[1]


_RAW_PREFIX: Final = bytes(5)
_ZSTD_PREFIX: Final = bytes([CODEC_ZSTD]) + bytes(4)
_UNREAD: Final = object()


def payloads(records: Iterable[tuple[int, bytes]]) -> list[bytes | None]:
    """Each record's uncompressed payload, or None where only ``payload_of`` can tell (it names the problem).

    ``payload_of`` over a batch (replays, mirrors): one dictionary lookup on the 5-byte codec and
    dictionary prefix per record instead of a call and a header parse (~0.25 us a record less).
    The same ``MAX_PAYLOAD`` check comes before anything is inflated; a record compressed with a
    dictionary registered after this call (announced earlier in the same batch) gets None.
    """
    kinds: dict[bytes, zstandard.ZstdDecompressor | None] = {_RAW_PREFIX: None, _ZSTD_PREFIX: _ZD}
    for dict_id, (_, decompressor) in _DICTS.items():
        kinds[bytes([CODEC_ZSTD_DICT]) + dict_id.to_bytes(4, "big")] = decompressor
    out: list[bytes | None] = []
    add, kind_of, size_of, unread, error = out.append, kinds.get, _content_size, _UNREAD, zstandard.ZstdError
    for _, record in records:
        try:
            kind = kind_of(record[:5], unread)
        except (TypeError, ValueError):  # a bytearray or writable memoryview is unhashable; its prefix as bytes is not
            kind = kind_of(bytes(record[:5]), unread)
        if kind is unread or len(record) < HEADER_SIZE:
            add(None)
        elif kind is None:
            add(record[HEADER_SIZE:])
        else:
            body = record[HEADER_SIZE:]
            try:
                add(kind.decompress(body) if size_of(body) <= MAX_PAYLOAD else None)  # type: ignore[attr-defined]
            except error:
                add(None)
    return out


def _inflate(decompressor: zstandard.ZstdDecompressor, body: bytes | memoryview, seq: int) -> bytes:
    """``decompressor.decompress(body)``, refusing a frame that declares more than ``MAX_PAYLOAD`` bytes."""
    size = _content_size(body)  # -1 (unknown): decompress() refuses such a frame itself
    if size > MAX_PAYLOAD:
        raise ChainError(seq, f"zstd payload claims {size:,} bytes, over the {MAX_PAYLOAD:,}-byte limit of a record")
    out: bytes = decompressor.decompress(body)
    return out


def unframe(record: bytes | memoryview, seq: int = 0) -> tuple[bytes, bytes]:
    """Split a stored record into (chain hash, uncompressed payload); ChainError if unreadable."""
    if len(record) < HEADER_SIZE:
        raise ChainError(seq, "record shorter than its header")
    codec, dict_id, chain = _HEADER.unpack_from(record)
    body = bytes(record[HEADER_SIZE:])
    if codec == CODEC_RAW and dict_id == 0:
        return chain, body
    try:
        if codec == CODEC_ZSTD and dict_id == 0:
            return chain, _inflate(_ZD, body, seq)
        if codec == CODEC_ZSTD_DICT:
            pair = _DICTS.get(dict_id)
            if pair is None:
                raise ChainError(seq, f"needs zstd dictionary {dict_id}, which is not in this log before it")
            return chain, _inflate(pair[1], body, seq)
    except zstandard.ZstdError as exc:
        raise ChainError(seq, f"zstd payload does not decompress ({exc})") from None
    if codec in (CODEC_RAW, CODEC_ZSTD):
        raise ChainError(seq, f"header names dictionary {dict_id} for codec {codec}, which takes none (altered header)")
    raise ChainError(seq, f"unknown codec {codec} (written by a newer rgstore?)")
