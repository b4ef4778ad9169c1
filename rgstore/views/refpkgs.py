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
entry, newest first), so storing it costs O(1) per step and reading it costs O(depth). A strip
folds the whole log into the one step it keeps, with a credit per entry naming the step that
wrote it (the strip's own entry is credited to the strip).

The strip entry counts files as taxtastic does: ``taxit strip`` deletes every file in the
package directory that the current state does not name, and taxtastic adds one new file per
file key set (never overwriting or reusing one), keeping it until a strip. So the count is
the file keys set since the last strip (undone and discarded steps included) minus the
current state's keys; the head keeps the first term.
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
_HEADS, _STEPS, _NAMES = "refpkgs.heads", "refpkgs.steps", "refpkgs.names"
_SEP = b"\x00"


class Credit(msgspec.Struct, frozen=True, array_like=True):
    """The step that wrote a log entry: its seq, time and actor."""

    seq: int
    time: datetime
    actor: str


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
    """File keys set since the last strip (creation, import or strip counts its current keys):
    the files a taxtastic directory of this package would hold."""


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
    version: ClassVar[int] = 2
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
            self._strip(txn, env, name, head, envelope)
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
            head.added = len(files)
        else:  # an update (or a note); with no base, the creation itself was undone
            parent, depth = (base.seq, base.depth + 1) if base else (0, 0)
            files, metadata = _patched(
                dict(base.files) if base else {}, dict(base.metadata) if base else {}, event
            )
            log = [_message(event)]
            if isinstance(event, RefpkgUpdated):
                head.added += sum(1 for ref in event.files.values() if ref is not None)
        step = Step(seq=envelope.seq, parent=parent, depth=depth, files=files, metadata=metadata,
                    log=log, time=envelope.time, actor=envelope.actor)
        txn.put(_step_key(name, step.seq), encode_value(step), db=env.db(_STEPS))
        self._count(txn, env, name, step, +1)
        head.current = step.seq

    def _strip(self, txn: Txn, env: Environment, name: str, head: Head, envelope: Envelope) -> None:
        steps_db, names_db = env.db(_STEPS), env.db(_NAMES)
        keep = refpkg_step(txn, env, name, head.current) if head.current else None
        credited = [entry for step in refpkg_chain(txn, env, name, head.current) for entry in step.credited()]
        prefix = name.encode() + _SEP
        for key in [k for k, _ in iter_prefix(txn, names_db, prefix)]:
            txn.delete(key, db=names_db)
        for key in [k for k, _ in iter_prefix(txn, steps_db, prefix)]:
            txn.delete(key, db=steps_db)
        head.redo = []
        if keep is None:
            head.added = 0
            return
        removed = max(head.added - len(keep.files), 0)
        head.added = len(keep.files)
        stripped = (strip_message(removed), Credit(envelope.seq, envelope.time, envelope.actor))
        entries = [stripped, *credited]
        kept = msgspec.structs.replace(keep, parent=0, depth=0, log=[m for m, _c in entries],
                                       credits=[c for _m, c in entries])
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

