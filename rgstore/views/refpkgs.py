"""The refpkg view: every reference package's retained states, one snapshot per undo step.

Stream ``refpkg:<name>``. Per package the view keeps a head (the current step and the undone
steps a rollforward can re-apply) and a full snapshot (files, metadata, log entries, parent
step) of every *retained* step: the done chain from the current step down to the oldest step
a rollback can reach, plus the undone steps. ``Undone``/``Redone`` switch the head to another
snapshot in O(1). Steps that can never be reached again (the redo side discarded by a new
step, everything but the current step after ``HistoryStripped``) are deleted, so the
``refpkgs.names`` index (file name -> blob, reference-counted over retained snapshots) is
exactly the set of blobs any reachable state needs.

A state's log is its own entries followed by its parent's log (each update step adds one
entry, newest first), so storing it costs O(1) per step and reading it costs O(depth).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import ClassVar

import msgspec

from ..codec import encode_value
from ..environment import Environment, Txn
from ..events import (
    Envelope,
    Event,
    FileRef,
    HistoryStripped,
    Noted,
    Redone,
    RefpkgCreated,
    RefpkgImported,
    RefpkgUpdated,
    Undone,
)
from . import SEQ, FoldContext, View, iter_prefix

__all__ = [
    "RefpkgsView",
    "Step",
    "Head",
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
_HEADS, _STEPS, _NAMES = "refpkgs.heads", "refpkgs.steps", "refpkgs.names"
_SEP = b"\x00"


class Step(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """A package's full state after one step (the snapshot ``Undone``/``Redone`` switch to).

    ``log`` holds the entries this step puts in front of its parent's log, newest first;
    ``parent`` is the step a rollback returns to (0: this is the oldest reachable state) and
    ``depth`` how many rollbacks are possible from here.
    """

    seq: int
    parent: int
    depth: int
    files: dict[str, FileRef]
    metadata: dict[str, str]
    log: list[str]
    time: datetime
    actor: str


class Head(msgspec.Struct, kw_only=True, array_like=True):
    """Where a package stands: its current step (0: its creation was undone) and the undone steps."""

    current: int
    redo: list[int] = []
    """Undone steps a rollforward can re-apply; the next one is last."""


_STEP = msgspec.msgpack.Decoder(Step)
_HEAD = msgspec.msgpack.Decoder(Head)
_NAME = msgspec.msgpack.Decoder(tuple[str, int])


def refpkg_stream(name: str) -> str:
    """The stream of package ``name``."""
    return STREAM_PREFIX + name


def strip_message(removed: int) -> str:
    """The log entry taxtastic writes when it strips a package."""
    return f"Stripped refpkg (removed {removed} files)"


def _step_key(name: str, seq: int) -> bytes:
    return name.encode() + _SEP + SEQ.pack(seq)


def _name_key(name: str, filename: str) -> bytes:
    return name.encode() + _SEP + filename.encode()


def refpkg_head(txn: Txn, environment: Environment, name: str) -> Head | None:
    """The package's head, or None if no such package was ever created."""
    raw = txn.get(name.encode(), db=environment.db(_HEADS))
    return None if raw is None else _HEAD.decode(raw)


def refpkg_step(txn: Txn, environment: Environment, name: str, seq: int) -> Step:
    """The retained snapshot of step ``seq`` of package ``name`` (LookupError if not retained)."""
    raw = txn.get(_step_key(name, seq), db=environment.db(_STEPS))
    if raw is None:
        raise LookupError(f"refpkg {name!r} retains no step {seq}")
    return _STEP.decode(raw)


def refpkg_chain(txn: Txn, environment: Environment, name: str, seq: int) -> Iterator[Step]:
    """Step ``seq`` and then every step a rollback reaches from it, newest first."""
    while seq:
        step = refpkg_step(txn, environment, name, seq)
        yield step
        seq = step.parent


def refpkg_log(txn: Txn, environment: Environment, name: str, seq: int) -> list[str]:
    """The full log of the state after step ``seq``, newest first (as taxtastic's ``log``)."""
    out: list[str] = []
    for step in refpkg_chain(txn, environment, name, seq):
        out.extend(step.log)
    return out


def name_owner(txn: Txn, environment: Environment, name: str, filename: str) -> str | None:
    """sha256 of the blob a retained state of the package stores as ``filename``, if any."""
    raw = txn.get(_name_key(name, filename), db=environment.db(_NAMES))
    return None if raw is None else _NAME.decode(raw)[0]


def list_heads(txn: Txn, environment: Environment) -> Iterator[tuple[str, Head]]:
    """(name, head) of every package ever created, by name."""
    with txn.cursor(db=environment.db(_HEADS)) as cur:
        for key, raw in cur:
            yield bytes(key).decode(), _HEAD.decode(raw)


class RefpkgsView(View):
    """Folds ``refpkg:*`` streams into heads, per-step snapshots and a file-name index."""

    name: ClassVar[str] = "refpkgs"
    version: ClassVar[int] = 1
    dbs: ClassVar[tuple[str, ...]] = (_HEADS, _STEPS, _NAMES)
    streams: ClassVar[tuple[str, ...]] = ("refpkg:",)
    handles: ClassVar[tuple[type[Event], ...]] = (
        RefpkgCreated, RefpkgImported, RefpkgUpdated, Noted, Undone, Redone, HistoryStripped,
    )

    def apply(self, ctx: FoldContext, envelope: Envelope) -> None:
        """Move the package's head, adding or dropping snapshots as the zipper requires."""
        if not envelope.stream.startswith(STREAM_PREFIX):
            return
        name = envelope.stream[len(STREAM_PREFIX):]
        txn, env = ctx.txn, ctx.environment
        head = refpkg_head(txn, env, name) or Head(current=0)
        event = envelope.event
        if isinstance(event, Undone):
            head.current = event.restored_seq
            head.redo.append(event.undone_seq)
        elif isinstance(event, Redone):
            if event.redone_seq in head.redo:
                head.redo.remove(event.redone_seq)
            head.current = event.redone_seq
        elif isinstance(event, HistoryStripped):
            self._strip(txn, env, name, head)
        else:
            self._push(txn, env, name, head, envelope)
        txn.put(name.encode(), encode_value(head), db=env.db(_HEADS))

    def _push(self, txn: Txn, env: Environment, name: str, head: Head, envelope: Envelope) -> None:
        event = envelope.event
        # A new step discards the redo side (taxtastic's rule, and the history view's).
        for seq in head.redo:
            self._drop(txn, env, name, seq)
        head.redo = []
        base = refpkg_step(txn, env, name, head.current) if head.current else None
        if isinstance(event, (RefpkgCreated, RefpkgImported)):
            parent, depth = 0, 0
            files, metadata, log = dict(event.files), dict(event.metadata), list(event.log)
        else:  # an update (or a note); with no base, the creation itself was undone
            parent, depth = (base.seq, base.depth + 1) if base else (0, 0)
            files, metadata = _patched(
                dict(base.files) if base else {}, dict(base.metadata) if base else {}, event
            )
            log = [_message(event)]
        step = Step(seq=envelope.seq, parent=parent, depth=depth, files=files, metadata=metadata,
                    log=log, time=envelope.time, actor=envelope.actor)
        txn.put(_step_key(name, step.seq), encode_value(step), db=env.db(_STEPS))
        self._count(txn, env, name, step, +1)
        head.current = step.seq

    def _strip(self, txn: Txn, env: Environment, name: str, head: Head) -> None:
        steps_db, names_db = env.db(_STEPS), env.db(_NAMES)
        keep = refpkg_step(txn, env, name, head.current) if head.current else None
        log = refpkg_log(txn, env, name, head.current)
        kept_names = {ref.name for ref in keep.files.values()} if keep else set()
        prefix = name.encode() + _SEP
        stale_names = [k for k, _ in iter_prefix(txn, names_db, prefix)]
        removed = sum(1 for k in stale_names if k[len(prefix):].decode() not in kept_names)
        for key in stale_names:
            txn.delete(key, db=names_db)
        for key in [k for k, _ in iter_prefix(txn, steps_db, prefix)]:
            txn.delete(key, db=steps_db)
        head.redo = []
        if keep is None:
            return
        kept = msgspec.structs.replace(keep, parent=0, depth=0, log=[strip_message(removed), *log])
        txn.put(_step_key(name, kept.seq), encode_value(kept), db=steps_db)
        self._count(txn, env, name, kept, +1)

    def _drop(self, txn: Txn, env: Environment, name: str, seq: int) -> None:
        key = _step_key(name, seq)
        raw = txn.get(key, db=env.db(_STEPS))
        if raw is None:
            return
        self._count(txn, env, name, _STEP.decode(raw), -1)
        txn.delete(key, db=env.db(_STEPS))

    @staticmethod
    def _count(txn: Txn, env: Environment, name: str, step: Step, delta: int) -> None:
        db = env.db(_NAMES)
        for filename, sha in {ref.name: ref.sha256 for ref in step.files.values()}.items():
            key = _name_key(name, filename)
            raw = txn.get(key, db=db)
            owner, count = _NAME.decode(raw) if raw is not None else (sha, 0)
            count += delta
            if count > 0:
                txn.put(key, encode_value((owner, count)), db=db)
            else:
                txn.delete(key, db=db)

    def referenced_blobs(self, txn: Txn, environment: Environment) -> Iterable[str]:
        """Every blob a retained state (done or undone step) of any package names."""
        with txn.cursor(db=environment.db(_NAMES)) as cur:
            for _key, raw in cur:
                yield _NAME.decode(raw)[0]


def _message(event: Event) -> str:
    if isinstance(event, RefpkgUpdated):
        return event.message
    if isinstance(event, Noted):
        return event.text
    return ""


def _patched(
    files: dict[str, FileRef], metadata: dict[str, str], event: Event
) -> tuple[dict[str, FileRef], dict[str, str]]:
    if isinstance(event, RefpkgUpdated):
        for key, ref in event.files.items():
            if ref is None:
                files.pop(key, None)
            else:
                files[key] = ref
        for key, value in event.metadata.items():
            if value is None:
                metadata.pop(key, None)
            else:
                metadata[key] = value
    return files, metadata

