"""Published log segments: immutable zstd files of seq ranges plus a manifest, for any static host.

``DIR/manifest.json`` names the log, every segment (file, seq range, sha256, chain hashes at
both ends) and the head. Segments reuse the export format (``rgstore.logfile``), so a segment
is also a valid ``rgstore replay`` input. Publishing appends new segments for records past
the last published one and rewrites only the manifest (atomically): a CDN may cache
segments forever.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import msgspec

from .codec import chain_of, genesis_hash
from .errors import InvalidInputError, LogMismatchError
from .files import atomic_write_bytes
from .logfile import LogHeader, write_log_file
from .progress import ProgressFactory, null_progress
from .store import Store

__all__ = ["Manifest", "SegmentInfo", "check_publish_target", "published_head", "publish", "publish_blobs", "publish_refget", "read_manifest", "MANIFEST"]

MANIFEST = "manifest.json"


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
    format: int = 1


def read_manifest(raw: bytes, origin: str) -> Manifest:
    """Parse manifest bytes; InvalidInputError naming ``origin`` if they are not a manifest."""
    try:
        return msgspec.json.decode(raw, type=Manifest)
    except msgspec.DecodeError as exc:
        raise InvalidInputError(f"{origin}: not an rgstore segment manifest ({exc})") from None


def check_publish_target(store: Store, directory: Path) -> None:
    """Refuse to publish into the store itself (its log directory is LMDB's, not a web root)."""
    if directory.resolve().is_relative_to(store.path.resolve()):
        raise InvalidInputError(f"{directory} is inside the store {store.path}; publish to a directory outside it")


def published_head(directory: Path) -> int:
    """The last seq already published in ``directory`` (0 if nothing is)."""
    path = directory / MANIFEST
    return read_manifest(path.read_bytes(), str(path)).head_seq if path.exists() else 0


def publish(store: Store, directory: Path, *, segment_size: int = 100_000,
            progress: ProgressFactory = null_progress) -> Manifest:
    """Write segments for every record not yet published into ``directory``; return the manifest."""
    if segment_size < 1:
        raise InvalidInputError("--segment-size must be at least 1")
    check_publish_target(store, directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "segments").mkdir(exist_ok=True)
    path = directory / MANIFEST
    with store.read() as txn:
        log_id = store.log.log_id(txn)
        head, head_hash = store.log.head(txn)
        manifest = read_manifest(path.read_bytes(), str(path)) if path.exists() else Manifest(log_id=log_id)
        if manifest.log_id != log_id:
            raise LogMismatchError(f"{directory} publishes log {manifest.log_id}, not this store's {log_id}")
        done = manifest.segments[-1].last_seq if manifest.segments else 0
        prev = bytes.fromhex(manifest.segments[-1].last_hash) if manifest.segments else genesis_hash(log_id)
        if done > head:
            raise LogMismatchError(f"{directory} already holds seqs up to {done}, past this store's head {head}")
        if done:
            local = store.log.record(txn, done)
            if local is None or chain_of(local) != prev:
                raise LogMismatchError(f"{directory} diverges from this log at seq {done}")
        bar = progress("publish", total=head - done, unit="ev")
        segments = list(manifest.segments)
        while done < head:
            last = min(done + segment_size, head)
            records = [(seq, bytes(rec)) for seq, rec in store.log.records(txn, after=done, upto=last)]
            last_hash = chain_of(records[-1][1])
            name = f"segments/{done + 1:012d}-{last:012d}.rgseg"
            header = LogHeader(log_id=log_id, first_seq=done + 1, last_seq=last, prev_hash=prev.hex(),
                               head_hash=last_hash.hex())
            write_log_file(directory / name, header, records)
            data = (directory / name).read_bytes()
            segments.append(SegmentInfo(file=name, first_seq=done + 1, last_seq=last,
                                        sha256=hashlib.sha256(data).hexdigest(), size=len(data),
                                        prev_hash=prev.hex(), last_hash=last_hash.hex()))
            bar.update(len(records))
            done, prev = last, last_hash
        bar.close()
    manifest = Manifest(log_id=log_id, head_seq=done, head_hash=prev.hex() if done else head_hash.hex(),
                        segments=segments)
    atomic_write_bytes(path, msgspec.json.format(msgspec.json.encode(manifest)))
    return manifest


def publish_blobs(store: Store, directory: Path) -> int:
    """Copy every blob not yet in ``directory/blobs/`` (verified as copied); returns how many."""
    copied = 0
    for sha in store.blobs.all():
        dest = directory / "blobs" / sha[:2] / sha
        if not dest.exists():
            store.blobs.copy_to(sha, dest)
            copied += 1
    return copied


def publish_refget(store: Store, directory: Path) -> int:
    """Mirror the store's RefgetStore into ``directory/refget/``; returns how many files were written.

    Sequence files are immutable (named by digest) and copied once; the small index, alias and
    FHR files are replaced atomically whenever their bytes differ, manifest (``rgstore.json``) last.
    """
    src_root = store.refget_path
    if not (src_root / "rgstore.json").is_file():
        return 0
    dest_root = directory / "refget"
    written = 0
    files = sorted(p for p in src_root.rglob("*") if p.is_file() and not p.name.startswith("."))
    files.sort(key=lambda p: p.name == "rgstore.json")  # the manifest goes last: readers never see it early
    for src in files:
        rel = src.relative_to(src_root)
        dest = dest_root / rel
        immutable = rel.parts[0] == "sequences" and src.suffix == ".seq"
        if dest.exists() and (immutable or dest.read_bytes() == src.read_bytes()):
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(dest, src.read_bytes())
        written += 1
    return written
