"""The refpkg view: every reference package's retained states, one snapshot per undo step.

Stream ``refpkg:<name>``. Per package the view keeps a head (the current step and the undone
steps a rollforward can re-apply) and a full snapshot (files, metadata, log entries, parent
step) of every *retained* step: the done chain from the current step down to the oldest step
a rollback can reach, plus the undone steps. ``Undone``/``Redone`` switch the head to another
snapshot in O(1). Steps that can never be reached again (the redo side discarded by a new
step, everything but the current step after ``HistoryStripped``) are deleted, so the
``refpkgs.names`` index (file name -> blob, reference-counted over retained snapshots) is
exactly the set of blobs any reachable state needs. ``RefpkgRemoved`` drops every step and name
of the package and leaves its head at no current step (as an undone creation), so the package
is gone, ``rgstore gc`` may free the files only it held, and a later creation or import starts
afresh; it ends the stream's history in the engine's zipper too.

The view runs its own zipper over the same steps as the engine's history view: every
undoable event on a package's stream is a step (an event of another domain appended there
through ``Store.append`` is a step that changes nothing), ``Undone`` returns to the current
step's parent and ``Redone`` re-applies the last undone step. So the fold is total (a zipper
event with nothing to move is a no-op) and never points the head at a step it dropped, whatever
the log holds; for every log the engine writes, it moves exactly as the history view does.

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

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar, TypeVar, cast

import msgspec

from ..codec import encode_value
from ..environment import Environment, Txn
from ..events import (
    EVENT_TYPES,
    Envelope,
    Event,
    HistoryStripped,
    Noted,
    Redone,
    RefpkgCreated,
    RefpkgImported,
    RefpkgUpdated,
    Undone,
)
from . import SEQ, FoldContext, View, iter_prefix
from .refpkgstate import (
    HEAD_DECODER,
    HEADS_DB,
    KEY_SEP,
    NAME_DECODER,
    NAMES_DB,
    STEP_DECODER,
    STEPS_DB,
    STREAM_PREFIX,
    Credit,
    Head,
    Step,
    file_key,
    list_heads,
    name_owner,
    not_retained,
    refpkg_chain,
    refpkg_head,
    refpkg_log,
    refpkg_step,
    refpkg_stream,
    strip_message,
)

T = TypeVar("T")

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

class RefpkgsView(View):
    """Folds ``refpkg:*`` streams into heads, per-step snapshots and a file-name index."""

    name: ClassVar[str] = "refpkgs"
    version: ClassVar[int] = 3
    dbs: ClassVar[tuple[str, ...]] = (HEADS_DB, STEPS_DB, NAMES_DB)
    streams: ClassVar[tuple[str, ...]] = ("refpkg:",)
    # Every event the history view moves on, so both zippers move together.
    handles: ClassVar[tuple[type[Event], ...]] = tuple(
        cls for cls in EVENT_TYPES.values()
        if cls.undoable or cls.ends_history or cls in (Undone, Redone, HistoryStripped)
    )

    def apply(self, ctx: FoldContext, envelope: Envelope) -> None:
        """Move the package's head, adding or dropping snapshots as the zipper requires."""
        self.apply_batch(ctx, (envelope,))

    def apply_batch(self, ctx: FoldContext, envelopes: Sequence[Envelope]) -> None:
        """Fold envelopes in seq order in memory, then write each changed key once.

        Gives the same bytes as folding one envelope at a time: a rebuild batch touches each
        package's head and file names thousands of times, so this saves a get/decode/encode/put
        per event and per file name (and never writes a step that a later event drops).
        """
        fold = _Fold(ctx)
        packages = fold.packages
        cut = len(STREAM_PREFIX)
        for envelope in envelopes:
            stream = envelope.stream
            if not stream.startswith(STREAM_PREFIX):
                continue
            name = stream[cut:]
            if not name:
                continue  # a bare "refpkg:" stream (only raw appends make one) names no package
            package = packages.get(name) or fold.package(name)
            event = envelope.event
            if type(event) is RefpkgUpdated:  # the common case first: skips the isinstance chain
                fold.push(package, envelope)
            elif isinstance(event, Undone):
                fold.undo(package)
            elif isinstance(event, Redone):
                head = package.head
                if head.redo:  # else a replayed log redoes nothing: nothing moves
                    head.current = head.redo.pop()
            elif isinstance(event, HistoryStripped):
                fold.strip(package, envelope)
            elif event.ends_history:  # RefpkgRemoved; the history view empties the stream's zipper too
                fold.remove(package)
            else:
                fold.push(package, envelope)
        fold.flush()

    def referenced_blobs(self, txn: Txn, environment: Environment) -> Iterable[str]:
        """Every blob a retained state (done or undone step) of any package names."""
        with txn.cursor(db=environment.db(NAMES_DB)) as cur:
            for _key, raw in cur:
                yield NAME_DECODER.decode(raw)[0]


class _Package:
    """One package while a batch folds: its head, the steps and name counts read or changed."""

    __slots__ = ("prefix", "head", "head_raw", "steps", "dirty", "index", "wiped")

    def __init__(self, prefix: bytes, head_raw: bytes | None) -> None:
        self.prefix = prefix
        self.head_raw = head_raw
        self.head = Head(current=0) if head_raw is None else HEAD_DECODER.decode(head_raw)
        self.steps: dict[int, Step | None] = {}
        """Every step this batch has read or written (None: not retained)."""
        self.dirty: set[int] = set()
        """Steps whose stored key this batch changes: put (created in this batch, so not stored
        before it), or delete when None (read from the steps db, then dropped)."""
        self.index: dict[str, list[Any]] = {}
        """File name -> [owner sha256, retained steps naming it (0: no entry), the stored value
        before this batch (None: none, or a strip wiped it), its key]."""
        self.wiped = False
        """A strip in this batch dropped every stored step and name of the package."""


class _Fold:
    """A batch's overlay over the view's sub-dbs: reads fall through to LMDB, writes wait for ``flush``."""

    __slots__ = ("txn", "heads_db", "steps_db", "names_db", "packages", "names")

    def __init__(self, ctx: FoldContext) -> None:
        self.txn = ctx.txn
        self.heads_db, self.steps_db, self.names_db = ctx.db(HEADS_DB), ctx.db(STEPS_DB), ctx.db(NAMES_DB)
        self.packages: dict[str, _Package] = {}
        self.names: dict[int, dict[str, str]] = {}
        """Each known step's file names -> sha256, by seq (unique across packages); steps that
        keep their parent's files share its dict."""

    def package(self, name: str) -> _Package:
        key = name.encode()
        raw = cast("bytes | None", self.txn.get(key, db=self.heads_db))  # buffers=False txns
        package = self.packages[name] = _Package(key + KEY_SEP, raw)
        return package

    def step(self, package: _Package, seq: int) -> Step:
        """The retained step ``seq`` as this batch sees it (LookupError if not retained)."""
        steps = package.steps
        step = steps[seq] if seq in steps else self._load(package, seq)
        if step is None:
            raise not_retained(package.prefix[:-1].decode(), seq)
        return step

    def undo(self, package: _Package) -> None:
        """Return to the current step's parent; the current step becomes the next redo.

        The parent, not ``Undone.restored_seq``: the view's own chain is the one it retains, so
        the head never lands on a dropped step, even for a log the engine would not write.
        """
        head = package.head
        if not head.current:
            return  # a replayed log undoes nothing: nothing moves (the engine refuses this append)
        head.redo.append(head.current)
        head.current = self.step(package, head.current).parent

    def _load(self, package: _Package, seq: int) -> Step | None:
        raw = None if package.wiped else self.txn.get(package.prefix + SEQ.pack(seq), db=self.steps_db)
        step = None if raw is None else STEP_DECODER.decode(raw)
        package.steps[seq] = step
        return step

    def _names(self, package: _Package, step: Step) -> dict[str, str]:
        names = self.names.get(step.seq)
        if names is None:
            names = self.names[step.seq] = {ref.name: ref.sha256 for ref in step.files.values()}
        return names

    def push(self, package: _Package, envelope: Envelope) -> None:
        """A new step on top of the current one (creation, import, update or note)."""
        event, head = envelope.event, package.head
        # A new step discards the redo side (taxtastic's rule, and the history view's).
        if head.redo:
            for seq in head.redo:
                self._drop(package, seq)
            head.redo = []
        base = self.step(package, head.current) if head.current else None
        names: dict[str, str] | None = None
        if isinstance(event, (RefpkgCreated, RefpkgImported)):
            # Over a live state (only Store.append does that), the engine's undo returns to it.
            parent, depth = head.current, 0
            files, metadata, log = dict(event.files), dict(event.metadata), list(event.log)
            head.added = len(files)
        else:  # an update (or a note); with no base, the creation itself was undone
            if base is None:
                parent, depth, files, metadata = 0, 0, {}, {}
            else:
                # Unchanged dicts (and their names) are shared with the base: snapshots never mutate.
                parent, depth, files, metadata = base.seq, base.depth + 1, base.files, base.metadata
                names = self.names.get(parent)
            if isinstance(event, RefpkgUpdated):
                if event.files:
                    files, names = _patched(files, event.files), None
                    head.added += sum(1 for ref in event.files.values() if ref is not None)
                if event.metadata:
                    metadata = _patched(metadata, event.metadata)
                head.added += event.superseded  # copies taxtastic's directory keeps beyond the keys set
                log = [event.message]
            else:
                log = [_message(event)]
        seq = envelope.seq
        step = Step(seq=seq, parent=parent, depth=depth, files=files, metadata=metadata,
                    log=log, time=envelope.time, actor=envelope.actor)
        package.steps[seq] = step
        package.dirty.add(seq)
        if names is None:
            names = {ref.name: ref.sha256 for ref in files.values()}
        self.names[seq] = names
        if names:
            self._count(package, names, +1)
        head.current = seq

    def strip(self, package: _Package, envelope: Envelope) -> None:
        """Keep only the current step, its log folded in with credits; drop everything else."""
        head = package.head
        keep = self.step(package, head.current) if head.current else None
        credited: list[tuple[str, Credit]] = []
        seq = head.current
        while seq:
            step = self.step(package, seq)
            credited.extend(step.credited())
            seq = step.parent if step.depth else 0
        package.wiped = True  # flush deletes every stored key of the package
        package.steps, package.dirty = {}, set()
        package.index = {}
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
        package.steps[kept.seq] = kept
        package.dirty.add(kept.seq)
        self._count(package, self._names(package, keep), +1)

    def remove(self, package: _Package) -> None:
        """Drop every step and file name of the package: no state remains to return to."""
        package.head = Head(current=0)
        package.wiped = True  # flush deletes every stored key of the package
        package.steps, package.dirty = {}, set()
        package.index = {}

    def _drop(self, package: _Package, seq: int) -> None:
        steps = package.steps
        step = steps[seq] if seq in steps else self._load(package, seq)
        if step is None:
            return
        self._count(package, self._names(package, step), -1)
        steps[seq] = None
        if seq in package.dirty:  # created in this batch: never written
            package.dirty.discard(seq)
        else:  # read from the steps db: delete it
            package.dirty.add(seq)

    def _count(self, package: _Package, names: dict[str, str], delta: int) -> None:
        index, prefix, get, db = package.index, package.prefix, self.txn.get, self.names_db
        for filename, sha in names.items():
            entry = index.get(filename)
            if entry is None:  # first touch in this batch: read the stored entry (inlined: hot)
                key = file_key(prefix, filename)
                raw = None if package.wiped else get(key, db=db)
                if raw is None:
                    index[filename] = [sha, max(delta, 0), None, key]
                    continue
                owner, count = NAME_DECODER.decode(raw)
                entry = index[filename] = [owner, count, raw, key]
            count = entry[1]
            if count == 0:  # a new index entry: the first step naming the file owns it
                entry[0] = sha
            count += delta
            entry[1] = count if count > 0 else 0

    def flush(self) -> None:
        """Write what the batch changed: deletes first, then one sorted ``putmulti`` per sub-db."""
        txn, steps_db, names_db = self.txn, self.steps_db, self.names_db
        head_puts: list[tuple[bytes, bytes]] = []
        step_puts: list[tuple[bytes, bytes]] = []
        name_puts: list[tuple[bytes, bytes]] = []
        pack, encode = SEQ.pack, encode_value
        # Built in key order, so each sort below only checks it.
        packages = self.packages.values()
        for package in sorted(packages, key=_prefix_of) if len(packages) > 1 else packages:
            prefix = package.prefix
            raw = encode(package.head)
            if raw != package.head_raw:
                head_puts.append((prefix[:-1], raw))
            if package.wiped:
                for db in (steps_db, names_db):
                    for key in [k for k, _ in iter_prefix(txn, db, prefix)]:
                        txn.delete(key, db=db)
            steps = package.steps
            dirty = package.dirty
            for seq in sorted(dirty) if len(dirty) > 1 else dirty:
                step = steps[seq]
                if step is None:
                    txn.delete(prefix + pack(seq), db=steps_db)
                else:
                    step_puts.append((prefix + pack(seq), encode(step)))
            for owner, count, before, key in package.index.values():
                if count:
                    value = encode((owner, count))
                    if value != before:
                        name_puts.append((key, value))
                elif before is not None:
                    txn.delete(key, db=names_db)
        for db, puts in ((self.heads_db, head_puts), (steps_db, step_puts), (names_db, name_puts)):
            if len(puts) > 16:
                puts.sort()  # B-tree pages visited in order, no Python call per key
                with txn.cursor(db=db) as cur:
                    cur.putmulti(puts)
            else:  # one command's events: a cursor costs more than it saves
                for key, value in puts:
                    txn.put(key, value, db=db)


def _prefix_of(package: _Package) -> bytes:
    return package.prefix


def _message(event: Event) -> str:
    """The log entry of a step that is not a refpkg update (one entry per step, as taxtastic)."""
    if isinstance(event, Noted):
        return event.text
    return f"Recorded {event.__struct_config__.tag} event"


def _patched(values: dict[str, T], changes: Mapping[str, T | None]) -> dict[str, T]:
    """A copy of ``values`` with each change set (a value) or dropped (None)."""
    out = dict(values)
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out
