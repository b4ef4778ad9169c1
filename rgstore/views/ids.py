"""The idempotency index: event id -> (seq, payload fingerprint), kept forever."""

from __future__ import annotations

import hashlib
import struct
import uuid
from typing import ClassVar

from ..codec import encode_event
from ..environment import Txn
from ..events import AnyEvent, Envelope, Event
from . import FoldContext, View

__all__ = ["IdsView", "fingerprint", "id_key"]

_VALUE = struct.Struct(">Q16s")


def id_key(event_id: str) -> bytes:
    """16-byte key of a UUID event id (time-ordered ids keep the B-tree append-friendly)."""
    return uuid.UUID(event_id).bytes


def fingerprint(stream: str, event: AnyEvent) -> bytes:
    """What "the same payload" means for a retry: the stream plus the encoded event."""
    return hashlib.sha256(stream.encode() + b"\x00" + encode_event(event)).digest()[:16]


class IdsView(View):
    """Maps every event id to its seq, so a retried command returns its original seqs."""

    name: ClassVar[str] = "ids"
    version: ClassVar[int] = 1
    dbs: ClassVar[tuple[str, ...]] = ("ids",)
    handles: ClassVar[tuple[type[Event], ...]] = ()

    def apply(self, ctx: FoldContext, envelope: Envelope) -> None:
        """Record the envelope's id (ids are unique: the append checked them)."""
        ctx.txn.put(
            id_key(envelope.id),
            _VALUE.pack(envelope.seq, fingerprint(envelope.stream, envelope.event)),
            db=ctx.db("ids"),
        )

    @staticmethod
    def lookup(txn: Txn, db: object, event_id: str) -> tuple[int, bytes] | None:
        """(seq, fingerprint) of an id already in the log, or None."""
        raw = txn.get(id_key(event_id), db=db)
        if raw is None:
            return None
        seq, fp = _VALUE.unpack(raw)
        return seq, fp
