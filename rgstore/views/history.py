"""The generic undo/redo zipper over each stream's undoable steps.

Per stream, a *done* stack (the current step on top) and an *undone* stack (the next redo on
top). An ordinary undoable event pushes onto done and clears undone (taxtastic's rule: a new
step discards the redo side); ``Undone`` moves the top of done onto undone; ``Redone`` moves
it back; ``HistoryStripped`` keeps only the current step; an event that ``ends_history`` (a
removal) empties both stacks. The append fills the seqs inside
``Undone``/``Redone``/``HistoryStripped`` from this view, so every other view folds them
without asking anyone.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import ClassVar

from ..environment import Db, Txn
from ..events import EVENT_TYPES, Envelope, Event, HistoryStripped, Redone, Undone
from . import FoldContext, View

__all__ = ["HistoryView", "done_stack", "undone_stack"]

_HEAD = struct.Struct(">II")
_SEQ = struct.Struct(">Q")
_IDX = struct.Struct(">I")


def _key(stream: str, part: bytes, index: int | None = None) -> bytes:
    base = stream.encode() + b"\x00" + part
    return base if index is None else base + _IDX.pack(index)


def _get(txn: Txn, db: Db, key: bytes) -> bytes:
    raw = txn.get(key, db=db)
    if raw is None:
        raise LookupError(f"history entry {key!r} missing (the zipper view is damaged; run `rgstore rebuild`)")
    return bytes(raw)


def _heads(txn: Txn, db: Db, stream: str) -> tuple[int, int]:
    raw = txn.get(_key(stream, b"H"), db=db)
    return _HEAD.unpack(raw) if raw is not None else (0, 0)


def _stack(txn: Txn, db: Db, stream: str, part: bytes, n: int) -> list[int]:
    return [_SEQ.unpack(_get(txn, db, _key(stream, part, i)))[0] for i in range(n)]


def done_stack(txn: Txn, db: Db, stream: str) -> list[int]:
    """Seqs of the stream's done steps, oldest first; the last one is current."""
    n_done, _ = _heads(txn, db, stream)
    return _stack(txn, db, stream, b"D", n_done)


def undone_stack(txn: Txn, db: Db, stream: str) -> list[int]:
    """Seqs of the stream's undone steps; the last one is the next to redo."""
    _, n_undone = _heads(txn, db, stream)
    return _stack(txn, db, stream, b"U", n_undone)


class _Stack:
    """One stack of a stream's zipper during a batch: stored entries plus an overlay of changes."""

    __slots__ = ("txn", "db", "stream", "part", "n", "stored", "overlay")

    def __init__(self, txn: Txn, db: Db, stream: str, part: bytes, n: int) -> None:
        self.txn, self.db, self.stream, self.part = txn, db, stream, part
        self.n = self.stored = n
        self.overlay: dict[int, int] = {}

    def _get(self, i: int) -> int:
        if i in self.overlay:
            return self.overlay[i]
        return int(_SEQ.unpack(_get(self.txn, self.db, _key(self.stream, self.part, i)))[0])

    def push(self, seq: int) -> None:
        self.overlay[self.n] = seq
        self.n += 1

    def pop(self) -> int:
        self.n -= 1
        return self._get(self.n)

    def clear(self) -> None:
        self.n = 0
        self.overlay.clear()

    def keep_top(self) -> None:
        if self.n:
            top = self._get(self.n - 1)
            self.overlay = {0: top}
            self.n = 1

    def write(self, puts: list[tuple[bytes, bytes]]) -> None:
        """Store the final stack: changed entries below n go to ``puts``; stored ones at or above n go."""
        n = self.n
        if not self.overlay and n >= self.stored:
            return  # untouched (the usual undone stack): nothing to write
        pack, base = _SEQ.pack, self.stream.encode() + b"\x00" + self.part
        puts.extend([(base + _IDX.pack(i), pack(seq)) for i, seq in self.overlay.items() if i < n])
        for i in range(n, self.stored):
            self.txn.delete(base + _IDX.pack(i), db=self.db)


class HistoryView(View):
    """Keeps each stream's zipper: which undoable steps are done and which are undone."""

    name: ClassVar[str] = "history"
    version: ClassVar[int] = 2  # 2: GenomeRemoved became a step and GenomeAdded ends its stream's history
    dbs: ClassVar[tuple[str, ...]] = ("history",)
    handles: ClassVar[tuple[type[Event], ...]] = tuple(
        cls for cls in EVENT_TYPES.values()
        if cls.undoable or cls.ends_history or cls in (Undone, Redone, HistoryStripped)
    )

    def apply(self, ctx: FoldContext, envelope: Envelope) -> None:
        """Move the stream's zipper according to the event."""
        event = envelope.event
        if not (event.undoable or event.ends_history or isinstance(event, (Undone, Redone, HistoryStripped))):
            return
        txn, db, stream = ctx.txn, ctx.db("history"), envelope.stream
        n_done, n_undone = _heads(txn, db, stream)
        if isinstance(event, (Undone, Redone)) and not (n_done if isinstance(event, Undone) else n_undone):
            return  # nothing to move: see apply_batch
        if isinstance(event, Undone):
            seq = self._pop(txn, db, stream, b"D", n_done)
            txn.put(_key(stream, b"U", n_undone), _SEQ.pack(seq), db=db)
            n_done, n_undone = n_done - 1, n_undone + 1
        elif isinstance(event, Redone):
            seq = self._pop(txn, db, stream, b"U", n_undone)
            txn.put(_key(stream, b"D", n_done), _SEQ.pack(seq), db=db)
            n_done, n_undone = n_done + 1, n_undone - 1
        elif isinstance(event, HistoryStripped):
            if n_done:
                top = _get(txn, db, _key(stream, b"D", n_done - 1))
                for i in range(n_done):
                    txn.delete(_key(stream, b"D", i), db=db)
                txn.put(_key(stream, b"D", 0), top, db=db)
            self._clear(txn, db, stream, b"U", n_undone)
            n_done, n_undone = min(n_done, 1), 0
        elif event.ends_history:
            self._clear(txn, db, stream, b"D", n_done)
            self._clear(txn, db, stream, b"U", n_undone)
            n_done, n_undone = 0, 0
        else:
            txn.put(_key(stream, b"D", n_done), _SEQ.pack(envelope.seq), db=db)
            self._clear(txn, db, stream, b"U", n_undone)
            n_done, n_undone = n_done + 1, 0
        txn.put(_key(stream, b"H"), _HEAD.pack(n_done, n_undone), db=db)

    def apply_batch(self, ctx: FoldContext, envelopes: Sequence[Envelope]) -> None:
        """Move each stream's zipper through the batch in memory, then write only what changed."""
        txn, db = ctx.txn, ctx.db("history")
        # Most streams in a batch only push steps: for them, (stored done, stored undone, pushed seqs)
        # is enough. A stream meeting Undone/Redone/HistoryStripped switches to a pair of _Stacks.
        pushes: dict[str, tuple[int, int, list[int]]] = {}
        stacks: dict[str, tuple[_Stack, _Stack]] = {}
        get, unpack = txn.get, _HEAD.unpack
        for envelope in envelopes:
            event, stream = envelope.event, envelope.stream
            cls = type(event)
            if cls is not Undone and cls is not Redone and cls is not HistoryStripped and not cls.ends_history:
                pair = stacks.get(stream)
                if pair is None:
                    pushed = pushes.get(stream)
                    if pushed is None:
                        raw = get(stream.encode() + b"\x00H", db=db)
                        n_done, n_undone = unpack(raw) if raw is not None else (0, 0)
                        pushes[stream] = (n_done, n_undone, [envelope.seq])
                    else:
                        pushed[2].append(envelope.seq)
                    continue
                done, undone = pair
                done.overlay[done.n] = envelope.seq
                done.n += 1
                if undone.n:
                    undone.clear()
                continue
            pair = stacks.get(stream)
            if pair is None:
                pair = stacks[stream] = self._stacks(txn, db, stream, pushes.pop(stream, None))
            done, undone = pair
            if cls is Undone:
                # A step to move is always there for an append (the engine refuses an undo of nothing), but not
                # always for a rebuild under newer rules: an FHR undo the previous release took after a re-init
                # finds the stack that GenomeAdded now empties. It moves nothing, rather than fail every open.
                if done.n:
                    undone.push(done.pop())
            elif cls is Redone:
                if undone.n:
                    done.push(undone.pop())
            elif cls is HistoryStripped:
                done.keep_top()
                undone.clear()
            else:  # ends_history
                done.clear()
                undone.clear()
        puts: list[tuple[bytes, bytes]] = []
        pack, index, delete = _SEQ.pack, _IDX.pack, txn.delete
        for stream, (n_done, n_undone, seqs) in pushes.items():
            base = stream.encode() + b"\x00"
            done_base = base + b"D"
            puts.extend([(done_base + index(i), pack(seq)) for i, seq in enumerate(seqs, n_done)])
            for i in range(n_undone):  # a new step discards the redo side
                delete(base + b"U" + index(i), db=db)
            puts.append((base + b"H", _HEAD.pack(n_done + len(seqs), 0)))
        for stream, (done, undone) in stacks.items():
            done.write(puts)
            undone.write(puts)
            puts.append((stream.encode() + b"\x00H", _HEAD.pack(done.n, undone.n)))
        puts.sort()  # one sorted putmulti: B-tree pages are visited in order, and no Python call per key
        with txn.cursor(db=db) as cur:
            cur.putmulti(puts)

    @staticmethod
    def _stacks(txn: Txn, db: Db, stream: str, pushed: tuple[int, int, list[int]] | None) -> tuple[_Stack, _Stack]:
        """The stream's zipper as two _Stacks, after the steps this batch already pushed."""
        if pushed is None:
            raw = txn.get(stream.encode() + b"\x00H", db=db)
            n_done, n_undone = _HEAD.unpack(raw) if raw is not None else (0, 0)
            return _Stack(txn, db, stream, b"D", n_done), _Stack(txn, db, stream, b"U", n_undone)
        n_done, n_undone, seqs = pushed
        done, undone = _Stack(txn, db, stream, b"D", n_done), _Stack(txn, db, stream, b"U", n_undone)
        for seq in seqs:
            done.push(seq)
        undone.clear()
        return done, undone

    @staticmethod
    def _pop(txn: Txn, db: Db, stream: str, part: bytes, n: int) -> int:
        key = _key(stream, part, n - 1)
        raw = txn.pop(key, db=db)
        assert raw is not None
        seq: int = _SEQ.unpack(raw)[0]
        return seq

    @staticmethod
    def _clear(txn: Txn, db: Db, stream: str, part: bytes, n: int) -> None:
        for i in range(n):
            txn.delete(_key(stream, part, i), db=db)

    @staticmethod
    def top(txn: Txn, db: Db, stream: str) -> tuple[int, int]:
        """(current step's seq, the step below it) of a stream; 0 where there is none."""
        n_done, _ = _heads(txn, db, stream)
        cur = _SEQ.unpack(_get(txn, db, _key(stream, b"D", n_done - 1)))[0] if n_done else 0
        below = _SEQ.unpack(_get(txn, db, _key(stream, b"D", n_done - 2)))[0] if n_done > 1 else 0
        return cur, below

    @staticmethod
    def next_redo(txn: Txn, db: Db, stream: str) -> int:
        """Seq of the step a redo would re-apply; 0 if nothing is undone."""
        _, n_undone = _heads(txn, db, stream)
        return int(_SEQ.unpack(_get(txn, db, _key(stream, b"U", n_undone - 1)))[0]) if n_undone else 0
