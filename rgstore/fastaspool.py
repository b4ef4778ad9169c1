"""A FASTA given as a stream (``-``, a pipe, a socket, a character device) saved once into the store's scratch.

Ingest reads a FASTA several times (validation, the independent digest child, gtars' import,
the sequence-file repair), which a stream's single pass cannot serve. ``spooled`` copies the
stream into a file in a ``scratch_dir`` of the store (flock-marked while in use, removed in
every outcome; a SIGKILLed run's is collected by ``sweep_scratch``), so the rest of ingest
reads an ordinary file. Compression is detected later by content: gzip or BGZF bytes are
spooled as they come.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from .diskspace import refused_write
from .errors import DiskWriteError, InvalidInputError, RgstoreError
from .pathtext import path_text, user_path
from .progress import ProgressFactory, null_progress
from .refgetstore import scratch_dir

if TYPE_CHECKING:
    from .store import Store

__all__ = ["STDIN", "recorded_path", "spooled", "stream_kind"]

STDIN = "-"
"""The FASTA path that means standard input (the Unix convention)."""

_CHUNK = 1 << 20
_FD_PATH = re.compile(r"/(?:dev|proc/self)/fd/(\d+)")


def stream_kind(path: str | os.PathLike[str]) -> str | None:
    """``standard input``, ``a pipe``, ``a socket`` or ``a character device`` when ``path`` is a stream to spool; else None.

    None too for a path that cannot be stat'ed (missing, unreadable): the file's own open names that.
    """
    if os.fspath(path) == STDIN:
        return "standard input"
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    if stat.S_ISFIFO(mode):
        return "a pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode):
        return "a character device"
    return None


def recorded_path(path: str | os.PathLike[str]) -> str:
    """What a genome's source records for the FASTA the user gave: ``-``, a stream's absolute path, a file's real path.

    A stream's path is not resolved: ``/dev/fd/63`` resolves to ``/proc/<pid>/fd/pipe:[...]``, which names nothing.
    """
    if os.fspath(path) == STDIN:
        return STDIN
    if stream_kind(path) is not None:
        return path_text(os.path.abspath(path))
    return path_text(user_path(path).resolve())


@contextmanager
def spooled(store: Store, path: Path, *, progress: ProgressFactory = null_progress) -> Iterator[Path]:
    """``path`` itself when it is not a stream; else a scratch file holding every byte read from it, removed afterwards.

    Errors raised in the block that name the scratch file name the stream instead (``standard input``
    or its path), so an empty or malformed stream reads as an empty or malformed file would.
    A disk too full for the copy is a one-line DiskWriteError.
    """
    kind = stream_kind(path)
    if kind is None:
        yield path
        return
    shown = "standard input" if kind == "standard input" else os.fspath(path)
    with _opened(path, shown) as source, scratch_dir(store, ".ingest-") as scratch:
        # Named after the stream (progress bars show it); never a dot name such as the scratch's own ``.in-use``.
        name = "stdin" if kind == "standard input" else path.name
        spool = scratch / (name if name and not name.startswith(".") else "stream")
        _copy(source, spool, shown, store, progress)
        try:
            yield spool
        except RgstoreError as exc:
            renamed = _renamed(exc, os.fspath(spool), shown)
            if renamed is None:
                raise
            raise renamed.with_traceback(exc.__traceback__) from None


@contextmanager
def _opened(path: Path, shown: str) -> Iterator[BinaryIO]:
    if os.fspath(path) == STDIN:
        stdin = getattr(sys.stdin, "buffer", None)
        if stdin is None:
            raise InvalidInputError("standard input is closed: pipe the FASTA into the command, or give its path")
        yield stdin  # not closed: it is the process's
        return
    # Like `cat`, a named pipe with no writer yet blocks here until one opens it (Ctrl-C ends the wait).
    try:
        fh: BinaryIO = open(path, "rb")
    except OSError as exc:
        match = _FD_PATH.fullmatch(os.fspath(path))
        if match is None or exc.errno != errno.ENXIO:  # Linux will not open() a socket, even by /dev/fd/N
            raise InvalidInputError(f"{shown}: cannot read it ({exc.strerror})") from None
        try:
            fh = os.fdopen(os.dup(int(match.group(1))), "rb")
        except OSError as dup_exc:
            raise InvalidInputError(f"{shown}: cannot read it ({dup_exc.strerror})") from None
    with fh:
        yield fh


def _copy(source: BinaryIO, spool: Path, shown: str, store: Store, progress: ProgressFactory) -> None:
    bar = progress(f"read {spool.name}", total=None, unit="B")
    try:
        with open(spool, "xb") as out:
            while True:
                try:
                    chunk = source.read(_CHUNK)
                except OSError as exc:
                    raise InvalidInputError(f"{shown}: reading it failed ({exc.strerror})") from None
                if not chunk:
                    break
                try:
                    out.write(chunk)
                except OSError as exc:
                    raise _disk_error(exc, store, shown) from None
                bar.update(len(chunk))
            try:
                out.flush()
            except OSError as exc:
                raise _disk_error(exc, store, shown) from None
    finally:
        bar.close()


def _disk_error(exc: OSError, store: Store, shown: str) -> DiskWriteError:
    refused = refused_write(exc, store.path, f"a copy of the FASTA read from {shown}")
    return refused if refused is not None else DiskWriteError(
        f"writing a copy of the FASTA read from {shown} into {store.path} failed ({exc.strerror or exc}): "
        "check the disk, then run the command again")


def _renamed(exc: RgstoreError, spool: str, shown: str) -> RgstoreError | None:
    """``exc`` again with ``shown`` for the scratch file's path; None when it does not name it or cannot be rebuilt."""
    if len(exc.args) != 1 or not isinstance(exc.args[0], str) or spool not in exc.args[0]:
        return None
    try:
        return type(exc)(exc.args[0].replace(spool, shown))
    except TypeError:  # an error type whose constructor wants other arguments
        return None
