"""Pages of the existing reference packages, by name, at a cost that follows the page, not the store.

The heads sub-db holds a head for every package ever created; a removed package (or one whose
creation was undone) keeps a head with no current step, so neither LMDB's entry count nor a
key seek gives the n-th *existing* package. ``HeadPages`` therefore indexes each snapshot of the
store once: one pass over the heads decoding only their current-step field, keeping the count
and the key of every ``MARK_EVERY``-th existing package. A page then seeks to the nearest mark
and reads at most ``MARK_EVERY - 1 + limit`` heads, so paging through N packages reads O(N)
heads in all (it read O(N) a page before). The index is exact for the snapshot it was built in:
it is keyed by the LMDB transaction id, which changes with every commit.
"""

from __future__ import annotations

import threading
from typing import NamedTuple

import msgspec

from .environment import Environment, Txn
from .views.refpkgstate import HEAD_DECODER, HEADS_DB, Head

__all__ = ["HeadPages", "MARK_EVERY"]

MARK_EVERY = 128
"""Existing packages between two marks: a page skips fewer than this many before its first item."""


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


class HeadPages:
    """Pages of (name, head) of existing packages, with the index of the newest snapshot read."""

    def __init__(self, environment: Environment) -> None:
        self.environment = environment
        self._index: _Index | None = None
        self._lock = threading.Lock()  # one index build at a time; readers of a built one never wait

    def page(self, txn: Txn, offset: int, limit: int) -> tuple[int, list[tuple[str, Head]]]:
        """(existing packages, those from the ``offset``-th by name on, ``limit`` at most) in read txn ``txn``.

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
        with txn.cursor(db=self.environment.db(HEADS_DB)) as cur:
            if not cur.set_key(index.marks[offset // MARK_EVERY]):
                raise AssertionError("a page mark is not a key of the snapshot it was built in")
            for key, raw in cur:
                if not _CURRENT.decode(raw).current:
                    continue
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
            with txn.cursor(db=self.environment.db(HEADS_DB)) as cur:
                for key, raw in cur:
                    if _CURRENT.decode(raw).current:
                        if total % MARK_EVERY == 0:
                            marks.append(bytes(key))
                        total += 1
            index = _Index(snapshot, total, marks)
            if self._index is None or self._index.snapshot <= snapshot:
                self._index = index  # an older snapshot's reader does not evict a newer index
            return index
