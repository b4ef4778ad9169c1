"""`rgstore gc`: delete blobs and RefgetStore collections nothing references, and what killed commands left.

Deletion happens while holding the LMDB writer lock (inside a write transaction), and every
command re-checks its blobs exist inside its own write transaction, so a blob cannot vanish
between a command's check and its commit. Blobs younger than ``grace`` seconds are kept:
they may belong to a command that has written its files but not yet committed.
Temp files in ``blobs/`` go once aged past ``grace`` and unlocked: a download in flight holds its
temp file's flock however long it stalls, so ``--grace 0`` leaves it.

RefgetStore collections no genome in the genome view names (left by `genome remove`, or by an
import killed before it was recorded) go the same way: chosen and removed inside one write
transaction, with the same grace period, through gtars under its writer lock, their sequences with
them. One is kept whole while a recorded genome lists or a sequence alias names one of the sequences
only it holds (`alias set --sequence` checked it was there: gc must not leave the alias pointing at
nothing; gtars removes sequences only with a collection, so a later gc takes them all). Scratch
directories of killed imports and sequence fetches (``STORE/.ingest-*``, ``STORE/.remote-*``) go
once no process holds them, and so do the temp files of killed sequence-file rewrites
(``refget/sequences/*/.tmp-*``, ``seqrestore``), gtars' own ``.rgstore.tmp.*`` of killed commits, and
writer-lock files killed before they were linked into place (``refget/.rgstore.lock.*.new``), and
the temp files of cache-file downloads killed inside a live entry's directory (unlocked, as in ``blobs/``).
The ``refpkg rp`` name links of a removed blob go with it (``rgstore.blobnames``).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import msgspec

from .blobnames import sweep_names
from .environment import Txn
from .errors import ConflictError, InvalidInputError
from .files import SCRATCH_FLOOR_S, flock_held
from .store import Store

__all__ = ["GcReport", "collect_garbage", "SCRATCH_FLOOR_S"]
_REFGET_LOCK_TIMEOUT_S = 120


class GcReport(msgspec.Struct, kw_only=True):
    """What gc removed (or, with dry_run, would remove)."""

    removed: list[str] = []
    bytes_freed: int = 0
    kept_recent: list[str] = []
    temp_files_removed: int = 0
    collections_removed: list[str] = []
    """RefgetStore collections no genome references any more (e.g. after `genome remove`)."""
    collections_kept_recent: list[str] = []
    scratch_removed: list[str] = []
    """Scratch directories (``.ingest-*``, ``.remote-*``) that killed commands left behind."""
    name_links_removed: int = 0
    """``refpkg rp`` name links (``names/``, ``rgstore.blobnames``) to blobs removed or gone, and their temp links."""
    dry_run: bool = False


def collect_garbage(store: Store, *, dry_run: bool = False, grace: float = 600.0) -> GcReport:
    """Remove unreferenced blobs older than ``grace`` seconds and leftover temp files."""
    if math.isnan(grace) or grace < 0:
        # NaN compares false with every age: it would delete blobs of commands still running.
        raise InvalidInputError(f"grace must be a number of seconds >= 0, not {grace}")
    report = GcReport(dry_run=dry_run)
    now = time.time()

    def sweep(txn: Txn) -> None:
        refs: set[str] = set()
        for view in store.views:
            refs.update(view.referenced_blobs(txn, store.environment))
        for sha in store.blobs.all():
            if sha in refs:
                continue
            path = store.blobs.path(sha)
            stat = path.stat()
            if now - stat.st_mtime < grace:
                report.kept_recent.append(sha)
                continue
            report.removed.append(sha)
            report.bytes_freed += stat.st_size
            if not dry_run:
                store.blobs.delete(sha)
        for tmp in store.blobs.stale_temp_files():
            if _dead_blob_temp(tmp, now, grace):
                report.temp_files_removed += 1
                if not dry_run:
                    tmp.unlink(missing_ok=True)
        removed = set(report.removed)
        report.name_links_removed = sweep_names(store.path, removed=removed, blob_exists=store.blobs.exists,
                                                grace=grace, dry_run=dry_run)

    store.environment.write(sweep)
    _prune_refget(store, report, now=now, grace=grace, dry_run=dry_run)
    _sweep_refget(store, report, dry_run=dry_run)
    _sweep_sequence_temps(store, report, grace=grace, dry_run=dry_run)
    _sweep_scratch(store, report, grace=grace, dry_run=dry_run)
    _sweep_cache_install_temps(store, report, grace=grace, dry_run=dry_run)
    return report


def _sweep_cache_install_temps(store: Store, report: GcReport, *, grace: float, dry_run: bool) -> None:
    """Remove the temp files of cache-file downloads (mirror pulls, lazy fetches) that were killed mid-write."""
    from .cachecopy import leftover_install_temps

    for tmp in leftover_install_temps(store, older_than=max(grace, SCRATCH_FLOOR_S)):
        report.temp_files_removed += 1
        if not dry_run:
            tmp.unlink(missing_ok=True)


def _dead_blob_temp(tmp: Path, now: float, grace: float) -> bool:
    """Whether ``tmp`` (a ``blobs/.tmp-*`` file) is a killed writer's: aged past ``grace`` and unlocked.

    A live writer holds its temp file's flock (``BlobStore.put_chunks``) however long its download
    stalls; ``SCRATCH_FLOOR_S`` covers the moment between the file's creation and that lock.
    """
    try:
        aged = now - tmp.stat().st_mtime >= max(grace, SCRATCH_FLOOR_S)
    except FileNotFoundError:
        return False  # its writer renamed or removed it meanwhile
    return aged and not flock_held(tmp)


def _prune_refget(store: Store, report: GcReport, *, now: float, grace: float, dry_run: bool) -> None:
    """Remove RefgetStore collections that no genome in the view names and that are older than ``grace``.

    The choice and the removal happen in one write transaction: no genome can be recorded in
    between, so a command that checks its collection inside its own transaction never records
    a genome whose sequences this run deleted. While an import runs (``imports_paused``) every
    unreferenced collection is kept, reported as recent: one it reuses looks as old as its first import.
    """
    from .refgetstore import import_running, imports_paused, open_refget, strip_sq
    from .views.aliases import sequence_aliases_of
    from .views.genomes import all_genomes, genomes_with_sequence

    collections = store.refget_path / "collections"
    if not collections.is_dir():
        return
    env = store.environment

    def unwanted(txn: Txn) -> list[str]:
        wanted = {genome.digest for genome in all_genomes(txn, env)}
        report.collections_kept_recent, out = [], []
        for index in sorted(collections.glob("*.rgsi")):
            digest = index.stem
            if digest in wanted:
                continue
            try:
                age = now - index.stat().st_mtime
            except FileNotFoundError:
                continue
            if age < grace:
                report.collections_kept_recent.append(digest)
            else:
                out.append(digest)
        return out

    def needed(handle: Any, txn: Txn, digest: str) -> bool:
        """Whether a recorded genome lists, or a sequence alias names, a sequence only this collection holds.

        (A remote genome's fetched sequence has no collection of its own: gtars counts it an orphan.)
        Such a collection is kept whole until nothing needs them: gtars removes sequences only with a
        collection, so removing it while keeping its orphans kept every other one (a genome) for good.
        """
        return any(genomes_with_sequence(txn, env, strip_sq(str(s))) or sequence_aliases_of(txn, env, strip_sq(str(s)))
                   for s in handle.plan_orphan_removal(digest))

    def keep_all(candidates: list[str]) -> None:
        report.collections_kept_recent = sorted({*report.collections_kept_recent, *candidates})

    if dry_run:
        with store.read() as txn:
            candidates = unwanted(txn)
            if candidates and import_running(store):
                keep_all(candidates)
                candidates = []
            if candidates:  # what a real run would keep, it is not reported as removed
                reader = open_refget(store, write=False)
                candidates = [digest for digest in candidates if not needed(reader, txn, digest)]
            report.collections_removed = candidates
        return

    with store.read() as txn:
        if not unwanted(txn):
            return
    # The RefgetStore's writer lock first, then LMDB's (as an import takes them): waiting for a
    # running import must not hold the LMDB writer, or every other command would stall behind gc.
    handle = open_refget(store, write=True)
    handle.set_lock_timeout(_REFGET_LOCK_TIMEOUT_S)
    try:
        handle.lock_for_batch("rgstore-gc")
    except OSError as exc:  # gtars' word for a writer lock it could not get
        raise ConflictError(f"unreferenced RefgetStore collections were kept ({exc}); run `rgstore gc` "
                            "again later") from None

    def remove(txn: Txn) -> None:
        report.collections_removed = []
        with imports_paused(store) as paused:
            # Ages are read again here, under both locks: an import may have written its files since.
            candidates = unwanted(txn)
            if paused:
                prune(txn, candidates)
            else:
                keep_all(candidates)

    def prune(txn: Txn, candidates: list[str]) -> None:
        listed = _listed_collections(store.refget_path)
        for digest in candidates:
            if needed(handle, txn, digest):
                continue
            if handle.remove_collection(digest, remove_orphan_sequences=True):
                report.collections_removed.append(digest)
            elif digest not in listed and _unlisted_aged(collections / f"{digest}.rgsi", now, grace):
                # gtars writes a collection's .rgsi before it locks to commit it: one its index never
                # listed is an import that failed or was killed (gtars cannot remove it: not listed).
                (collections / f"{digest}.rgsi").unlink(missing_ok=True)
                report.collections_removed.append(digest)

    try:
        store.environment.write(remove)
    finally:
        handle.release_batch_lock()


def _listed_collections(root: Path) -> set[str]:
    """The collection digests the RefgetStore's index (``collections.rgci``, replaced atomically) lists."""
    try:
        lines = (root / "collections.rgci").read_text().splitlines()
    except OSError:
        return set()
    return {line.split("\t", 1)[0] for line in lines if line and not line.startswith("#")}


def _unlisted_aged(index: Path, now: float, grace: float) -> bool:
    """Whether an unlisted ``.rgsi`` is old enough that no live import still means to commit it."""
    try:
        return now - index.stat().st_mtime >= max(grace, SCRATCH_FLOOR_S)
    except OSError:
        return False


def _sweep_refget(store: Store, report: GcReport, *, dry_run: bool) -> None:
    """Break a RefgetStore writer lock its dead owner left, and remove temp files killed refreshes left.

    Taking the lock breaks a dead owner's (a killed gc or import). The alias TSV, FHR and manifest
    refreshes write their temp files only while holding that lock, so once gc holds it every such
    file under ``refget/`` belongs to a killed process, whatever its age.
    """
    from .refgetlock import LOCK_NAME, refget_write_lock

    root = store.refget_path
    if dry_run:
        report.temp_files_removed += len(_refget_temp_files(root))
        return
    if not (root / LOCK_NAME).exists() and not _refget_temp_files(root):
        return
    try:
        with refget_write_lock(root, "rgstore-gc", timeout=0):
            for tmp in _refget_temp_files(root):
                tmp.unlink(missing_ok=True)
                report.temp_files_removed += 1
    except ConflictError:
        pass  # a live writer holds it: its temp files may be in use; the next gc gets them


GTARS_TEMP_PREFIX = ".rgstore.tmp."
"""gtars' own atomic-write temp files (``.rgstore.tmp.<pid>.<nanos>.<n>``), made beside the file they publish."""


def _refget_temp_files(root: Path) -> list[Path]:
    """Temp files of the manifest, alias TSV and FHR writes: ours and gtars' own.

    Ours are ``.<target>.<8 chars>.tmp``; gtars' commits (under the same writer lock) leave
    ``.rgstore.tmp.*`` when killed between writing and renaming. Not ``collections/``: gtars writes a
    collection's ``.rgsi`` before it takes the lock (``_sweep_sequence_temps`` goes by age there).
    """
    from .files import temp_target

    folders = [root, root / "fhr", *(root / "aliases").glob("*")]
    return [p for folder in folders for p in folder.glob(".*") if p.is_file() and (
        p.name.startswith(GTARS_TEMP_PREFIX) or (p.name.endswith(".tmp") and temp_target(p.name)))]


def _sweep_sequence_temps(store: Store, report: GcReport, *, grace: float, dry_run: bool) -> None:
    """Remove the temp files of sequence-file rewrites (re-adding a FASTA) that were killed mid-write."""
    from .errors import RgstoreError
    from .refgetlock import LOCK_NAME, PENDING_SUFFIX
    from .refgetstore import SequenceFiles
    from .seqrestore import leftover_temp_files

    try:
        files = SequenceFiles(store.refget_path)
    except RgstoreError:
        return  # no RefgetStore yet, or a manifest gc's other steps report on
    older_than = max(grace, SCRATCH_FLOOR_S)
    # gtars writes sequence and collection files outside the writer lock (a running `genome init` writes
    # its collection's .rgsi before it locks to commit): only age tells a killed writer's temp file.
    for tmp in [*leftover_temp_files(files, older_than=older_than),
                *leftover_temp_files(files, older_than=older_than, prefix=GTARS_TEMP_PREFIX),
                *_aged(store.refget_path / "collections", GTARS_TEMP_PREFIX, older_than),
                *[lock for lock in _aged(store.refget_path, f"{LOCK_NAME}.", older_than)
                  if lock.name.endswith(PENDING_SUFFIX)]]:
        report.temp_files_removed += 1
        if not dry_run:
            tmp.unlink(missing_ok=True)


def _aged(folder: Path, prefix: str, older_than: float) -> list[Path]:
    """Files ``prefix*`` in ``folder`` not modified for ``older_than`` seconds (a live writer's file is fresh)."""
    found = []
    now = time.time()
    for path in folder.glob(f"{prefix}*"):
        try:
            if path.is_file() and now - path.stat().st_mtime >= older_than:
                found.append(path)
        except OSError:
            pass  # renamed or removed meanwhile: its writer finished
    return found


def _sweep_scratch(store: Store, report: GcReport, *, grace: float, dry_run: bool) -> None:
    """Remove scratch directories of killed imports and fetches that no live process holds."""
    from .refgetstore import SCRATCH_PREFIXES, sweep_scratch

    older_than = max(grace, SCRATCH_FLOOR_S)
    if dry_run:
        now = time.time()
        report.scratch_removed = sorted(
            p.name for prefix in SCRATCH_PREFIXES for p in store.path.glob(prefix + "*")
            if p.is_dir() and now - p.stat().st_mtime >= older_than and not flock_held(p / ".in-use")
        )
        return
    report.scratch_removed = [p.name for p in sweep_scratch(store, older_than=older_than)]
