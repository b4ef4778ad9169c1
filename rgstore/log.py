"""The append-only event log: gapless seqs, a sha256 hash chain, idempotent and checked appends.

Records live in sub-db ``log`` keyed by 8-byte big-endian seq (``put(append=True)``). The
``meta`` sub-db holds the log id, head (seq + chain hash) and format version. Every derived
sub-db is a view (``rgstore.views``) folded in the same write transaction as the append.
"""

from __future__ import annotations

import getpass
import os
import socket
import struct
import time as _time
import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone

import msgspec

from .codec import chain_hash, decode_envelope, encode_envelope, frame, genesis_hash, unframe
from .environment import Environment, Txn
from .errors import (
    ChainError,
    ConcurrencyConflictError,
    IdempotencyConflictError,
    InvalidInputError,
    NothingToRedoError,
    NothingToUndoError,
)
from .events import AnyEvent, Envelope, HistoryStripped, Redone, Undone
from .views import SEQ, FoldContext, View
from .views.history import HistoryView
from .views.ids import IdsView, fingerprint
from .views.streams import StreamsView

__all__ = ["EventLog", "NewEvent", "new_event_id", "default_actor", "FORMAT_VERSION"]

FORMAT_VERSION = 1
_HEAD = struct.Struct(">Q32s")
_CHECKPOINT = struct.Struct(">IQ")
ANY = None


class NewEvent(msgspec.Struct, frozen=True, kw_only=True):
    """An event to append: its stream, an optional idempotency id and expected stream version."""

    stream: str
    event: AnyEvent
    id: str | None = None
    expected_version: int | None = ANY
    """The stream's version before this event (0: the stream must not exist); None: any."""


def new_event_id() -> str:
    """A UUIDv7: 48-bit millisecond timestamp then random bits, so ids sort by time."""
    ms = _time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | (rand >> 68 & 0xFFF) << 64 | 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return str(uuid.UUID(int=value))


def default_actor() -> str:
    """user@host of the calling process."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def _check_stream(stream: str) -> None:
    if not stream or len(stream) > 512 or any(ord(c) < 32 for c in stream):
        raise InvalidInputError(f"invalid stream name {stream!r}: 1-512 printable characters")


class EventLog:
    """Appends, reads and folds the log of one Environment through a fixed list of views."""

    CORE_DBS = ("log", "meta", "checkpoints")

    def __init__(self, environment: Environment, views: Sequence[View]) -> None:
        self.environment = environment
        self.views = list(views)
        self._dispatch: dict[type, list[View]] = {}
        self._all_events: list[View] = [v for v in self.views if not v.handles]
        for view in self.views:
            for cls in view.handles:
                self._dispatch.setdefault(cls, []).append(view)
        self._log = environment.db("log")
        self._meta = environment.db("meta")
        self._checkpoints = environment.db("checkpoints")
        self._ids_db = environment.db("ids")
        self._streams_db = environment.db("streams")
        self._history_db = environment.db("history")

    @staticmethod
    def db_names(views: Sequence[View]) -> list[str]:
        """Every sub-db name the log and these views use."""
        return [*EventLog.CORE_DBS, *(name for v in views for name in v.dbs)]

    # -- identity and head ------------------------------------------------------------------

    def initialise(self, txn: Txn, log_id: str | None = None) -> bool:
        """Give a fresh log its id and genesis head; returns False if it already had them."""
        if txn.get(b"log_id", db=self._meta) is not None:
            return False
        log_id = log_id or uuid.uuid4().hex
        txn.put(b"log_id", log_id.encode(), db=self._meta)
        txn.put(b"format", str(FORMAT_VERSION).encode(), db=self._meta)
        txn.put(b"head", _HEAD.pack(0, genesis_hash(log_id)), db=self._meta)
        return True

    def log_id(self, txn: Txn) -> str:
        """The log's random identity (shared by every mirror of it)."""
        raw = txn.get(b"log_id", db=self._meta)
        return raw.decode() if raw is not None else ""

    def head(self, txn: Txn) -> tuple[int, bytes]:
        """(seq, chain hash) of the newest record; (0, h[0]) for an empty log."""
        raw = txn.get(b"head", db=self._meta)
        if raw is None:
            return 0, b"\x00" * 32
        seq, digest = _HEAD.unpack(raw)
        return seq, digest

    def meta_get(self, txn: Txn, key: str) -> bytes | None:
        """A raw value from ``meta`` (e.g. replica settings)."""
        return txn.get(key.encode(), db=self._meta)  # type: ignore[no-any-return]

    def meta_put(self, txn: Txn, key: str, value: bytes | None) -> None:
        """Set or (with None) delete a raw ``meta`` value inside a write txn."""
        if value is None:
            txn.delete(key.encode(), db=self._meta)
        else:
            txn.put(key.encode(), value, db=self._meta)

    # -- reading ------------------------------------------------------------------------------

    def record(self, txn: Txn, seq: int) -> bytes | None:
        """The stored record (header + stored payload) at ``seq``."""
        return txn.get(SEQ.pack(seq), db=self._log)  # type: ignore[no-any-return]

    def get(self, txn: Txn, seq: int) -> Envelope | None:
        """The envelope at ``seq``, or None past the head."""
        raw = self.record(txn, seq)
        return None if raw is None else decode_envelope(unframe(raw, seq)[1])

    def records(self, txn: Txn, after: int = 0, upto: int | None = None) -> Iterator[tuple[int, bytes]]:
        """(seq, stored record) for seqs in (after, upto], in order."""
        cur = txn.cursor(db=self._log)
        try:
            if not cur.set_range(SEQ.pack(after + 1)):
                return
            for key, value in cur:
                seq = SEQ.unpack(key)[0]
                if upto is not None and seq > upto:
                    return
                yield seq, value
        finally:
            cur.close()

    def envelopes(self, txn: Txn, after: int = 0, upto: int | None = None) -> Iterator[Envelope]:
        """Decoded envelopes for seqs in (after, upto]."""
        for seq, raw in self.records(txn, after, upto):
            yield decode_envelope(unframe(raw, seq)[1])

    def checkpoint(self, txn: Txn, view: View) -> tuple[int, int]:
        """(version, seq) the view was last folded to; (0, 0) if never."""
        raw = txn.get(view.name.encode(), db=self._checkpoints)
        return _CHECKPOINT.unpack(raw) if raw is not None else (0, 0)

    def set_checkpoint(self, txn: Txn, view: View, seq: int) -> None:
        """Record that ``view`` has folded everything up to ``seq``."""
        txn.put(view.name.encode(), _CHECKPOINT.pack(view.version, seq), db=self._checkpoints)

    # -- writing ------------------------------------------------------------------------------

    def append(
        self, txn: Txn, batch: Sequence[NewEvent], actor: str, *, compress: bool = True
    ) -> list[int]:
        """Append a command's events and fold them into every view, all in ``txn``.

        Returns the events' seqs. If every event carries an id already in the log with the same
        payload, nothing is written and the original seqs are returned; a reused id with a
        different payload, or a partial repeat, raises IdempotencyConflictError. A stream whose
        version differs from ``expected_version`` raises ConcurrencyConflictError.
        """
        if not batch:
            return []
        repeat = self._repeated(txn, batch)
        if repeat is not None:
            return repeat
        seq, prev = self.head(txn)
        now = datetime.now(timezone.utc)
        ctx = FoldContext(txn, self.environment)
        seqs: list[int] = []
        for item in batch:
            _check_stream(item.stream)
            version, _ = StreamsView.get(txn, self._streams_db, item.stream)
            if item.expected_version is not None and item.expected_version != version:
                raise ConcurrencyConflictError(item.stream, item.expected_version, version)
            seq += 1
            envelope = Envelope(
                seq=seq,
                id=item.id or new_event_id(),
                stream=item.stream,
                stream_version=version + 1,
                time=now,
                actor=actor,
                event=self._fill_zipper(txn, item.stream, item.event),
            )
            payload = encode_envelope(envelope)
            prev = chain_hash(prev, seq, payload)
            if not txn.put(SEQ.pack(seq), frame(payload, prev, compress=compress), db=self._log, append=True):
                raise ChainError(seq, "a record already exists at this seq (log and head disagree)")
            self.fold(ctx, envelope)
            seqs.append(seq)
        txn.put(b"head", _HEAD.pack(seq, prev), db=self._meta)
        for view in self.views:
            self.set_checkpoint(txn, view, seq)
        return seqs

    def append_records(self, txn: Txn, records: Sequence[tuple[int, bytes]], log_id: str) -> int:
        """Append already-framed records from another copy of this log, verifying the chain.

        Used by replay and mirrors: each record must be the next seq, its chain hash must follow
        from the local head, and its payload must decode. Returns the new head seq.
        """
        if self.log_id(txn) != log_id:
            raise ChainError(records[0][0] if records else 0, "records belong to another log")
        seq, prev = self.head(txn)
        ctx = FoldContext(txn, self.environment)
        for rseq, record in records:
            if rseq != seq + 1:
                raise ChainError(rseq, f"expected seq {seq + 1} next (a gap or overlap)")
            chain, payload = unframe(record, rseq)
            expect = chain_hash(prev, rseq, payload)
            if chain != expect:
                raise ChainError(rseq, "hash chain mismatch: the record was altered or comes from a diverged log")
            try:
                envelope = decode_envelope(payload)
            except msgspec.DecodeError as exc:
                raise ChainError(rseq, f"payload does not decode ({exc})") from None
            if envelope.seq != rseq:
                raise ChainError(rseq, f"payload claims seq {envelope.seq}")
            txn.put(SEQ.pack(rseq), bytes(record), db=self._log, append=True)
            self.fold(ctx, envelope)
            seq, prev = rseq, chain
        txn.put(b"head", _HEAD.pack(seq, prev), db=self._meta)
        for view in self.views:
            self.set_checkpoint(txn, view, seq)
        return seq

    def fold(self, ctx: FoldContext, envelope: Envelope, views: Sequence[View] | None = None) -> None:
        """Apply one envelope to the given views (default: all), in registry order."""
        if views is None:
            for view in self._all_events:
                view.apply(ctx, envelope)
            for view in self._dispatch.get(type(envelope.event), ()):
                view.apply(ctx, envelope)
            return
        for view in views:
            if not view.handles or type(envelope.event) in view.handles:
                view.apply(ctx, envelope)

    def _repeated(self, txn: Txn, batch: Sequence[NewEvent]) -> list[int] | None:
        found: list[int] = []
        for item in batch:
            if item.id is None:
                continue
            hit = IdsView.lookup(txn, self._ids_db, item.id)
            if hit is None:
                continue
            seq, fp = hit
            if fp != fingerprint(item.stream, item.event):
                raise IdempotencyConflictError(item.id, seq)
            found.append(seq)
        if not found:
            return None
        if len(found) != len(batch):
            raise IdempotencyConflictError(
                next(i.id for i in batch if i.id is not None) or "", found[0]
            )
        return found

    def _fill_zipper(self, txn: Txn, stream: str, event: AnyEvent) -> AnyEvent:
        if isinstance(event, Undone):
            current, below = HistoryView.top(txn, self._history_db, stream)
            if not current:
                raise NothingToUndoError(f"nothing to undo on {stream!r}")
            return Undone(undone_seq=current, restored_seq=below)
        if isinstance(event, Redone):
            target = HistoryView.next_redo(txn, self._history_db, stream)
            if not target:
                raise NothingToRedoError(f"nothing to redo on {stream!r}")
            return Redone(redone_seq=target)
        if isinstance(event, HistoryStripped):
            current, _ = HistoryView.top(txn, self._history_db, stream)
            return HistoryStripped(kept_seq=current)
        return event
