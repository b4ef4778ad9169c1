"""The time floor index: per block of 1,024 seqs, the latest event time at or before the block's end.

Event times are not monotonic in seq (clocks step back; mirrors replay other hosts' times), so a
``--since T`` audit cannot bisect the log by time. The running maximum of times *is* monotonic:
once it reaches ``T`` at block ``b``, no event before block ``b`` has a time ``>= T``. So a
``since`` query starts at the first seq of that block, and one bisection over a few thousand keys
replaces a scan of the whole log. Key = 8-byte big-endian block number (``(seq - 1) // 1024``),
value = 8-byte signed microseconds since the epoch of the running maximum (keys are dense: the log
is gapless). One key per 1,024 events keeps the fold to one put per block a command touches.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from operator import attrgetter
from typing import ClassVar

from ..environment import Db, Txn
from ..events import Envelope, Event
from . import SEQ, FoldContext, View

__all__ = ["TimeIndexView", "BLOCK"]

BLOCK = 1024
_US = struct.Struct(">q")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ONE_US = timedelta(microseconds=1)
_time = attrgetter("time")


def _micros(time: datetime) -> int:
    """Microseconds since the epoch (a naive time is UTC, as everywhere in the log)."""
    if time.tzinfo is None:
        time = time.replace(tzinfo=timezone.utc)
    return (time - _EPOCH) // _ONE_US


class TimeIndexView(View):
    """Running maximum of event times per block of seqs, so a ``since`` read skips what is older."""

    name: ClassVar[str] = "timeindex"
    version: ClassVar[int] = 1
    dbs: ClassVar[tuple[str, ...]] = ("timeindex",)
    handles: ClassVar[tuple[type[Event], ...]] = ()
    reads_fall_back: ClassVar[bool] = True  # rgstore.streamreads reads the log while it is behind

    def apply(self, ctx: FoldContext, envelope: Envelope) -> None:
        """Raise the envelope's block to the running maximum including its time."""
        self.apply_batch(ctx, (envelope,))

    def apply_batch(self, ctx: FoldContext, envelopes: Sequence[Envelope]) -> None:
        """One put per block the envelopes (in seq order) reach, each the running maximum so far."""
        if not envelopes:
            return
        txn, db = ctx.txn, ctx.db("timeindex")
        with txn.cursor(db=db) as cur:
            running = _US.unpack(cur.value())[0] if cur.last() else None
        puts: list[tuple[bytes, bytes]] = []
        first = envelopes[0].seq
        consecutive = envelopes[-1].seq - first == len(envelopes) - 1  # a command's, or a rebuild's batch
        start = 0
        while start < len(envelopes):
            block = (envelopes[start].seq - 1) // BLOCK
            if consecutive:  # a block is one slice
                stop = min(len(envelopes), (block + 1) * BLOCK + 1 - first)
            else:
                stop = start + 1
                while stop < len(envelopes) and (envelopes[stop].seq - 1) // BLOCK == block:
                    stop += 1
            latest = _micros(max(map(_time, envelopes[start:stop])))
            running = latest if running is None else max(running, latest)
            puts.append((SEQ.pack(block), _US.pack(running)))
            start = stop
        with txn.cursor(db=db) as cur:
            cur.putmulti(puts)

    @staticmethod
    def through_block(txn: Txn, db: Db, block: int) -> datetime | None:
        """The running maximum of event times up to the end of ``block`` (None if the index lacks it)."""
        value = txn.get(SEQ.pack(block), db=db)
        return None if value is None else _EPOCH + _US.unpack(value)[0] * _ONE_US

    @staticmethod
    def floor(txn: Txn, db: Db, since: datetime) -> int | None:
        """The largest seq before which no event has a time ``>= since`` (a read's ``after``); None if none is that late."""
        target = _micros(since)
        with txn.cursor(db=db) as cur:
            if not cur.last():
                return 0
            last = SEQ.unpack(cur.key())[0]
        top = txn.get(SEQ.pack(last), db=db)
        if top is None or _US.unpack(top)[0] < target:
            return None
        lo, hi = 0, last  # the first block whose running maximum reaches ``target`` is in [lo, hi]
        while lo < hi:
            mid = (lo + hi) // 2
            value = txn.get(SEQ.pack(mid), db=db)
            if value is not None and _US.unpack(value)[0] >= target:
                hi = mid
            else:
                lo = mid + 1
        return lo * BLOCK
