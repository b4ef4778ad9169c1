"""Projections: folds of the log into LMDB sub-dbs, updated in the append's own transaction.

A view owns its sub-dbs, declares which event classes it folds, and bumps ``version`` when
its layout or fold changes (opening a store then rebuilds it from the log). Views read only
their own sub-dbs and the log, never each other's, so any one of them can be rebuilt alone.
"""

from __future__ import annotations

import struct
from collections.abc import Collection, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, ClassVar, cast

import lmdb

from ..codec import decode_envelope, unframe
from ..environment import Db, Environment, Txn
from ..events import Envelope, Event

if TYPE_CHECKING:
    from ..store import Store

__all__ = ["View", "FoldContext", "seq_key", "SEQ"]

SEQ = struct.Struct(">Q")


def seq_key(seq: int) -> bytes:
    """The log's key for ``seq``: 8 bytes big-endian, so key order is append order."""
    return SEQ.pack(seq)


class FoldContext:
    """What a view's fold may touch: the write txn, sub-db handles, and earlier log records."""

    __slots__ = ("txn", "environment", "_log")

    def __init__(self, txn: Txn, environment: Environment) -> None:
        self.txn = txn
        self.environment = environment
        self._log = environment.db("log")

    def db(self, name: str) -> Db:
        """Handle of a sub-db (views pass their own names)."""
        return self.environment._dbs[name]

    def event_at(self, seq: int) -> Envelope:
        """The envelope stored at ``seq`` (already committed or written earlier in this txn)."""
        record = self.txn.get(SEQ.pack(seq), db=self._log)
        if record is None:
            raise LookupError(f"no log record at seq {seq}")
        return decode_envelope(unframe(record, seq)[1])


class View:
    """Base class of every projection; subclasses set the class attributes and ``apply``."""

    name: ClassVar[str]
    version: ClassVar[int]
    dbs: ClassVar[tuple[str, ...]]
    handles: ClassVar[tuple[type[Event], ...]]
    """Event classes folded; an empty tuple means every event."""
    reads_fall_back: ClassVar[bool] = False
    """Whether every reader of this view checks its checkpoint and reads the log itself when the view is
    behind (an index): a read-only open that cannot rebuild it then serves from the log, not refuses."""
    streams: ClassVar[tuple[str, ...]] = ()
    """Stream-name prefixes folded (e.g. ``("refpkg:",)``); empty means every stream. The fold
    skips other streams' events before calling ``apply``, which matters for generic events
    (undo, redo, notes) that every domain's streams carry."""

    def apply(self, ctx: FoldContext, envelope: Envelope) -> None:
        """Fold one envelope into this view's sub-dbs."""
        raise NotImplementedError

    def apply_batch(self, ctx: FoldContext, envelopes: Sequence[Envelope]) -> None:
        """Fold envelopes in seq order; override to coalesce writes (the result must be identical)."""
        apply = self.apply
        for envelope in envelopes:
            apply(ctx, envelope)

    def sync_external(self, store: "Store", streams: Collection[str] | None = None) -> None:
        """Refresh copies of this view kept outside LMDB (e.g. RefgetStore alias TSVs).

        Called after every committed command with events this view folds, passing their
        ``streams`` (a view may refresh only what those touch), and after rebuild and replay with
        None (refresh everything). The default has no external copy.
        """

    def external_drift(self, store: "Store") -> list[str]:
        """Files of this view's outside copy (see ``sync_external``) that disagree with the view, as paths
        relative to the store; empty when they agree or the view keeps no outside copy."""
        return []

    def referenced_blobs(self, txn: Txn, environment: Environment) -> Iterable[str]:
        """sha256 digests of blobs this view's current or reachable states still need."""
        return ()

    def contents(self, txn: Txn, environment: Environment) -> Iterator[tuple[str, bytes, bytes]]:
        """Every (sub-db, key, value) of the view in key order: what rebuild must reproduce."""
        for name in self.dbs:
            if not environment.has_db(name):
                continue
            with txn.cursor(db=environment.db(name)) as cur:
                for key, value in cur:
                    yield name, bytes(key), bytes(value)

    def clear(self, txn: Txn, environment: Environment) -> None:
        """Empty every sub-db of the view (kept, not deleted, so handles stay valid)."""
        for name in self.dbs:
            txn.drop(environment.db(name), delete=False)


def iter_prefix(txn: Txn, db: Db, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) pairs whose key starts with ``prefix``, in key order."""
    cur = txn.cursor(db=db)
    try:
        if not cur.set_range(prefix):
            return
        for key, value in cur:
            key, value = cast(bytes, key), cast(bytes, value)  # our transactions use buffers=False
            if not key.startswith(prefix):
                return
            yield key, value
    finally:
        cur.close()


__all__ += ["iter_prefix"]
_ = lmdb  # re-exported type users import from here in annotations
