"""Filtered reads of the log through its indexes: streams through the stream index, ``since`` through the time floor.

``Store.events`` and ``Store.iter_events`` ask here first: an exact stream name, or a glob with a literal
prefix before its first wildcard (``alias:refgenie/*``, ``refpkg:*``), gives the seqs to read from
``rgstore.views.streamindex``; a glob that starts with a wildcard (``*/hg38``) has no prefix to seek to
and gets None, so the caller scans the log as before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime

from .checkpoints import read_checkpoint
from .environment import Txn
from .events import Envelope
from .log import EventLog
from .views.streamindex import GLOB_CHARS, StreamIndexView, literal_prefix
from .views.timeindex import TimeIndexView

__all__ = ["indexed_seqs", "envelopes_at", "since_floor"]

_INDEX = StreamIndexView()
_TIMES = TimeIndexView()


def indexed_seqs(
    log: EventLog, txn: Txn, pattern: str, match: Callable[[str], bool], after: int = 0, *, backwards: bool = False,
) -> Iterator[int] | None:
    """Seqs (> ``after``) of events on streams ``pattern`` names (``match`` is its test), in seq order
    (``backwards``: newest first); None when only a scan will do: the pattern starts with a wildcard, or the
    index is not folded to the head (a store shared with an older rgstore)."""
    try:
        pattern.encode()
    except UnicodeEncodeError:  # a lone surrogate (an argument byte that is not UTF-8): no stored name holds one
        return iter(())
    if read_checkpoint(log, txn, _INDEX) != (_INDEX.version, log.head(txn)[0]):
        return None  # behind the head: an older rgstore, which lacks the index, appended after this handle opened
    db = log.environment.db(StreamIndexView.dbs[0])
    if not any(c in pattern for c in GLOB_CHARS):
        return StreamIndexView.seqs(txn, db, pattern, after, backwards=backwards)
    prefix = literal_prefix(pattern)
    if not prefix:
        return None
    seqs = StreamIndexView.matching(txn, db, prefix, match, after)
    return reversed(seqs) if backwards else iter(seqs)


def envelopes_at(log: EventLog, txn: Txn, seqs: Iterator[int] | Sequence[int]) -> Iterator[Envelope]:
    """The envelopes at ``seqs`` (which the index took from this log, so each is there)."""
    get = log.get
    for seq in seqs:
        envelope = get(txn, seq)
        if envelope is not None:
            yield envelope


def since_floor(log: EventLog, txn: Txn, since: datetime, after: int) -> int | None:
    """``after`` raised past every event older than ``since`` by the time floor index; None if no event is that late.

    ``after`` itself when the index is not folded to the head (a store shared with an older rgstore).
    """
    if read_checkpoint(log, txn, _TIMES) != (_TIMES.version, log.head(txn)[0]):
        return after
    floor = TimeIndexView.floor(txn, log.environment.db(TimeIndexView.dbs[0]), since)
    return None if floor is None else max(after, floor)
