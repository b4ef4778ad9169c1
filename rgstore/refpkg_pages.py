"""Pages of the existing reference packages, by name, at a cost that follows the page, not the store.

The heads sub-db holds a head for every package ever created; a removed package (or one whose
creation was undone) keeps a head with no current step, so neither LMDB's entry count nor a
key seek gives the n-th *existing* package. ``HeadPages`` therefore indexes each snapshot of the
store once: one pass over the heads decoding only their current-step field, keeping the count
and the key of every ``MARK_EVERY``-th existing package, and where each run of at least
``SKIP_RUN`` removed heads starts and ends. A page then seeks to the nearest mark and reads at most
``MARK_EVERY - 1 + limit`` existing heads, jumping over long removed runs (a page once read every
removed head between its mark and its end: 9,000 of 10,010 for the last of 10 packages left
among 10,000 removed), so paging through N packages reads O(N) heads in all. The index is exact
for the snapshot it was built in: it is keyed by the LMDB transaction id, which changes with every commit.
"""

from __future__ import annotations

import threading
from bisect import bisect_right
from collections.abc import Iterator
from typing import NamedTuple

import lmdb
import msgspec

from .environment import Environment, Txn
from .views.refpkgstate import HEAD_DECODER, HEADS_DB, Head

__all__ = ["HeadPages", "MARK_EVERY"]

MARK_EVERY = 128
"""Existing packages between two marks: a page skips fewer than this many before its first item."""
SKIP_RUN = 16
"""Removed heads in a row that the index lets a page jump over: a page reads fewer than this many
removed heads between two existing ones, and the index holds at most one key pair per this many removed."""


class _Current(msgspec.Struct, array_like=True):
    """A stored head read for its current step alone (array-like: the trailing fields are skipped)."""

    current: int


_CURRENT = msgspec.msgpack.Decoder(_Current)


class _Index(NamedTuple):
    snapshot: int
    """The LMDB transaction id the index was built in (a read transaction's: the last commit it sees)."""
    total: int
    marks: list[bytes]
    """Key of existing package number 0, MARK_EVERY, 2 * MARK_EVERY, ... by name."""
    skips: dict[bytes, bytes | None]
    """First key of each run of at least SKIP_RUN removed heads -> key of the existing package after it (None: none)."""
    skip_starts: list[bytes]
    """The keys of ``skips``, sorted: where a seek to an arbitrary name finds the run it lands in."""


class HeadPages:
    """Pages of (name, head) of existing packages, with the index of the newest snapshot read."""

    def __init__(self, environment: Environment) -> None:
        self.environment = environment
        self._index: _Index | None = None
        self._lock = threading.Lock()  # one index build at a time; readers of a built one never wait

    def page(self, txn: Txn, offset: int, limit: int, *, after: str | None = None) -> tuple[int, list[tuple[str, Head]]]:
        """(existing packages, those from the ``offset``-th by name on, ``limit`` at most) in read txn ``txn``.

        With ``after`` (then ``offset`` must be 0): those whose name sorts above ``after``, which need
        not exist (keyset paging: a package removed since still marks where the next page starts).
        ``txn`` must be a read transaction: inside a write transaction the heads may change
        under the same transaction id. A store without the heads sub-db has no package.
        """
        if not self.environment.has_db(HEADS_DB):
            return 0, []
        index = self._index_of(txn)
        if offset >= index.total or limit <= 0:
            return index.total, []
        out: list[tuple[str, Head]] = []
        skip = offset % MARK_EVERY
        start, exact = index.marks[offset // MARK_EVERY], True
        if after is not None:
            skip = 0
            # The smallest key above ``after``'s own (names hold no NUL); inside a long removed run, past it.
            start, exact = after.encode() + b"\x00", False
            run = bisect_right(index.skip_starts, start) - 1
            if run >= 0:
                past = index.skips[index.skip_starts[run]]
                if past is None:
                    return index.total, []  # in the last run: nothing exists after it
                if past > start:
                    start, exact = past, True
        with txn.cursor(db=self.environment.db(HEADS_DB)) as cur:
            for key, raw in _existing(cur, start, index.skips, exact=exact):
                if skip:
                    skip -= 1
                    continue
                out.append((bytes(key).decode(), HEAD_DECODER.decode(raw)))
                if len(out) == limit:
                    break
        return index.total, out

    def _index_of(self, txn: Txn) -> _Index:
        snapshot = txn.id()
        index = self._index
        if index is not None and index.snapshot == snapshot:
            return index
        with self._lock:
            index = self._index
            if index is not None and index.snapshot == snapshot:
                return index  # another thread built it while this one waited
            total, marks = 0, []
            skips: dict[bytes, bytes | None] = {}
            run, run_start = 0, b""  # removed heads in a row just read, and the first one's key
            with txn.cursor(db=self.environment.db(HEADS_DB)) as cur:
                for key, raw in cur:
                    if not _CURRENT.decode(raw).current:
                        if run == 0:
                            run_start = bytes(key)
                        run += 1
                        continue
                    if run >= SKIP_RUN:
                        skips[run_start] = bytes(key)
                    run = 0
                    if total % MARK_EVERY == 0:
                        marks.append(bytes(key))
                    total += 1
            if run >= SKIP_RUN:
                skips[run_start] = None
            index = _Index(snapshot, total, marks, skips, sorted(skips))
            if self._index is None or self._index.snapshot <= snapshot:
                self._index = index  # an older snapshot's reader does not evict a newer index
            return index


def _existing(
    cur: lmdb.Cursor, start: bytes, skips: dict[bytes, bytes | None], *, exact: bool = True,
) -> Iterator[tuple[bytes | memoryview, bytes | memoryview]]:
    """(key, head) of each existing package from key ``start`` on, jumping over the long removed runs in ``skips``.

    ``exact``: ``start`` is a key of the index's snapshot; else the walk begins at the first key at or above it.
    """
    at: bytes | None = start
    while at is not None:
        if not exact:
            exact = True
            if not cur.set_range(at):
                return
        elif not cur.set_key(at):
            raise AssertionError("a key of the page index is not a key of the snapshot it was built in")
        at = None
        for key, raw in cur:
            if _CURRENT.decode(raw).current:
                yield key, raw
                continue
            if (name := bytes(key)) in skips:  # a run's first head: go on after the run
                at = skips[name]
                break
        if at is None:
            return
