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
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import IntegrityError
from .files import mkstemp

if TYPE_CHECKING:
    from .refgetstore import Ingested, SequenceFiles

__all__ = ["restore_sequence_files", "file_digest"]

_CHUNK = 1 << 22
_UPPER = bytes.maketrans(b"abcdefghijklmnopqrstuvwxyz", b"ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def file_digest(path: str) -> tuple[str, int] | None:
    """(sha512t24u, size) of a data file's bytes; None if it cannot be read."""
    digest, size = hashlib.sha512(), 0
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
    except OSError:
        return None
    return base64.urlsafe_b64encode(digest.digest()[:24]).decode(), size


def _damaged(files: SequenceFiles, bare: str, length: int, rehash: bool) -> bool:
    if not files.readable(bare, length):
        return True
    return rehash and file_digest(files.file(bare)) != (bare, length)


def restore_sequence_files(
    files: SequenceFiles, source: Path, compression: str, ingested: Ingested, *, rehash: bool,
) -> list[str]:
    """Rewrite the data files of ``ingested``'s sequences that are missing, cut short or (``rehash``) altered.

    ``source`` is the FASTA just imported (validated, and its digests checked against gtars'), read
    with ``compression``. Returns the bare digests rewritten. IntegrityError (nothing replaced for
    that sequence) if the residues read back do not hash to their digest.
    """
    bad: dict[int, str] = {}
    for i, (digest, length) in enumerate(zip(ingested.sequences, ingested.lengths, strict=True)):
        bare = digest.removeprefix("SQ.")
        if bare not in bad.values() and _damaged(files, bare, length, rehash):
            bad[i] = bare
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
    fd, tmp = mkstemp(dir=directory)
    try:
        digest, size = hashlib.sha512(), 0
        with os.fdopen(fd, "wb") as out:
            for piece in pieces:
                digest.update(piece)
                size += len(piece)
                out.write(piece)
            out.flush()
            os.fsync(out.fileno())
        got = base64.urlsafe_b64encode(digest.digest()[:24]).decode()
        if (got, size) != (bare, length):
            raise IntegrityError(f"restoring sequence {bare}: the FASTA's residues hash to {got} ({size:,} of "
                                 f"{length:,}); the damaged data file {path} was left as it was")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
