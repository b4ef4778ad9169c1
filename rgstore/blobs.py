"""Content-addressed files under ``blobs/``: written durably before any event names them, verified on every read.

Layout: ``blobs/<sha256[:2]>/<sha256>``. A write streams into a temp file in the same
directory while hashing (sha256 + md5), fsyncs it, renames it into place and fsyncs the
directory; it holds the temp file's flock all along, so gc tells a live writer's from a killed
one's. Blobs are only ever deleted by ``rgstore gc`` (nothing any view references).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

import msgspec

from .diskspace import refused_write
from .environment import fsync_dir, read_only_mount
from .errors import IntegrityError, NotFoundError, UnfetchableError
from .files import CHUNK, dirs_for, mkstemp, read_chunks, write_verified
from .progress import Progress

__all__ = ["BlobStore", "BlobInfo", "hash_file"]



class BlobInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A stored blob's identity: sha256 (its address), md5 and size in bytes."""

    sha256: str
    md5: str
    size: int


def hash_file(path: Path, bar: Progress | None = None) -> BlobInfo:
    """sha256, md5 and size of a file, read in 1 MiB chunks (each one's bytes counted on ``bar``)."""
    import hashlib  # in each hashing function: OpenSSL's ~3 ms import is not every short command's

    sha, md5, size = hashlib.sha256(), hashlib.md5(), 0
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            sha.update(chunk)
            md5.update(chunk)
            size += len(chunk)
            if bar is not None:
                bar.update(len(chunk))
    return BlobInfo(sha256=sha.hexdigest(), md5=md5.hexdigest(), size=size)


_HEX = frozenset("0123456789abcdef")


def _is_blob_path(path: Path) -> bool:
    name = path.name
    return len(name) == 64 and _HEX.issuperset(name) and path.parent.name == name[:2] and path.is_file()


def _sha256_of(path: Path) -> str:
    """The sha256 of a file's bytes as they are now."""
    import hashlib

    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


class BlobStore:
    """The ``blobs/`` directory of a store."""

    def __init__(
        self, root: Path, fetch_missing: Callable[[str, int | None], bool] | None = None,
        check_in_place: Callable[[], None] | None = None,
    ) -> None:
        """``fetch_missing(sha256, size)`` fetches a missing blob from elsewhere (a mirror's upstream); False: nowhere.

        ``check_in_place()`` raises if the whole store was moved or deleted meanwhile (then every blob is "missing").
        """
        self.root = root
        self.fetch_missing = fetch_missing
        self.check_in_place = check_in_place

    def _missing(self, sha256: str) -> NotFoundError:
        """The error for a blob not at its path: StoreClosedError first if the whole store moved away."""
        if self.check_in_place is not None:
            self.check_in_place()
        return NotFoundError(f"blob {sha256} is missing from {self.root}")

    def path(self, sha256: str) -> Path:
        """Where the blob with this sha256 lives (whether or not it exists)."""
        if len(sha256) != 64 or not _HEX.issuperset(sha256):
            raise NotFoundError(f"not a sha256 digest: {sha256!r}")
        return self.root / sha256[:2] / sha256

    def ensure(self, sha256: str, size: int | None = None) -> Path:
        """The blob's path, fetched first by ``fetch_missing`` if it is not here; NotFoundError if nothing has it.

        Not verified here: readers hash what they read (``verify``, a verified copy or response).
        """
        path = self.path(sha256)
        if path.is_file():
            return path
        if self.check_in_place is not None:
            self.check_in_place()  # before a fetch, which would recreate blobs/ where the store no longer is
        if not (self.fetch_missing is not None and self.fetch_missing_here(sha256, size)):
            raise self._missing(sha256)
        return path

    def fetch_missing_here(self, sha256: str, size: int | None) -> bool:
        """``fetch_missing(sha256, size)``; UnfetchableError, not a bare OSError, when ``blobs/`` cannot take it here.

        A read-only mount or a user who may not write the store fails creating the blob's temp file.
        """
        assert self.fetch_missing is not None
        try:
            return self.fetch_missing(sha256, size)
        except OSError:
            where = self.root if self.root.exists() else self.root.parent
            if os.access(where, os.W_OK | os.X_OK):
                raise  # not this store's directory (an upstream's file this user may not read, say)
            why = "the store is on a read-only mount" if read_only_mount(where) else f"this user may not write {where}"
            raise UnfetchableError(
                f"blob {sha256} is not in this store yet and cannot be fetched into it: {why}; fetch it where the "
                "store is writable (a read of it there, or `rgstore mirror pull SOURCE --with-blobs`)"
            ) from None

    def exists(self, sha256: str) -> bool:
        """Whether the blob is present (not whether it is intact)."""
        return self.path(sha256).is_file()

    def put_file(self, source: Path) -> tuple[BlobInfo, bool]:
        """Store a copy of ``source``; returns its info and whether a new blob file was created."""
        with open(source, "rb") as fh:
            return self._put_stream(fh)

    def put_bytes(self, data: bytes) -> tuple[BlobInfo, bool]:
        """Store ``data``; returns its info and whether a new blob file was created."""
        return self.put_chunks([data])

    def _put_stream(self, fh: BinaryIO) -> tuple[BlobInfo, bool]:
        return self.put_chunks(iter(lambda: fh.read(CHUNK), b""))

    def put_chunks(self, chunks: Iterable[bytes], *, expected: str | None = None) -> tuple[BlobInfo, bool]:
        """Store the concatenated ``chunks`` (a stream of any size); returns its info and whether it is new.

        With ``expected``, bytes hashing to anything else are discarded with an IntegrityError.
        """
        import hashlib

        self.root.mkdir(parents=True, exist_ok=True)
        sha, md5, size = hashlib.sha256(), hashlib.md5(), 0
        fd, tmp_name = mkstemp(prefix=".tmp-", dir=self.root)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                # Held until the temp file is renamed or removed (the descriptor closes after both): a download
                # stalled past gc's grace is live work `gc --grace 0` must leave; a killed writer's lock is gone.
                fcntl.flock(out.fileno(), fcntl.LOCK_EX)
                for chunk in chunks:
                    sha.update(chunk)
                    md5.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
                info = BlobInfo(sha256=sha.hexdigest(), md5=md5.hexdigest(), size=size)
                if expected is not None and info.sha256 != expected:
                    raise IntegrityError(f"blob {expected} fails its sha256 (got {info.sha256}); not stored")
                dest = self.path(info.sha256)
                if dest.is_file() and dest.stat().st_size == info.size and _sha256_of(dest) == info.sha256:
                    # Intact: keep it (a backup may share it by hard link). Refresh the mtime: gc's grace period
                    # then protects it until this command commits. A copy damaged at the same size is replaced.
                    os.utime(dest)
                    tmp.unlink()
                    return info, False
                dest.parent.mkdir(exist_ok=True)
                os.replace(tmp, dest)
            fsync_dir(dest.parent)
            return info, True
        except BaseException as exc:
            tmp.unlink(missing_ok=True)
            refused = refused_write(exc, self.root, "a blob")
            if refused is not None:
                raise refused from None
            raise

    def verify(self, sha256: str) -> BlobInfo:
        """Re-hash a blob; IntegrityError if it is corrupt, NotFoundError if it is missing."""
        path = self.path(sha256)
        if not path.is_file():
            raise self._missing(sha256)
        info = hash_file(path)
        if info.sha256 != sha256:
            raise IntegrityError(f"blob {sha256} is corrupt: its content hashes to {info.sha256}")
        return info

    def read_bytes(self, sha256: str) -> bytes:
        """The blob's bytes, verified against its sha256."""
        import hashlib

        data = self.path(sha256).read_bytes() if self.exists(sha256) else None
        if data is None:
            raise self._missing(sha256)
        if hashlib.sha256(data).hexdigest() != sha256:
            raise IntegrityError(f"blob {sha256} is corrupt (checksum mismatch on read)")
        return data

    def copy_to(self, sha256: str, dest: Path) -> None:
        """Copy a blob to ``dest`` atomically, verifying the bytes as they are copied."""
        src = self.path(sha256)
        if not src.is_file():
            raise self._missing(sha256)
        with dirs_for(dest.parent):  # a refused copy leaves no empty folder (in a published directory)
            if not write_verified(dest, read_chunks(src), sha256):
                raise IntegrityError(f"blob {sha256} is corrupt (checksum mismatch on copy)")
        fsync_dir(dest.parent)

    def all(self) -> Iterator[str]:
        """sha256 of every blob file present, sorted (files that are not blobs are skipped: see ``strays``)."""
        for path in self._files():
            if _is_blob_path(path):
                yield path.name

    def strays(self) -> list[Path]:
        """Files under ``blobs/`` that are not blobs where they belong (wrong name or folder); never touched."""
        return [path for path in self._files() if not _is_blob_path(path)]

    def _files(self) -> Iterator[Path]:
        if not self.root.is_dir():
            return
        for sub in sorted(self.root.iterdir()):
            if sub.is_dir():
                for f in sorted(sub.iterdir()):
                    yield f

    def delete(self, sha256: str) -> None:
        """Remove a blob file (only gc calls this, after checking nothing references it)."""
        self.path(sha256).unlink(missing_ok=True)

    def stale_temp_files(self) -> list[Path]:
        """The ``.tmp-*`` files here: killed writers' leftovers, and live writers' (each holds its file's flock)."""
        return sorted(self.root.glob(".tmp-*")) if self.root.is_dir() else []

