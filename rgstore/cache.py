"""The two-level FASTA cache service (``store.cache``): raw downloads, region FASTAs, access, pins.

Level 2 (``cache/ncbi_raw/...``, ``cache/ensembl_raw/...``) holds verified upstream downloads and
their decompressed copies; level 1 (``cache/cached_genomic_<key>/annotation/<region>.fna``) holds
extracted regions. Every insert, touch, pin and eviction is an event on stream ``cache:<key>``;
the cache view is their projection. An entry is built in a staging directory under its entry
lock, renamed into place, then recorded; a level-1 hit needs the file to exist and match the
sha256 its insert recorded. Level-1 keys hold the raw inputs' checksums, which the view keeps
after level 2 is evicted, so hits need neither level 2 nor the network; only misses do. Hits
are recorded as ``CacheTouched`` at most once per entry per hour (from the view's last-access
time; filesystem atime is never read). A rebuilt entry keeps its pin. An NCBI entry records the
annotation release its GTF names, and a request for another release is refused
(``rgstore.cacherelease``); a live entry inserted before releases were recorded has its GTF's
header read instead (no event is written), while an evicted one's release stays unknown and
unchecked. Eviction and verification live in ``rgstore.cachegc``; staging, publishing and
insert events in ``rgstore.cachestage``.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from .cachekeys import (
    KEY_PREFIX_MIN,
    CacheRequest,
    RawIdentity,
    RegionForm,
    is_entry_path,
    is_key,
    is_key_prefix,
    labels,
    raw_identity,
    region_forms,
)
from .cachelock import entry_lock, entry_locks
from .cacheraw import build_raw, intact, sha256_matches, staging_dir
from .cacherelease import accession_mismatch, cached_release, gtf_release, gtf_source, release_mismatch
from .cachestage import InsertItem, insert_events, publish_staged, stage_regions, stream_of
from .cacheupstream import LOCAL_NAMES, resolve
from .download import DEFAULT_RETRIES, http_client
from .environment import Db, Txn
from .errors import ConflictError, IntegrityError, InvalidInputError, NotFoundError, ReadOnlyError, refuse_negative
from .events import CachePinned, CacheTouched, CacheUnpinned, Envelope, FileRef
from .extract import EXTRACTOR_VERSION
from .httpclient import check_url
from .log import NewEvent
from .progress import ProgressFactory, null_progress
from .views.cache import CacheEntry, CacheView, Tombstone

if TYPE_CHECKING:
    from .cachegc import CacheVerifyReport, GcReport
    from .store import Store

__all__ = ["Cache", "RawResult", "RegionResult", "EntryDetails", "TOUCH_INTERVAL", "stream_of"]

TOUCH_INTERVAL = 3600.0
"""Seconds between two recorded touches of one entry."""
_ATTEMPTS = 3
"""Times ``regions`` recomputes its keys when level 2 changes under it before giving up."""


def _check_base_url(base_url: str | None) -> None:
    """InvalidInputError for an unusable upstream URL, before a hit could pass it over unread."""
    if base_url:  # empty: the default upstream
        check_url(base_url, "--base-url")


def _touch_due(now: float, last_access: float) -> bool:
    """Whether a hit at ``now`` is recorded: an interval after the last recorded use, or an interval before it.

    A recorded use in the clock's future means the clock was set back (NTP corrected a fast clock):
    waiting for the clock to catch up would leave hits unrecorded and "last used" in the future.
    """
    return abs(now - last_access) >= TOUCH_INTERVAL


class RawResult(msgspec.Struct, kw_only=True):
    """A level-2 entry after ``fetch_raw``: where its files are and whether it was already cached."""

    key: str
    path: str
    hit: bool
    files: dict[str, FileRef]


class RegionResult(msgspec.Struct, kw_only=True):
    """One region of a ``regions`` call: its key, FASTA path and whether it was a hit."""

    region: str
    key: str
    path: str
    hit: bool


class EntryDetails(msgspec.Struct, kw_only=True):
    """``cache show``: a live entry or the tombstone of an evicted one, with the entry's (newest) events."""

    key: str
    state: str
    directory: str
    entry: CacheEntry | None = None
    tombstone: Tombstone | None = None
    events: list[Envelope] = []
    """In seq order: every event on the entry's stream, or the newest ``last`` of them."""
    older_events: int = 0
    """Events on the stream before ``events[0]`` that ``last`` left out (0 when all are listed)."""


class Cache:
    """Commands and queries of the FASTA cache of one store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.root = store.cache_path
        self.clock = time.time
        """Wall clock for touch coalescing and gc ages (tests substitute a later time)."""
        self.retries = DEFAULT_RETRIES
        """Attempts per download after the first; a run that exhausts them leaves a resumable part."""

    # -- queries ------------------------------------------------------------------------------

    def _db(self, name: str) -> Db:
        return self.store.environment.db(name)

    def entry(self, key: str) -> CacheEntry | None:
        """The live entry for ``key``, or None."""
        with self.store.read() as txn:
            return CacheView.get(txn, self._db("cache.entries"), key)

    def ls(self, level: int | None = None) -> list[CacheEntry]:
        """Live entries (optionally of one level), by level then directory."""
        if level not in (None, 1, 2):
            raise InvalidInputError(f"cache level must be 1 or 2, got {level}")
        with self.store.read() as txn:
            entries = [
                e for e in CacheView.entries(txn, self.store.environment) if level is None or e.level == level
            ]
        return sorted(entries, key=lambda e: (e.level, e.path))

    def resolve_ref(self, ref: str) -> str:
        """A key from a key, a unique key prefix (8+ hex digits) or a directory (absolute or relative)."""
        if is_key(ref.lower()):
            return ref.lower()
        if is_key_prefix(ref.lower()):
            with self.store.read() as txn:
                found = CacheView.keys_with_prefix(txn, self.store.environment, ref.lower(), limit=11)
            if len(found) == 1:
                return found[0]
            if found:
                raise InvalidInputError(
                    f"key prefix {ref!r} is ambiguous: it matches {_abbreviate(found[:10])}"
                    + (" and more" if len(found) > 10 else "")
                    + "; give more digits"
                )
        root = self.root.resolve()
        rels: list[str] = []
        for candidate in (Path(ref), root / ref):
            try:
                # An unknown ~user, a symlink loop or an embedded NUL is simply not an entry's directory.
                rels.append(candidate.expanduser().resolve().relative_to(root).as_posix())
            except (ValueError, RuntimeError, OSError):
                continue
        with self.store.read() as txn:
            env = self.store.environment
            known = [(e.path, e.key) for e in CacheView.entries(txn, env)]
            known += [(t.path, t.key) for t in CacheView.tombstones(txn, env)]
        for rel in rels:
            for path, key in known:
                if rel == path or rel.startswith(path + "/"):
                    return key
        raise NotFoundError(
            f"no cache entry at {ref!r}; give a key (or its first {KEY_PREFIX_MIN}+ hex digits) or a "
            "directory from `rgstore cache ls`"
        )

    def show(self, ref: str, *, last: int | None = None) -> EntryDetails:
        """A live entry (or the tombstone of an evicted one) and its events: all, or only the newest ``last``.

        ``last`` reads the stream index from the head down, so an entry touched hourly for years
        costs ``last`` records, not its whole history; ``older_events`` counts the ones left out.
        """
        refuse_negative("last", last)
        key = self.resolve_ref(ref)
        with self.store.read() as txn:
            entry = CacheView.get(txn, self._db("cache.entries"), key)
            tomb = CacheView.tombstone(txn, self._db("cache.evicted"), key)
        if entry is None and tomb is None:
            raise NotFoundError(f"no cache entry {key}; see `rgstore cache ls`")
        path = entry.path if entry is not None else tomb.path  # type: ignore[union-attr]
        stream = stream_of(key)
        events = self.store.events(stream=stream, last=last) if last != 0 else []
        # The first listed event's stream version counts those before it, from the same read as the events.
        older = events[0].stream_version - 1 if events else (self.store.stream_version(stream) if last == 0 else 0)
        return EntryDetails(
            key=key,
            state="live" if entry is not None else "evicted",
            directory=str(self.root / path),
            entry=entry,
            tombstone=tomb,
            events=events,
            older_events=older,
        )

    def keys(self, request: CacheRequest) -> list[RegionForm]:
        """The level-1 keys of a request; needs its level-2 inputs fetched once (keys hold their checksums)."""
        ident = raw_identity(request)
        known = self._known_inputs(ident.key, request)
        if known is None:
            with self.store.read() as txn:
                tomb = CacheView.tombstone(txn, self._db("cache.evicted"), ident.key)
            if tomb is not None and _other_release(request, tomb.annotation_release):
                # Fetched, but as another release: "never fetched" would send the user round in circles.
                p = request.source_params
                raise NotFoundError(
                    f"the NCBI inputs last fetched for {p.assembly} held annotation release "
                    f"{tomb.annotation_release}, not {p.annotation_release}, and their checksums are part of every "
                    f"key; run `rgstore cache fetch-raw --release {p.annotation_release}` with the same options first"
                )
            raise NotFoundError(
                f"the {request.source} inputs for this request were never fetched, and their checksums are "
                f"part of every key; run `rgstore cache fetch-raw` with the same options first"
            )
        return region_forms(request, known, EXTRACTOR_VERSION)

    def _known_inputs(self, raw_key: str, request: CacheRequest) -> dict[str, dict[str, Any]] | None:
        """The raw inputs' checksums of a level-2 entry, live or evicted (None if never fetched).

        A live entry holding another Ensembl assembly or NCBI release than ``request`` is refused
        (ConflictError), as level-1 hits are served without reading level 2 (its recorded release, or
        for an entry inserted before releases were recorded, the one its cached GTF's header names).
        None too for an evicted entry that held another annotation release than ``request`` asks: its
        level-1 entries are not that release's, and a fetch finds what NCBI holds now. An evicted
        entry inserted before releases were recorded held an unknown release and is not checked.
        """
        with self.store.read() as txn:
            entry = CacheView.get(txn, self._db("cache.entries"), raw_key)
            if entry is not None:
                # Checked in the read its inputs come from: a level-2 entry of another release published
                # in between cannot lend its level-1 entries to this request.
                self._check_held(request, entry)
                return _inputs(raw_key, entry.files)
            tomb = CacheView.tombstone(txn, self._db("cache.evicted"), raw_key)
        if tomb is None or tomb.level != 2 or _other_release(request, tomb.annotation_release):
            return None
        try:
            return _inputs(raw_key, tomb.files)
        except IntegrityError:
            return None  # evicted by an rgstore that did not keep checksums in tombstones

    # -- level 2 ------------------------------------------------------------------------------

    def fetch_raw(
        self,
        request: CacheRequest,
        *,
        base_url: str | None = None,
        progress: ProgressFactory = null_progress,
    ) -> RawResult:
        """Make sure the request's raw genome and GTF are cached (downloading and verifying them if not)."""
        _check_base_url(base_url)
        recorded = self.entry(raw_identity(request).key)
        if recorded is not None and is_entry_path(recorded.path):
            self._check_held(request, recorded)  # before a mirror fetches files it would refuse
            self._fetched(recorded)
        entry, hit, _ = self._ensure_raw(request, base_url, progress)
        return RawResult(key=entry.key, path=str(self.root / entry.path), hit=hit, files=entry.files)

    def _check_held(self, request: CacheRequest, entry: CacheEntry) -> None:
        """Refuse a level-2 entry holding another Ensembl assembly or NCBI annotation release than asked."""
        held = self._held(request, entry)
        if _other_release(request, held):
            raise release_mismatch(
                request.source_params.assembly,
                request.source_params.annotation_release,
                held,
                cached_key=entry.key,
            )
        wanted = request.source_params.assembly
        have = str(entry.request.get("assembly_name", ""))
        if request.source == "ensembl" and wanted and wanted != have:
            raise InvalidInputError(
                f"cached Ensembl {request.source_params.species} "
                f"release {request.source_params.annotation_release} "
                f"is assembly {have}, not {wanted}"
            )

    def _held(self, request: CacheRequest, entry: CacheEntry) -> str:
        """The NCBI release a level-2 entry holds: recorded, else read from its cached GTF ("" if unknown).

        An entry inserted by an rgstore that did not record releases has "": its GTF's header is read
        (once per process; see ``cached_release``) so a stale download is not served under any label.
        """
        legacy = not entry.annotation_release and request.source == "ncbi" and entry.level == 2
        if not legacy or not is_entry_path(entry.path):  # a path from the log that is no entry's is never read
            return entry.annotation_release
        return cached_release(self.root / entry.path, entry.files, entry.key)

    def _ensure_raw(
        self, request: CacheRequest, base_url: str | None, progress: ProgressFactory, *, deep: bool = False
    ) -> tuple[CacheEntry, bool, bool]:
        """Level 2 for a request: (entry, whether it was a hit, whether its inputs' sha256 were just checked).

        A hit checks file sizes; ``deep`` also re-hashes the decompressed inputs (under the entry's
        exclusive lock) and rebuilds the entry if they no longer match.
        """
        ident = raw_identity(request)
        entry = self.entry(ident.key)
        # The path comes from the log (perhaps an upstream's): one that is no entry's shape is never used.
        usable = entry is not None and is_entry_path(entry.path)
        if not deep and entry is not None and usable and intact(self.root / entry.path, entry.files):
            self._check_held(request, entry)
            self._touch([entry.key])
            return entry, True, False
        # Before the entry's lock file too: a read-only mount or another user's store refuses that in errno words.
        self._require_writable("fetching level 2")
        with entry_lock(self.root, ident.key):
            entry = self.entry(ident.key)
            # Another process may have fetched or repaired it while we waited.
            if (
                entry is not None
                and is_entry_path(entry.path)
                and intact(self.root / entry.path, entry.files, deep=deep, progress=progress)
            ):
                self._check_held(request, entry)
                self._touch([entry.key])
                return entry, True, deep
            if entry is not None and is_entry_path(entry.path):
                # Damaged, so rebuilt: refused first if it holds another release (a rebuild may not change it).
                self._check_held(request, entry)
            path = self._raw_path(ident, entry)
            check = None if request.source != "ncbi" else lambda gtf: self._check_download(request, gtf)
            with http_client() as client:
                plan = resolve(client, ident, base_url=base_url, assembly=request.source_params.assembly)
                try:
                    staging, files = build_raw(
                        self.root, ident.key, plan, client, progress=progress, retries=self.retries,
                        check_annotation=check,
                    )
                except (IntegrityError, ConflictError):  # bad bytes, or another release: nothing is kept
                    shutil.rmtree(staging_dir(self.root, ident.key), ignore_errors=True)
                    raise
            held = gtf_release(staging / "raw" / f"{LOCAL_NAMES['annotation']}.gz") if check else ""
            details: dict[str, Any] = {
                **msgspec.to_builtins(ident),
                "assembly_name": plan.assembly,
                "directory": plan.directory,
                "upstream": {
                    f"raw/{LOCAL_NAMES[f.role]}.gz": {
                        "url": f.url,
                        "name": f.name,
                        "checksum": str(f.expected),
                    }
                    for f in plan.files
                },
            }
            publish_staged(self.root, staging, path)
            self._record_inserts([(ident.key, 2, path, files, details, held)], [])
        new = self.entry(ident.key)
        assert new is not None
        return new, False, True

    def _raw_path(self, ident: RawIdentity, entry: CacheEntry | None) -> str:
        """Where level 2 goes: where it is (or was, if evicted), else where its first request puts it.

        An NCBI entry's key ignores the taxon, so a request naming another taxon must reuse the
        existing directory rather than start a second copy.
        """
        if entry is not None and is_entry_path(entry.path):
            return entry.path
        with self.store.read() as txn:
            tomb = CacheView.tombstone(txn, self._db("cache.evicted"), ident.key)
        # A path from the log (perhaps an upstream's) is replaced on publish: it must be an entry's.
        return tomb.path if tomb is not None and is_entry_path(tomb.path) else ident.path

    def _check_download(self, request: CacheRequest, gtf: Path) -> None:
        """Refuse a fresh NCBI GTF whose header names another assembly or annotation release than the request."""
        held, accession = gtf_source(gtf)
        p = request.source_params
        # Exact, version included: NCBI names a release after the one assembly version it annotates.
        if accession and accession != p.assembly:
            raise accession_mismatch(p.assembly, accession)
        if _other_release(request, held):
            raise release_mismatch(p.assembly, p.annotation_release, held)

    # -- level 1 ------------------------------------------------------------------------------

    def regions(
        self,
        request: CacheRequest,
        *,
        base_url: str | None = None,
        progress: ProgressFactory = null_progress,
    ) -> list[RegionResult]:
        """The region FASTAs of a request: hits are reused, misses extracted (fetching level 2 if needed).

        The keys come from the raw inputs' checksums the log recorded, so a request whose regions
        all hit reads neither level 2 nor the network. A miss extracts under a shared hold on level
        2, after checking that level 2 is still the insert its keys were computed from (else the
        keys are computed again) and that its decompressed inputs match their recorded sha256
        (else level 2 is fetched again first).
        """
        _check_base_url(base_url)
        hits: set[str] = set()  # keys already found intact, so no file is hashed twice
        known = self._known_inputs(raw_identity(request).key, request)
        if known is not None:
            forms = region_forms(request, known, EXTRACTOR_VERSION)
            hits = {f.key for f in forms if self._l1_hit(f, progress)}
            if len(hits) == len(forms):
                self._touch([f.key for f in forms])
                return [self._result(f, True) for f in forms]
        deep = False
        for _attempt in range(_ATTEMPTS):
            raw, _hit, verified = self._ensure_raw(request, base_url, progress, deep=deep)
            inputs = _inputs(raw.key, raw.files)
            forms = region_forms(request, inputs, EXTRACTOR_VERSION)
            misses = [f for f in forms if f.key not in hits and not self._l1_hit(f, progress)]
            if not misses:
                self._touch([f.key for f in forms])
                return [self._result(f, True) for f in forms]
            self._require_writable(f"extracting {', '.join(f.region for f in misses)}")
            with entry_locks(self.root, [f.key for f in misses]):
                misses = [f for f in misses if not self._l1_hit(f, progress)]  # built by another process meanwhile?
                if not misses:
                    self._touch([f.key for f in forms])
                    return [self._result(f, True) for f in forms]
                with entry_lock(self.root, raw.key, shared=True):
                    # A shared hold on level 2 keeps gc and rebuilds (exclusive) out while we read it.
                    current = self.entry(raw.key)
                    if current is None or _inputs(current.key, current.files) != inputs:
                        continue  # evicted or replaced since the keys were computed: compute them again
                    checked = verified and current.inserted_seq == raw.inserted_seq
                    if not checked and not intact(
                        self.root / current.path, current.files, deep=True, progress=progress
                    ):
                        deep = True
                        continue  # the decompressed inputs no longer match their checksums: rebuild them
                    staged = stage_regions(self.root, current, misses, progress)
                built = {f.key for f in misses}
                for form in misses:
                    publish_staged(self.root, staged[form.key][0], form.path)
                details = {"labels": labels(request), "level2": raw.key}
                self._record_inserts(
                    [
                        (f.key, 1, f.path, staged[f.key][1], {**f.form, **details}, self._held(request, current))
                        for f in misses
                    ],
                    self._touch_events([f.key for f in forms if f.key not in built]),
                )
            return [self._result(f, f.key not in built) for f in forms]
        raise ConflictError(
            f"the {request.source} level-2 entry kept changing while this request used it; run it again"
        )

    def _result(self, form: RegionForm, hit: bool) -> RegionResult:
        return RegionResult(
            region=form.region, key=form.key, path=str(self.root / form.path / form.file), hit=hit
        )

    def _l1_hit(self, form: RegionForm, progress: ProgressFactory = null_progress) -> bool:
        entry = self.entry(form.key)
        if entry is None or entry.path != form.path or form.file not in entry.files:
            return False
        self._fetched(entry)
        path = self.root / entry.path / form.file
        # Only the sha256 is compared (hash_file's md5 too was about half of a hit on a 3 GB human
        # gene.fna), with a bar: a hit on human-scale regions reads gigabytes.
        return path.is_file() and sha256_matches(path, entry.files[form.file], progress=progress)

    def _fetched(self, entry: CacheEntry) -> None:
        """On a mirror, the files of ``entry`` it lacks fetched from its upstream (sha256-verified) before any is read.

        A mirror pulled without ``--with-blobs`` has the entries but not their files; it cannot
        rebuild them (its log takes only the upstream's events), so it fetches what the upstream
        recorded. Only entries the log has: a request the upstream never ran stays a miss (refused).
        """
        from .cachecopy import fetch_missing_entry_files

        fetch_missing_entry_files(self.store, entry)

    # -- recording ----------------------------------------------------------------------------

    def _record_inserts(self, items: list[InsertItem], extra: list[NewEvent]) -> None:
        self.store.transact(lambda txn: insert_events(txn, self.store.environment, items) + extra)

    def _touch_events(self, keys: list[str]) -> list[NewEvent]:
        now = self.clock()
        out: list[NewEvent] = []
        with self.store.read() as txn:
            db = self._db("cache.entries")
            for key in keys:
                entry = CacheView.get(txn, db, key)
                if entry is not None and _touch_due(now, entry.last_access):
                    out.append(NewEvent(stream=stream_of(key), event=CacheTouched(key=key)))
        return out

    def _replica_of(self) -> str:
        """The upstream this store mirrors, or "" if it takes its own writes."""
        with self.store.read() as txn:
            upstream = self.store.log.meta_get(txn, "replica_of")
        return upstream.decode() if upstream else ""

    def _require_writable(self, doing: str) -> None:
        """Refuse work whose result could not be recorded, before any file is written."""
        if self.store.readonly:
            raise ReadOnlyError(
                f"the store is open read-only (a read-only mount, or a user who may not write it): {doing} "
                "would add cache entries; run the request where the store is writable"
            )
        upstream = self._replica_of()
        if upstream:
            raise ReadOnlyError(
                f"this store is a read-only mirror of {upstream}: {doing} would add cache entries; "
                "run the request on the primary and pull, or run `rgstore mirror promote` first"
            )

    def _touch(self, keys: list[str]) -> None:
        """Record access to entries, at most once per entry per TOUCH_INTERVAL.

        A mirror, and a store open read-only (a compute node's read-only mount), serve hits without
        recording them: a mirror's log takes only the upstream's events.
        """
        if self.store.readonly or not self._touch_events(keys) or self._replica_of():
            return
        now = self.clock()

        def command(txn: Txn) -> list[NewEvent]:
            db = self._db("cache.entries")
            out = []
            for key in keys:  # re-checked in the write txn: a concurrent hit may have touched it
                entry = CacheView.get(txn, db, key)
                if entry is not None and _touch_due(now, entry.last_access):
                    out.append(NewEvent(stream=stream_of(key), event=CacheTouched(key=key)))
            return out

        self.store.transact(command)

    # -- pins ---------------------------------------------------------------------------------

    def pin(self, ref: str) -> tuple[str, bool]:
        """Exempt an entry from eviction; returns (key, whether anything changed)."""
        return self._set_pin(ref, True)

    def unpin(self, ref: str) -> tuple[str, bool]:
        """Make an entry evictable again; returns (key, whether anything changed)."""
        return self._set_pin(ref, False)

    def _set_pin(self, ref: str, pinned: bool) -> tuple[str, bool]:
        key = self.resolve_ref(ref)

        def command(txn: Txn) -> list[NewEvent]:
            entry = CacheView.get(txn, self._db("cache.entries"), key)
            if entry is None:
                raise NotFoundError(f"no live cache entry {key}; see `rgstore cache ls`")
            if entry.pinned == pinned:
                return []
            event = CachePinned(key=key) if pinned else CacheUnpinned(key=key)
            return [NewEvent(stream=stream_of(key), event=event)]

        return key, bool(self.store.transact(command))

    # -- eviction and verification (rgstore.cachegc) -------------------------------------------

    def gc(
        self,
        *,
        max_age: float | None = 30 * 86400.0,
        max_size: int | None = None,
        dry_run: bool = False,
    ) -> GcReport:
        """Evict entries unused for ``max_age`` seconds, then least recently used ones beyond ``max_size``."""
        from .cachegc import collect

        return collect(self, max_age=max_age, max_size=max_size, dry_run=dry_run)

    def evict(self, refs: Sequence[str], *, dry_run: bool = False) -> GcReport:
        """Evict the named entries (keys, 8+ hex digit prefixes or directories) now; pinned ones are refused."""
        from .cachegc import evict

        return evict(self, refs, dry_run=dry_run)

    def verify(self, *, evict: bool = False, progress: ProgressFactory = null_progress) -> CacheVerifyReport:
        """Re-hash every cached file against its recorded sha256; optionally evict the entries that fail."""
        from .cachegc import verify

        return verify(self, evict=evict, progress=progress)


def _other_release(request: CacheRequest, held: str) -> bool:
    """Whether NCBI data known to hold annotation release ``held`` is not the release ``request`` asks for."""
    return request.source == "ncbi" and bool(held) and held != request.source_params.annotation_release


def _inputs(raw_key: str, files: dict[str, FileRef]) -> dict[str, dict[str, Any]]:
    """What a level-1 key records about its inputs: the raw downloads' sha256 and size."""
    out: dict[str, dict[str, Any]] = {}
    for role, name in LOCAL_NAMES.items():
        ref = files.get(f"raw/{name}.gz")
        if ref is None:
            raise IntegrityError(f"level-2 entry {raw_key} records no raw/{name}.gz")
        out[role] = {"sha256": ref.sha256, "size": ref.size}
    return out


def _abbreviate(keys: list[str]) -> str:
    """Keys cut to the shortest length (at least 12) that still tells them apart, comma-separated."""
    width = 12
    for a, b in zip(keys, keys[1:]):  # sorted, so the longest shared prefix is between neighbours
        width = max(width, len(os.path.commonprefix([a, b])) + 1)
    return ", ".join(k[:width] for k in keys)
