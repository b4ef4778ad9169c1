"""The stream index: stream name -> (version, last seq), for optimistic concurrency and audit."""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from operator import attrgetter
from typing import ClassVar

from ..environment import Db, Txn
from ..events import Envelope, Event
from . import FoldContext, View, iter_prefix

__all__ = ["StreamsView"]

_VALUE = struct.Struct(">QQ")
_stream = attrgetter("stream")


class StreamsView(View):
    """Every stream's current version (count of its events) and the seq of its latest event."""

    name: ClassVar[str] = "streams"
    version: ClassVar[int] = 1
    dbs: ClassVar[tuple[str, ...]] = ("streams",)
    handles: ClassVar[tuple[type[Event], ...]] = ()

    def apply(self, ctx: FoldContext, envelope: Envelope) -> None:
        """Advance the stream to the envelope's version."""
        ctx.txn.put(
            envelope.stream.encode(),
            _VALUE.pack(envelope.stream_version, envelope.seq),
            db=ctx.db("streams"),
        )

    def apply_batch(self, ctx: FoldContext, envelopes: Sequence[Envelope]) -> None:
        """Advance each stream once, to its last version in the batch."""
        # dict(zip) keeps each stream's last envelope without a Python step per event; sorting the
        # names (str compares, same order as their UTF-8) skips comparing (key, value) tuples.
        last = dict(zip(map(_stream, envelopes), envelopes))
        pack = _VALUE.pack
        items = [(stream.encode(), pack(e.stream_version, e.seq)) for stream in sorted(last) for e in (last[stream],)]
        with ctx.txn.cursor(db=ctx.db("streams")) as cur:
            cur.putmulti(items)

    @staticmethod
    def get(txn: Txn, db: Db, stream: str) -> tuple[int, int]:
        """(version, last seq) of a stream; (0, 0) if it has no events."""
        raw = txn.get(stream.encode(), db=db)
        if raw is None:
            return 0, 0
        version, seq = _VALUE.unpack(raw)
        return version, seq

    @staticmethod
    def list(txn: Txn, db: Db, prefix: str = "") -> Iterator[tuple[str, int, int]]:
        """(stream, version, last seq) for streams starting with ``prefix``."""
        for key, raw in iter_prefix(txn, db, prefix.encode()):
            version, seq = _VALUE.unpack(raw)
            yield key.decode(), version, seq
