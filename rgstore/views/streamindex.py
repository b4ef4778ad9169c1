"""The per-stream seq index: (stream, seq) for every event, so a stream's audit reads only its own events.

Key = stream UTF-8 + ``b"\\x00"`` + 8-byte big-endian seq, value empty. Stream names are printable
(``rgstore.log._check_stream``), so they never hold NUL: a stream's keys are contiguous and in seq
order, and every stream ``S`` sorts before any stream that extends ``S`` (NUL is the smallest byte).
Key length pins the stream exactly, so even a NUL-bearing name from a foreign log cannot alias another.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from itertools import repeat
from typing import ClassVar, cast

from ..environment import Db, Txn
from ..events import Envelope, Event
from . import SEQ, FoldContext, View

__all__ = ["StreamIndexView", "GLOB_CHARS", "literal_prefix"]

GLOB_CHARS = "*?["
_SEP = b"\x00"
_PAST_STREAM = b"\x01"
"""Seeking to ``stream + _PAST_STREAM`` lands past every key of ``stream`` (its keys continue with NUL)."""
_LAST_SEQ = b"\xff" * 8


def _key(stream: str, seq: int) -> bytes:
    return stream.encode() + _SEP + SEQ.pack(seq)


def literal_prefix(pattern: str) -> str:
    """The part of a stream glob before its first wildcard (the whole pattern if it has none)."""
    cut = min((i for i in (pattern.find(c) for c in GLOB_CHARS) if i >= 0), default=len(pattern))
    return pattern[:cut]


class StreamIndexView(View):
    """Every event's (stream, seq), so a stream's (or a stream prefix's) events are found without a log scan."""

    name: ClassVar[str] = "streamindex"
    version: ClassVar[int] = 1
    dbs: ClassVar[tuple[str, ...]] = ("streamindex",)
    handles: ClassVar[tuple[type[Event], ...]] = ()
    reads_fall_back: ClassVar[bool] = True  # rgstore.streamreads reads the log while it is behind

    def apply(self, ctx: FoldContext, envelope: Envelope) -> None:
        """Index the envelope under its stream."""
        ctx.txn.put(_key(envelope.stream, envelope.seq), b"", db=ctx.db("streamindex"))

    def apply_batch(self, ctx: FoldContext, envelopes: Sequence[Envelope]) -> None:
        """Index every envelope, keys sorted so one putmulti walks the B-tree in order."""
        pack, sep = SEQ.pack, _SEP
        keys = sorted([e.stream.encode() + sep + pack(e.seq) for e in envelopes])
        with ctx.txn.cursor(db=ctx.db("streamindex")) as cur:
            cur.putmulti(zip(keys, repeat(b"")))  # no (key, value) tuples to build and sort: ~0.3 us/event

    @staticmethod
    def seqs(txn: Txn, db: Db, stream: str, after: int = 0, *, backwards: bool = False) -> Iterator[int]:
        """Seqs (> ``after``) of the events on exactly ``stream``, ascending or (``backwards``) descending."""
        head = stream.encode() + _SEP
        size = len(head) + SEQ.size
        unpack = SEQ.unpack_from
        cur = txn.cursor(db=db)
        try:
            if backwards:
                found = cur.prev() if cur.set_range(head + _LAST_SEQ) else cur.last()
                while found:
                    key = cast(bytes, cur.key())
                    if not key.startswith(head):
                        return
                    if len(key) == size:
                        seq = unpack(key, size - SEQ.size)[0]
                        if seq <= after:
                            return
                        yield seq
                    found = cur.prev()
                return
            if not cur.set_range(head + SEQ.pack(after + 1)):
                return
            for key in cast("Iterator[bytes]", cur.iternext(keys=True, values=False)):
                if not key.startswith(head):
                    return
                if len(key) == size:
                    yield unpack(key, size - SEQ.size)[0]
        finally:
            cur.close()

    @staticmethod
    def matching(txn: Txn, db: Db, prefix: str, match: Callable[[str], bool], after: int = 0) -> list[int]:
        """Ascending seqs (> ``after``) of events on streams starting with ``prefix`` that ``match`` accepts.

        Streams ``match`` refuses are skipped with one seek each, and a matching stream's seqs up to
        ``after`` are skipped with one more, so the cost is the streams under ``prefix`` plus the seqs returned.
        """
        out: list[int] = []
        start = prefix.encode()
        unpack, tail = SEQ.unpack_from, SEQ.size + len(_SEP)
        cur = txn.cursor(db=db)
        try:
            found = cur.set_range(start)
            while found:
                key = cast(bytes, cur.key())
                if not key.startswith(start):
                    break
                name = key[:-tail]
                if not match(name.decode()):
                    found = cur.set_range(name + _PAST_STREAM)
                    continue
                head = name + _SEP
                size = len(key)
                if after:
                    target = head + SEQ.pack(after + 1)
                    if key < target:  # only ever seek forward: the scan must not revisit keys
                        found = cur.set_range(target)
                while found:
                    key = cast(bytes, cur.key())
                    if len(key) != size or not key.startswith(head):
                        break
                    out.append(unpack(key, size - SEQ.size)[0])
                    found = cur.next()
        finally:
            cur.close()
        out.sort()  # runs already sorted per stream: timsort merges them
        return out
