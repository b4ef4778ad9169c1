"""Cache eviction and verification: plan from the view, commit ``CacheEvicted``, only then delete files.

``collect`` evicts unpinned entries not accessed within ``max_age`` seconds, then unpinned entries
in least-recently-used order until the live total fits ``max_size`` (pinned bytes count toward the
total but are never evicted; the report says when they alone exceed ``max_size``). The evictions
commit in one transaction that re-checks each entry (still live, still unpinned, not touched since
planning); files are deleted afterwards, one entry at a time under its lock. A run killed
between the commit and the deletions leaves tombstones whose directories still exist; every run
first finishes those (unless a live entry now owns the directory, e.g. an NCBI entry re-keyed
without its taxon), and also removes directories no event describes (abandoned staging, a
publish whose insert never committed) once they are a day old and unlocked, and lock files nobody
holds of keys without a live entry (see ``cachelock``). ``evict`` evicts named entries at once, by
the same commit-then-delete steps. ``verify`` re-hashes every file against the sha256 its insert
recorded.
"""

from __future__ import annotations

import math
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from .blobs import hash_file
from .cachekeys import RawIdentity, is_entry_path, is_key
from .cachelock import entry_lock, sweep_lock_files
from .environment import Txn
from .errors import ConflictError, InvalidInputError, NotFoundError
from .events import CacheEvicted
from .files import remove_tree
from .log import NewEvent
from .progress import ProgressFactory, null_progress
from .views.cache import CacheEntry, CacheView

if TYPE_CHECKING:
    from .cache import Cache

__all__ = [
    "GcItem",
    "GcReport",
    "CacheProblem",
    "CacheVerifyReport",
    "MISSING",
    "collect",
    "evict",
    "finish_evictions",
    "verify",
    "plan",
    "parse_duration",
    "parse_size",
]

# ASCII: a case-insensitive [s] also takes the long s (U+017F), which has no unit to look up.
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.IGNORECASE | re.ASCII)
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b?)\s*$", re.IGNORECASE | re.ASCII)
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
MISSING = "missing"
"""``CacheProblem.problem`` of a recorded file that is not on disk (a mirror may just not have fetched it)."""
STRAY_GRACE = 86400.0
"""Seconds a directory no event describes is left alone: it may belong to a command still running."""


class GcItem(msgspec.Struct, kw_only=True):
    """One entry gc evicted (or, in a dry run, would evict)."""

    key: str
    level: int
    path: str
    size: int
    last_access: float
    reason: str


class GcReport(msgspec.Struct, kw_only=True):
    """What a gc run evicted, finished from an earlier run, and kept."""

    evicted: list[GcItem] = []
    completed: list[str] = []
    """Keys evicted by an earlier, interrupted run whose files this run deleted."""
    bytes_freed: int = 0
    pinned_kept: int = 0
    live_bytes: int = 0
    """Bytes of live entries after the run (before, for a dry run)."""
    pinned_bytes: int = 0
    """Bytes of the pinned entries among ``live_bytes``: gc never evicts them, whatever ``max_size`` says."""
    max_size: int | None = None
    """The size limit the run was given (None: no limit)."""
    max_size_unmet: bool = False
    """Pinned entries alone hold more than ``max_size``: no eviction can bring the cache within it."""
    strays: list[str] = []
    """Directories no event describes (abandoned staging, unrecorded publishes) that were removed."""
    lock_files_removed: int = 0
    """Lock files (``.locks/<key>.lock``) of keys without a live entry that nobody held."""
    dry_run: bool = False


class CacheProblem(msgspec.Struct, kw_only=True):
    """A file that is missing or no longer matches its recorded sha256."""

    key: str
    level: int
    file: str
    problem: str


class CacheVerifyReport(msgspec.Struct, kw_only=True):
    """What ``cache verify`` checked and found."""

    entries: int = 0
    files: int = 0
    bytes: int = 0
    problems: list[CacheProblem] = []
    evicted: list[str] = []

    @property
    def ok(self) -> bool:
        """True when every file matched."""
        return not self.problems


def parse_duration(text: str) -> float:
    """``30d``, ``12h``, ``90m``, ``2w``, ``3600`` (seconds) -> seconds."""
    match = _DURATION.match(text)
    if match is None:
        raise InvalidInputError(f"invalid duration {text!r}: use a number with s, m, h, d or w, e.g. 30d")
    return float(match.group(1)) * _SECONDS[match.group(2).lower()]


def parse_size(text: str) -> int:
    """``500M``, ``10G``, ``1.5GiB``, ``2048`` (bytes) -> bytes (K/M/G/T/P are powers of 1024)."""
    match = _SIZE.match(text)
    if match is None:
        raise InvalidInputError(f"invalid size {text!r}: use a number with K, M, G or T, e.g. 50G")
    power = " kmgtp".index(match.group(2).lower() or " ")
    value = float(match.group(1)) * 1024**power
    if not math.isfinite(value):
        raise InvalidInputError(f"size {text!r} is too large")
    return int(value)


def _idle_text(seconds: float) -> str:
    """How long an entry went unused, in the largest unit that reads as more than zero ("5.0 hours")."""
    # "unused for 0.0 days" said nothing about an entry a `--max-age 12h` gc evicted.
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{max(0.0, seconds):.0f} seconds"


def plan(
    entries: list[CacheEntry], *, now: float, max_age: float | None, max_size: int | None
) -> list[tuple[CacheEntry, str]]:
    """Entries to evict and why: too old first, then least recently used beyond the size cap."""
    out: list[tuple[CacheEntry, str]] = []
    keep: list[CacheEntry] = []
    for e in entries:
        if max_age is not None and not e.pinned and now - e.last_access > max_age:
            out.append((e, f"age: unused for {_idle_text(now - e.last_access)}"))
        else:
            keep.append(e)
    if max_size is not None:
        total = sum(e.size for e in keep)
        for e in sorted((e for e in keep if not e.pinned), key=lambda e: (e.access_seq, e.key)):
            if total <= max_size:
                break
            out.append((e, f"size: least recently used beyond {max_size} bytes"))
            total -= e.size
    return out


class _LivePaths:
    """Directories of live entries, read again only when the log has moved since the last read.

    A gc deleting thousands of evicted entries checks each against the live ones: one read per
    log head instead of one per deletion (20,000 entries, 7,500 evicted: 5 minutes otherwise).
    """

    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        self.head = -1
        self.paths: set[str] = set()

    def holds(self, txn: Txn, path: str) -> bool:
        """Whether a live entry (as of ``txn``) has directory ``path``."""
        head = self.cache.store.log.head(txn)[0]
        if head != self.head:
            self.paths = {e.path for e in CacheView.entries(txn, self.cache.store.environment)}
            self.head = head
        return path in self.paths


def _delete(cache: Cache, key: str, live: _LivePaths | None = None) -> bool:
    """Delete an evicted entry's directory under its lock, unless the key is live again; True if removed."""
    live = live or _LivePaths(cache)
    with entry_lock(cache.root, key):
        with cache.store.read() as txn:
            if CacheView.get(txn, cache.store.environment.db("cache.entries"), key) is not None:
                return False
            tomb = CacheView.tombstone(txn, cache.store.environment.db("cache.evicted"), key)
            if tomb is None or not is_entry_path(tomb.path) or live.holds(txn, tomb.path):
                return False  # another live entry was published in its directory since, or no entry's shape
        target = cache.root / tomb.path
        if not target.exists():
            return False
        remove_tree(target)  # a refusal names the file's full path, not its bare name
        _prune_empty_parents(cache.root, target)
        return True


def _prune_empty_parents(root: Path, target: Path) -> None:
    """Remove ``ncbi_raw/<taxon>/``-style parents left empty (never the cache root itself)."""
    for parent in target.parents:
        if parent == root or root not in parent.parents:
            return
        try:
            parent.rmdir()
        except OSError:
            return


def _newest_mtime(path: Path) -> float:
    newest = path.stat().st_mtime
    for child in path.rglob("*"):
        try:
            newest = max(newest, child.stat().st_mtime)
        except FileNotFoundError:
            continue
    return newest


def _strays(cache: Cache) -> list[tuple[Path, str]]:
    """Directories no event describes, with the key whose lock guards each.

    Leftover staging directories (``.tmp-<key>``: a failed or abandoned build, possibly holding a
    resumable download) and entry directories published by a command that died before its insert
    committed.
    """
    root = cache.root
    known = _known_paths(cache)
    out: list[tuple[Path, str]] = []
    for d in sorted(root.glob(".tmp-*")):
        key = d.name.removeprefix(".tmp-")
        if d.is_dir() and is_key(key):
            out.append((d, key))
    for d in sorted(root.glob("cached_genomic_*")):
        key = d.name.removeprefix("cached_genomic_")
        if d.is_dir() and is_key(key) and d.name not in known:
            out.append((d, key))
    for d in sorted([*root.glob("ncbi_raw/*/*"), *root.glob("ensembl_raw/*/*")]):
        rel = d.relative_to(root).as_posix()
        ident = RawIdentity.from_path(rel)
        if d.is_dir() and ident is not None and rel not in known:
            out.append((d, ident.key))
    return out


def _sweep(cache: Cache, *, now: float, dry_run: bool) -> list[str]:
    """Remove strays untouched for STRAY_GRACE seconds whose entry lock is free; returns their paths."""
    removed: list[str] = []
    for path, key in _strays(cache):
        rel = path.relative_to(cache.root).as_posix()
        try:
            if now - _newest_mtime(path) < STRAY_GRACE:
                continue
        except FileNotFoundError:
            continue
        if dry_run:
            removed.append(rel)
            continue
        try:
            with entry_lock(cache.root, key, timeout=0):
                if path.name.startswith(".tmp-") or rel not in _known_paths(cache):  # re-check under the lock
                    shutil.rmtree(path, ignore_errors=True)
                    _prune_empty_parents(cache.root, path)
                    removed.append(rel)
        except ConflictError:
            continue  # a running command holds it
    return removed


def _known_paths(cache: Cache) -> set[str]:
    """Directories of live entries and of tombstones (whose deletion gc itself finishes)."""
    with cache.store.read() as txn:
        env = cache.store.environment
        return {e.path for e in CacheView.entries(txn, env)} | {
            t.path for t in CacheView.tombstones(txn, env)
        }


def _live_paths(cache: Cache) -> set[str]:
    with cache.store.read() as txn:
        return {e.path for e in CacheView.entries(txn, cache.store.environment)}


def _pending(cache: Cache) -> list[str]:
    live = _live_paths(cache)
    with cache.store.read() as txn:
        return [
            t.key
            for t in CacheView.tombstones(txn, cache.store.environment)
            if is_entry_path(t.path) and t.path not in live and (cache.root / t.path).exists()
        ]


def finish_evictions(cache: Cache) -> list[str]:
    """Delete the files of every evicted entry still on disk (no events: the evictions are logged)."""
    live = _LivePaths(cache)
    return [key for key in _pending(cache) if _delete(cache, key, live)]


def collect(cache: Cache, *, max_age: float | None, max_size: int | None, dry_run: bool = False) -> GcReport:
    """Run (or with ``dry_run`` only plan) one gc pass; see the module docstring."""
    if max_age is not None and max_age < 0:
        raise InvalidInputError("--max-age must not be negative")
    if max_size is not None and max_size < 0:
        raise InvalidInputError("--max-size must not be negative")
    report = GcReport(dry_run=dry_run, max_size=max_size)
    report.strays = _sweep(cache, now=cache.clock(), dry_run=dry_run)
    pending = _pending(cache)
    if dry_run:
        report.completed = pending
    else:
        live_paths = _LivePaths(cache)
        report.completed = [key for key in pending if _delete(cache, key, live_paths)]
    entries = cache.ls()
    now = cache.clock()
    chosen = plan(entries, now=now, max_age=max_age, max_size=max_size)
    report.pinned_kept = sum(1 for e in entries if e.pinned)
    if dry_run:
        report.evicted = [_item(e, why) for e, why in chosen]
        report.bytes_freed = sum(e.size for e, _ in chosen)
        report.live_bytes = sum(e.size for e in entries)
        _note_pinned(report, entries)
        return report

    def command(txn: Txn) -> list[NewEvent]:
        db = cache.store.environment.db("cache.entries")
        events: list[NewEvent] = []
        report.evicted = []
        for e, why in chosen:
            current = CacheView.get(txn, db, e.key)
            if current is None or current.pinned or current.access_seq != e.access_seq:
                continue  # pinned, touched or evicted since planning: leave it
            report.evicted.append(_item(current, why))
            events.append(NewEvent(stream=f"cache:{e.key}", event=CacheEvicted(key=e.key, reason=why)))
        return events

    if chosen:
        cache.store.transact(command)
    live_paths = _LivePaths(cache)
    for item in report.evicted:
        if _delete(cache, item.key, live_paths):
            report.bytes_freed += item.size
    live = cache.ls()
    report.live_bytes = sum(e.size for e in live)
    _note_pinned(report, live)
    # Last: every lock this run took is released, and a key being built right now is held.
    report.lock_files_removed = len(sweep_lock_files(cache.root, keep={e.key for e in live}))
    return report


def _note_pinned(report: GcReport, entries: list[CacheEntry]) -> None:
    """Record the pinned entries' bytes, and whether they alone exceed the run's ``max_size``."""
    report.pinned_bytes = sum(e.size for e in entries if e.pinned)
    # Otherwise "evicted 0 entries" on a cache over its limit would read as if the limit were met.
    report.max_size_unmet = report.max_size is not None and report.pinned_bytes > report.max_size


REQUESTED = "evicted by request"
"""The reason ``evict`` records: a user named the entry."""


def evict(cache: Cache, refs: Sequence[str], *, dry_run: bool = False) -> GcReport:
    """Evict the named live entries now, all or none: an unknown, evicted or pinned one refuses the lot.

    A pinned entry is refused rather than evicted: a pin says servers or jobs rely on the entry,
    so it is unpinned first, on purpose. Files are deleted after the evictions commit, as by gc.
    """
    keys = list(dict.fromkeys(cache.resolve_ref(ref) for ref in refs))
    if not keys:
        raise InvalidInputError("name at least one cache entry to evict")
    report = GcReport(dry_run=dry_run)

    def chosen(txn: Txn) -> list[CacheEntry]:
        db = cache.store.environment.db("cache.entries")
        entries = []
        for key in keys:
            entry = CacheView.get(txn, db, key)
            if entry is None:
                raise NotFoundError(f"no live cache entry {key}; see `rgstore cache ls`")
            if entry.pinned:
                raise ConflictError(f"cache entry {key} is pinned; `rgstore cache unpin {key[:12]}` first")
            entries.append(entry)
        report.evicted = [_item(e, REQUESTED) for e in entries]
        report.bytes_freed = sum(e.size for e in entries)
        return entries

    if dry_run:
        with cache.store.read() as txn:
            chosen(txn)
    else:
        cache.store.transact(lambda txn: [
            NewEvent(stream=f"cache:{e.key}", event=CacheEvicted(key=e.key, reason=REQUESTED)) for e in chosen(txn)
        ])
        live_paths = _LivePaths(cache)
        for item in report.evicted:
            _delete(cache, item.key, live_paths)
    live = cache.ls()
    report.pinned_kept = sum(1 for e in live if e.pinned)
    report.live_bytes = sum(e.size for e in live)
    _note_pinned(report, live)
    return report


def _item(e: CacheEntry, why: str) -> GcItem:
    return GcItem(key=e.key, level=e.level, path=e.path, size=e.size, last_access=e.last_access, reason=why)


def verify(
    cache: Cache, *, evict: bool = False, progress: ProgressFactory = null_progress
) -> CacheVerifyReport:
    """Re-hash every live entry's files; with ``evict``, evict (and delete) entries with a bad file."""
    entries = cache.ls()
    report = CacheVerifyReport(entries=len(entries))
    bar = progress("verify cache", total=sum(e.size for e in entries), unit="B")
    bad: dict[str, tuple[int, str]] = {}
    try:
        for e in entries:
            if not is_entry_path(e.path):
                report.problems.append(
                    CacheProblem(key=e.key, level=e.level, file=e.path, problem="not a cache entry directory")
                )
                bad.setdefault(e.key, (e.inserted_seq, "corrupt: not a cache entry directory"))
                continue
            for rel, ref in sorted(e.files.items()):
                path = cache.root / e.path / rel
                report.files += 1
                if not path.is_file():
                    report.problems.append(
                        CacheProblem(key=e.key, level=e.level, file=str(path), problem=MISSING)
                    )
                    bad.setdefault(e.key, (e.inserted_seq, f"corrupt: {rel} missing"))
                    continue
                try:
                    sha = hash_file(path).sha256
                except FileNotFoundError:  # deleted since the is_file() above (a concurrent `cache gc`)
                    report.problems.append(CacheProblem(key=e.key, level=e.level, file=str(path), problem=MISSING))
                    bad.setdefault(e.key, (e.inserted_seq, f"corrupt: {rel} missing"))
                    continue
                except OSError as exc:  # a permission problem is the operator's to fix, not a reason to evict
                    report.problems.append(CacheProblem(
                        key=e.key, level=e.level, file=str(path), problem=f"unreadable ({exc.strerror or exc})"
                    ))
                    continue
                report.bytes += ref.size
                bar.update(ref.size)
                if sha != ref.sha256:
                    report.problems.append(
                        CacheProblem(
                            key=e.key,
                            level=e.level,
                            file=str(path),
                            problem=f"sha256 {sha} differs from the recorded {ref.sha256}",
                        )
                    )
                    bad.setdefault(e.key, (e.inserted_seq, f"corrupt: {rel} checksum mismatch"))
    finally:
        bar.close()
    if not (evict and bad):
        return report

    def command(txn: Txn) -> list[NewEvent]:
        db = cache.store.environment.db("cache.entries")
        events = []
        for key, (seq, why) in sorted(bad.items()):
            current = CacheView.get(txn, db, key)
            if current is not None and current.inserted_seq == seq:  # not rebuilt meanwhile
                events.append(NewEvent(stream=f"cache:{key}", event=CacheEvicted(key=key, reason=why)))
                report.evicted.append(key)
        return events

    cache.store.transact(command)
    live = _LivePaths(cache)
    for key in report.evicted:
        _delete(cache, key, live)
    return report
