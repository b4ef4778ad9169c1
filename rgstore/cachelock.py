"""Per-entry advisory locks (``cache/.locks/<key>.lock``) so concurrent processes build an entry once.

A second process asking for the same entry blocks until the first finishes, then finds the entry
in the view and counts a hit. Correctness never rests on the lock alone: files are published by
rename only after verification, and the insert re-checks the view inside its write transaction,
so on filesystems where ``flock`` silently does nothing (some NFS, Lustre, GPFS) the worst case is
a duplicated download, never a corrupt entry.

Lock files are only rendezvous points, so ``cache gc`` removes those nobody holds (one per key
would otherwise pile up forever). That is race-free because a taker checks, once it holds the
flock, that its descriptor is still the file at the path (same inode), and starts again if not;
a remover unlinks only while holding the exclusive flock of the file at the path, so whoever
waited on the unlinked file sees the mismatch and locks the new one.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from .errors import ConflictError
from .files import lock_is_current, open_lock

__all__ = ["entry_lock", "entry_locks", "sweep_lock_files", "LOCK_DIR"]

LOCK_DIR = ".locks"
_SUFFIX = ".lock"


@contextmanager
def entry_lock(
    cache_root: Path, key: str, *, shared: bool = False, timeout: float | None = None
) -> Iterator[None]:
    """Hold one cache entry's lock (exclusive, or shared among readers); ConflictError after ``timeout``."""
    directory = cache_root / LOCK_DIR
    path = directory / f"{key}{_SUFFIX}"
    mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        directory.mkdir(parents=True, exist_ok=True)
        fd = open_lock(path)  # another user's lock file too (a cache shared by a group)
        try:
            if deadline is None:
                fcntl.flock(fd, mode)
            else:
                while True:
                    try:
                        fcntl.flock(fd, mode | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() >= deadline:
                            raise ConflictError(
                                f"cache entry {key} is locked by another process; retry later"
                            ) from None
                        time.sleep(0.05)
            if lock_is_current(fd, path):
                break
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # gc removed the file we waited on: lock the one at the path now
    try:
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock


@contextmanager
def entry_locks(cache_root: Path, keys: Iterable[str], *, timeout: float | None = None) -> Iterator[None]:
    """Hold several entries' locks, taken in sorted order so two processes never deadlock."""
    with ExitStack() as stack:
        for key in sorted(set(keys)):
            stack.enter_context(entry_lock(cache_root, key, timeout=timeout))
        yield


def sweep_lock_files(cache_root: Path, keep: Iterable[str] = ()) -> list[str]:
    """Remove the lock files nobody holds, except those of ``keep`` keys; returns the keys removed.

    Each goes only while this process holds its exclusive flock (never waiting for one), so a
    process that opened it meanwhile finds it unlinked once it gets the lock and takes a new one.
    """
    directory = cache_root / LOCK_DIR
    if not directory.is_dir():
        return []
    kept = set(keep)
    removed: list[str] = []
    for path in sorted(directory.glob(f"*{_SUFFIX}")):
        key = path.name[: -len(_SUFFIX)]
        if key in kept:
            continue
        try:
            fd = open_lock(path, create=False)
        except OSError:
            continue  # gone already, or not ours to open
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if lock_is_current(fd, path):
                path.unlink()
                removed.append(key)
        except OSError:
            continue  # held (in use), or not ours to remove
        finally:
            os.close(fd)
    return removed
