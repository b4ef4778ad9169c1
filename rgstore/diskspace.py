"""Writes the disk refused (full, a quota, a file size limit): free space and one-line errors that say so.

LMDB reports a short write (the disk filled up mid-commit) as EIO and gtars reports a failed
import with its own words, so neither names the real cause; these helpers let the caller say
"the disk is full" when it is, instead of blaming the store or the input.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import DiskWriteError

__all__ = ["free_bytes", "file_size_limit", "os_error_text", "short_of_space", "log_write_failed", "refused_write",
           "no_room", "limit_note", "refusal_fix", "FULL_BELOW", "WRITE_ERRNOS"]

FULL_BELOW = 1 << 20
"""A disk with less free space than this (1 MiB) is called full after a failed write."""

WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
"""The errnos of a write the disk (or a quota, or RLIMIT_FSIZE) refused for want of room."""


def free_bytes(path: Path) -> int | None:
    """Bytes an unprivileged process may still write on the filesystem holding ``path`` (None if unknown)."""
    for candidate in (path, *path.parents):
        try:
            st = os.statvfs(candidate)
        except OSError:
            continue
        return st.f_bavail * st.f_frsize
    return None


def file_size_limit() -> int | None:
    """This process's file size limit (``ulimit -f``, RLIMIT_FSIZE) in bytes; None when there is none."""
    import resource

    soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    return None if soft == resource.RLIM_INFINITY else soft


def short_of_space(path: Path, needed: int = FULL_BELOW) -> int | None:
    """The free bytes on ``path``'s filesystem when fewer than ``needed`` (else None: room enough, or unknown)."""
    free = free_bytes(path)
    return free if free is not None and free < max(needed, FULL_BELOW) else None


def os_error_text(exc: OSError) -> str:
    """``strerror: file`` (``strerror: source -> destination`` for a copy), as one line."""
    text = exc.strerror or str(exc)
    if exc.filename is not None:
        text += f": {os.fsdecode(exc.filename)}"
        if exc.filename2 is not None:
            text += f" -> {os.fsdecode(exc.filename2)}"
    return text


def log_write_failed(log_dir: Path, exc: Exception) -> DiskWriteError:
    """The error for an LMDB commit the disk refused: nothing was committed, and whether the disk is full."""
    free = free_bytes(log_dir)
    if (free is not None and free < FULL_BELOW) or "No space left" in str(exc):
        cause = f"the disk is full ({free if free is not None else 0:,} bytes free): free space and run the command again"
    elif "File too large" in str(exc):
        cause = "a file size limit (ulimit -f) or the filesystem's largest file stopped it: raise it and run the command again"
    else:
        cause = "check the disk's free space, quota and health, then run the command again"
    return DiskWriteError(f"writing the store's log in {log_dir} failed ({exc}); nothing was committed: {cause}")


def refused_write(exc: BaseException, where: Path, what: str) -> DiskWriteError | None:
    """The one-line error for writing ``what`` into directory ``where`` when the disk refused it for want of room.

    None for any other failure. A bare errno from ``write``/``fsync`` names no file, so the caller
    says which directory's disk is full and that ``what`` was not written. EFBIG under a file size
    limit (``ulimit -f``) with the disk not full names that limit instead: freeing space would not help.
    """
    if not isinstance(exc, OSError) or exc.errno not in WRITE_ERRNOS:
        return None
    free = free_bytes(where)
    return DiskWriteError(f"no room for {what} in {where} ({exc.strerror}; {free or 0:,} bytes free"
                          f"{limit_note(exc, free)}); it was not written: {refusal_fix(exc, free)}")


def limit_note(exc: OSError, free: int | None) -> str:
    """``; this process's file size limit is N bytes, ulimit -f`` when that limit, not the disk, refused ``exc``; else "".

    EFBIG under RLIMIT_FSIZE with the disk not full: saying "free space" would send the user the wrong way.
    """
    limit = file_size_limit()
    if exc.errno != errno.EFBIG or limit is None or (free is not None and free < FULL_BELOW):
        return ""
    return f"; this process's file size limit is {limit:,} bytes, ulimit -f"


def refusal_fix(exc: OSError, free: int | None) -> str:
    """What to do about a write refused with ``exc`` on a disk with ``free`` bytes free, ending "run the command again"."""
    if limit_note(exc, free):
        return "raise the file size limit (ulimit -f) and run the command again"
    if exc.errno == errno.EFBIG:  # no limit of ours: the filesystem's largest file, or a full disk
        return "free space or write to a filesystem that takes larger files, and run the command again"
    return "free space and run the command again"



@contextmanager
def no_room(where: Path, what: str) -> Iterator[None]:
    """Turn a write in the block that the disk refused for want of room into ``refused_write``'s DiskWriteError.

    Any other error passes unchanged. For copies into a directory the user named (``log publish``),
    whose bare ``write`` errno names no file.
    """
    try:
        yield
    except OSError as exc:
        refused = refused_write(exc, where, what)
        if refused is None:
            raise
        raise refused from None
