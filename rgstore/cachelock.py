"""Per-entry advisory locks (``cache/.locks/<key>.lock``) so concurrent processes build an entry once.

A second process asking for the same entry blocks until the first finishes, then finds the entry
in the view and counts a hit. Correctness never rests on the lock alone: files are published by
rename only after verification, and the insert re-checks the view inside its write transaction,
so on filesystems where ``flock`` silently does nothing (some NFS, Lustre, GPFS) the worst case is
a duplicated download, never a corrupt entry.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from .errors import ConflictError

__all__ = ["entry_lock", "entry_locks", "LOCK_DIR"]

LOCK_DIR = ".locks"


@contextmanager
def entry_lock(
    cache_root: Path, key: str, *, shared: bool = False, timeout: float | None = None
) -> Iterator[None]:
    """Hold one cache entry's lock (exclusive, or shared among readers); ConflictError after ``timeout``."""
    directory = cache_root / LOCK_DIR
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / f"{key}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    try:
        if timeout is None:
            fcntl.flock(fd, mode)
        else:
            deadline = time.monotonic() + timeout
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
