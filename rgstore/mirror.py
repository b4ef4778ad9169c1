"""Mirrors: read-only replicas kept current by replaying a primary's log, verified by the hash chain.

A source is an exported log file, a directory or URL of published segments (``manifest.json``),
or a primary's API server (``/events``), read through ``rgstore.upstream``. Each batch of records is applied in one write
transaction together with the head, so a pull killed at any point resumes where it stopped.
The first pull marks the store as a replica (``meta/replica_of``): its own writes are refused
until ``promote``.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from . import retries, upstream
from .blobfetch import fetch_referenced_blobs
from .codec import chain_of, genesis_hash
from .environment import Txn
from .errors import (
    ChainError,
    ConflictError,
    InvalidInputError,
    LogMismatchError,
    NotFoundError,
    RemoteError,
    RgstoreError,
)
from .files import open_lock
from .logfile import read_log_file
from .pathtext import user_path
from .pendingsync import abandoned_marks
from .progress import ProgressFactory, note, null_progress
from .replay import apply_records
from .segments import MANIFEST, Manifest, read_manifest
from .store import Store

if TYPE_CHECKING:
    import httpx

__all__ = ["PullResult", "PullError", "PULL_ERROR", "probe_source", "pull", "record_pull_error", "promote",
           "missing_sequences"]



def __getattr__(name: str) -> object:
    """``status`` and ``MirrorStatus``, documented here before they moved to ``rgstore.mirrorstatus``."""
    if name in ("status", "MirrorStatus"):
        from . import mirrorstatus  # not at import time: mirrorstatus imports this module

        return getattr(mirrorstatus, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class PullResult(msgspec.Struct, kw_only=True):
    """What one pull did."""

    source: str
    kind: str
    applied: int
    head_seq: int
    head_hash: str
    upstream_head: int
    blobs_fetched: int = 0
    sequences_fetched: int = 0
    cache_files_fetched: int = 0
    cache_entries_removed: int = 0


PULL_ERROR = "pull_error"
"""The ``meta`` key of a follower's failing pulls (a ``PullError``); a pull that succeeds deletes it."""


class PullError(msgspec.Struct, kw_only=True):
    """Why a mirror's pulls fail: since when, when last (UTC, ``Z``) and the last error (URLs redacted)."""

    since: str
    last: str
    error: str


def record_pull_error(store: Store, message: str) -> None:
    """Record a failed pull (the follower's), so a server's ``/status`` and ``/readyz`` can say pulls are failing."""
    from .httpclient import redact

    now = _utc_now()

    def run(txn: Txn) -> None:
        raw = store.log.meta_get(txn, PULL_ERROR)
        try:
            since = msgspec.json.decode(raw, type=PullError).since if raw else now
        except (msgspec.DecodeError, msgspec.ValidationError):
            since = now
        store.log.meta_put(txn, PULL_ERROR, msgspec.json.encode(PullError(since=since, last=now, error=redact(message))))

    store.environment.write(run)


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def _local_head(store: Store) -> int:
    return store.head()[0]


class _Upstream(msgspec.Struct, kw_only=True):
    """What a mirror records, with each applied batch, about where it stands upstream."""

    source: str
    log_id: str
    seq: int
    hash: str


def lagging_copy(store: Store, source: str, upstream_head: int, known: dict[int, str]) -> bool:
    """Whether the upstream is behind this mirror on the same history (nothing to pull); else False.

    A load-balanced pool of mirrors or a CDN's edges answer from copies at different heads, so a
    follower may meet one behind the copy it last pulled from: its head record equals this mirror's
    record at that seq, and the next pull moves on. An upstream behind with a different record there
    was rolled back and written to again (or replaced): refused.
    """
    local = _local_head(store)
    if upstream_head >= local:
        return False
    ours = None
    if upstream_head > 0:
        with store.read() as txn:
            record = store.log.record(txn, upstream_head)
        ours = chain_of(record).hex() if record is not None else None
    else:  # a copy of this log before its first event (published empty): its head hash is the log's genesis
        ours = genesis_hash(store.log_id()).hex()
    if ours is not None and known.get(upstream_head) == ours:
        return True
    raise LogMismatchError(
        f"{source} is at seq {upstream_head}, behind this mirror's {local}, with a different record there: the "
        "upstream was rolled back or replaced; refusing to follow it (re-create the mirror if that is intended)"
    )


def _check_same_at_head(store: Store, source: str, known: dict[int, str]) -> None:
    """Refuse an upstream whose record at the local head differs (``known``: seq -> chain hash upstream).

    Records after the head are chain-checked as they are applied, but an upstream exactly at the
    mirror's head (or whose segments end there) sends none, so a primary restored from a backup and
    written to again would otherwise look up to date.
    """
    seq, digest = store.head()
    upstream = known.get(seq)
    if seq and upstream is not None and upstream != digest:
        raise LogMismatchError(
            f"{source} has a different record at seq {seq} (this mirror's head): the upstream diverged "
            "(restored from an older backup and written to?); refusing to follow it (re-create the mirror if intended)"
        )


def manifest_hashes(manifest: Manifest) -> dict[int, str]:
    """Chain hashes a manifest states without fetching anything: at each segment's ends and the head."""
    known = {seg.first_seq - 1: seg.prev_hash for seg in manifest.segments}
    known.update({seg.last_seq: seg.last_hash for seg in manifest.segments})
    if manifest.head_seq or manifest.head_hash:  # an empty log's manifest states its genesis hash at seq 0
        known[manifest.head_seq] = manifest.head_hash
    return known


@contextmanager
def _pull_lock(store: Store) -> Iterator[None]:
    """One pull (or promote) at a time per mirror, across processes (an flock on ``STORE/.pull.lock``).

    Two pulls would both fetch from the same head and the second would then fail on the chain
    (a ``serve --follow`` follower would take that for a bad upstream and stop); the second waits.
    """
    fd = open_lock(store.path / ".pull.lock")  # another member's lock file too (a store shared by a group)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock


def _check_source(source: str | os.PathLike[str]) -> str:
    """The source, normalised: a URL without trailing slash, or an absolute path; one-line errors."""
    source = os.fspath(source).strip()  # a pathlib.Path to an export file or segment directory too
    if not source:
        raise InvalidInputError("empty SOURCE: give a server URL, a segment directory or URL, or an export file")
    if "://" in source and not upstream.is_url(source):
        raise InvalidInputError(f"{source}: unsupported URL scheme; use http(s)://, a directory or an export file")
    if not upstream.is_url(source):
        return str(user_path(source).resolve())
    from .httpclient import check_url

    # The source is recorded (``replica_of``) and printed: never with credentials (netrc holds those).
    return check_url(source, "SOURCE")


def probe_source(source: str | os.PathLike[str]) -> str:
    """``source`` normalised as ``pull`` takes it, once it states a head; else the one-line error ``pull`` would give.

    For a first pull into a store that does not exist yet: checked before the store is created, a
    bad SOURCE leaves no empty store behind that later commands would take for a real one.
    """
    source = _check_source(source)
    if not upstream.is_url(source) and not Path(source).is_file() and not (Path(source) / MANIFEST).is_file():
        raise NotFoundError(no_source(source))
    try:
        upstream_head(source)
    except RemoteError as exc:  # as ``pull`` says it: the source, not the manifest.json it looked for first
        raise RemoteError(str(exc).replace(f"{source}/{MANIFEST}", source)) from None
    return source


def no_source(source: str) -> str:
    if (Path(source) / "log" / "data.mdb").is_file():  # an operator's natural mistake: the primary's own directory
        return (f"{source} is a store, not a published directory: pull a directory `rgstore --store {source} "
                "log publish DIR` wrote, or the URL `rgstore serve` serves it at")
    return f"{source}: no such export file or segment directory (no {MANIFEST})"


def pull(store: Store, source: str | os.PathLike[str], *, with_blobs: bool = False, with_sequences: bool = False,
         progress: ProgressFactory = null_progress, batch_size: int = 20_000,
         clears_pull_error: bool = True) -> PullResult:
    """Fetch and apply every record after the local head from ``source``; see the module doc.

    A pull that succeeds ends a follower's record of failing pulls (``PULL_ERROR``) unless
    ``clears_pull_error`` is False: the follower's log-only first step of a round, which is not yet
    a successful round (its content fetch may still fail, and the failures' ``since`` must not restart).
    """
    from .firstpull import remove_abandoned_staging

    source = _check_source(source)
    # Every request of the pull shares one retry budget, and a retry is a short line on a terminal.
    with _pull_lock(store), retries.scope(lambda text: note(progress, f"note: {text}")):
        remove_abandoned_staging(store.path)  # a first pull killed here, then overtaken: its copy is no use
        start = _local_head(store)
        for round_ in range(1, _CONTENT_ROUNDS + 1):
            before = _local_head(store)
            try:
                result = _pull(store, source, with_blobs=with_blobs, with_sequences=with_sequences,
                               progress=progress, batch_size=batch_size, clears_pull_error=clears_pull_error)
            except _ContentGone as gone:
                # The upstream freed it after the events this pull applied (`cache gc` evicting the entry,
                # `refpkg strip` or `genome remove` then `gc`): the events saying so follow, so pull them and
                # fetch again, while each round brings new ones. A file still listed live and still absent is
                # the error.
                if round_ == _CONTENT_ROUNDS or (round_ > 1 and _local_head(store) == before):
                    raise gone.error from None
                continue
            result.applied += before - start  # the earlier rounds' events too
            return result
        raise AssertionError("unreachable: the last round returns or raises")


_CONTENT_ROUNDS = 5
"""Rounds of a pull whose content fetch met a file the upstream freed meanwhile (each round pulls newer events)."""


class _ContentGone(Exception):
    """A content fetch found a file missing upstream (``error``): maybe freed by events after those applied."""

    def __init__(self, error: NotFoundError) -> None:
        super().__init__(str(error))
        self.error = error


def _pull(store: Store, source: str, *, with_blobs: bool, with_sequences: bool, progress: ProgressFactory,
          batch_size: int, clears_pull_error: bool) -> PullResult:
    with store.read() as txn:
        current = store.log.meta_get(txn, "replica_of")
        promoted = store.log.meta_get(txn, "promoted_from")
    if current is None and promoted is not None:
        raise LogMismatchError(
            f"{store.path} was promoted from a mirror of {promoted.decode()} to a primary and no longer pulls; "
            "to follow an upstream again, pull into a new, empty store"
        )
    if current is None and _local_head(store) > 0:
        raise LogMismatchError(
            f"{store.path} already has its own events and is not a mirror; pull into a new, empty store"
        )

    def apply(log_id: str, records: Iterator[tuple[int, bytes]], upstream_head: int,
              known: dict[int, str]) -> tuple[int, int]:
        if _local_head(store) and store.log_id() != log_id:  # first: a foreign log is the clearer reason
            raise LogMismatchError(
                f"{source} serves log {log_id}, not this mirror's {store.log_id()}: refusing to mix different logs"
            )
        lagging = lagging_copy(store, source, upstream_head, known)
        if not lagging:
            _check_same_at_head(store, source, known)

        def on_batch(txn: Txn, seq: int, chain: bytes) -> None:
            store.log.meta_put(txn, "replica_of", source.encode())
            store.log.meta_put(txn, "upstream", msgspec.msgpack.encode(
                _Upstream(source=source, log_id=log_id, seq=seq, hash=chain.hex())))

        result = (0, _local_head(store)) if lagging else apply_records(
            store, log_id, records, progress=progress, on_batch=on_batch, batch_size=batch_size,
            total=max(upstream_head - _local_head(store), 0))
        if current != source.encode() and not result[0]:
            # An upstream with nothing new still makes this store its replica (or, moved or renamed, its
            # upstream from now on, as a pull with new events would); a refused one does not.
            store.environment.write(lambda txn: store.log.meta_put(txn, "replica_of", source.encode()))
        return result

    client = None
    try:
        if not upstream.is_url(source) and Path(source).is_file():
            kind = "export"
            header, frames = read_log_file(Path(source))
            upstream_head = header.last_seq
            if header.first_seq > _local_head(store) + 1:
                raise ChainError(header.first_seq, f"{source} starts at seq {header.first_seq} but this mirror's head "
                                 f"is {_local_head(store)}: records are missing in between")
            applied, head = apply(header.log_id, frames, upstream_head, {upstream_head: header.head_hash})
        elif not upstream.is_url(source):
            kind = "segments"
            base = Path(source)
            if not (base / MANIFEST).is_file():
                raise NotFoundError(no_source(source))
            manifest = read_manifest((base / MANIFEST).read_bytes(), source)
            upstream_head = manifest.head_seq
            applied, head = apply(manifest.log_id, upstream.segment_records(
                _local_head(store), manifest, lambda f: (base / f).read_bytes(), source), upstream_head, manifest_hashes(manifest))
        else:
            client = upstream.client()
            try:
                remote_manifest: Manifest | None = read_manifest(upstream.get(client, f"{source}/{MANIFEST}"), source)
            except NotFoundError:  # no manifest: an API server's event feed
                remote_manifest = None
            except RemoteError as exc:
                raise RemoteError(str(exc).replace(f"{source}/{MANIFEST}", source)) from None
            if remote_manifest is not None:
                kind = "segments"
                upstream_head = remote_manifest.head_seq
                sizes = {seg.file: seg.size for seg in remote_manifest.segments}  # an endless answer stops there
                applied, head = apply(remote_manifest.log_id, upstream.segment_records(
                    _local_head(store), remote_manifest, lambda f: upstream.get(client, f"{source}/{f}", limit=sizes[f]),
                    source), upstream_head, manifest_hashes(remote_manifest))
            else:
                kind = "server"
                log_id, upstream_head, upstream_hash = server_head(client, source)
                known = {upstream_head: upstream_hash}
                start = _local_head(store)
                # Pages name the log: a server whose store is replaced mid-pull answers 409, not another log's records.
                try:
                    applied, head = apply(log_id, upstream.server_records(client, source, start, upstream_head, log_id),
                                          upstream_head, known)
                except upstream.LogReplacedError:
                    # Refused (a follower stops for good) only once /events/head confirms another log; else the
                    # 409 (a store swapped back, a proxy's own 409) fails this pull and the next one looks again.
                    unconfirmed = RemoteError(f"{source}/events answered 409 for log {log_id}, but {source}/events/head "
                                              "names no other log (swapped back, or a proxy's own 409?); retry")
                    try:
                        served = server_head(client, source)[0]
                    except RemoteError:
                        raise unconfirmed from None
                    if served == log_id:
                        raise unconfirmed from None
                    ours = f"this mirror's {store.log_id()}" if _local_head(store) else f"this pull's {log_id}"
                    raise LogMismatchError(
                        f"{source} serves log {served}, not {ours}: refusing to mix different logs") from None
        try:
            fetched = fetch_referenced_blobs(store, client, source, kind, progress) if with_blobs else 0
            cache_files = _fetch_cache(store, client, source, kind) if with_blobs else 0
        except NotFoundError as exc:
            if kind == "export":  # a file: no later events can come
                raise
            raise _ContentGone(exc) from None
    finally:
        if client is not None:
            client.close()
    _finish_pending_syncs(store)
    now = datetime.now(timezone.utc).isoformat()
    store.environment.write(lambda txn: store.log.meta_put(txn, "last_pull", now.encode()))
    try:
        sequences = _fetch_sequences(store, source, progress) if with_sequences else 0
    except NotFoundError as exc:  # a genome removed and its sequences gc'ed upstream meanwhile, as for blobs
        if kind == "export":
            raise
        raise _ContentGone(exc) from None
    if with_sequences:  # every sequence is local now: gtars clients can resolve the genomes too
        from .mirrorcollections import complete_collections

        complete_collections(store, source)
    # Evictions pulled from upstream: their files go now that the events are committed here.
    from .cachecopy import finish_upstream_evictions

    removed = len(finish_upstream_evictions(store))
    if clears_pull_error:  # last: only a pull that fetched all it was asked for ends a run of failing ones
        _clear_pull_error(store)
    _, head_hash = store.head()
    return PullResult(source=source, kind=kind, applied=applied, head_seq=head, head_hash=head_hash,
                      upstream_head=upstream_head, blobs_fetched=fetched, sequences_fetched=sequences,
                      cache_files_fetched=cache_files, cache_entries_removed=removed)


def _clear_pull_error(store: Store) -> None:
    """Delete a follower's record of failing pulls, if any (no write transaction when there is none)."""
    with store.read() as txn:
        if store.log.meta_get(txn, PULL_ERROR) is None:
            return
    store.environment.write(lambda txn: store.log.meta_put(txn, PULL_ERROR, None))


def _finish_pending_syncs(store: Store) -> None:
    """Refresh the alias TSVs/FHR files an earlier pull committed but could not refresh (its mark was kept).

    A writable open does this too, but ``serve --follow`` keeps its store open for good: without
    this, a refresh that failed once (e.g. the RefgetStore locked past the timeout) would leave
    ``/store/`` stale until the upstream next changed.
    """
    marks = abandoned_marks(store.path)
    if marks:
        store.sync_external_views()
        for mark in marks:
            mark.unlink(missing_ok=True)


def _fetch_cache(store: Store, client: httpx.Client | None, source: str, kind: str) -> int:
    """Fetch the files of every live cache entry the mirror lacks, verified by their recorded sha256."""
    from .cachecopy import fetch_cache_files, upstream_cache_chunks

    return fetch_cache_files(store, lambda entry, relative: upstream_cache_chunks(client, source, kind, entry, relative))


def missing_sequences(store: Store, *, include_remote: bool = True) -> list[str]:
    """Bare digests of recorded genome sequences the local RefgetStore cannot read yet (sorted).

    Without ``include_remote``, sequences that some remote genome (``genome init --remote``) lists
    are left out: every copy of the log can fetch those from that remote itself.
    """
    from .refgetstore import SequenceFiles, open_refget, sequence_readable
    from .views.genomes import all_genomes

    with store.read() as txn:
        wanted: dict[str, tuple[int, bool]] = {}
        for genome in all_genomes(txn, store.environment):
            remote = bool(genome.source.remote_url)
            for seq, length in zip(genome.sequences, genome.lengths, strict=False):
                bare = seq.removeprefix("SQ.")
                wanted[bare] = (length, remote or wanted.get(bare, (0, False))[1])
    try:
        local, files = open_refget(store, write=False), SequenceFiles(store.refget_path)
    except NotFoundError:
        return [bare for bare, (_, remote) in sorted(wanted.items()) if include_remote or not remote]
    return [bare for bare, (length, remote) in sorted(wanted.items())
            if (include_remote or not remote) and not sequence_readable(local, files, bare, length)]


def _fetch_sequences(store: Store, source: str, progress: ProgressFactory = null_progress) -> int:
    """Eagerly fetch every genome sequence the local RefgetStore lacks; each verified against its digest.

    A sequence comes from the genome's own remote when a remote genome lists it (the primary may
    not have fetched it either), else from the upstream's RefgetStore (``/store`` or ``refget/``).
    Progress: a bar over the sequences, and each one's download in residues.
    """
    from .remotefetch import fetch_many

    missing = missing_sequences(store)
    unlisted = fetch_many(store, missing, progress=progress)
    if unlisted:
        raise NotFoundError(f"{source} publishes no RefgetStore for sequence {unlisted[0]} "
                            f"(expected {source}/refget/rgstore.json: publish with --with-refget)")
    return len(missing)


def upstream_refget_base(source: str) -> str | None:
    """The RefgetStore URL of a mirror's upstream: ``/store`` of a server, ``refget/`` beside segments."""
    if not upstream.is_url(source):
        path = Path(source)
        base = path.parent if path.is_file() else path
        refget = base / "refget"
        return refget.as_uri() if (refget / "rgstore.json").is_file() else None
    if source.endswith("/store"):
        return source
    from .httpclient import kept_client

    try:
        # Asked once per sequence a lazy mirror fetches: the process's kept client, not a connection each time.
        with kept_client(source) as client:
            # No retries: asked on a lazy read, where a slow answer is worse than the fallback guess.
            upstream.get(client, f"{source}/{MANIFEST}", timeout=upstream.timeout(), retries=0)
        return f"{source}/refget"
    except (NotFoundError, RemoteError):
        return f"{source}/store"


def upstream_head(source: str) -> tuple[str, int, str]:
    """(log id, head seq, head chain hash hex) the upstream states; RgstoreError/OSError when it cannot say."""
    if not upstream.is_url(source):
        path = Path(source)
        if path.is_file():
            header = read_log_file(path)[0]
            return header.log_id, header.last_seq, header.head_hash
        manifest = read_manifest((path / MANIFEST).read_bytes(), source)
        return manifest.log_id, manifest.head_seq, manifest.head_hash
    with upstream.client() as client:
        try:
            manifest = read_manifest(upstream.get(client, f"{source}/{MANIFEST}"), source)
            return manifest.log_id, manifest.head_seq, manifest.head_hash
        except NotFoundError:
            return server_head(client, source)
        except RemoteError as exc:  # as pull says it: an unreachable server has no manifest.json to speak of
            raise RemoteError(str(exc).replace(f"{source}/{MANIFEST}", source)) from None


def server_head(client: httpx.Client, source: str) -> tuple[str, int, str]:
    """(log id, head seq, head chain hash hex) from a server's ``/events/head``; RemoteError if it is no such answer."""
    try:
        info = msgspec.json.decode(upstream.get(client, f"{source}/events/head"))
        log_id, head_seq, head_hash = str(info["log_id"]), int(info["head_seq"]), str(info["head_hash"])
    except InvalidInputError:
        raise  # a bad $RGSTORE_LOW_SPEED_* (a ValueError too) is the user's to fix, not a sign of no server there
    except (msgspec.DecodeError, KeyError, TypeError, ValueError, NotFoundError):
        raise RemoteError(f"{source} is neither a segment directory nor an rgstore server") from None
    if head_seq < 0:  # else read as a rollback below this mirror's head
        raise RemoteError(f"{source}/events/head states head_seq {head_seq}: not an rgstore server's answer")
    return log_id, head_seq, head_hash


def _content_gaps(store: Store) -> list[str]:
    """What a promoted copy would lack: sequences (but those remote genomes supply), blobs, cache files."""
    from .cachecopy import missing_cache_files
    from .verify import referenced_blobs

    counts = {
        "sequences": len(missing_sequences(store, include_remote=False)),
        "blobs": sum(1 for sha in referenced_blobs(store) if not store.blobs.exists(sha)),
        "cache files": len(missing_cache_files(store)),
    }
    return [f"{n} {what}" for what, n in counts.items() if n]


def promote(store: Store, *, force: bool = False) -> str:
    """Make a mirror writable (it stops being a replica); returns the upstream it followed.

    A lazy mirror first fetches what it lacks (sequences, blobs, cache files) from its upstream,
    since a primary has no one to fetch from; if that fails, it is refused (ConflictError, nothing
    changed) unless ``force`` accepts the gaps.
    """
    with store.read() as txn:
        source = store.log.meta_get(txn, "replica_of")
    if source is not None and _content_gaps(store):
        try:
            pull(store, source.decode(), with_blobs=True, with_sequences=True)
        except RgstoreError as exc:
            gaps = _content_gaps(store)
            if gaps and not force:
                raise ConflictError(
                    f"{store.path} lacks {', '.join(gaps)} and {source.decode()} could not supply them ({exc}); "
                    "promote when the upstream is back, or with --force to accept the gaps"
                ) from None
    with _pull_lock(store):  # a pull in progress would mark the store a replica again with its next batch
        with store.read() as txn:
            upstream = store.log.meta_get(txn, "replica_of")
            promoted = store.log.meta_get(txn, "promoted_from")
        if upstream is None and promoted is not None:
            raise ConflictError(f"{store.path} is already promoted (it was a mirror of {promoted.decode()})")
        if upstream is None:
            raise NotFoundError(f"{store.path} is not a mirror; nothing to promote")

        def run(txn: object) -> None:
            store.log.meta_put(txn, "replica_of", None)  # type: ignore[arg-type]
            store.log.meta_put(txn, "promoted_from", upstream)  # type: ignore[arg-type]
            # The mirror's failing pulls are not the primary's problem; a follower still running records its stop.
            store.log.meta_put(txn, PULL_ERROR, None)  # type: ignore[arg-type]

        store.environment.write(run)
    return upstream.decode()

