"""The codec view: zstd dictionaries announced in the log, and which one new records use."""

from __future__ import annotations

import struct
from typing import ClassVar

from ..codec import register_dictionary
from ..environment import Environment, Txn
from ..events import CodecDictionaryAdded, Envelope, Event
from . import FoldContext, View

__all__ = ["CodecView", "current_dictionary", "load_dictionaries"]

_ID = struct.Struct(">I")
CURRENT = b"current"


class CodecView(View):
    """Keeps every dictionary by id (so any record can be decoded) and the current one for appends."""

    name: ClassVar[str] = "codec"
    version: ClassVar[int] = 1
    dbs: ClassVar[tuple[str, ...]] = ("codec",)
    handles: ClassVar[tuple[type[Event], ...]] = (CodecDictionaryAdded,)

    def apply(self, ctx: FoldContext, envelope: Envelope) -> None:
        """Store the dictionary, make it current, and register it in this process."""
        event = envelope.event
        assert isinstance(event, CodecDictionaryAdded)
        dict_id = register_dictionary(event.data)  # the id records carry is zstd's, not the event's claim
        db = ctx.db("codec")
        ctx.txn.put(b"d" + _ID.pack(dict_id), event.data, db=db)
        ctx.txn.put(CURRENT, _ID.pack(dict_id), db=db)


def current_dictionary(txn: Txn, environment: Environment) -> int:
    """Id of the dictionary new records should use (0: none yet)."""
    if not environment.has_db("codec"):
        return 0
    raw = txn.get(CURRENT, db=environment.db("codec"))
    return int(_ID.unpack(raw)[0]) if raw is not None else 0


def load_dictionaries(txn: Txn, environment: Environment) -> int:
    """Register every dictionary the log has announced; returns how many there are."""
    if not environment.has_db("codec"):
        return 0
    n = 0
    with txn.cursor(db=environment.db("codec")) as cur:
        for key, value in cur:
            if key.startswith(b"d"):
                register_dictionary(bytes(value))
                n += 1
    return n
