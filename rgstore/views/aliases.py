"""The alias view: collection and sequence aliases, following each alias stream's undo/redo zipper.

Streams are ``alias:<ns>/<name>`` (collection aliases -> seqcol digests) and
``seqalias:<ns>/<name>`` (sequence aliases -> sequence digests). Per alias the view keeps the
current target, a by-digest index, and one snapshot per event on the stream (the target after
that event), so ``Undone``/``Redone`` switch state by reading one snapshot, never replaying.

The view is also projected into the RefgetStore's alias files
(``refget/aliases/{collections,sequences}/<ns>.tsv``, ``alias<TAB>digest``) and the namespace
lists of ``refget/rgstore.json`` (``views.aliasfiles``), so gtars opened on ``STORE/refget`` resolves the same names.
"""

from __future__ import annotations

import threading
from bisect import bisect_right
from collections.abc import Collection, Iterator, Sequence
from typing import TYPE_CHECKING, ClassVar

from ..codec import decode_value, encode_value
from ..environment import Db, Environment, Txn
from ..events import (
    AliasRemoved,
    AliasSet,
    Envelope,
    Event,
    HistoryStripped,
    Noted,
    Redone,
    SequenceAliasRemoved,
    SequenceAliasSet,
    Undone,
)
from . import SEQ, FoldContext, View, iter_prefix
from .aliasnames import (  # re-exported: readers import names and reads from this one module
    COLLECTION,
    DEFAULT_NAMESPACE,
    DIGEST_RE,
    NAMESPACE_RE,
    SEQUENCE,
    Kind,
    alias_stream,
    check_name,
    check_namespace,
    parse_alias_stream,
)

if TYPE_CHECKING:
    from ..store import Store

__all__ = [
    "COLLECTION",
    "DEFAULT_NAMESPACE",
    "SEQUENCE",
    "AliasCounts",
    "AliasView",
    "Kind",
    "alias_entry",
    "alias_names",
    "alias_page",
    "alias_snapshots",
    "alias_stream",
    "alias_target",
    "aliases_of",
    "check_name",
    "check_namespace",
    "collection_alias",
    "collection_alias_keys",
    "collection_aliases_of",
    "count_aliases",
    "list_aliases",
    "parse_alias_stream",
    "sequence_alias",
    "sequence_aliases_of",
    "split_alias_key",
    "target_at",
]

_CURRENT: dict[Kind, str] = {COLLECTION: "aliases.collections", SEQUENCE: "aliases.sequences"}
_BY_DIGEST: dict[Kind, str] = {
    COLLECTION: "aliases.collections_by_digest",
    SEQUENCE: "aliases.sequences_by_digest",
}
_SNAPSHOTS = "aliases.snapshots"
_KIND_BYTE: dict[Kind, bytes] = {COLLECTION: b"c", SEQUENCE: b"s"}


def _key(namespace: str, name: str) -> bytes:
    return namespace.encode() + b"\x00" + name.encode()


def _split(key: bytes) -> tuple[str, str]:
    namespace, _, name = bytes(key).partition(b"\x00")
    return namespace.decode(), name.decode()


def _snapshot_prefix(kind: Kind, namespace: str, name: str) -> bytes:
    return _KIND_BYTE[kind] + _key(namespace, name) + b"\x00"


# -- reads (usable inside any transaction, including a command's write txn) ------------------


def _db(environment: Environment, name: str) -> Db | None:
    # A read-only handle on a store written before this view existed has no such sub-db yet.
    return environment.db(name) if environment.has_db(name) else None


def alias_entry(
    txn: Txn, environment: Environment, kind: Kind, namespace: str, name: str
) -> tuple[str, int] | None:
    """(digest, seq of the event that made it current) of an alias, or None if it does not exist."""
    db = _db(environment, _CURRENT[kind])
    raw = txn.get(_key(namespace, name), db=db) if db is not None else None
    if raw is None:
        return None
    value = decode_value(raw)
    assert isinstance(value, dict)
    return str(value["digest"]), int(value["seq"])


def alias_target(txn: Txn, environment: Environment, kind: Kind, namespace: str, name: str) -> str | None:
    """The digest an alias currently points at, or None if it does not exist."""
    entry = alias_entry(txn, environment, kind, namespace, name)
    return entry[0] if entry is not None else None


def collection_alias(txn: Txn, environment: Environment, namespace: str, name: str) -> str | None:
    """The seqcol digest collection alias ``namespace:name`` points at, or None."""
    return alias_target(txn, environment, COLLECTION, namespace, name)


def sequence_alias(txn: Txn, environment: Environment, namespace: str, name: str) -> str | None:
    """The sequence digest sequence alias ``namespace:name`` points at, or None."""
    return alias_target(txn, environment, SEQUENCE, namespace, name)


def list_aliases(
    txn: Txn, environment: Environment, kind: Kind, namespace: str | None = None, *, skip: int = 0,
    after: tuple[str, str] | None = None,
) -> Iterator[tuple[str, str, str, int]]:
    """(namespace, name, digest, seq that made it current), ordered by namespace then name.

    ``skip``: leave out the first ``skip`` aliases, stepping over their keys without reading
    their values, so a page deep in a large namespace costs a key walk, not a decode per alias.
    ``after``: start past this (namespace, name), so a long listing can be read in chunks, each
    in its own short transaction.
    """
    for key, raw in _walk(txn, environment, kind, namespace, skip=skip, after=after):
        value = decode_value(raw)
        assert isinstance(value, dict)
        ns, name = _split(key)
        yield ns, name, str(value["digest"]), int(value["seq"])


def alias_page(
    txn: Txn, environment: Environment, kind: Kind, namespace: str | None, limit: int, *, skip: int = 0,
    after: tuple[str, str] | None = None,
) -> tuple[list[tuple[str, str, str, int]], bool]:
    """(one page of ``list_aliases``, whether any alias follows it): ``limit`` at most, after ``skip`` keys or
    past ``after`` (which need not exist: keyset paging). Only the page's values are decoded."""
    page: list[tuple[str, str, str, int]] = []
    for key, raw in _walk(txn, environment, kind, namespace, skip=skip, after=after):
        if len(page) == limit:
            return page, True  # the next alias's value is never decoded
        value = decode_value(raw)
        assert isinstance(value, dict)
        page.append((*_split(key), str(value["digest"]), int(value["seq"])))
    return page, False


def alias_names(txn: Txn, environment: Environment, kind: Kind, namespace: str | None = None) -> Iterator[tuple[str, str]]:
    """(namespace, name) of every alias of one kind (in one namespace), in key order, from the keys alone."""
    for key, _ in _walk(txn, environment, kind, namespace, values=False):
        yield _split(key)


def _walk(
    txn: Txn, environment: Environment, kind: Kind, namespace: str | None, *, skip: int = 0, values: bool = True,
    after: tuple[str, str] | None = None,
) -> Iterator[tuple[bytes, bytes | memoryview]]:
    """(key, stored value or b"") of the current aliases of one kind (in one namespace), after ``skip`` keys
    (and past the alias ``after``)."""
    db = _db(environment, _CURRENT[kind])
    if db is None:
        return
    prefix = namespace.encode() + b"\x00" if namespace is not None else b""
    # The smallest key above ``after``'s: its own key plus a NUL (names hold no NUL).
    start = max(prefix, _key(*after) + b"\x00") if after is not None else prefix
    cur = txn.cursor(db=db)
    try:
        found = cur.set_range(start)
        for _ in range(skip):
            if not found or not bytes(cur.key()).startswith(prefix):
                return
            found = cur.next()
        while found:
            key = bytes(cur.key())
            if not key.startswith(prefix):
                return
            yield key, (cur.value() if values else b"")
            found = cur.next()
    finally:
        cur.close()


def alias_namespaces(txn: Txn, environment: Environment, kind: Kind) -> list[str]:
    """The namespaces holding aliases of one kind, in key order: one cursor seek per namespace, not a walk."""
    db = _db(environment, _CURRENT[kind])
    if db is None:
        return []
    found: list[str] = []
    cur = txn.cursor(db=db)
    try:
        ok = cur.first()
        while ok:
            namespace = bytes(cur.key()).partition(b"\x00")[0]
            found.append(namespace.decode())
            ok = cur.set_range(namespace + b"\x01")  # past every key of this namespace
    finally:
        cur.close()
    return found


def count_aliases(txn: Txn, environment: Environment, kind: Kind, namespace: str | None = None) -> int:
    """How many aliases of one kind there are (in one namespace), from their keys alone."""
    db = _db(environment, _CURRENT[kind])
    if db is None:
        return 0
    if namespace is None:
        return int(txn.stat(db)["entries"])
    return sum(1 for _ in alias_names(txn, environment, kind, namespace))


class AliasCounts:
    """``count_aliases`` of read transactions, walking a large namespace's keys once per commit, not once per page.

    LMDB counts a whole sub-db in O(1) but a key range only by walking it: every page of a listing
    filtered to a namespace of 100,000 aliases re-walked them all for its ``total`` (~90 ms, 1,000
    times for a walk of pages of 100). Counts are kept for the newest snapshot (the LMDB transaction
    id, which changes with every commit) and only for namespaces of ``MEMO_FROM`` aliases or more:
    smaller ones cost less to walk than to keep, and any name a client asks about stays cheap to refuse.
    """

    MEMO_FROM: ClassVar[int] = 256

    def __init__(self, environment: Environment) -> None:
        self.environment = environment
        self.keys_walked = 0
        """Alias keys walked to count namespaces (a work counter for tests and benchmarks)."""
        self._snapshot = -1
        self._counts: dict[tuple[Kind, str], int] = {}
        self._lock = threading.Lock()

    def count(self, txn: Txn, kind: Kind, namespace: str | None = None) -> int:
        """``count_aliases(txn, ...)``; ``txn`` must be a read transaction (a write's id does not mark its changes)."""
        if namespace is None:
            return count_aliases(txn, self.environment, kind)
        snapshot = txn.id()
        with self._lock:
            if snapshot == self._snapshot and (kind, namespace) in self._counts:
                return self._counts[kind, namespace]
        total = count_aliases(txn, self.environment, kind, namespace)
        with self._lock:
            self.keys_walked += total
            if snapshot > self._snapshot:  # an older snapshot's reader does not evict the newer counts
                self._snapshot, self._counts = snapshot, {}
            if snapshot == self._snapshot and total >= self.MEMO_FROM:
                self._counts[kind, namespace] = total
        return total


def aliases_of(txn: Txn, environment: Environment, kind: Kind, digest: str) -> list[tuple[str, str]]:
    """(namespace, name) of every alias currently pointing at ``digest``, sorted."""
    db = _db(environment, _BY_DIGEST[kind])
    if db is None:
        return []
    return [_split(key[len(digest) + 1:]) for key, _ in iter_prefix(txn, db, digest.encode() + b"\x00")]


def collection_alias_keys(txn: Txn, environment: Environment) -> list[bytes]:
    """The reverse index's key of every collection alias, in key order (``split_alias_key`` reads one).

    One cursor pass instead of a seek per genome (a search over every genome's aliases cost ~7 us
    a genome that way); keys, not names, so a caller can keep what it derived from one between walks.
    """
    db = _db(environment, _BY_DIGEST[COLLECTION])
    if db is None:
        return []
    cur = txn.cursor(db=db)
    try:
        return [bytes(key) for key in cur.iternext(values=False)]
    finally:
        cur.close()


def split_alias_key(key: bytes) -> tuple[str, str, str]:
    """(digest, namespace, name) of a reverse-index key, split at its first NUL.

    For a digest holding a NUL or a non-ASCII character, ``aliases_of`` is the authority.
    """
    digest, _, rest = key.partition(b"\x00")
    return (digest.decode(), *_split(rest))


def collection_aliases_of(txn: Txn, environment: Environment, digest: str) -> list[tuple[str, str]]:
    """(namespace, name) of the collection aliases of a genome digest."""
    return aliases_of(txn, environment, COLLECTION, digest)


def sequence_aliases_of(txn: Txn, environment: Environment, digest: str) -> list[tuple[str, str]]:
    """(namespace, name) of the sequence aliases of a sequence digest."""
    return aliases_of(txn, environment, SEQUENCE, digest)


def alias_snapshots(
    txn: Txn, environment: Environment, kind: Kind, namespace: str, name: str
) -> Iterator[tuple[int, str | None]]:
    """(seq, target after that event) for every event on the alias's stream, oldest first."""
    db = _db(environment, _SNAPSHOTS)
    if db is None:
        return
    prefix = _snapshot_prefix(kind, namespace, name)
    for key, raw in iter_prefix(txn, db, prefix):
        yield SEQ.unpack(key[len(prefix):])[0], (bytes(raw).decode() or None)


def target_at(
    txn: Txn, environment: Environment, kind: Kind, namespace: str, name: str, seq: int
) -> str | None:
    """The alias's target right after the event at ``seq`` on its stream (0: before any)."""
    db = _db(environment, _SNAPSHOTS)
    return _target_at(txn, db, _snapshot_prefix(kind, namespace, name), seq) if db is not None else None


def _target_at(txn: Txn, db: Db, prefix: bytes, seq: int) -> str | None:
    """The alias's target once the event at ``seq`` was applied.

    Other domains' undoable events may sit on an alias stream (the log accepts any event on any
    stream); they leave the target unchanged and get no snapshot, so the target after them is
    the latest snapshot before them.
    """
    if seq == 0:
        return None
    key = prefix + SEQ.pack(seq)
    raw = txn.get(key, db=db)
    if raw is None:
        cur = txn.cursor(db=db)
        try:
            # Step to the last key below ``key``: before the next larger key, or the db's last.
            positioned = cur.prev() if cur.set_range(key) else cur.last()
            if positioned and bytes(cur.key()).startswith(prefix):
                raw = cur.value()
        finally:
            cur.close()
    return (bytes(raw).decode() or None) if raw is not None else None


# -- the fold -----------------------------------------------------------------------------------

# Event class -> fold action; the fold dispatches on the exact type (one dict lookup per event).
_SET_C, _SET_S, _REMOVE_C, _REMOVE_S, _UNDO, _REDO, _KEEP = range(7)
_ACTIONS: dict[type[Event], int] = {
    AliasSet: _SET_C,
    SequenceAliasSet: _SET_S,
    AliasRemoved: _REMOVE_C,
    SequenceAliasRemoved: _REMOVE_S,
    Undone: _UNDO,
    Redone: _REDO,
}
_KIND_OFFSET: dict[Kind, int] = {COLLECTION: 0, SEQUENCE: 1}  # _SET_C/_REMOVE_C + offset: own kind


def _action(event: Event) -> int:
    """The fold action of an event whose exact type is not in ``_ACTIONS`` (subclasses, others)."""
    for cls, action in _ACTIONS.items():
        if isinstance(event, cls):
            return action
    return _KEEP  # Noted, HistoryStripped, anything else: the target stays where it is


class _Handles:
    """The view's sub-db handles in one environment (looked up once, not once per write)."""

    __slots__ = ("environment", "snapshots", "current", "by_digest")

    def __init__(self, ctx: FoldContext) -> None:
        self.environment = ctx.environment
        self.snapshots = ctx.db(_SNAPSHOTS)
        self.current = {kind: ctx.db(name) for kind, name in _CURRENT.items()}
        self.by_digest = {kind: ctx.db(name) for kind, name in _BY_DIGEST.items()}


class _Alias:
    """One alias while a batch folds: its stored entry, running entry and this batch's snapshots."""

    __slots__ = (
        "offset", "key", "prefix", "current_db", "by_digest_db", "stored_target", "stored_seq", "target",
        "seq", "snap_seqs", "snap_targets",
    )

    def __init__(self, kind: Kind, key: bytes, handles: _Handles, target: str | None, seq: int) -> None:
        self.offset = _KIND_OFFSET[kind]
        self.key = key
        self.prefix = _KIND_BYTE[kind] + key + b"\x00"
        self.current_db, self.by_digest_db = handles.current[kind], handles.by_digest[kind]
        self.stored_target, self.stored_seq = target, seq  # as in the current db; (None, 0): absent
        self.target, self.seq = target, seq
        self.snap_seqs: list[int] = []  # seqs of this batch's events on the alias, ascending
        self.snap_targets: list[str | None] = []  # the target right after each of them


class AliasView(View):
    """Current collection/sequence alias targets, a by-digest index and per-event snapshots."""

    name: ClassVar[str] = "aliases"
    version: ClassVar[int] = 1
    dbs: ClassVar[tuple[str, ...]] = (
        _CURRENT[COLLECTION],
        _BY_DIGEST[COLLECTION],
        _CURRENT[SEQUENCE],
        _BY_DIGEST[SEQUENCE],
        _SNAPSHOTS,
    )
    streams: ClassVar[tuple[str, ...]] = ("alias:", "seqalias:")
    handles: ClassVar[tuple[type[Event], ...]] = (
        AliasSet,
        AliasRemoved,
        SequenceAliasSet,
        SequenceAliasRemoved,
        Undone,
        Redone,
        HistoryStripped,
        Noted,
    )
    _bound: _Handles | None = None

    def apply(self, ctx: FoldContext, envelope: Envelope) -> None:
        """Move the alias named by the envelope's stream to its new target and snapshot it."""
        self.apply_batch(ctx, (envelope,))

    def apply_batch(self, ctx: FoldContext, envelopes: Sequence[Envelope]) -> None:
        """Fold envelopes in seq order, writing each touched alias's final state once.

        The batch folds in memory (per alias: stored entry, running entry, this batch's
        snapshots), then is written with the bytes folding event by event gives: one snapshot
        per event, and the current/by-digest entries as the last change left them.
        """
        txn = ctx.txn
        handles = self._bound
        if handles is None or handles.environment is not ctx.environment:
            handles = self._bound = _Handles(ctx)
        snapshots = handles.snapshots
        aliases: dict[str, _Alias | None] = {}  # by stream: a stream names exactly one alias
        actions, digest_re = _ACTIONS, DIGEST_RE
        for envelope in envelopes:
            stream = envelope.stream
            if stream in aliases:
                alias = aliases[stream]
            else:
                alias = aliases[stream] = _load(txn, handles, stream)
            if alias is None:
                continue  # other domains' streams, or malformed alias streams only raw appends create
            event = envelope.event
            action = actions.get(type(event))
            if action is None:
                action = _action(event)
            current = alias.target
            if action <= _SET_S:
                # A sequence-alias event on a collection stream (or vice versa) changes nothing.
                # So does a malformed digest (the service never writes one; raw appends might);
                # an ASCII-alphanumeric digest of the right length is well-formed without the regex.
                digest: str = event.digest  # type: ignore[union-attr]
                valid = action == alias.offset and len(digest) == 32 and (
                    (digest.isascii() and digest.isalnum()) or digest_re.fullmatch(digest) is not None
                )
                target = digest if valid else current
            elif action <= _REMOVE_S:
                target = None if action - _REMOVE_C == alias.offset else current
            elif action == _UNDO:
                target = _target_in_batch(txn, snapshots, alias, event.restored_seq)  # type: ignore[union-attr]
            elif action == _REDO:
                target = _target_in_batch(txn, snapshots, alias, event.redone_seq)  # type: ignore[union-attr]
            else:
                target = current
            alias.snap_seqs.append(envelope.seq)
            alias.snap_targets.append(target)
            if target != current:
                alias.target, alias.seq = target, envelope.seq
        touched = [a for a in aliases.values() if a is not None]
        if len(touched) == 1:
            _write_one(txn, snapshots, touched[0])  # most commands touch one alias
        elif touched:
            _write_sorted(txn, snapshots, touched)

    def external_drift(self, store: Store) -> list[str]:
        """Alias TSVs under ``refget/aliases/`` that disagree with the view."""
        from .aliasfiles import alias_file_drift, render_tsvs

        with store.read() as txn:
            wanted: dict[Kind, dict[str, bytes | None]] = {
                kind: dict(render_tsvs(list_aliases(txn, store.environment, kind))) for kind in (COLLECTION, SEQUENCE)
            }
        return [str(path.relative_to(store.path)) for path in alias_file_drift(store.refget_path, wanted)]

    def sync_external(self, store: Store, streams: Collection[str] | None = None) -> None:
        """Make ``refget/aliases/*/<ns>.tsv`` and the manifest's namespace lists match the view.

        With ``streams``, only the lines of the aliases those streams name are rewritten, in the
        TSVs of their namespaces (``patched_tsv``; a namespace whose file is missing, malformed or
        mostly changed is rendered whole): a command costs its own aliases and a copy of their
        files, not a pass over every alias of a namespace. The files matched the view before the
        command (a refresh that did not finish leaves a mark, and the next open renders everything),
        so they match it after; `verify` names a file changed behind rgstore's back and `rebuild` renders it.
        """
        from .aliasfiles import CannotPatch, patched_tsv, render_tsvs, tsv_path, write_alias_files

        if streams is None:

            def wanted() -> tuple[int, dict[Kind, dict[str, bytes | None]]]:
                with store.read() as txn:
                    return store.log.head(txn)[0], {
                        kind: dict(render_tsvs(list_aliases(txn, store.environment, kind))) for kind in (COLLECTION, SEQUENCE)
                    }

            write_alias_files(store.refget_path, wanted, lambda: store.head()[0])
            return
        scope: dict[Kind, dict[str, set[str]]] = {}
        for stream in streams:
            parsed = parse_alias_stream(stream)
            if parsed is not None and NAMESPACE_RE.fullmatch(parsed[1]):
                scope.setdefault(parsed[0], {}).setdefault(parsed[1], set()).add(parsed[2])
        if not scope:
            return

        # A namespace rendered from the view is the same at the same head: ``write_alias_files`` asks
        # again under its lock (patches build on the files), and a bulk command must not render twice.
        rendered: dict[tuple[Kind, str], tuple[int, bytes | None]] = {}

        def scoped() -> tuple[int, dict[Kind, dict[str, bytes | None]]]:
            out: dict[Kind, dict[str, bytes | None]] = {}
            env = store.environment
            with store.read() as txn:
                head = store.log.head(txn)[0]
                for kind, namespaces in scope.items():
                    files: dict[str, bytes | None] = {}
                    out[kind] = files
                    for ns, names in namespaces.items():
                        earlier = rendered.get((kind, ns))
                        if earlier is not None and earlier[0] == head:
                            files[ns] = earlier[1]
                            continue
                        targets = {name: alias_target(txn, env, kind, ns, name) for name in names}
                        try:
                            files[ns] = patched_tsv(tsv_path(store.refget_path, kind, ns), targets)
                        except CannotPatch:
                            files[ns] = render_tsvs(list_aliases(txn, env, kind, ns)).get(ns)  # None: no file
                            rendered[kind, ns] = head, files[ns]
                return head, out

        write_alias_files(store.refget_path, scoped, lambda: store.head()[0], complete=False, reads_files=True)


def _load(txn: Txn, handles: _Handles, stream: str) -> _Alias | None:
    """The fold state of the alias a stream names, as stored (None: not an alias stream)."""
    parsed = parse_alias_stream(stream)
    if parsed is None:
        return None
    kind, namespace, name = parsed
    key = _key(namespace, name)
    raw = txn.get(key, db=handles.current[kind])
    if raw is None:
        return _Alias(kind, key, handles, None, 0)
    value = decode_value(raw)
    assert isinstance(value, dict)
    return _Alias(kind, key, handles, str(value["digest"]), int(value["seq"]))


def _target_in_batch(txn: Txn, snapshots: Db, alias: _Alias, seq: int) -> str | None:
    """``_target_at`` over the stored snapshots plus the ones this batch has folded so far."""
    seqs = alias.snap_seqs
    if seqs and seq >= seqs[0]:
        # Stored snapshots all precede this batch, so the latest one at or before ``seq`` is ours.
        return alias.snap_targets[bisect_right(seqs, seq) - 1]
    return _target_at(txn, snapshots, alias.prefix, seq)


def _write_one(txn: Txn, snapshots: Db, alias: _Alias) -> None:
    """Store one folded alias with plain puts: its snapshots, then its entry if it changed."""
    prefix, pack = alias.prefix, SEQ.pack
    for seq, target in zip(alias.snap_seqs, alias.snap_targets):
        txn.put(prefix + pack(seq), (target or "").encode(), db=snapshots)
    key, stored, target = alias.key, alias.stored_target, alias.target
    if target == stored and alias.seq == alias.stored_seq:
        return
    if stored != target:
        if stored is not None:
            txn.delete(stored.encode() + b"\x00" + key, db=alias.by_digest_db)
        if target is not None:
            txn.put(target.encode() + b"\x00" + key, b"", db=alias.by_digest_db)
    if target is None:
        txn.delete(key, db=alias.current_db)
    else:
        txn.put(key, encode_value({"digest": target, "seq": alias.seq}), db=alias.current_db)


def _write_sorted(txn: Txn, snapshots: Db, aliases: list[_Alias]) -> None:
    """``_write_one`` for many aliases, with one sorted ``putmulti`` per sub-db."""
    # Sorted keys make LMDB's page walk sequential. A prefix holds exactly two NULs (names and
    # namespaces have none), so none is a prefix of another: prefix order, then seq order within
    # an alias, is key order, without sorting every snapshot key.
    aliases.sort(key=_prefix_of)
    pack = SEQ.pack
    with txn.cursor(db=snapshots) as cur:
        cur.putmulti([
            (prefix + pack(seq), (target or "").encode())
            for alias in aliases
            for prefix in (alias.prefix,)
            for seq, target in zip(alias.snap_seqs, alias.snap_targets)
        ])
    # Keyed by handle: one list per sub-db, sorted before its putmulti.
    puts: dict[Db, list[tuple[bytes, bytes]]] = {}
    for alias in aliases:
        key, stored, target = alias.key, alias.stored_target, alias.target
        if target == stored and alias.seq == alias.stored_seq:
            continue
        if stored != target:
            if stored is not None:
                txn.delete(stored.encode() + b"\x00" + key, db=alias.by_digest_db)
            if target is not None:
                puts.setdefault(alias.by_digest_db, []).append((target.encode() + b"\x00" + key, b""))
        if target is None:
            txn.delete(key, db=alias.current_db)
        else:
            puts.setdefault(alias.current_db, []).append(
                (key, encode_value({"digest": target, "seq": alias.seq}))
            )
    for db, items in puts.items():
        items.sort()
        with txn.cursor(db=db) as cur:
            cur.putmulti(items)


def _prefix_of(alias: _Alias) -> bytes:
    return alias.prefix
