"""Rewrite a genome's damaged or deleted sequence data files from the FASTA being added again.

gtars 0.10.0 skips a sequence its index already lists, so re-adding a FASTA (what `rgstore verify`
advises for a missing or corrupt ``.seq`` file) would leave the damage in place. After an import,
``restore_sequence_files`` checks each of the collection's data files (size always; content too
when ``rehash``) and rewrites the bad ones from the FASTA's residues, each checked against its
refget digest before it replaces the old file atomically.
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import IntegrityError
from .files import mkstemp

if TYPE_CHECKING:
    from .refgetstore import Ingested, SequenceFiles

__all__ = ["restore_sequence_files", "file_digest", "TEMP_PREFIX", "leftover_temp_files"]

TEMP_PREFIX = ".tmp-"
"""A rewrite's temp file, beside the data file it replaces; `rgstore gc` removes those killed writers left."""

_CHUNK = 1 << 22
_UPPER = bytes.maketrans(b"abcdefghijklmnopqrstuvwxyz", b"ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def file_digest(path: str) -> tuple[str, int] | None:
    """(sha512t24u, size) of a data file's bytes; None if it cannot be read."""
    digest, size = hashlib.sha512(), 0
    try:
        with open(path, "rb", buffering=0) as fh:
            # One buffer refilled in place (no new bytes object per read), no larger than the file: a
            # genome of 200k small contigs would otherwise zero 4 MiB per file.
            buffer = bytearray(min(_CHUNK, os.fstat(fh.fileno()).st_size + 1))
            view = memoryview(buffer)
            while n := fh.readinto(buffer):
                digest.update(view[:n])  # hashlib drops the GIL here: other files hash on other threads
                size += n
    except OSError:
        return None
    return base64.urlsafe_b64encode(digest.digest()[:24]).decode(), size


def _damaged(files: SequenceFiles, bare: str, length: int, rehash: bool) -> bool:
    if not files.readable(bare, length):
        return True
    return rehash and file_digest(files.file(bare)) != (bare, length)


def _find_damaged(files: SequenceFiles, todo: list[tuple[int, str, int]], rehash: bool) -> dict[int, str]:
    """Record index -> bare digest of the ``(index, bare, length)`` whose data file is damaged (``_damaged``).

    Re-hashing a whole genome's files (a re-add: ~0.5 s per 200 Mbp on one core) runs on several
    threads; sizes alone are a stat each, done here.
    """
    workers = min(len(todo), os.cpu_count() or 1, 8) if rehash else 1
    if workers <= 1:
        return {i: bare for i, bare, length in todo if _damaged(files, bare, length, rehash)}
    shared = iter(todo)  # a list iterator hands each item to one thread (next() is atomic under the GIL)
    stop = threading.Event()

    def work() -> list[tuple[int, str]]:
        found = []
        for i, bare, length in shared:
            if stop.is_set():  # the caller was interrupted: do not hash the rest of the genome first
                break
            if _damaged(files, bare, length, rehash):
                found.append((i, bare))
        return found

    pool = ThreadPoolExecutor(workers, thread_name_prefix="rgstore-rehash")
    try:
        parts = [pool.submit(work) for _ in range(workers)]
        return dict(sorted(item for part in parts for item in part.result()))
    finally:
        stop.set()
        pool.shutdown(wait=True)


def restore_sequence_files(
    files: SequenceFiles, source: Path, compression: str, ingested: Ingested, *, rehash: bool,
) -> list[str]:
    """Rewrite the data files of ``ingested``'s sequences that are missing, cut short or (``rehash``) altered.

    ``source`` is the FASTA just imported (validated, and its digests checked against gtars'), read
    with ``compression``. Returns the bare digests rewritten. IntegrityError (nothing replaced for
    that sequence) if the residues read back do not hash to their digest.
    """
    todo: list[tuple[int, str, int]] = []
    seen: set[str] = set()  # records sharing a sequence share its file: check it once (a set: 200k contigs)
    for i, (digest, length) in enumerate(zip(ingested.sequences, ingested.lengths, strict=True)):
        bare = digest.removeprefix("SQ.")
        if bare not in seen:
            seen.add(bare)
            todo.append((i, bare, length))
    bad = _find_damaged(files, todo, rehash)
    if not bad:
        return []
    from .fasta import _decompressed

    with _decompressed(source, compression) as fh:
        for i, pieces in enumerate(_records(fh)):
            if i in bad:
                _replace(files.file(bad[i]), pieces, bad[i], ingested.lengths[i])
            else:
                for _ in pieces:  # skip this record's residues
                    pass
    return list(bad.values())


def leftover_temp_files(files: SequenceFiles, older_than: float, prefix: str = TEMP_PREFIX) -> list[Path]:
    """Temp files named ``prefix*`` in the sequence folders not modified for ``older_than`` seconds.

    By default the rewrites' own (a live rewrite touches its file as it writes).
    """
    import glob
    import time

    root = os.path.join(files.root, "")
    folders = os.path.dirname(files.file("*").removeprefix(root))  # the template's, e.g. sequences/*
    found = []
    for name in glob.glob(os.path.join(glob.escape(root), folders, glob.escape(prefix) + "*")):
        try:
            if time.time() - os.stat(name).st_mtime >= older_than:
                found.append(Path(name))
        except OSError:
            pass  # renamed into place meanwhile
    return found


def _records(fh: object) -> Iterator[Iterator[bytes]]:
    """Each record's residues (upper case, line breaks removed) in order; consume one before the next."""
    reader = _Lines(fh)
    while reader.next_header():
        yield reader.residues()


class _Lines:
    """Bounded-memory line pieces of a FASTA stream (a one-line chromosome is read in chunks)."""

    def __init__(self, fh: object) -> None:
        self.fh = fh
        self.pending: bytes | None = None  # the header line that ended the previous record
        self.at_start = True

    def _piece(self) -> tuple[bytes, bool]:
        """(the next piece of a line, whether it starts a line)."""
        start = self.at_start
        piece: bytes = self.fh.readline(_CHUNK)  # type: ignore[attr-defined]
        self.at_start = piece.endswith(b"\n")
        return piece, start

    def _skip_line(self, piece: bytes) -> None:
        while piece and not piece.endswith(b"\n"):
            piece = self.fh.readline(_CHUNK)  # type: ignore[attr-defined]
        self.at_start = True

    def next_header(self) -> bool:
        if self.pending is not None:
            self._skip_line(self.pending)
            self.pending = None
            return True
        while True:
            piece, start = self._piece()
            if not piece:
                return False
            if start and piece.startswith(b">"):
                self._skip_line(piece)
                return True

    def residues(self) -> Iterator[bytes]:
        while True:
            piece, start = self._piece()
            if not piece:
                return
            if start and piece.startswith(b">"):
                self.pending = piece
                return
            clean = piece.translate(_UPPER, b"\r\n")
            if clean:
                yield clean


def _replace(path: str, pieces: Iterator[bytes], bare: str, length: int) -> None:
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    fd, tmp = mkstemp(dir=directory, prefix=TEMP_PREFIX)
    try:
        digest, size = hashlib.sha512(), 0
        with os.fdopen(fd, "wb") as out:
            for piece in pieces:
                digest.update(piece)
                size += len(piece)
                out.write(piece)
        # No fsync: gtars writes these files unsynced too, and one per file made a repair of a
        # 20k-contig genome 7x slower than its import. A file a crash cuts short is damage that
        # verify names and this same re-add repairs; rename keeps readers from a partial one.
        got = base64.urlsafe_b64encode(digest.digest()[:24]).decode()
        if (got, size) != (bare, length):
            raise IntegrityError(f"restoring sequence {bare}: the FASTA's residues hash to {got} ({size:,} of "
                                 f"{length:,}); the damaged data file {path} was left as it was")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
