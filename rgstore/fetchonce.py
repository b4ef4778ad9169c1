"""One download of a sequence at a time across processes: a per-sequence flock taken before fetching it.

Two processes reading the same unfetched sequence (two ``rgstore getseq``, two API workers' fetch
workers) each downloaded all of it: a 30 Mbp chromosome twice. ``fetching`` holds an flock on
``STORE/.fetching/<digest>.lock`` around one fetch of the sequence; a second fetch of it waits
there, then looks again and finds it cached instead of downloading it. Correctness never rests on
this lock (a fetch verifies what it downloads and imports under ``refgetstore.fetch_lock``): where
flock does nothing, or the lock file cannot be made, the worst case is the duplicate download.

Lock order: this lock is taken first and never while holding another (not ``fetch_lock``, not the
RefgetStore writer lock, which a fetch takes inside it), so it deadlocks with neither. A holder
killed outright (SIGKILL, OOM) releases it with its process: the kernel drops the flock, and the
waiter, finding the sequence still missing, fetches it itself, as it does after a holder's fetch
failed. The wait is a blocking ``flock``, which CPython retries on EINTR after running the signal
handlers: Ctrl-C (and the CLI's SIGTERM) interrupt it like any other wait.
A batch fetch (``remotefetch.fetch_many``, ``Claims``) holds many of these locks at once, so it
never waits for one while holding others: it skips a busy one and fetches it after the batch as a
single fetch does, holding no other.

Lock files are rendezvous points only: the holder removes its own on the way out, while it still
holds it, and a waiter that then gets the lock of a removed file (another inode than the one at
the path) takes the file at the path instead (``cachelock``'s protocol). One left by a killed
holder is taken and removed by the next fetch of that sequence.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from .files import lock_is_current, open_lock

if TYPE_CHECKING:
    from .store import Store

__all__ = ["FETCHING_DIR", "Claims", "fetching", "lock_path"]

FETCHING_DIR = ".fetching"
"""Per-sequence fetch locks live in ``STORE/.fetching/``."""


def lock_path(store: Store, bare: str) -> Path:
    """The lock file of sequence ``bare``'s fetch (a bare sha512t24u: a safe file name)."""
    return store.path / FETCHING_DIR / f"{bare}.lock"


def _take(store: Store, bare: str, *, wait: bool) -> int | None:
    """Sequence ``bare``'s fetch lock, held: its descriptor; -1 when no lock can be made; None when busy (not ``wait``)."""
    path = lock_path(store, bare)
    while True:
        try:
            path.parent.mkdir(exist_ok=True)
            fd = open_lock(path)
        except OSError:
            return -1  # no single-flight here, never a failed read for want of a lock file
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return None  # another process is fetching it
            if lock_is_current(fd, path):
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # its holder removed it as it let go: the file at the path now is the lock


def _let_go(store: Store, bare: str, fd: int) -> None:
    """Release a lock ``_take`` returned, removing its file while still holding it (a no-op for -1)."""
    if fd < 0:
        return
    try:
        lock_path(store, bare).unlink()  # still holding it: a waiter on this inode sees it gone and takes the path's next file
    except OSError:
        pass  # another user's directory: the file stays, reused by the next fetch
    os.close(fd)


@contextmanager
def fetching(store: Store, bare: str) -> Iterator[None]:
    """Hold sequence ``bare``'s fetch lock for the block: no other process fetches it meanwhile.

    Waits (interruptibly) for another process's fetch of it to end. A lock that cannot be made
    (a directory this user may not write) is skipped: the fetch then runs unguarded, as before.
    """
    fd = _take(store, bare, wait=True)
    assert fd is not None  # a take that waits is never turned away
    try:
        yield
    finally:
        _let_go(store, bare, fd)


class Claims:
    """Fetch locks a batch fetch holds, taken without waiting: never a deadlock, whatever another fetch holds.

    A batch takes each sequence's lock before downloading it and keeps it until the sequence is
    imported (a single fetch waiting on it then finds it cached); one another process is fetching
    is skipped (``claim`` is False) and fetched after the batch, through ``fetching``, holding no
    other lock while it waits. Locks that cannot be made are skipped as ``fetching`` skips them.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.held: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.held)

    def claim(self, bare: str) -> bool:
        """Take ``bare``'s lock if free (True), or say another process is fetching it (False)."""
        if bare in self.held:
            return True
        fd = _take(self.store, bare, wait=False)
        if fd is None:
            return False
        self.held[bare] = fd
        return True

    def release(self, bare: str | None = None) -> None:
        """Let go of ``bare``'s lock, or of all of them."""
        for one in [bare] if bare is not None else list(self.held):
            fd = self.held.pop(one, None)
            if fd is not None:
                _let_go(self.store, one, fd)
