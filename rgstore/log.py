"""The append-only event log: gapless seqs, a sha256 hash chain, idempotent and checked appends.

Records live in sub-db ``log`` keyed by 8-byte big-endian seq (``put(append=True)``). The
``meta`` sub-db holds the log id, head (seq + chain hash) and format version. Every derived
sub-db is a view (``rgstore.views``) folded in the same write transaction as the append.
"""

from __future__ import annotations

import os
import struct
import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from itertools import islice
from typing import cast

import msgspec

from .checkpoints import FIRST_RELEASE_VIEWS
from .codec import (
    HEADER_SIZE,
    decode_envelope,
    encode_envelope,
    frame_all,
    genesis_hash,
    payload_of,
    payloads,
    unframe,
)
from .dictionaries import Dictionaries
from .environment import Environment, Txn
from .errors import (
    ChainError,
    ConcurrencyConflictError,
    IdempotencyConflictError,
    InvalidInputError,
    NewerRgstoreError,
    NothingToRedoError,
    NothingToUndoError,
    StoreOpenError,
)
from .eventids import id_source, new_event_id
from .events import (
    EVENT_TYPES,
    SCHEMA_VERSION,
    AnyEvent,
    CodecDictionaryAdded,
    Envelope,
    HistoryStripped,
    Redone,
    Undone,
)
from .progress import ProgressFactory, null_progress
from .views import SEQ, FoldContext, View
from .views.history import HistoryView
from .views.ids import IdsView
from .views.streams import StreamsView

__all__ = ["EventLog", "NewEvent", "new_event_id", "default_actor", "FORMAT_VERSION"]

FORMAT_VERSION = 1
_HEAD = struct.Struct(">Q32s")
_CHECKPOINT = struct.Struct(">IQ")
_CATCH_UP_BATCH = 20_000
ANY = None


class NewEvent(msgspec.Struct, frozen=True, kw_only=True):
    """An event to append: its stream, an optional idempotency id and expected stream version."""

    stream: str
    event: AnyEvent
    id: str | None = None
    expected_version: int | None = ANY
    """The stream's version before this event (0: the stream must not exist); None: any."""


_ZIPPER_EVENTS = frozenset({Undone, Redone, HistoryStripped})
_EVENT_CLASSES = frozenset(EVENT_TYPES.values())
"""Only these decode again: anything else appended would make every later read of the log fail."""


def _same_payload(original: Envelope, item: NewEvent) -> bool:
    """Whether a retried event is the one already stored under its id."""
    if original.stream != item.stream:
        return False
    if type(item.event) in _ZIPPER_EVENTS:
        return type(original.event) is type(item.event)  # the engine filled the stored one's seqs
    return original.event == item.event


def _families(envelopes: Sequence[Envelope]) -> dict[str, list[Envelope]]:
    """Envelopes grouped by stream family (the name up to and including its first ':'), in order."""
    out: dict[str, list[Envelope]] = {}
    by_stream: dict[str, list[Envelope]] = {}  # a batch's streams repeat: one dict hit instead of find + slice + hit
    for e in envelopes:
        stream = e.stream
        group = by_stream.get(stream)
        if group is None:
            family = stream[: stream.find(":") + 1]
            group = out.get(family)
            if group is None:
                group = out[family] = []
            by_stream[stream] = group
        group.append(e)
    return out


def _by_seq(envelope: Envelope) -> int:
    return envelope.seq


def _newer(text: str) -> str:
    """What in a decode error's text only a newer rgstore writes ("" if nothing): an unknown event tag, a higher schema."""
    if "Invalid value" in text and "$.event.type" in text:
        return f"an event type this rgstore does not know ({text})"
    if text.startswith(f"Expected `int` <= {SCHEMA_VERSION}") and text.endswith("`$.schema`"):
        return f"envelope schema above {SCHEMA_VERSION}, the newest this rgstore reads ({text})"
    return ""


def undecodable(exc: Exception) -> str:
    """Why a chained (so authentic) payload does not decode: usually a newer writer's event type or schema."""
    text = str(exc)
    newer = _newer(text)
    if newer:
        return f"{newer}; upgrade rgstore to read this log"
    return f"payload does not decode ({text})"


def decode_failure(seq: int, exc: Exception) -> NewerRgstoreError | ChainError:
    """The one-line error for a payload at ``seq`` that does not decode (``exc`` from msgspec).

    NewerRgstoreError when only a newer rgstore writes what failed (an event tag this one does not
    know, an envelope schema above ``SCHEMA_VERSION``): every reader refuses such a log the same way,
    before changing anything. Otherwise a ChainError: the record is damaged.
    """
    newer = _newer(str(exc))
    if newer:
        return NewerRgstoreError(f"log record seq {seq} was written by a newer rgstore: {newer}; "
                                 "upgrade rgstore to read this log")
    return ChainError(seq, undecodable(exc))


def _decode(payload: bytes, seq: int) -> Envelope:
    """``decode_envelope`` whose failure names the seq in one line (``decode_failure``), not a msgspec trace."""
    try:
        return decode_envelope(payload)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # msgspec: a str that is not UTF-8
        raise decode_failure(seq, exc) from None


def _not_unicode(event: AnyEvent, exc: UnicodeEncodeError) -> InvalidInputError:
    """The one-line refusal of an event holding a lone surrogate, which no UTF-8 log can store.

    Python carries bytes that are not UTF-8 (in a command-line argument, a file name, a JSON
    ``\\udcff`` escape) as lone surrogates; every entry point's text meets the encoder here.
    """
    text = exc.object if isinstance(exc.object, str) else ""
    near = text[max(0, exc.start - 30):exc.end + 30]
    return InvalidInputError(
        f"{type(event).__name__}: text {near!r} is not valid Unicode (bytes that are not UTF-8, "
        "or a lone surrogate escape); nothing was written"
    )


def default_actor() -> str:
    """user@host of the calling process."""
    import getpass  # only a writer names its actor: getpass and socket cost a short read ~4 ms
    import socket

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


_MAX_STREAM_BYTES = 500
"""Views key state by stream name plus a few bytes; LMDB keys hold at most 511 bytes."""


def _check_stream(stream: str) -> None:
    if not stream or not stream.isprintable() or len(stream.encode()) > _MAX_STREAM_BYTES:
        raise InvalidInputError(
            f"invalid stream name {stream[:80]!r}{'...' if len(stream) > 80 else ''}: "
            f"1-{_MAX_STREAM_BYTES} bytes of printable UTF-8"
        )


class EventLog:
    """Appends, reads and folds the log of one Environment through a fixed list of views."""

    CORE_DBS = ("log", "meta", "checkpoints")

    def __init__(self, environment: Environment, views: Sequence[View]) -> None:
        self.environment = environment
        self.views = list(views)
        self._log = environment.db("log")
        self._meta = environment.db("meta")
        self._checkpoints = environment.db("checkpoints")
        self._ids_db = environment.db("ids")
        self._streams_db = environment.db("streams")
        self._history_db = environment.db("history")
        self._history = next(v for v in self.views if isinstance(v, HistoryView))
        self._handles = {v.name: frozenset(v.handles) for v in self.views}
        self.dictionaries = Dictionaries(self._meta)

    @staticmethod
    def db_names(views: Sequence[View]) -> list[str]:
        """Every sub-db name the log and these views use."""
        return [*EventLog.CORE_DBS, *(name for v in views for name in v.dbs)]

    # -- identity and head ------------------------------------------------------------------

    def initialise(self, txn: Txn, log_id: str | None = None) -> bool:
        """Give a fresh log its id and genesis head; returns False if it already had them."""
        if txn.get(b"log_id", db=self._meta) is not None:
            return False
        records = int(txn.stat(self._log)["entries"])
        if records:
            # A new identity here would hide the damage: every record would then fail the chain.
            raise StoreOpenError(
                f"{self.environment.path} holds {records:,} log records but no log id (its meta table is damaged, "
                "e.g. a copy of log/ taken while rgstore was writing); restore the store from a consistent backup "
                "(`rgstore backup`, or `rgstore replay backup.rglog --store NEW`)"
            )
        log_id = log_id or uuid.uuid4().hex
        txn.put(b"log_id", log_id.encode(), db=self._meta)
        txn.put(b"format", str(FORMAT_VERSION).encode(), db=self._meta)
        txn.put(b"head", _HEAD.pack(0, genesis_hash(log_id)), db=self._meta)
        return True

    def adopt_identity(self, txn: Txn, log_id: str) -> None:
        """Take another log's id while this one is still empty (a fresh mirror or replay target)."""
        seq, _ = self.head(txn)
        if seq == 0 and self.log_id(txn) != log_id:
            txn.put(b"log_id", log_id.encode(), db=self._meta)
            txn.put(b"head", _HEAD.pack(0, genesis_hash(log_id)), db=self._meta)

    def log_id(self, txn: Txn) -> str:
        """The log's random identity (shared by every mirror of it)."""
        raw = self.meta_get(txn, "log_id")
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
        return cast("bytes | None", txn.get(key.encode(), db=self._meta))  # buffers=False: bytes

    def meta_put(self, txn: Txn, key: str, value: bytes | None) -> None:
        """Set or (with None) delete a raw ``meta`` value inside a write txn."""
        if value is None:
            txn.delete(key.encode(), db=self._meta)
        else:
            txn.put(key.encode(), value, db=self._meta)

    # -- reading ------------------------------------------------------------------------------

    def record(self, txn: Txn, seq: int) -> bytes | None:
        """The stored record (header + stored payload) at ``seq``."""
        return cast("bytes | None", txn.get(SEQ.pack(seq), db=self._log))

    def get(self, txn: Txn, seq: int) -> Envelope | None:
        """The envelope at ``seq``, or None past the head."""
        raw = self.record(txn, seq)
        if raw is None:
            return None
        self.dictionaries.need(txn, raw)
        return _decode(unframe(raw, seq)[1], seq)

    def records(self, txn: Txn, after: int = 0, upto: int | None = None) -> Iterator[tuple[int, bytes]]:
        """(seq, stored record) for seqs in (after, upto], in order."""
        cur, note = txn.cursor(db=self._log), self.dictionaries.note
        try:
            if not cur.set_range(SEQ.pack(after + 1)):
                return
            for key, raw in cur:
                seq = SEQ.unpack(key)[0]
                if upto is not None and seq > upto:
                    return
                value = cast(bytes, raw)
                note(txn, value)
                yield seq, value
        finally:
            cur.close()

    def envelopes(self, txn: Txn, after: int = 0, upto: int | None = None) -> Iterator[Envelope]:
        """Decoded envelopes for seqs in (after, upto]."""
        for seq, raw in self.records(txn, after, upto):
            yield _decode(unframe(raw, seq)[1], seq)

    def envelopes_backwards(self, txn: Txn, after: int = 0) -> Iterator[Envelope]:
        """Decoded envelopes for seqs after ``after``, newest first (the most recent N without a full scan)."""
        cur = txn.cursor(db=self._log)
        try:
            if not cur.last():
                return
            for key, raw in cur.iterprev():
                seq = SEQ.unpack(key)[0]
                if seq <= after:
                    return
                value = cast(bytes, raw)
                self.dictionaries.need(txn, value)
                yield _decode(unframe(value, seq)[1], seq)
        finally:
            cur.close()

    def envelope_list(self, txn: Txn, after: int, upto: int) -> list[Envelope]:
        """``list(envelopes(txn, after, upto))`` for a gapless range, decoded in one tight loop (rebuilds)."""
        cur = txn.cursor(db=self._log)
        out: list[Envelope] = []
        try:
            if upto <= after or not cur.set_range(SEQ.pack(after + 1)):
                return out
            known, need, decode, append = self.dictionaries.seen, self.dictionaries.need, decode_envelope, out.append
            seq = after
            try:
                for raw in cast("Iterator[bytes]", islice(cur.iternext(keys=False, values=True), upto - after)):
                    seq += 1
                    if raw[0] == 2 and raw[1:5] not in known:  # CODEC_ZSTD_DICT
                        need(txn, raw)
                        known.add(raw[1:5])
                    append(decode(payload_of(raw, seq)))
            except (msgspec.DecodeError, UnicodeDecodeError) as exc:
                raise decode_failure(seq, exc) from None
        finally:
            cur.close()
        if out and (out[0].seq != after + 1 or out[-1].seq != after + len(out)):
            return list(self.envelopes(txn, after, upto))  # not gapless: the careful reader
        return out

    # -- zstd dictionaries (rgstore.dictionaries) ---------------------------------------------

    def current_dictionary(self, txn: Txn) -> int:
        """Id of the zstd dictionary new records use (0: none yet)."""
        return self.dictionaries.current(txn)

    def load_dictionaries(self, txn: Txn) -> int:
        """Register every dictionary this log has announced in this process; returns how many."""
        return self.dictionaries.load(txn)

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
        self._catch_up(ctx, seq)
        versions: dict[str, int] = {}
        envelopes: list[Envelope] = []
        fresh_ids = id_source(len(batch))
        history, streams_db = self._history, self._streams_db
        encoded: list[bytes] = []
        chains: list[bytes] = []
        dict_id = self.current_dictionary(txn) if compress else 0
        eager_history = any(type(item.event) in _ZIPPER_EVENTS for item in batch)
        # The hot loop's lookups bound once; the chain hashed inline, as chain_hash does (a call per event is ~0.1 us).
        from hashlib import sha256  # lazily, as getpass above; once per batch

        encode, pack = encode_envelope, SEQ.pack
        add_payload, add_chain, add_envelope = encoded.append, chains.append, envelopes.append
        classes, zippers = _EVENT_CLASSES, _ZIPPER_EVENTS
        first = seq + 1
        for item in batch:
            stream = item.stream
            version = versions.get(stream)
            if version is None:
                _check_stream(stream)
                version = StreamsView.get(txn, streams_db, stream)[0]
            expected = item.expected_version
            if expected is not None and expected != version:
                raise ConcurrencyConflictError(stream, expected, version)
            seq += 1
            event = item.event
            cls = type(event)
            if cls not in classes:
                raise InvalidInputError(f"{cls.__name__} is not an event type of rgstore.events (AnyEvent)")
            zipper = cls in zippers
            if zipper:
                event = self._fill_zipper(txn, stream, event)
            versions[stream] = version = version + 1
            envelope = Envelope(
                seq=seq, id=item.id or next(fresh_ids), stream=stream, stream_version=version,
                time=now, actor=actor, event=event,
            )
            try:
                payload = encode(envelope)
            except UnicodeEncodeError as exc:
                raise _not_unicode(event, exc) from None
            prev = sha256(prev + pack(seq) + payload).digest()
            add_payload(payload)
            add_chain(prev)
            add_envelope(envelope)
            if type(event) is CodecDictionaryAdded:
                self.dictionaries.keep(txn, event)
            if eager_history and (zipper or event.undoable or event.ends_history):
                # A later Undone/Redone in this batch must see this step: fold the zipper per event.
                history.apply(ctx, envelope)
        records = frame_all(encoded, chains, compress=compress, dict_id=dict_id)
        with txn.cursor(db=self._log) as cur:
            # Views fold after every record of the command is in place (they may read earlier ones).
            if cur.putmulti(zip(map(pack, range(first, seq + 1)), records), append=True)[1] != len(records):
                raise ChainError(seq, "a record already exists at this seq (log and head disagree)")
        self.fold_batch(ctx, envelopes, skip=history if eager_history else None)
        txn.put(b"head", _HEAD.pack(seq, prev), db=self._meta)
        for view in self.views:
            self.set_checkpoint(txn, view, seq)
        return list(range(first, seq + 1))

    def append_records(self, txn: Txn, records: Sequence[tuple[int, bytes]], log_id: str) -> int:
        """Append already-framed records from another copy of this log, verifying the chain.

        Used by replay and mirrors: each record must be the next seq, its chain hash must follow
        from the local head, and its payload must decode. Returns the new head seq.
        """
        if self.log_id(txn) != log_id:
            raise ChainError(records[0][0] if records else 0, "records belong to another log")
        seq, prev = self.head(txn)
        ctx = FoldContext(txn, self.environment)
        self._catch_up(ctx, seq)
        envelopes: list[Envelope] = []
        rows: list[tuple[bytes, bytes]] = []
        # The per-record work is mostly C (inflate, sha256, decode): calls and lookups are bound once,
        # payloads inflated in one loop (codec.payloads) and the chain hashed inline, as chain_hash does.
        from hashlib import sha256

        pack, decode, add_row, add_envelope = SEQ.pack, decode_envelope, rows.append, envelopes.append
        for (rseq, record), payload in zip(records, payloads(records)):
            if rseq != seq + 1:
                raise ChainError(rseq, f"expected seq {seq + 1} next (a gap or overlap)")
            if payload is None:
                payload = payload_of(record, rseq)  # a dictionary announced in this batch, else a ChainError naming the problem
            chain = sha256(prev + pack(rseq) + payload).digest()
            if record[5:HEADER_SIZE] != chain:
                raise ChainError(rseq, "hash chain mismatch: the record was altered or comes from a diverged log")
            try:
                envelope = decode(payload)
            except (msgspec.DecodeError, UnicodeDecodeError) as exc:
                raise decode_failure(rseq, exc) from None
            if envelope.seq != rseq:
                raise ChainError(rseq, f"payload claims seq {envelope.seq}")
            if type(envelope.event) is CodecDictionaryAdded:
                self.dictionaries.keep(txn, envelope.event)  # later records in this batch may need it
            add_row((pack(rseq), record if type(record) is bytes else bytes(record)))
            add_envelope(envelope)
            seq, prev = rseq, chain
        with txn.cursor(db=self._log) as cur:
            if cur.putmulti(rows, append=True)[1] != len(rows):
                raise ChainError(records[0][0], "records already exist at these seqs (log and head disagree)")
        self.fold_batch(ctx, envelopes)
        txn.put(b"head", _HEAD.pack(seq, prev), db=self._meta)
        for view in self.views:
            self.set_checkpoint(txn, view, seq)
        return seq

    def _catch_up(self, ctx: FoldContext, head: int) -> None:
        """Fold into each view an older rgstore lacks the records that rgstore appended after its checkpoint.

        Every writer of this version moves every view's checkpoint, but a release without a view appends
        without folding it. A handle opened before such an append (a follower, a long `genome init`)
        must fold those records before its own: its commit moves the checkpoint to the head regardless,
        so the view would miss them for good. One checkpoint read per such view per commit.
        """
        for view in self.views:  # read each time: a caller may narrow self.views (tools/bench/log.py does)
            if view.name in FIRST_RELEASE_VIEWS:
                continue
            raw = ctx.txn.get(view.name.encode(), db=self._checkpoints)
            if raw is None or len(raw) != _CHECKPOINT.size:
                continue  # never folded, or damaged: the next open rebuilds it (rgstore.checkpoints)
            version, done = _CHECKPOINT.unpack(raw)
            if version != view.version:
                continue
            while done < head:
                upto = min(done + _CATCH_UP_BATCH, head)
                self.fold_batch(ctx, self.envelope_list(ctx.txn, done, upto), [view])
                done = upto

    def catch_up_views(self, txn: Txn, views: Sequence[View], progress: ProgressFactory = null_progress) -> list[View]:
        """Fold into each of ``views`` only the records appended after its checkpoint, then checkpoint it at the head.

        For views added after the first release that an older rgstore left behind: folding its few records
        costs what it appended, where a rebuild refolds the whole log at every open after each older append.
        Returns the views this cannot catch up (another version, no checkpoint, a first-release view): rebuild those.
        """
        head, _ = self.head(txn)
        ctx = FoldContext(txn, self.environment)
        left: list[View] = []
        for view in views:
            raw = txn.get(view.name.encode(), db=self._checkpoints)
            version, done = _CHECKPOINT.unpack(raw) if raw is not None and len(raw) == _CHECKPOINT.size else (0, 0)
            if view.name in FIRST_RELEASE_VIEWS or version != view.version or not 0 < done <= head:
                left.append(view)
                continue
            bar = progress(f"catch up {view.name}", total=head - done, unit="ev")  # an old mirror's 1M-event pull
            try:
                while done < head:
                    upto = min(done + _CATCH_UP_BATCH, head)
                    self.fold_batch(ctx, self.envelope_list(txn, done, upto), [view])
                    bar.update(upto - done)
                    done = upto
            finally:
                bar.close()
            self.set_checkpoint(txn, view, head)
        return left

    def fold_batch(
        self, ctx: FoldContext, envelopes: Sequence[Envelope], views: Sequence[View] | None = None,
        skip: View | None = None,
    ) -> None:
        """Fold envelopes (in seq order) into the given views (default: all).

        Each view sees the batch in order; views are independent, so folding view by view gives
        the same bytes as folding event by event.
        """
        families: dict[str, list[Envelope]] | None = None
        for view in self.views if views is None else views:
            if view is skip:
                continue
            wanted = self._handles[view.name]
            prefixes = view.streams
            if prefixes and len(envelopes) > 64 and all(p.find(":") == len(p) - 1 for p in prefixes):
                # Big batches (rebuilds, replays): sort envelopes into stream families once, so each
                # domain view scans only its own streams.
                if families is None:
                    families = _families(envelopes)
                mine = [e for p in prefixes for e in families.get(p, ())]
                if len(prefixes) > 1:
                    mine.sort(key=_by_seq)
                if wanted:
                    mine = [e for e in mine if type(e.event) in wanted]
            elif wanted and prefixes:
                mine = [e for e in envelopes if type(e.event) in wanted and e.stream.startswith(prefixes)]
            elif wanted:
                mine = [e for e in envelopes if type(e.event) in wanted]
            elif prefixes:
                mine = [e for e in envelopes if e.stream.startswith(prefixes)]
            else:
                mine = list(envelopes)
            if mine:
                view.apply_batch(ctx, mine)

    def fold(self, ctx: FoldContext, envelope: Envelope, views: Sequence[View] | None = None) -> None:
        """Fold one envelope (see ``fold_batch``)."""
        self.fold_batch(ctx, [envelope], views)

    def _repeated(self, txn: Txn, batch: Sequence[NewEvent]) -> list[int] | None:
        ids = [item.id for item in batch if item.id is not None]
        if len(set(ids)) != len(ids):
            dup = next(i for i in ids if ids.count(i) > 1)
            raise InvalidInputError(f"event id {dup} appears twice in one command; every event needs its own id")
        found: list[int] = []
        for item in batch:
            if item.id is None:
                continue
            try:
                seq = IdsView.lookup(txn, self._ids_db, item.id)
            except ValueError:
                raise InvalidInputError(f"event id {item.id[:80]!r} is not a UUID (use rgstore.log.new_event_id())") from None
            if seq is None:
                continue
            original = self.get(txn, seq)
            if original is None or not _same_payload(original, item):
                raise IdempotencyConflictError(item.id, seq)
            found.append(seq)
        if not found:
            return None
        if len(found) != len(batch):
            raise IdempotencyConflictError.partial(len(found), len(batch), found[0])
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
