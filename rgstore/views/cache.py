"""The cache view: every live cache entry (files, checksums, last access, pin) and every eviction tombstone.

Sub-dbs: ``cache.entries`` (key -> ``CacheEntry``) and ``cache.evicted`` (key -> ``Tombstone``).
An eviction moves the entry to ``cache.evicted``; its files are deleted only after that commits,
so a tombstone whose directory still exists is an interrupted gc for the next run to finish.
A tombstone keeps the evicted entry's file checksums (a level-2 entry's raw checksums are part of
every level-1 key, so hits can be recognised after level 2 is gone) and its pin (so a rebuild of
a pinned entry is pinned again), and the NCBI annotation release it held (a request for another
release is not served the level-1 entries built from it). A later insert of the same key clears
the tombstone. Times are the envelopes' times (POSIX seconds), so access tracking never depends
on filesystem atime.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from typing import Any, ClassVar

import msgspec

from ..codec import encode_value
from ..environment import Db, Environment, Txn
from ..events import (
    CacheEvicted,
    CacheInserted,
    CachePinned,
    CacheTouched,
    CacheUnpinned,
    Envelope,
    Event,
    FileRef,
)
from . import FoldContext, View, iter_prefix

__all__ = ["CacheView", "CacheEntry", "Tombstone", "iso_time"]


def iso_time(seconds: float) -> str:
    """A view's POSIX time as JSON shows every time: ISO 8601 UTC ending in Z (as the log's datetimes)."""
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat().replace("+00:00", "Z")


class CacheEntry(msgspec.Struct, frozen=True, kw_only=True):
    """A live cache entry as the log describes it."""

    key: str
    level: int
    path: str
    """Directory relative to the cache root."""
    files: dict[str, FileRef]
    """Relative path inside the directory -> checksums recorded at insert."""
    request: dict[str, Any]
    inserted_seq: int
    inserted_at: float
    last_access: float
    """Time of the insert or the latest recorded touch."""
    touches: int = 0
    pinned: bool = False
    access_seq: int = 0
    """Seq of the insert or the latest recorded touch: the LRU order, which a clock set back cannot reorder."""
    annotation_release: str = ""
    """The NCBI annotation release its GTF header names ("" if none or unknown; see ``CacheInserted``)."""

    @property
    def size(self) -> int:
        """Bytes of all recorded files."""
        return sum(f.size for f in self.files.values())


class Tombstone(msgspec.Struct, frozen=True, kw_only=True):
    """An evicted entry: where its files were, when and why it went."""

    key: str
    level: int
    path: str
    evicted_seq: int
    evicted_at: float
    reason: str = ""
    files: dict[str, FileRef] = {}
    """The files (and checksums) the entry recorded when it was evicted."""
    pinned: bool = False
    """Whether the entry was pinned when it was evicted (only ``cache verify --evict`` evicts pinned ones)."""
    annotation_release: str = ""
    """The NCBI annotation release the evicted entry held: a request for another is not served its level-1 hits.

    "" (unchecked) for an entry inserted before releases were recorded: its GTF went with it."""


_ENTRY = msgspec.msgpack.Decoder(CacheEntry)
_TOMB = msgspec.msgpack.Decoder(Tombstone)


class CacheView(View):
    """Folds CacheInserted/Touched/Pinned/Unpinned/Evicted into live entries and tombstones."""

    name: ClassVar[str] = "cache"
    version: ClassVar[int] = 4  # 4: entries and tombstones record the annotation release
    dbs: ClassVar[tuple[str, ...]] = ("cache.entries", "cache.evicted")
    streams: ClassVar[tuple[str, ...]] = ("cache:",)
    handles: ClassVar[tuple[type[Event], ...]] = (
        CacheInserted,
        CacheTouched,
        CachePinned,
        CacheUnpinned,
        CacheEvicted,
    )

    def apply(self, ctx: FoldContext, envelope: Envelope) -> None:
        """Apply one cache event (events about keys with no live entry are ignored, except inserts)."""
        event = envelope.event
        entries, evicted = ctx.db("cache.entries"), ctx.db("cache.evicted")
        txn = ctx.txn
        when = envelope.time.timestamp()
        if isinstance(event, CacheInserted):
            entry = CacheEntry(
                key=event.key,
                level=event.level,
                path=event.path,
                files=dict(event.files),
                request=dict(event.request),
                inserted_seq=envelope.seq,
                inserted_at=when,
                last_access=when,
                access_seq=envelope.seq,
                annotation_release=event.annotation_release,
            )
            txn.put(event.key.encode(), encode_value(entry), db=entries)
            txn.delete(event.key.encode(), db=evicted)
            return
        assert isinstance(event, (CacheTouched, CachePinned, CacheUnpinned, CacheEvicted))
        current = self.get(txn, entries, event.key)
        if current is None:
            return
        if isinstance(event, CacheTouched):
            current = msgspec.structs.replace(
                current, last_access=when, touches=current.touches + 1, access_seq=envelope.seq
            )
        elif isinstance(event, CachePinned):
            current = msgspec.structs.replace(current, pinned=True)
        elif isinstance(event, CacheUnpinned):
            current = msgspec.structs.replace(current, pinned=False)
        else:
            tomb = Tombstone(
                key=event.key,
                level=current.level,
                path=current.path,
                evicted_seq=envelope.seq,
                evicted_at=when,
                reason=event.reason,
                files=current.files,
                pinned=current.pinned,
                annotation_release=current.annotation_release,
            )
            txn.delete(event.key.encode(), db=entries)
            txn.put(event.key.encode(), encode_value(tomb), db=evicted)
            return
        txn.put(event.key.encode(), encode_value(current), db=entries)

    def apply_batch(self, ctx: FoldContext, envelopes: Sequence[Envelope]) -> None:
        """Fold the batch over an in-memory overlay of the touched keys, then write each key once."""
        txn, entries, evicted = ctx.txn, ctx.db("cache.entries"), ctx.db("cache.evicted")
        live: dict[str, CacheEntry | None] = {}  # read-through: None = no live entry
        changed: set[str] = set()
        tombs: dict[str, Tombstone | None] = {}  # None = delete the tombstone
        replace = msgspec.structs.replace
        for envelope in envelopes:
            event = envelope.event
            key: str = event.key  # type: ignore[union-attr]  # every handled event has one
            cls = type(event)
            if cls is CacheInserted:
                assert isinstance(event, CacheInserted)
                when = envelope.time.timestamp()
                live[key] = CacheEntry(
                    key=key, level=event.level, path=event.path, files=dict(event.files),
                    request=dict(event.request), inserted_seq=envelope.seq, inserted_at=when, last_access=when,
                    access_seq=envelope.seq, annotation_release=event.annotation_release,
                )
                changed.add(key)
                tombs[key] = None
                continue
            if key in live:
                current = live[key]
            else:
                current = live[key] = self.get(txn, entries, key)
            if current is None:
                continue
            if cls is CacheTouched:
                live[key] = replace(
                    current, last_access=envelope.time.timestamp(), touches=current.touches + 1,
                    access_seq=envelope.seq,
                )
            elif cls is CachePinned:
                live[key] = replace(current, pinned=True)
            elif cls is CacheUnpinned:
                live[key] = replace(current, pinned=False)
            else:
                assert isinstance(event, CacheEvicted)
                tombs[key] = Tombstone(
                    key=key, level=current.level, path=current.path, evicted_seq=envelope.seq,
                    evicted_at=envelope.time.timestamp(), reason=event.reason, files=current.files,
                    pinned=current.pinned, annotation_release=current.annotation_release,
                )
                live[key] = None
            changed.add(key)
        for key in sorted(changed):
            entry = live[key]
            if entry is None:
                txn.delete(key.encode(), db=entries)
            else:
                txn.put(key.encode(), encode_value(entry), db=entries)
        for key, tomb in sorted(tombs.items(), key=lambda kv: kv[0]):
            if tomb is None:
                txn.delete(key.encode(), db=evicted)
            else:
                txn.put(key.encode(), encode_value(tomb), db=evicted)

    # -- queries (used by rgstore.cache with a read or write txn) -------------------------------

    @staticmethod
    def get(txn: Txn, db: Db, key: str) -> CacheEntry | None:
        """The live entry for ``key``, or None."""
        raw = txn.get(key.encode(), db=db)
        return None if raw is None else _ENTRY.decode(raw)

    @staticmethod
    def entries(txn: Txn, environment: Environment) -> Iterator[CacheEntry]:
        """Every live entry, in key order."""
        if not environment.has_db("cache.entries"):
            return
        with txn.cursor(db=environment.db("cache.entries")) as cur:
            for _key, raw in cur:
                yield _ENTRY.decode(raw)

    @staticmethod
    def tombstones(txn: Txn, environment: Environment) -> Iterator[Tombstone]:
        """Every evicted key not inserted again since, in key order."""
        if not environment.has_db("cache.evicted"):
            return
        with txn.cursor(db=environment.db("cache.evicted")) as cur:
            for _key, raw in cur:
                yield _TOMB.decode(raw)

    @staticmethod
    def tombstone(txn: Txn, db: Db, key: str) -> Tombstone | None:
        """The tombstone of an evicted key, or None."""
        raw = txn.get(key.encode(), db=db)
        return None if raw is None else _TOMB.decode(raw)

    @staticmethod
    def keys_with_prefix(txn: Txn, environment: Environment, prefix: str, limit: int = 10) -> list[str]:
        """Up to ``limit`` keys (live or evicted) starting with ``prefix``, in key order."""
        found: set[str] = set()
        for name in ("cache.entries", "cache.evicted"):
            if not environment.has_db(name):
                continue
            for key, _value in iter_prefix(txn, environment.db(name), prefix.encode()):
                found.add(key.decode())
                if len(found) > limit:
                    break
        return sorted(found)[:limit]
