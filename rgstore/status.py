"""What a store holds and whether it is healthy, from what the log and views already know.

``store_status(store)`` answers in one short read transaction plus a few ``stat`` calls: counts
come from LMDB's own statistics or small view scans, disk use from LMDB's page accounting and
the sizes views recorded (cache entries, refpkg blobs, the RefgetStore index). It never walks
the blob, cache or sequence trees and never hashes anything, so it stays fast on big stores;
what only such a walk could tell (files nothing references any more) is left to ``gc`` and
``verify``. Whether a content tree (``blobs/``, ``cache/``, the sequences under ``refget/``) is there
at all when the views reference content in it is one ``scandir`` step each (a store replayed from
a log export alone holds none). It works on a read-only handle, a fresh store, and a store without ``refget/``.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from typing import TYPE_CHECKING

import msgspec

from .checkpoints import out_of_step, read_checkpoint
from .errors import RgstoreError, StoreClosedError
from .log import FORMAT_VERSION, EventLog
from .mirrorstatus import MirrorStatus
from .mirrorstatus import status as mirror_status
from .pendingsync import PREFIX, abandoned_marks
from .views import SEQ
from .views.cache import CacheView
from .views.genomes import all_genomes
from .views.refpkgstate import HEADS_DB, KEY_SEP, NAME_DECODER, NAMES_DB, STEPS_DB, list_heads

if TYPE_CHECKING:
    from pathlib import Path

    from .environment import Txn
    from .servedstore import ServedStore
    from .store import Store

__all__ = ["StoreStatus", "Counts", "DiskPart", "ViewState", "store_status"]


class Counts(msgspec.Struct, kw_only=True):
    """How many of each thing the views hold now."""

    genomes: int = 0
    collection_aliases: int = 0
    sequence_aliases: int = 0
    refpkgs: int = 0
    cache_level1: int = 0
    cache_level2: int = 0
    cache_pinned: int = 0
    blobs: int = 0
    """Distinct blobs some retained refpkg state references."""


class DiskPart(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Bytes one part of the store takes, and how that figure was obtained (None: only a walk could tell)."""

    part: str
    bytes: int | None
    basis: str
    file_bytes: int | None = None
    """The log only: the size of ``log/data.mdb`` (LMDB reuses its freed pages before growing it)."""


class ViewState(msgspec.Struct, kw_only=True):
    """One view's checkpoint against the head: ``state`` is current, lagging, stale or damaged."""

    name: str
    version: int
    checkpoint_version: int | None
    checkpoint_seq: int | None
    state: str
    detail: str = ""


class StoreStatus(msgspec.Struct, kw_only=True):
    """What ``rgstore status`` reports: identity, position, counts, disk use, replication and view health."""

    path: str | None
    log_id: str
    format_version: int
    head_seq: int
    head_time: datetime | None
    streams: int
    counts: Counts
    disk: list[DiskPart]
    views: list[ViewState]
    pending_syncs: list[str]
    """Marks of commands that died before refreshing outside copies (the next writable open finishes them)."""
    replica: MirrorStatus | None
    """Set when the store is (or was, until promoted) a mirror; the upstream is not contacted."""
    problems: list[str]
    healthy: bool
    warnings: list[str] = []
    """What opening the store left undone but went ahead without (``Store.warnings``): not problems by themselves."""
    missing_content: list[str] = []
    """Kinds of content (``verify``'s names: blobs, cache_files, sequences) the views reference and none is held."""


class _Size(msgspec.Struct):
    """A stored ``FileRef`` read for its blob and size alone (the other keys are skipped)."""

    sha256: str
    size: int


class _StepFiles(msgspec.Struct, array_like=True):
    """A stored refpkg step read for its files only (array-like: the trailing fields are skipped)."""

    seq: int
    parent: int
    depth: int
    files: dict[str, _Size]


_STEP_FILES = msgspec.msgpack.Decoder(_StepFiles)


def store_status(store: Store, *, served: ServedStore | None = None) -> StoreStatus:
    """Everything ``rgstore status`` shows about ``store``, without walking file trees or hashing.

    ``served``: the server's handle ``store`` was taken from (``/status``), which serves a store that
    replaces it at its path by itself: a replaced store's problem then says so, not to reopen it.
    """
    damage = {view.name: why for view, why in out_of_step(store) if why}
    with store.read() as txn:
        head, _ = store.log.head(txn)
        log_id = store.log.log_id(txn)
        raw_format = store.log.meta_get(txn, "format")
        head_time = _head_time(store, txn, head)
        views = _views(store, txn, head, damage)
        unreadable_counts = ""
        try:
            counts, cache_bytes = _counts(store, txn)
            counts.blobs, blob_bytes = _blobs(store, txn)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            if all(v.state != "stale" for v in views):
                raise
            # A view folded by another rgstore version (readable only after its rebuild) may not decode.
            counts, cache_bytes, blob_bytes = Counts(), 0, 0
            unreadable_counts = f"counts and sizes are not shown: a stale view does not decode ({exc})"
        log_part = _log_disk(store, txn)
        streams = _entries(store, txn, "streams")
        records = _entries(store, txn, "log")
    replica = mirror_status(store, check_upstream=False)
    marks, unreadable = _pending_marks(store)
    disk = [
        log_part,
        _refget_disk(store),
        DiskPart(part="blobs", bytes=blob_bytes,
                 basis="sizes recorded for blobs retained refpkg states reference (unreferenced files: see gc)"),
        DiskPart(part="cache", bytes=cache_bytes, basis="sizes recorded for the live cache entries' files"),
    ]
    problems = []
    try:
        store.environment.check_in_place()
    except StoreClosedError:  # a long-lived handle reads on from the old files, which nobody updates
        problems.append(_moved(served))
    if records != head:  # gapless from 1: a torn copy or a file cut short, which only verify can place
        problems.append(f"the log holds {records:,} records but its head is seq {head:,} (a damaged or torn copy "
                        "of log/); run `rgstore verify`")
    # An audit index behind the head costs speed only: its readers check it and read the log instead.
    falls_back = {view.name for view in store.views if view.reads_fall_back}
    problems += [f"view {v.name!r} is {v.state}: {v.detail}" for v in views
                 if v.state != "current" and not (v.state in ("lagging", "stale") and v.name in falls_back)]
    problems += [unreadable_counts] if unreadable_counts else []
    # Said of who can finish it: a writing command by a user who may not write refget/ leaves it (Store.warnings).
    finisher = " by a user who may write refget/" if store.warnings else ""
    problems += [f"pending sync {name}: a command died before refreshing alias/FHR files; open the store "
                 f"writable (any writing command{finisher}) to finish it" for name in marks if name not in unreadable]
    problems += [f"pending sync {name}: another user's mark this user may not open (its command may still be "
                 "running); a writable open finishes it if not" for name in unreadable]
    missing = [] if unreadable_counts or replica.upstream is not None else _missing_content(store, counts)
    if missing:
        problems.append(f"the views reference content this store holds none of ({', '.join(_TREES[k] for k in missing)} "
                        "empty), as after `rgstore replay` of a `rgstore log export` (the log only); run `rgstore "
                        "verify` for the files and how to bring them")
    return StoreStatus(
        path=str(store.path), log_id=log_id, format_version=int(raw_format) if raw_format else FORMAT_VERSION,
        head_seq=head, head_time=head_time, streams=streams, counts=counts, disk=disk, views=views,
        pending_syncs=marks, replica=replica if replica.upstream is not None else None,
        problems=problems, healthy=not problems, warnings=list(store.warnings), missing_content=missing,
    )


_TREES = {"blobs": "blobs/", "cache_files": "cache/", "sequences": "refget/ sequences"}


def _missing_content(store: Store, counts: Counts) -> list[str]:
    """The kinds of content the views reference while their tree holds no entry at all (verify names the files).

    One ``scandir`` step per tree, and a genome scan only when the sequence tree is empty. A mirror
    (or a promoted one) is never asked: it fetches blobs, cache files and sequences lazily.
    """
    missing = []
    if counts.blobs and not _holds_any(store.blobs.root):
        missing.append("blobs")
    if counts.cache_level1 + counts.cache_level2 and not _holds_any(store.cache_path):
        missing.append("cache_files")
    sequences = _sequence_tree(store)
    if sequences is not None and not _holds_any(sequences) and _has_local_sequences(store):
        missing.append("sequences")
    return missing


def _holds_any(directory: Path) -> bool:
    """Whether ``directory`` holds an entry besides dot-named ones (temporary files, lock directories).

    Stops at the first such entry; a directory this process cannot list counts as holding some (no claim).
    """
    try:
        with os.scandir(directory) as entries:
            return any(not entry.name.startswith(".") for entry in entries)
    except FileNotFoundError:
        return False
    except OSError:
        return True


def _sequence_tree(store: Store) -> Path | None:
    """The RefgetStore's directory of sequence files (its index's path template), None if it cannot tell."""
    try:
        meta = json.loads((store.refget_path / "rgstore.json").read_bytes())
        template = meta.get("seqdata_path_template") if isinstance(meta, dict) else None
    except (OSError, ValueError):
        return None
    fixed = str(template or "sequences/%s2/%s.seq").split("%", 1)[0]
    top = fixed.split("/", 1)[0] if "/" in fixed else ""
    return store.refget_path / top if top else None  # files right in refget/: its index is there anyway


def _has_local_sequences(store: Store) -> bool:
    """Whether some recorded genome has sequences that must be local (not fetched from a remote URL)."""
    with store.read() as txn:
        return any(g.sequences and not g.source.remote_url for g in all_genomes(txn, store.environment))


def _moved(served: ServedStore | None) -> str:
    """The problem of a handle whose store was deleted, moved or replaced: what happens next, or what to do."""
    if served is None:
        return ("the store's directory was deleted, moved or replaced since this handle opened it; open it again "
                "where it is now (run the command again)")
    # A server needs no restart: each worker serves the store at its path once one opens there.
    return served.unopened or ("the store's directory was deleted, moved or replaced since this server opened it; "
                              "this server serves the store there once it opens (it looks about once a second)")


def _pending_marks(store: Store) -> tuple[list[str], list[str]]:
    """(every pending-sync mark, those this user may not open): abandoned ones, plus any it cannot check."""
    names = [mark.name for mark in abandoned_marks(store.path)]
    # abandoned_marks skips a mark it cannot open (another user's, mode 0600): say so rather than stay silent.
    unreadable = [p.name for p in sorted(store.path.glob(PREFIX + "*")) if not os.access(p, os.R_OK)]
    return sorted({*names, *unreadable}), unreadable


def _entries(store: Store, txn: Txn, name: str) -> int:
    """Entries in one sub-db by LMDB's own count (0 if a read-only handle finds it not created yet)."""
    if not store.environment.has_db(name):
        return 0
    return store.environment.stat_db(name, txn)["entries"]


def _head_time(store: Store, txn: Txn, head: int) -> datetime | None:
    if not head:
        return None
    try:
        envelope = store.log.get(txn, head)
    except (RgstoreError, msgspec.DecodeError):
        return None  # e.g. an event type only a newer rgstore knows: the rest of the status still stands
    return envelope.time if envelope is not None else None


def _counts(store: Store, txn: Txn) -> tuple[Counts, int]:
    """The views' counts, and the bytes of the live cache entries' recorded files."""
    counts = Counts(
        genomes=_entries(store, txn, "genomes.records"),
        collection_aliases=_entries(store, txn, "aliases.collections"),
        sequence_aliases=_entries(store, txn, "aliases.sequences"),
    )
    if store.environment.has_db(HEADS_DB):
        counts.refpkgs = sum(1 for _name, h in list_heads(txn, store.environment) if h.current)
    cache_bytes = 0
    for entry in CacheView.entries(txn, store.environment):
        if entry.level == 1:
            counts.cache_level1 += 1
        else:
            counts.cache_level2 += 1
        counts.cache_pinned += entry.pinned
        cache_bytes += entry.size
    return counts, cache_bytes


def _blobs(store: Store, txn: Txn) -> tuple[int, int]:
    """(distinct referenced blobs, their bytes): the names index, sized by the retained steps' FileRefs.

    Each file's sha256 and size (the size recorded when the blob was verified on the way in) is
    read from the packages' current steps, then from a pass over the other retained steps only
    until every blob is sized: no step is decoded whole and no blob is ``stat``-ed, so a lazy
    mirror without the files sizes them as well as the primary.
    """
    env = store.environment
    if not env.has_db(NAMES_DB) or not env.has_db(STEPS_DB):
        return 0, 0
    with txn.cursor(db=env.db(NAMES_DB)) as cur:
        wanted = {NAME_DECODER.decode(raw)[0] for _key, raw in cur}
    sizes: dict[str, int] = {}
    steps = env.db(STEPS_DB)
    # Every metadata update retains a step (100k in a busy store), but the current steps name
    # almost every blob: the pass over all of them is for blobs only older states name.
    if env.has_db(HEADS_DB):
        for name, head in list_heads(txn, env):
            raw = txn.get(name.encode() + KEY_SEP + SEQ.pack(head.current), db=steps) if head.current else None
            for ref in _STEP_FILES.decode(raw).files.values() if raw is not None else ():
                sizes[ref.sha256] = ref.size
    unsized = wanted.difference(sizes)
    with txn.cursor(db=steps) as cur:
        for raw in cur.iternext(keys=False, values=True) if unsized else ():
            for ref in _STEP_FILES.decode(raw).files.values():
                sizes[ref.sha256] = ref.size
                unsized.discard(ref.sha256)
            if not unsized:
                break
    # A file name's index entry keeps the blob that first claimed it, which no retained step may
    # name any more (commands never reuse a name for other bytes; a raw append may): its file's size, if any.
    for sha in wanted.difference(sizes):
        try:
            sizes[sha] = store.blobs.path(sha).stat().st_size
        except OSError:
            sizes[sha] = 0
    return len(wanted), sum(sizes[sha] for sha in wanted)


def _log_disk(store: Store, txn: Txn) -> DiskPart:
    """Pages LMDB holds data in (every sub-db's tree and its own bookkeeping) against ``data.mdb``'s size."""
    env = store.environment
    lmdb_env = env.env
    info = lmdb_env.info()
    main = {key: int(value) for key, value in lmdb_env.stat().items()}  # type: ignore[call-overload]
    page = main["psize"]
    pages = 2  # the two meta pages
    names = [n for n in EventLog.db_names(store.views) if env.has_db(n)]
    for stats in [main, *(env.stat_db(n, txn) for n in names)]:
        pages += stats["branch_pages"] + stats["leaf_pages"] + stats["overflow_pages"]
    high = (int(info["last_pgno"]) + 1) * page
    try:
        file_bytes: int | None = os.stat(env.path / "data.mdb").st_size
    except OSError:
        file_bytes = None
    used = min(pages * page, high)
    return DiskPart(part="log", bytes=used, file_bytes=file_bytes,
                    basis=f"LMDB pages in use ({high - used} bytes more are free for reuse below the high-water mark)")


def _refget_disk(store: Store) -> DiskPart:
    """The RefgetStore's sequence bytes as its own index states them (Raw mode: one byte a residue)."""
    index = store.refget_path / "rgstore.json"
    try:
        meta = json.loads(index.read_bytes())
    except FileNotFoundError:
        return DiskPart(part="refget", bytes=0 if not store.refget_path.exists() else None,
                        basis="no RefgetStore yet" if not store.refget_path.exists() else "no rgstore.json index")
    except (OSError, ValueError) as exc:
        return DiskPart(part="refget", bytes=None, basis=f"index unreadable ({exc.__class__.__name__})")
    logical = meta.get("logical_sequence_bytes") if isinstance(meta, dict) else None
    if not isinstance(logical, int):
        return DiskPart(part="refget", bytes=None, basis="the index states no size (du -s refget/ would tell)")
    return DiskPart(part="refget", bytes=logical,
                    basis="sequence bytes the RefgetStore index lists (lazily fetched ones may not be local yet)")


def _views(store: Store, txn: Txn, head: int, damage: dict[str, str]) -> list[ViewState]:
    """Each view's checkpoint against the head, damage named as ``rgstore.checkpoints`` names it."""
    out: list[ViewState] = []
    for view in store.views:
        checkpoint = read_checkpoint(store.log, txn, view)
        if checkpoint is None:
            out.append(ViewState(name=view.name, version=view.version, checkpoint_version=None, checkpoint_seq=None,
                                 state="damaged", detail=damage.get(view.name, "its checkpoint record is malformed")))
            continue
        version, seq = checkpoint
        if view.name in damage:
            state, detail = "damaged", damage[view.name]
        elif (version, seq) == (view.version, head) or (seq, head) == (0, 0):
            state, detail = "current", ""
        elif version != view.version and seq:
            state, detail = "stale", (f"folded by view version {version}, this rgstore has {view.version} "
                                      "(a writable open rebuilds it, e.g. `rgstore rebuild`)")
        elif seq < head:
            state, detail = "lagging", f"checkpoint at seq {seq}, {head - seq} events behind the head"
        else:
            state, detail = "damaged", f"checkpoint at seq {seq} but the head is {head}"
        out.append(ViewState(name=view.name, version=view.version, checkpoint_version=version, checkpoint_seq=seq,
                             state=state, detail=detail))
    return out
