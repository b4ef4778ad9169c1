"""The log's zstd dictionaries: announced by events, kept in ``meta``, registered per process.

``meta`` is never cleared by a rebuild, so a dictionary outlives every view; a record names the
dictionary it was compressed with, and a reader registers that dictionary on first sight.
"""

from __future__ import annotations

from .codec import CODEC_ZSTD_DICT, known_dictionary, record_dictionary, register_dictionary
from .environment import Db, Txn
from .events import CodecDictionaryAdded

__all__ = ["Dictionaries"]

_PREFIX = b"dict:"
_CURRENT = b"dict_current"


class Dictionaries:
    """Which zstd dictionaries a log holds, and which one new records use."""

    def __init__(self, meta: Db) -> None:
        self._meta = meta
        self.seen: set[bytes] = set()
        """4-byte dictionary ids already registered in this process (hot loops test this set)."""

    def keep(self, txn: Txn, event: CodecDictionaryAdded) -> None:
        """Store an announced dictionary and make it the current one."""
        dict_id = register_dictionary(event.data)  # the id records carry is zstd's, not the event's claim
        if dict_id:
            txn.put(_PREFIX + dict_id.to_bytes(4, "big"), event.data, db=self._meta)
            txn.put(_CURRENT, dict_id.to_bytes(4, "big"), db=self._meta)

    def current(self, txn: Txn) -> int:
        """Id of the zstd dictionary new records use (0: none yet)."""
        raw = txn.get(_CURRENT, db=self._meta)
        return int.from_bytes(raw, "big") if raw is not None else 0

    def load(self, txn: Txn) -> int:
        """Register every dictionary this log has announced in this process; returns how many."""
        n = 0
        cur = txn.cursor(db=self._meta)
        try:
            if cur.set_range(_PREFIX):
                for key, value in cur:
                    if not bytes(key).startswith(_PREFIX):
                        break
                    register_dictionary(bytes(value))
                    n += 1
        finally:
            cur.close()
        return n

    def need(self, txn: Txn, record: bytes) -> None:
        """Make sure the dictionary ``record`` was compressed with is registered."""
        dict_id = record_dictionary(record)
        if dict_id and not known_dictionary(dict_id):
            self.load(txn)  # announced after this process opened the log

    def note(self, txn: Txn, record: bytes) -> None:
        """``need``, remembered per dictionary id: the cheap check for loops over many records."""
        if record[0] == CODEC_ZSTD_DICT and record[1:5] not in self.seen:
            self.need(txn, record)
            self.seen.add(record[1:5])
