"""Point-in-time bounds on a replay: stop at a seq (``to_seq``) or at a time (``as_of``).

``as_of=T`` is the longest prefix of the log whose *running maximum* of event times is at or before
``T``: the replay stops just before the first event whose time is after ``T``, and never looks past
it, even if a later event carries an earlier time (clocks step back; the log order is the truth,
so "the store as of T" is always a prefix of the log). The time floor index
(``rgstore.views.timeindex``) keeps the same running maximum per block of seqs; an export file has
no index, so the bound decodes each record's envelope time as it reads (the time only, not the event).

A replayed store only grows: a bound below what the store already holds is refused, and a later
unbounded replay of the same log continues a point-in-time store to the head.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import msgspec

from .checkpoints import read_checkpoint
from .codec import decode_envelope, payload_of, register_dictionary
from .environment import Txn
from .errors import ChainError, ConflictError, InvalidInputError
from .events import CodecDictionaryAdded
from .log import EventLog, undecodable
from .logfile import LogHeader
from .views import timeindex
from .views.timeindex import TimeIndexView

if TYPE_CHECKING:
    from .store import Store

__all__ = ["record_time", "running_max", "time_reached", "check_bounds", "check_growth", "bounded"]

_TIMES = TimeIndexView()
_DICT_TAG = b"codec-dictionary-added"


class _Stamp(msgspec.Struct):
    """The one envelope field a time bound needs (msgspec skips the others, the event included)."""

    time: datetime


_STAMP = msgspec.msgpack.Decoder(_Stamp)


def _utc(time: datetime) -> datetime:
    """A naive time is UTC, as everywhere in the log."""
    return time if time.tzinfo else time.replace(tzinfo=timezone.utc)


def _iso(time: datetime) -> str:
    """A time as the CLI prints one: UTC to the microsecond it has, with Z."""
    return _utc(time).astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def record_time(record: bytes, seq: int) -> datetime:
    """The event time of a stored record, decoding only the envelope's time; ChainError if it does not decode."""
    payload = payload_of(record, seq)
    try:
        time = _STAMP.decode(payload).time
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise ChainError(seq, undecodable(exc)) from None
    if _DICT_TAG in payload:
        # Later records may be compressed with the dictionary this one announces, and a bound reads them
        # before the append that would register it (which decodes a whole batch behind this reader).
        envelope = decode_envelope(payload)
        if type(envelope.event) is CodecDictionaryAdded:
            register_dictionary(envelope.event.data)
    return _utc(time)


def running_max(log: EventLog, txn: Txn, upto: int) -> datetime | None:
    """The latest event time among seqs 1..``upto`` of a store's log (None when ``upto`` is 0).

    Whole blocks come from the time floor index when it is folded to the head (a store shared with
    an older rgstore may lag it); the rest is read from the log.
    """
    if upto <= 0:
        return None
    best: datetime | None = None
    start = 0
    full = upto // timeindex.BLOCK  # blocks 0..full-1 end at or before ``upto``
    if full and read_checkpoint(log, txn, _TIMES) == (_TIMES.version, log.head(txn)[0]):
        best = TimeIndexView.through_block(txn, log.environment.db(TimeIndexView.dbs[0]), full - 1)
        if best is not None:
            start = full * timeindex.BLOCK
    for seq, record in log.records(txn, after=start, upto=upto):
        time = record_time(record, seq)
        if best is None or time > best:
            best = time
    return best


def time_reached(store: Store) -> datetime | None:
    """The latest event time in the store's log, the running maximum at its head (None when it is empty)."""
    with store.read() as txn:
        return running_max(store.log, txn, store.log.head(txn)[0])


def _holds(header: LogHeader) -> str:
    what = (f"seqs {header.first_seq}-{header.last_seq}" if header.last_seq >= header.first_seq else "no records")
    return f"this export holds {what} of log {header.log_id}"


def _before_first(as_of: datetime, first: datetime) -> str:
    return (f"--as-of {_iso(as_of)} is before the log's first event (seq 1 at {_iso(first)}): "
            "the store had nothing then; give a later time")


def check_bounds(
    header: LogHeader, first: tuple[int, bytes] | None, *, to_seq: int | None, as_of: datetime | None,
) -> None:
    """Refuse a bound this export cannot meet (InvalidInputError), before anything is created.

    ``first`` is the export's first (seq, record), if read: an ``as_of`` before seq 1's time is refused
    here rather than replaying an empty store.
    """
    if to_seq is not None and as_of is not None:
        raise InvalidInputError("--to and --as-of both bound the replay: give one of them")
    if to_seq is not None:
        if to_seq < 1:
            raise InvalidInputError(f"--to {to_seq}: seqs start at 1")
        if not header.first_seq <= to_seq <= header.last_seq:
            raise InvalidInputError(f"--to {to_seq} is outside the export: {_holds(header)}")
    if as_of is not None and first is not None and first[0] == 1:
        time = record_time(first[1], 1)
        if time > _utc(as_of):
            raise InvalidInputError(_before_first(_utc(as_of), time))


def _only_grows(head: int, what: str) -> ConflictError:
    return ConflictError(f"this store already holds seqs 1-{head}, past {what}: a replayed store only grows; "
                         "replay into a new, empty store for that point in time")


def check_growth(head: int, *, to_seq: int | None, as_of: datetime | None, seed: datetime | None) -> None:
    """Refuse a bound below what the store (at ``head``) holds: ConflictError, nothing written.

    ``seed`` is the running maximum of the store's times before the export's first record.
    """
    if to_seq is not None and to_seq < head:
        raise _only_grows(head, f"--to {to_seq}")
    if as_of is not None and seed is not None and seed > _utc(as_of):
        raise _only_grows(head, f"--as-of {_iso(as_of)} (its events reach {_iso(seed)})")


def bounded(
    records: Iterable[tuple[int, bytes]], *, head: int, to_seq: int | None = None, as_of: datetime | None = None,
    seed: datetime | None = None,
) -> Iterator[tuple[int, bytes]]:
    """``records`` (in seq order) up to the bound, closing ``records`` when it stops early.

    With ``as_of``, ``seed`` is the running maximum of event times before the first record. Reaching
    the bound at or below ``head`` (the store's) is a ConflictError, and before seq 1 an
    InvalidInputError, both raised before any record past ``head`` is yielded.
    """
    try:
        if to_seq is not None:
            for seq, record in records:
                if seq > to_seq:
                    return
                yield seq, record
            return
        if as_of is None:
            yield from records
            return
        limit, running = _utc(as_of), seed
        for seq, record in records:
            time = record_time(record, seq)
            if running is None or time > running:
                running = time
            if running > limit:
                if seq == 1:
                    raise InvalidInputError(_before_first(limit, time))
                if seq <= head:
                    raise _only_grows(head, f"--as-of {_iso(limit)} (by seq {seq} its events reach {_iso(running)})")
                return
            yield seq, record
    finally:
        close = getattr(records, "close", None)
        if close is not None:
            close()
