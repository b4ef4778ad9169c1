"""The refpkgs view's stored state: per-step snapshots, package heads, their keys and readers.

``rgstore.views.refpkgs`` folds the log into these sub-dbs; everything here only reads them
(and names their keys), so services and routes read package state without the fold.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import msgspec

from ..environment import Environment, Txn
from ..errors import IntegrityError
from ..events import FileRef
from . import SEQ

__all__ = [
    "Step",
    "Head",
    "Credit",
    "STREAM_PREFIX",
    "refpkg_stream",
    "refpkg_head",
    "refpkg_step",
    "refpkg_log",
    "refpkg_chain",
    "name_owner",
    "list_heads",
    "strip_message",
]

STREAM_PREFIX = "refpkg:"
HEADS_DB, STEPS_DB, NAMES_DB = "refpkgs.heads", "refpkgs.steps", "refpkgs.names"
KEY_SEP = b"\x00"
_MAX_NAME_BYTES = 500 - len(STREAM_PREFIX)
"""The longest package name a stream can carry (stream names are limited to 500 UTF-8 bytes)."""


class Credit(msgspec.Struct, frozen=True, array_like=True):
    """The step that wrote a log entry: its seq, time and actor."""

    seq: int
    time: datetime
    actor: str


class Step(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """A package's full state after one step (the snapshot ``Undone``/``Redone`` switch to).

    ``log`` holds the entries this step puts in front of its parent's log, newest first;
    ``parent`` is the step an undo returns to (0: none) and ``depth`` how many rollbacks
    ``refpkg rollback`` allows from here. A depth-0 step starts the package's log: its own
    ``log`` is the whole of it. Only a creation or import appended over a live state (through
    ``Store.append``) has depth 0 and a parent: the engine's undo may return there.
    """

    seq: int
    parent: int
    depth: int
    files: dict[str, FileRef]
    metadata: dict[str, str]
    log: list[str]
    time: datetime
    actor: str
    credits: list[Credit] = []
    """Who wrote each entry of ``log``, when a strip folded other steps' entries into this one;
    empty: every entry is this step's own."""

    def credited(self) -> list[tuple[str, Credit]]:
        """(entry, the step that wrote it) for each entry of ``log``, newest first."""
        if self.credits:
            return list(zip(self.log, self.credits, strict=True))
        own = Credit(self.seq, self.time, self.actor)
        return [(message, own) for message in self.log]


class Head(msgspec.Struct, kw_only=True, array_like=True):
    """Where a package stands: its current step (0: its creation was undone) and the undone steps."""

    current: int
    redo: list[int] = []
    """Undone steps a rollforward can re-apply; the next one is last."""
    added: int = 0
    """File keys set since the last strip (creation, import or strip counts its current keys), plus
    the copies an update replaced within itself (``RefpkgUpdated.superseded``): the files a taxtastic
    directory of this package would hold."""


class StepLog(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """A stored ``Step`` read for its log and links only: files and metadata stay undecoded bytes.

    Walking a deep history for its log then costs the log entries, not every step's file table
    (a package of 1,000 files and 4,800 steps: 0.4 s instead of 5 s).
    """

    seq: int
    parent: int
    depth: int
    files: msgspec.Raw
    metadata: msgspec.Raw
    log: list[str]
    time: datetime
    actor: str
    credits: list[Credit] = []

    def credited(self) -> list[tuple[str, Credit]]:
        """(entry, the step that wrote it) for each entry of ``log``, newest first (as ``Step.credited``)."""
        if self.credits:
            return list(zip(self.log, self.credits, strict=True))
        own = Credit(self.seq, self.time, self.actor)
        return [(message, own) for message in self.log]


STEP_DECODER = msgspec.msgpack.Decoder(Step)
STEP_LOG_DECODER = msgspec.msgpack.Decoder(StepLog)
HEAD_DECODER = msgspec.msgpack.Decoder(Head)
NAME_DECODER = msgspec.msgpack.Decoder(tuple[str, int])


def refpkg_stream(name: str) -> str:
    """The stream of package ``name``."""
    return STREAM_PREFIX + name


def strip_message(removed: int) -> str:
    """The log entry taxtastic writes when it strips a package."""
    return f"Stripped refpkg (removed {removed} files)"


def _step_key(name: str, seq: int) -> bytes:
    return name.encode() + KEY_SEP + SEQ.pack(seq)


def _name_key(name: str, filename: str) -> bytes:
    return file_key(name.encode() + KEY_SEP, filename)


_MAX_KEY = 511
"""LMDB's key limit."""


def file_key(prefix: bytes, filename: str) -> bytes:
    """``prefix`` + the file name; a name too long for an LMDB key is replaced by its sha256.

    Package and file names the commands accept always fit; only a raw or replayed event can hold
    longer ones, and the fold must still take them (it is total).
    """
    key = prefix + filename.encode()
    if len(key) <= _MAX_KEY:
        return key
    # 16 digest bytes: the longest package prefix (494 bytes) still fits, and a prefix scan finds it.
    import hashlib  # here: only an over-long name needs it, and its import costs every command ~3 ms

    return prefix + b"\x01" + hashlib.sha256(filename.encode()).digest()[:16]


def refpkg_head(txn: Txn, environment: Environment, name: str) -> Head | None:
    """The package's head, or None if no such package was ever created."""
    key = name.encode()
    if not key or len(key) > _MAX_NAME_BYTES:
        return None  # no stream names such a package, and LMDB refuses such a key
    raw = txn.get(key, db=environment.db(HEADS_DB))
    return None if raw is None else HEAD_DECODER.decode(raw)


def not_retained(name: str, seq: int) -> IntegrityError:
    return IntegrityError(f"the refpkgs view retains no step {seq} of refpkg {name!r} "
                          "(the view is damaged; run `rgstore rebuild`)")


def refpkg_step(txn: Txn, environment: Environment, name: str, seq: int) -> Step:
    """The retained snapshot of step ``seq`` of package ``name`` (IntegrityError if not retained)."""
    raw = txn.get(_step_key(name, seq), db=environment.db(STEPS_DB))
    if raw is None:
        raise not_retained(name, seq)
    return STEP_DECODER.decode(raw)


def refpkg_chain(txn: Txn, environment: Environment, name: str, seq: int) -> Iterator[Step]:
    """Step ``seq`` and then every step a rollback reaches from it, newest first."""
    while seq:
        step = refpkg_step(txn, environment, name, seq)
        yield step
        seq = step.parent if step.depth else 0


def refpkg_log_chain(txn: Txn, environment: Environment, name: str, seq: int) -> Iterator[StepLog]:
    """``refpkg_chain`` without decoding any step's files or metadata (for logs of deep histories)."""
    db = environment.db(STEPS_DB)
    while seq:
        raw = txn.get(_step_key(name, seq), db=db)
        if raw is None:
            raise not_retained(name, seq)
        step = STEP_LOG_DECODER.decode(raw)
        yield step
        seq = step.parent if step.depth else 0


def refpkg_log(txn: Txn, environment: Environment, name: str, seq: int) -> list[str]:
    """The full log of the state after step ``seq``, newest first (as taxtastic's ``log``)."""
    out: list[str] = []
    for step in refpkg_log_chain(txn, environment, name, seq):
        out.extend(step.log)
    return out


def name_owner(txn: Txn, environment: Environment, name: str, filename: str) -> str | None:
    """sha256 of the blob a retained state of the package stores as ``filename``, if any."""
    raw = txn.get(_name_key(name, filename), db=environment.db(NAMES_DB))
    return None if raw is None else NAME_DECODER.decode(raw)[0]


def list_heads(txn: Txn, environment: Environment) -> Iterator[tuple[str, Head]]:
    """(name, head) of every package ever created, by name."""
    with txn.cursor(db=environment.db(HEADS_DB)) as cur:
        for key, raw in cur:
            yield bytes(key).decode(), HEAD_DECODER.decode(raw)
