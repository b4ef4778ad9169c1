"""Claims about the wire codec: every event round-trips, and framing is checked byte by byte."""

from __future__ import annotations

import random
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rgstore.codec import (
    CODEC_RAW,
    CODEC_ZSTD,
    CODEC_ZSTD_DICT,
    HEADER_SIZE,
    chain_of,
    decode_envelope,
    decode_event,
    encode_envelope,
    encode_event,
    frame,
    frame_all,
    payload_of,
    register_dictionary,
    train_dictionary,
    unframe,
)
from rgstore.errors import ChainError
from rgstore.events import Envelope, Event, Noted
from tests.strategies import any_event


@settings(max_examples=300, deadline=None)
@given(event=any_event())
def test_every_event_round_trips(event: Event) -> None:
    assert decode_event(encode_event(event)) == event  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(event=any_event(), seq=st.integers(1, 2**62), stream=st.text(min_size=1, max_size=30),
       big=st.booleans())
def test_every_envelope_round_trips_through_a_stored_record(event: Event, seq: int, stream: str, big: bool) -> None:
    env = Envelope(seq=seq, id="01a1fd82-65a7-72e8-9bc0-2fdeea98ac5d", stream=stream, stream_version=3,
                   time=datetime(2026, 11, 21, 10, 0, tzinfo=timezone.utc), actor="a@b",
                   event=event)  # type: ignore[arg-type]
    if big:  # past COMPRESS_MIN_BYTES and repetitive: stored zstd-compressed
        env = Envelope(seq=seq, id=env.id, stream=stream, stream_version=3, time=env.time, actor="a@b" * 300,
                       event=event)  # type: ignore[arg-type]
    payload = encode_envelope(env)
    chain = bytes(range(32))
    record = frame(payload, chain, compress=big)
    assert record[0] == (CODEC_ZSTD if big else CODEC_RAW)
    assert chain_of(record) == chain
    assert unframe(record, seq) == (chain, payload)
    assert decode_envelope(payload) == env


def test_a_raw_record_with_a_dictionary_id_in_its_header_is_rejected() -> None:
    record = bytearray(frame(b"\x80", bytes(32), compress=False))
    assert record[0] == CODEC_RAW
    record[2] ^= 1
    with pytest.raises(ChainError, match="altered header"):
        unframe(bytes(record), 9)


def test_a_truncated_record_is_rejected_with_its_seq() -> None:
    with pytest.raises(ChainError, match="seq 4"):
        unframe(b"\x00" * 10, 4)


BIG = b"refgenie alias hg38 " * 100  # compressible, past COMPRESS_MIN_BYTES


def test_a_zstd_record_whose_header_names_a_dictionary_is_rejected() -> None:
    record = bytearray(frame(BIG, bytes(32)))
    assert record[0] == CODEC_ZSTD
    record[4] ^= 1  # the chain covers the payload, not the header: unframe must check it
    with pytest.raises(ChainError, match="seq 9: header names dictionary 1 for codec 1"):
        unframe(bytes(record), 9)


def test_a_cut_short_compressed_record_is_a_chain_error_naming_its_seq() -> None:
    samples = [b'{"stream":"alias:refgenie/g%d","digest":"%030d"}' % (i, i * 7919) for i in range(400)]
    dict_id = register_dictionary(train_dictionary(samples, 4096))
    for record in (frame(BIG, bytes(32)), frame(samples[3], bytes(32), dict_id=dict_id)):
        assert record[0] in (CODEC_ZSTD, CODEC_ZSTD_DICT)
        assert payload_of(record, 5) == (BIG if record[0] == CODEC_ZSTD else samples[3])
        for read in (unframe, payload_of):
            with pytest.raises(ChainError, match="seq 5: zstd payload does not decompress"):
                read(record[:-3], 5)


def test_a_record_needing_a_dictionary_this_process_never_saw_is_a_chain_error() -> None:
    record = bytes([CODEC_ZSTD_DICT]) + (0x7EADBEEF).to_bytes(4, "big") + bytes(32) + b"\x28\xb5\x2f\xfd"
    for read in (unframe, payload_of):
        with pytest.raises(ChainError, match=f"seq 3: needs zstd dictionary {0x7EADBEEF}"):
            read(record, 3)


def test_a_record_of_an_unknown_codec_is_refused_not_read_as_raw() -> None:
    record = bytes([7]) + bytes(4) + bytes(32) + b"\x80"
    with pytest.raises(ChainError, match="seq 2: unknown codec 7"):
        unframe(record, 2)


def test_uncompressed_framing_of_a_batch_keeps_each_records_own_chain() -> None:
    payloads = [b"\x80", b"\x81\xa1a\x01", BIG]
    chains = [bytes([i]) * 32 for i in range(1, 4)]
    records = frame_all(payloads, chains, compress=False)
    assert [r[0] for r in records] == [CODEC_RAW] * 3
    assert [unframe(r) for r in records] == list(zip(chains, payloads))


def test_framing_a_batch_with_a_dictionary_gives_each_record_the_bytes_framing_it_alone_gives() -> None:
    # frame_all compresses a batch's dictionary records in one zstd call: the stored bytes must not move.
    samples = [b'{"stream":"alias:refgenie/g%d","digest":"%030d"}' % (i, i * 7919) for i in range(400)]
    dict_id = register_dictionary(train_dictionary(samples, 4096))
    payloads = [
        samples[5], b"\x80",  # compressible; too small for the dictionary
        random.Random(7).randbytes(300),  # incompressible: stays raw
        samples[7] * 20,  # repetitive, still in the dictionary's range
        BIG * 3,  # past COMPRESS_MIN_BYTES * 8: plain zstd
        *samples[10:40],
    ]
    chains = [bytes([i % 256]) * 32 for i in range(len(payloads))]
    alone = [frame(p, c, dict_id=dict_id) for p, c in zip(payloads, chains)]
    assert [alone[i][0] for i in (0, 1, 2, 4)] == [CODEC_ZSTD_DICT, CODEC_RAW, CODEC_RAW, CODEC_ZSTD]
    assert frame_all(payloads, chains, dict_id=dict_id) == alone
    assert [type(r) for r in frame_all(payloads, chains, dict_id=dict_id)] == [bytes] * len(payloads)
    assert frame_all(payloads[:2], chains[:2], dict_id=dict_id) == alone[:2]  # one dictionary record: no batch call
    in_range = [0, 2, *range(5, len(payloads))]  # every record the dictionary's to try, one of them incompressible
    assert frame_all([payloads[i] for i in in_range], [chains[i] for i in in_range], dict_id=dict_id) == [
        alone[i] for i in in_range]
    assert frame_all(payloads, chains) == [frame(p, c) for p, c in zip(payloads, chains)]
    assert [unframe(r) for r in alone] == list(zip(chains, payloads))


def _zstd_frame_claiming(size: int) -> bytes:
    """A zstd frame whose header declares ``size`` content bytes, followed by one empty raw block."""
    return bytes.fromhex("28b52ffd") + bytes([0xE0]) + size.to_bytes(8, "little") + b"\x01\x00\x00"


@pytest.mark.parametrize("claimed", [(1 << 30) + 1, 1 << 40])
def test_a_zstd_record_claiming_more_than_a_gigabyte_is_a_chain_error_before_anything_is_allocated(
    claimed: int,
) -> None:
    # The decompressor allocates the declared size up front: 1 TiB was a MemoryError traceback, and
    # a real 1.2 GB of zeros fits in a 2 KB log export.
    from rgstore.codec import _HEADER

    record = _HEADER.pack(CODEC_ZSTD, 0, b"\x11" * 32) + _zstd_frame_claiming(claimed)
    for read in (lambda: unframe(record, 8), lambda: payload_of(record, 8)):
        with pytest.raises(ChainError, match=f"seq 8: zstd payload claims {claimed:,} bytes, over the"):
            read()


def test_a_dictionary_record_claiming_more_than_a_gigabyte_is_a_chain_error() -> None:
    from rgstore.codec import _HEADER

    samples = [encode_event(Noted(text=f"note {i} about chr{i % 23}", data={"k": i})) for i in range(400)]
    dict_id = register_dictionary(train_dictionary(samples, size=4096))
    record = _HEADER.pack(CODEC_ZSTD_DICT, dict_id, b"\x11" * 32) + _zstd_frame_claiming(1 << 40)
    for read in (lambda: unframe(record, 9), lambda: payload_of(record, 9)):
        with pytest.raises(ChainError, match="seq 9: zstd payload claims 1,099,511,627,776 bytes"):
            read()


def test_payloads_of_a_batch_are_each_records_payload_and_none_exactly_where_payload_of_refuses() -> None:
    # Replays and mirrors inflate a batch through payloads(): same checks, the refusals left to payload_of.
    from rgstore.codec import _HEADER, payloads

    samples = [b'{"stream":"alias:refgenie/g%d","digest":"%030d"}' % (i, i * 7919) for i in range(400)]
    dict_id = register_dictionary(train_dictionary(samples, 4096))
    chain = b"\x11" * 32
    good = [frame(b"\x80", chain), frame(BIG, chain), frame(samples[9], chain, dict_id=dict_id),
            _HEADER.pack(CODEC_RAW, 0, chain)]  # a raw record with an empty payload
    assert [r[0] for r in good] == [CODEC_RAW, CODEC_ZSTD, CODEC_ZSTD_DICT, CODEC_RAW]
    altered = bytearray(good[0])
    altered[2] ^= 1
    bad = [
        b"\x00" * 10, b"", bytes(altered), good[1][:-3], good[2][:-3], good[2][:HEADER_SIZE],
        _HEADER.pack(CODEC_ZSTD, 1, chain) + good[1][HEADER_SIZE:],
        bytes([CODEC_ZSTD_DICT]) + (0x7EADBEEF).to_bytes(4, "big") + chain + b"\x28\xb5\x2f\xfd",
        bytes([7]) + bytes(4) + chain + b"\x80",
        _HEADER.pack(CODEC_ZSTD, 0, chain) + _zstd_frame_claiming((1 << 30) + 1),
        _HEADER.pack(CODEC_ZSTD_DICT, dict_id, chain) + _zstd_frame_claiming(1 << 40),
    ]
    records = [(seq, r) for seq, r in enumerate([*good, *bad, *good], 1)]
    assert payloads(records) == [payload_of(r) for r in good] + [None] * len(bad) + [payload_of(r) for r in good]
    for seq, record in records[len(good):-len(good)]:
        with pytest.raises(ChainError, match=f"seq {seq}: "):
            payload_of(record, seq)


def test_payloads_reads_every_buffer_payload_of_reads_writable_memoryviews_and_bytearrays_included() -> None:
    # The batch read looked each record's 5-byte prefix up in a dict: a writable buffer is unhashable,
    # so a replay of records held in a bytearray was a TypeError where payload_of reads them.
    from rgstore.codec import payloads

    samples = [b'{"stream":"alias:refgenie/g%d","digest":"%030d"}' % (i, i * 7919) for i in range(400)]
    dict_id = register_dictionary(train_dictionary(samples, 4096))
    chain = b"\x11" * 32
    records = [frame(b"\x80", chain), frame(BIG, chain), frame(samples[9], chain, dict_id=dict_id), b"\x00" * 10]
    expected = [payload_of(r) for r in records[:3]] + [None]
    for buffer in (bytes, memoryview, bytearray, lambda r: memoryview(bytearray(r))):
        got = payloads([(seq, buffer(r)) for seq, r in enumerate(records, 1)])  # type: ignore[misc]
        assert [None if p is None else bytes(p) for p in got] == expected


def test_a_payload_nested_past_the_recursion_limit_is_a_decode_error_not_a_recursion_error() -> None:
    import msgspec

    envelope = Envelope(seq=1, id="i", stream="note:x", stream_version=1,
                        time=datetime(2024, 1, 1, tzinfo=timezone.utc), actor="a",
                        event=Noted(text="x", data={"k": "PLACEHOLDER"}))
    payload = encode_envelope(envelope).replace(b"\xabPLACEHOLDER", b"\x91" * 5000 + b"\xc0")
    with pytest.raises(msgspec.DecodeError, match="nests too deeply"):
        decode_envelope(payload)


def test_decoded_envelopes_and_their_events_stay_out_of_the_cycle_collector() -> None:
    # Rebuilds hold tens of thousands of decoded envelopes; the collector re-scanning them tripled decode time.
    import gc

    env = Envelope(seq=1, id="01a1fd82-65a7-72e8-9bc0-2fdeea98ac5d", stream="audit:x", stream_version=1,
                   time=datetime(2026, 11, 21, 10, 0, tzinfo=timezone.utc), actor="a@b", event=Noted(text="t"))
    decoded = decode_envelope(encode_envelope(env))
    assert decoded == env
    assert not gc.is_tracked(decoded)
    assert not gc.is_tracked(decoded.event)
