"""The live cache entries' listing order (level, then path), kept per log head so a page reads only its own entries.

``/cache/entries`` lists entries sorted by level then directory, which is not the view's key
order; sorting means reading every entry, and a cache of 100k entries made each page cost
seconds. ``CacheOrder`` keeps the sorted ``(level, path, key)`` rows of one log head. A request
at a newer head brings them up to date from the log records since: only keys named by a
``cache:`` event are re-read from the view (touches, the common event, move nothing), and the
view stays the only authority on what an event did. The last few heads' rows are kept: a request
whose transaction is older than the newest (another request saw newer writes while it waited for
the lock) advances the newest kept rows at or below its own head, instead of sorting every entry.
"""

from __future__ import annotations

import threading
from bisect import bisect_left, insort

import msgspec

from rgstore.checkpoints import rebuild_count
from rgstore.codec import decode_envelope, unframe
from rgstore.environment import Txn
from rgstore.store import Store

from .catalog import REBUILD_GAP

__all__ = ["CacheOrder", "Placement", "Row"]

_ENTRIES = "cache.entries"
_CACHE_STREAM = "cache:"

Row = tuple[int, str, str]
"""(level, path, key): sorting these is sorting by (level, path) with ties in key order, as the view lists them."""


class _Placed(msgspec.Struct, kw_only=True):
    # The two fields of a CacheEntry the order needs: decoding skips its files and request.
    level: int
    path: str


_PLACED = msgspec.msgpack.Decoder(_Placed)


class Placement(msgspec.Struct, frozen=True, kw_only=True):
    """The sorted rows of every live cache entry as of log head ``head``."""

    head: int
    rebuilds: int
    rows: list[Row]
    by_key: dict[str, Row]

    def span(self, level: int | None) -> tuple[int, int]:
        """The [start, end) of ``rows`` holding ``level``'s entries (all rows for None)."""
        if level is None:
            return 0, len(self.rows)
        return bisect_left(self.rows, (level,)), bisect_left(self.rows, (level + 1,))


class CacheOrder:
    """The per-worker listing order; ``placement(txn)`` is exactly ``txn``'s live entries, sorted."""

    KEPT = 4
    """Placements kept: requests queued on the lock while writes land hold transactions a few heads old."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._kept: tuple[Placement, ...] = (Placement(head=-1, rebuilds=-1, rows=[], by_key={}),)
        """Recent placements, oldest first (at most ``KEPT``); the last is the newest."""
        self._lock = threading.Lock()
        self.entry_reads = 0
        """Entries decoded (narrowly) to build or update the order: every one per build, changed ones after."""

    def placement(self, txn: Txn) -> Placement:
        """The sorted rows of ``txn``'s live cache entries (kept, and advanced from the newest kept rows before it)."""
        head, _ = self.store.log.head(txn)
        rebuilds = rebuild_count(self.store.log, txn)
        newest = self._kept[-1]
        if newest.head == head and newest.rebuilds == rebuilds:
            return newest
        with self._lock:
            kept = self._kept
            same = next((p for p in kept if p.head == head and p.rebuilds == rebuilds), None)
            if same is not None:
                return same
            # Without older rows to start from, every write made each request still waiting on the
            # lock with an older transaction sort every entry again, one after another (p99 ~0.7 s).
            base = next((p for p in reversed(kept) if p.rebuilds == rebuilds and 0 <= p.head < head
                         and head - p.head <= REBUILD_GAP), None)
            fresh = self._advance(txn, base, head) if base is not None else self._build(txn, head, rebuilds)
            self._kept = tuple(sorted((*kept, fresh), key=lambda p: (p.rebuilds, p.head)))[-self.KEPT:]
            return fresh

    def _read(self, txn: Txn, key: str) -> Row | None:
        env = self.store.environment
        raw = txn.get(key.encode(), db=env.db(_ENTRIES)) if env.has_db(_ENTRIES) else None
        if raw is None:
            return None
        self.entry_reads += 1
        placed = _PLACED.decode(raw)
        return (placed.level, placed.path, key)

    def _build(self, txn: Txn, head: int, rebuilds: int) -> Placement:
        env = self.store.environment
        rows: list[Row] = []
        if env.has_db(_ENTRIES):
            with txn.cursor(db=env.db(_ENTRIES)) as cur:
                for raw_key, raw in cur:
                    placed = _PLACED.decode(raw)
                    rows.append((placed.level, placed.path, bytes(raw_key).decode()))
            self.entry_reads += len(rows)
        rows.sort()
        return Placement(head=head, rebuilds=rebuilds, rows=rows, by_key={row[2]: row for row in rows})

    def _advance(self, txn: Txn, kept: Placement, head: int) -> Placement:
        keys: set[str] = set()
        for seq, record in self.store.log.records(txn, after=kept.head, upto=head):
            envelope = decode_envelope(unframe(record, seq)[1])
            if envelope.stream.startswith(_CACHE_STREAM):
                key = getattr(envelope.event, "key", None)
                keys.add(key if isinstance(key, str) else envelope.stream[len(_CACHE_STREAM):])
        moved: dict[str, Row | None] = {}
        for key in keys:
            row = self._read(txn, key)
            if row != kept.by_key.get(key):
                moved[key] = row
        if not moved:
            return msgspec.structs.replace(kept, head=head)
        rows, by_key = list(kept.rows), dict(kept.by_key)
        for key, row in moved.items():
            old = by_key.pop(key, None)
            if old is not None:
                del rows[bisect_left(rows, old)]
            if row is not None:
                insort(rows, row)
                by_key[key] = row
        return Placement(head=head, rebuilds=kept.rebuilds, rows=rows, by_key=by_key)
