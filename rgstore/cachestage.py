"""Building and recording cache entries: region files staged, published into place, insert events.

An entry is built in a staging directory (``cacheraw.staging_dir``) under its entry lock, renamed
into its final place, then recorded by ``insert_events``, which also evicts any record those
files replaced. The caller (``rgstore.cache``) holds the locks and runs the transaction.
"""

from __future__ import annotations

import os
import shutil
from contextlib import ExitStack
from pathlib import Path
from typing import Any, BinaryIO

from .blobs import BlobInfo, hash_file
from .cachekeys import RegionForm
from .cacheraw import staging_dir
from .cacheupstream import LOCAL_NAMES
from .diskspace import refused_write
from .environment import Environment, Txn, fsync_dir
from .events import CacheEvicted, CacheInserted, CachePinned, FileRef
from .extract import GENE_SPAN_REGIONS, extract_regions, plan_region, plan_size
from .files import remove_tree
from .gtf import gc_paused, parse_gtf
from .log import NewEvent
from .progress import ProgressFactory
from .views.cache import CacheEntry, CacheView

__all__ = ["InsertItem", "insert_events", "publish_staged", "stage_regions", "stream_of"]

InsertItem = tuple[str, int, str, dict[str, FileRef], dict[str, Any], str]
"""(key, level, path under the cache root, files, request details, annotation release held) of an entry to record."""


def stream_of(key: str) -> str:
    """The event stream of a cache entry."""
    return f"cache:{key}"


def stage_regions(
    root: Path, raw: CacheEntry, forms: list[RegionForm], progress: ProgressFactory
) -> dict[str, tuple[Path, dict[str, FileRef]]]:
    """Extract ``forms`` from level-2 entry ``raw`` into fresh staging directories; key -> (dir, files)."""
    base = root / raw.path / "decompressed"
    # Gene spans alone need no transcripts built: ~40% less parse time (docs/benchmarks.md, session 25).
    genes_only = all(f.region in GENE_SPAN_REGIONS for f in forms)
    annotation = parse_gtf(base / LOCAL_NAMES["annotation"], progress=progress, genes_only=genes_only)
    with gc_paused():
        # ~7 s for a human GTF's gene,exon,CDS (millions of exon records): a bar, not silence.
        total = sum(plan_size(annotation, f.region) for f in forms)
        bar = progress(f"plan {','.join(f.region for f in forms)}", total=total, unit="feature")
        try:
            plans = {f.region: plan_region(annotation, f.region, bar, block_size=f.block_size) for f in forms}
        finally:
            bar.close()
    staged: dict[str, tuple[Path, dict[str, FileRef]]] = {}
    try:
        with ExitStack() as stack:
            handles: dict[str, BinaryIO] = {}
            for form in forms:
                staging = staging_dir(root, form.key)
                shutil.rmtree(staging, ignore_errors=True)
                (staging / "annotation").mkdir(parents=True)
                handles[form.region] = stack.enter_context(open(staging / form.file, "wb"))
            extract_regions(base / LOCAL_NAMES["genome"], plans, handles, progress=progress)
            for form in forms:
                staging = staging_dir(root, form.key)
                info = _hash_and_sync(staging / form.file, handles[form.region], progress)
                ref = FileRef(name=f"{form.region}.fna", sha256=info.sha256, md5=info.md5, size=info.size)
                staged[form.key] = (staging, {form.file: ref})
    except BaseException as exc:
        for form in forms:
            shutil.rmtree(staging_dir(root, form.key), ignore_errors=True)
        refused = refused_write(exc, root, "a region FASTA")  # a bare errno names neither file nor disk
        if refused is not None:
            raise refused from None
        raise
    return staged


def _hash_and_sync(path: Path, handle: BinaryIO, progress: ProgressFactory) -> BlobInfo:
    """Hash a freshly written region file (a ``hash <name>`` bar in bytes), then fsync it before the bar closes."""
    handle.flush()
    bar = progress(f"hash {path.name}", total=path.stat().st_size, unit="B")
    try:
        info = hash_file(path, bar)  # gigabytes for human genes, read back from the page cache
        # Hashed first: the kernel writes the file back meanwhile, so the fsync after waits less.
        # Inside the bar: a terminal shows the step until the bytes are on disk.
        os.fsync(handle.fileno())
    finally:
        bar.close()
    return info


def publish_staged(root: Path, staging: Path, rel: str) -> None:
    """Rename a finished staging directory to its final place (replacing a stale copy)."""
    final = root / rel
    final.parent.mkdir(parents=True, exist_ok=True)
    if os.path.lexists(final):  # a dangling symlink in its place too: rename cannot replace it
        remove_tree(final)  # not a live, intact entry (checked under the entry lock)
    os.replace(staging, final)
    fsync_dir(final.parent)


def insert_events(txn: Txn, environment: Environment, items: list[InsertItem]) -> list[NewEvent]:
    """The events recording freshly published entries, read against the view inside the write txn.

    A live record of the same key (its files failed their check and were rebuilt) is evicted
    first; a rebuilt entry keeps its pin; a level-2 entry published over another key's live
    directory evicts that record too.
    """
    entries, evicted = environment.db("cache.entries"), environment.db("cache.evicted")
    events: list[NewEvent] = []
    for key, level, path, files, request, release in items:
        current = CacheView.get(txn, entries, key)
        tomb = CacheView.tombstone(txn, evicted, key)
        # A rebuild keeps the pin: the entry's files were replaced, not its owner's wish.
        pinned = current.pinned if current is not None else tomb is not None and tomb.pinned
        if current is not None:
            # The live record points at files we just replaced because they failed their check.
            events.append(NewEvent(stream=stream_of(key), event=CacheEvicted(key=key, reason="damaged: rebuilt")))
        if level == 2:
            for other in CacheView.entries(txn, environment):
                if other.path == path and other.key != key:
                    # Published over a live entry of another key (an NCBI key made before the
                    # taxon left it): that record no longer describes these files.
                    pinned = pinned or other.pinned
                    events.append(NewEvent(stream=stream_of(other.key),
                                           event=CacheEvicted(key=other.key, reason=f"superseded by {key}")))
        events.append(NewEvent(stream=stream_of(key),
                               event=CacheInserted(key=key, level=level, path=path, files=files, request=request,
                                                   annotation_release=release)))
        if pinned:
            events.append(NewEvent(stream=stream_of(key), event=CachePinned(key=key)))
    return events
