"""`rgstore gc`: delete blobs and RefgetStore collections nothing references, and stale temp files.

Deletion happens while holding the LMDB writer lock (inside a write transaction), and every
command re-checks its blobs exist inside its own write transaction, so a blob cannot vanish
between a command's check and its commit. Blobs younger than ``grace`` seconds are kept:
they may belong to a command that has written its files but not yet committed.

RefgetStore collections no genome in the genome view names (left by `genome remove`) go the
same way, with the same grace period, through gtars under its writer lock; their sequences go
with them unless a recorded genome still lists one.
"""

from __future__ import annotations

import math
import time

import msgspec

from .environment import Txn
from .errors import InvalidInputError
from .store import Store

__all__ = ["GcReport", "collect_garbage"]


class GcReport(msgspec.Struct, kw_only=True):
    """What gc removed (or, with dry_run, would remove)."""

    removed: list[str] = []
    bytes_freed: int = 0
    kept_recent: list[str] = []
    temp_files_removed: int = 0
    collections_removed: list[str] = []
    """RefgetStore collections no genome references any more (e.g. after `genome remove`)."""
    collections_kept_recent: list[str] = []
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
            if now - tmp.stat().st_mtime >= grace:
                report.temp_files_removed += 1
                if not dry_run:
                    tmp.unlink(missing_ok=True)

    store.environment.write(sweep)
    _prune_refget(store, report, now=now, grace=grace, dry_run=dry_run)
    return report


def _prune_refget(store: Store, report: GcReport, *, now: float, grace: float, dry_run: bool) -> None:
    """Remove RefgetStore collections that no genome in the view names and that are older than ``grace``."""
    from .refgetstore import discard_import
    from .views.genomes import all_genomes

    collections = store.refget_path / "collections"
    if not collections.is_dir():
        return
    with store.read() as txn:
        wanted = {genome.digest for genome in all_genomes(txn, store.environment)}
    for index in sorted(collections.glob("*.rgsi")):
        digest = index.stem
        if digest in wanted:
            continue
        if now - index.stat().st_mtime < grace:
            report.collections_kept_recent.append(digest)
            continue
        report.collections_removed.append(digest)
        if not dry_run:
            discard_import(store, digest, was_new=True)
