"""Claims about the wire codec: every event round-trips, and framing is checked byte by byte."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rgstore.codec import (
    CODEC_RAW,
    chain_of,
    decode_envelope,
    decode_event,
    encode_envelope,
    encode_event,
    frame,
    unframe,
)
from rgstore.errors import ChainError
from rgstore.events import Envelope, Event
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
    payload = encode_envelope(env) + (b"" if not big else b"")
    chain = bytes(range(32))
    record = frame(payload, chain, compress=big)
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
