"""Published log segments: immutable zstd files of seq ranges plus a manifest, for any static host.

``DIR/manifest.json`` names the log, every segment (file, seq range, sha256, chain hashes at
both ends) and the head. Segments reuse the export format (``rgstore.logfile``), so a segment
is also a valid ``rgstore replay`` input. Publishing appends new segments for records past
the last published one and rewrites only the manifest (atomically, one run per directory at a
time): a CDN may cache segments forever. Every run first sweeps the temp files a killed run
left behind (a static host would serve them).
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import time
from pathlib import Path

import msgspec

from .codec import chain_of, genesis_hash
from .diskspace import no_room
from .environment import Txn
from .errors import IntegrityError, InvalidInputError, LogMismatchError, NotFoundError
from .files import atomic_write_bytes, dirs_for, hold_dir, mkstemp, read_chunks, temp_target
from .logfile import LogHeader, write_log_file
from .pathtext import given_path
from .progress import ProgressFactory, null_progress
from .store import Store

__all__ = ["Manifest", "SegmentInfo", "check_publish_target", "published_head", "publish", "publish_blobs", "publish_refget", "read_manifest", "sweep_stale_temps", "MANIFEST", "TEMP_GRACE_S"]

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
TEMP_GRACE_S = 600.0
"""Temp files modified more recently than this are never swept: a concurrent publish may be writing them."""


class SegmentInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One immutable segment file and the seq range and chain hashes it covers."""

    file: str
    first_seq: int
    last_seq: int
    sha256: str
    size: int
    prev_hash: str
    last_hash: str


class Manifest(msgspec.Struct, kw_only=True):
    """The index of a published log."""

    log_id: str
    head_seq: int = 0
    head_hash: str = ""
    segments: list[SegmentInfo] = []
    format: int = MANIFEST_FORMAT


# At most 20 digits: a seq is a u64, and int() of 4,301+ digits raises ValueError.
_SEGMENT_FILE = re.compile(r"segments/([0-9]{12,20})-([0-9]{12,20})\.rgseg", re.ASCII)
_SHA256 = re.compile(r"[0-9a-f]{64}", re.ASCII)
_SEGMENT_NAME = re.compile(r"[0-9]{12,}-[0-9]{12,}\.rgseg", re.ASCII)
_CONTENT_TREES = ("segments", "blobs", "cache", "refget")


def read_manifest(raw: bytes, origin: str) -> Manifest:
    """Parse and check manifest bytes: InvalidInputError if they are not a manifest, IntegrityError if inconsistent.

    Consistent means what ``publish`` writes: segments named ``segments/FIRST-LAST.rgseg`` (never a
    path elsewhere) that cover seqs 1..head with no gap or overlap, each chaining from the one before
    (the first from the log's genesis), and a head seq and hash equal to the last segment's.
    """
    try:
        manifest = msgspec.json.decode(raw, type=Manifest)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # msgspec lets a bad UTF-8 string through as the latter
        raise InvalidInputError(f"{origin}: not an rgstore segment manifest ({exc})") from None
    if manifest.format != MANIFEST_FORMAT:
        newer = manifest.format > MANIFEST_FORMAT
        raise InvalidInputError(
            f"{origin}/{MANIFEST} has format {manifest.format}; this rgstore reads format {MANIFEST_FORMAT}"
            + (" (it was published by a newer rgstore: upgrade to pull from it)" if newer else "")
        )
    _check_manifest(manifest, origin)
    return manifest


def _check_manifest(manifest: Manifest, origin: str) -> None:
    def bad(seq: int, why: str) -> IntegrityError:
        return IntegrityError(f"{origin}/{MANIFEST} is inconsistent at seq {seq}: {why} (tampered or damaged)")

    seq, chain = 0, genesis_hash(manifest.log_id).hex()
    for seg in manifest.segments:
        name = _SEGMENT_FILE.fullmatch(seg.file)
        if name is None or (int(name.group(1)), int(name.group(2))) != (seg.first_seq, seg.last_seq):
            raise bad(seg.first_seq, f"segment file {seg.file!r} is not segments/{seg.first_seq:012d}-"
                                     f"{seg.last_seq:012d}.rgseg")
        if seg.first_seq != seq + 1 or seg.last_seq < seg.first_seq:
            raise bad(seq + 1, f"segment {seg.file} covers {seg.first_seq}-{seg.last_seq}, expected one from {seq + 1}")
        if seg.prev_hash != chain:
            raise bad(seg.first_seq, f"segment {seg.file} does not chain from the one before it")
        if not (_SHA256.fullmatch(seg.sha256) and _SHA256.fullmatch(seg.last_hash)):
            raise bad(seg.first_seq, f"segment {seg.file} has a malformed sha256 or chain hash")
        seq, chain = seg.last_seq, seg.last_hash
    if manifest.head_seq != seq:
        raise bad(min(seq, manifest.head_seq) + 1, f"head seq {manifest.head_seq} but the segments end at {seq}")
    if seq and manifest.head_hash != chain:
        raise bad(seq, "the head hash differs from the last segment's")


def check_publish_target(store: Store, directory: Path | str) -> None:
    """Refuse a DIR inside the store, or one publishing another log or a diverged copy of this one.

    Called before any content is copied: a refused publish must not leave this store's RefgetStore
    index, alias TSVs or FHR files beside another log's manifest.
    """
    directory = given_path(directory, "publish directory")
    if directory.resolve().is_relative_to(store.path.resolve()):
        raise InvalidInputError(f"{directory} is inside the store {store.path}; publish to a directory outside it")
    path = directory / MANIFEST
    if path.exists():
        with store.read() as txn:
            _check_lineage(store, txn, directory, read_manifest(path.read_bytes(), str(path)))


def _check_lineage(store: Store, txn: Txn, directory: Path, manifest: Manifest) -> None:
    """LogMismatchError unless ``manifest`` publishes a prefix of this store's log."""
    log_id = store.log.log_id(txn)
    if manifest.log_id != log_id:
        raise LogMismatchError(f"{directory} publishes log {manifest.log_id}, not this store's {log_id}")
    done = manifest.segments[-1].last_seq if manifest.segments else 0
    head, _ = store.log.head(txn)
    if done > head:
        raise LogMismatchError(
            f"{directory} already holds seqs up to {done}, past this store's head {head}: it was published from "
            "a copy of this log that is further along (this store is behind it or diverged from it); publish "
            "from that copy, or into a new directory"
        )
    if done:
        local = store.log.record(txn, done)
        if local is None or chain_of(local) != bytes.fromhex(manifest.segments[-1].last_hash):
            raise LogMismatchError(f"{directory} diverges from this log at seq {done}")


def published_head(directory: Path | str) -> int:
    """The last seq already published in ``directory`` (0 if nothing is)."""
    directory = given_path(directory, "publish directory")
    path = directory / MANIFEST
    return read_manifest(path.read_bytes(), str(path)).head_seq if path.exists() else 0


def publish(store: Store, directory: Path | str, *, segment_size: int = 100_000,
            progress: ProgressFactory = null_progress, upto: int | None = None) -> Manifest:
    """Write segments for every record not yet published (up to seq ``upto``) into ``directory``; return the manifest.

    A caller that copies content first (``publish_blobs``, ``publish_refget``) passes the head it
    read before copying as ``upto``: events a writer commits meanwhile may name content not copied.
    """
    directory = given_path(directory, "publish directory")
    if segment_size < 1:
        raise InvalidInputError("--segment-size must be at least 1")
    check_publish_target(store, directory)
    directory.mkdir(parents=True, exist_ok=True)
    # One run at a time per directory (a second waits): a run that read an older manifest and head
    # would otherwise rewrite the manifest after a newer run listed more, and mirrors would miss those.
    held = hold_dir(directory.resolve())  # a symlinked DIR is the user's choice (see sweep_stale_temps)
    try:
        with no_room(directory, "the manifest"):  # segments say which one themselves
            return _publish_held(store, directory, segment_size=segment_size, progress=progress, upto=upto)
    finally:
        os.close(held)  # releases the flock


def _publish_held(store: Store, directory: Path, *, segment_size: int, progress: ProgressFactory,
                  upto: int | None) -> Manifest:
    """``publish`` while holding ``directory``'s flock."""
    sweep_stale_temps(directory)
    (directory / "segments").mkdir(exist_ok=True)
    path = directory / MANIFEST
    with store.read() as txn:
        log_id = store.log.log_id(txn)
        head, head_hash = store.log.head(txn)
        if upto is not None and upto < head:
            # The head hash is only read when nothing is published at all (upto 0: the empty log's).
            head, head_hash = max(upto, 0), genesis_hash(log_id)
        manifest = read_manifest(path.read_bytes(), str(path)) if path.exists() else Manifest(log_id=log_id)
        _check_lineage(store, txn, directory, manifest)
        done = manifest.segments[-1].last_seq if manifest.segments else 0
        prev = bytes.fromhex(manifest.segments[-1].last_hash) if manifest.segments else genesis_hash(log_id)
        bar = progress("publish", total=head - done, unit="ev")
        segments = list(manifest.segments)
        try:
            while done < head:
                last = min(done + segment_size, head)
                records = [(seq, bytes(rec)) for seq, rec in store.log.records(txn, after=done, upto=last)]
                last_hash = chain_of(records[-1][1])
                name = f"segments/{done + 1:012d}-{last:012d}.rgseg"
                _clear_unpublished(directory / name)
                header = LogHeader(log_id=log_id, first_seq=done + 1, last_seq=last, prev_hash=prev.hex(),
                                   head_hash=last_hash.hex())
                write_log_file(directory / name, header, records)
                data = (directory / name).read_bytes()
                segments.append(SegmentInfo(file=name, first_seq=done + 1, last_seq=last,
                                            sha256=hashlib.sha256(data).hexdigest(), size=len(data),
                                            prev_hash=prev.hex(), last_hash=last_hash.hex()))
                bar.update(len(records))
                done, prev = last, last_hash
        finally:
            bar.close()
    manifest = Manifest(log_id=log_id, head_seq=done, head_hash=prev.hex() if done else head_hash.hex(),
                        segments=segments)
    atomic_write_bytes(path, msgspec.json.format(msgspec.json.encode(manifest)))
    return manifest


def sweep_stale_temps(directory: Path, *, grace: float = TEMP_GRACE_S) -> list[Path]:
    """Delete the temp files killed publish runs left in ``directory``; returns those deleted.

    Copying content takes no lock (a second run may be writing right now), so only regular files go that
    are named exactly as publish's writers name them (``.<target>.<8 random>.tmp`` for a target
    publish writes in that folder: the manifest, segments, blobs, cache and RefgetStore files) and
    were last modified more than ``grace`` seconds ago. ``os.fwalk`` opens each folder relative to
    its parent's descriptor and never follows a symlink, so nothing outside ``directory`` is touched.
    """
    root = directory.resolve()  # a symlinked DIR itself is the user's choice; links inside it are not
    removed: list[Path] = []
    now = time.time()
    for top, dirs, files, top_fd in os.fwalk(root, follow_symlinks=False):
        rel = Path(top).relative_to(root).parts
        if not rel:
            dirs[:] = [d for d in dirs if d in _CONTENT_TREES]
        elif rel[0] == "segments" or (rel[0] == "blobs" and len(rel) == 2):
            dirs[:] = []
        for name in files:
            target = temp_target(name)
            if target is None or not _published_here(rel, target):
                continue
            try:
                info = os.stat(name, dir_fd=top_fd, follow_symlinks=False)
                if not stat.S_ISREG(info.st_mode) or now - info.st_mtime < grace:
                    continue
                os.unlink(name, dir_fd=top_fd)
            except FileNotFoundError:
                continue  # renamed into place, or swept by another run, since the listing
            removed.append(Path(top, name))
    return removed


def _published_here(rel: tuple[str, ...], target: str) -> bool:
    """Whether publish writes a file named ``target`` into folder ``rel`` of its directory."""
    if not rel:
        return target == MANIFEST
    if rel[0] == "segments":
        return len(rel) == 1 and _SEGMENT_NAME.fullmatch(target) is not None
    if rel[0] == "blobs":
        return len(rel) == 2 and _SHA256.fullmatch(target) is not None and target[:2] == rel[1]
    if rel[0] == "refget":
        return not target.startswith(".")  # publish_refget copies no dot files
    return rel[0] == "cache"


def _clear_unpublished(path: Path) -> None:
    """Remove what sits at a segment's path that the manifest does not list, unless a rename can replace it.

    A symlink or FIFO there would otherwise be written through (clobbering a file elsewhere) or
    block forever; a directory is refused. A regular file (a crashed run's, or one a concurrent
    publish just listed) stays until the new segment's atomic rename replaces it, so a mirror
    reading that run's manifest never finds the path missing.
    """
    if path.is_symlink() or (path.exists() and not path.is_dir() and not path.is_file()):
        path.unlink()
    elif path.is_dir():
        raise InvalidInputError(f"{path} is a directory where a new segment goes; remove it")


def publish_blobs(store: Store, directory: Path | str, *, progress: ProgressFactory = null_progress) -> int:
    """Copy every blob not yet in ``directory/blobs/`` (verified as copied); returns how many.

    A file already there of the wrong size (a foreign or damaged file under a blob's name) is
    replaced; re-hashing every published blob on each run would cost too much for a cron job.
    ``progress`` counts bytes, a blob at a time (refpkg alignments run to gigabytes). A mirror that
    has not fetched every blob its log references is refused (NotFoundError), as ``publish_refget``
    refuses sequence holes.
    """
    directory = given_path(directory, "publish directory")
    with store.read() as txn:
        replica = store.log.meta_get(txn, "replica_of") or store.log.meta_get(txn, "promoted_from")
    if replica is not None:
        from .verify import referenced_blobs

        # blobs.all() lists only what a lazy mirror fetched: its followers would be refused the rest
        # ("has no blob ... (publish with --with-blobs)") by a directory that was published so.
        missing = sorted(sha for sha in referenced_blobs(store) if not store.blobs.exists(sha))
        if missing:
            raise NotFoundError(
                f"{len(missing)} refpkg blobs of this mirror are not fetched yet (e.g. {missing[0]}); "
                "run `rgstore mirror pull SOURCE --with-blobs` before publishing --with-blobs"
            )
    todo: list[tuple[str, int]] = []
    for sha in store.blobs.all():
        dest = directory / "blobs" / sha[:2] / sha
        try:
            size = store.blobs.path(sha).stat().st_size
        except FileNotFoundError:
            continue  # removed by a gc since it was listed
        if not (dest.is_file() and dest.stat().st_size == size):
            todo.append((sha, size))
    bar = progress("publish blobs", total=sum(size for _sha, size in todo), unit="B")
    copied = 0
    try:
        with no_room(directory / "blobs", "a published blob"):
            for sha, size in todo:
                try:
                    store.blobs.copy_to(sha, directory / "blobs" / sha[:2] / sha)
                except NotFoundError:
                    # A gc running during a long publish removed it: it was unreferenced, and an absent
                    # blob was never listed anyway. Failing here lost the whole run.
                    if store.blobs.exists(sha):
                        raise
                    continue
                copied += 1
                bar.update(size)
    finally:
        bar.close()
    return copied


def publish_refget(store: Store, directory: Path | str) -> int:
    """Mirror the store's RefgetStore into ``directory/refget/``; returns how many files were written.

    Sequence files are immutable (named by digest) and copied once; the small index, alias and
    FHR files are replaced atomically whenever their bytes differ, manifest (``rgstore.json``) last.
    A mirror that has not fetched all its sequences is refused (NotFoundError) rather than
    publishing a RefgetStore with holes.
    """
    directory = given_path(directory, "publish directory")
    with store.read() as txn:
        replica = store.log.meta_get(txn, "replica_of") or store.log.meta_get(txn, "promoted_from")
    if replica is not None:
        from .mirror import missing_sequences

        # A lazy mirror would publish a RefgetStore with holes its own followers could never fill.
        missing = missing_sequences(store, include_remote=False)
        if missing:
            raise NotFoundError(
                f"{len(missing)} genome sequences of this mirror are not fetched yet (e.g. {missing[0]}); "
                "run `rgstore mirror pull SOURCE --with-sequences` before publishing --with-refget"
            )
    src_root = store.refget_path
    if not (src_root / "rgstore.json").is_file():
        return 0
    dest_root = directory / "refget"
    written = 0
    files = sorted(p for p in src_root.rglob("*") if p.is_file() and not p.name.startswith("."))
    files.sort(key=lambda p: p.name == "rgstore.json")  # the manifest goes last: readers never see it early
    with no_room(dest_root, "a published RefgetStore file"):
        for src in files:
            rel = src.relative_to(src_root)
            dest = dest_root / rel
            immutable = rel.parts[0] == "sequences" and src.suffix == ".seq"
            if dest.is_file() and dest.stat().st_size == src.stat().st_size and (
                    immutable or dest.read_bytes() == src.read_bytes()):  # only small index files are compared whole
                continue
            with dirs_for(dest.parent):  # a refused copy leaves no empty sequences/xx/ behind
                _copy_atomic(src, dest)
            written += 1
    return written


def _copy_atomic(src: Path, dest: Path) -> None:
    """Copy ``src`` over ``dest`` in chunks via a durable temp file (a chromosome is not read whole)."""
    fd, tmp = mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in read_chunks(src):
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
