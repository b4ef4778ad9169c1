"""The blobs of one command: stored before its transaction, deleted again if the command fails.

Blobs must exist before the events naming them commit, so a command stores its files first.
If it then fails, the blobs it newly created are deleted, but only inside a write transaction
and only if no view references them by then: the write lock guarantees no other command can
commit a reference while we look. A concurrent command that stored the same content (and so
did not create it) finds the blob gone when it commits; ``StagedBlobs.commit`` re-stores it
and retries.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from .blobs import BlobInfo, hash_file
from .environment import Txn
from .errors import ConflictError
from .events import FileRef
from .files import read_chunks
from .log import NewEvent

if TYPE_CHECKING:
    from .store import Store

__all__ = ["StagedBlobs", "staged_blobs", "discard_unreferenced"]

_ATTEMPTS = 3
Reader = Callable[[], Iterable[bytes]]
"""Reads one source's bytes from the start, in pieces."""


class StagedBlobs:
    """Files one command has stored as blobs, and which of them it created."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.created: list[str] = []
        self.sources: dict[str, Reader] = {}

    def put(self, path: Path, *, likely: FileRef | None = None) -> BlobInfo:
        """Store ``path`` as a blob (remembering where it came from, to re-store it if need be).

        ``likely`` is the file ``path`` replaces: when ``path`` still holds its bytes and the stored
        copy is intact, nothing is written (an unchanged 1 GB alignment named again in an update
        was copied and fsynced in full, only to be dropped as a duplicate).
        """
        if likely is not None and self._still_stored(path, likely):
            self.sources.setdefault(likely.sha256, lambda: read_chunks(path))
            return BlobInfo(sha256=likely.sha256, md5=likely.md5, size=likely.size)
        return self.put_stream(lambda: read_chunks(path))

    def _still_stored(self, path: Path, ref: FileRef) -> bool:
        """Whether ``path`` holds ``ref``'s bytes and the store's copy of them is intact (a size check first)."""
        blobs = self.store.blobs
        if path.stat().st_size != ref.size or not blobs.exists(ref.sha256):
            return False
        found = hash_file(path)
        if (found.sha256, found.md5, found.size) != (ref.sha256, ref.md5, ref.size):
            return False
        try:  # a copy damaged at the same size gets replaced, as put_chunks does
            with open(blobs.path(ref.sha256), "rb") as fh:
                if hashlib.file_digest(fh, "sha256").hexdigest() != ref.sha256:
                    return False
        except FileNotFoundError:
            return False
        # Refresh the mtime, as put_chunks does for a duplicate: gc's grace period then keeps the blob
        # until this command commits (and a gc that wins anyway makes ``commit`` store it again).
        os.utime(blobs.path(ref.sha256))
        return True

    def put_stream(self, read: Reader) -> BlobInfo:
        """Store the bytes ``read()`` yields (an archive member, say) without a temp copy; ``read`` is
        kept, and called again should the blob need storing again."""
        info, new = self.store.blobs.put_chunks(read())
        if new:
            self.created.append(info.sha256)
        self.sources.setdefault(info.sha256, read)
        return info

    def release(self, keep: Collection[str]) -> None:
        """Forget the staged blobs not in ``keep``, deleting those this command created (if no view references them).

        For what was stored only in case it was needed (the files of a tar read once, ahead of the
        manifest that says which it names): left staged, they would stay behind as garbage.
        """
        gone = [sha for sha in self.sources if sha not in keep]
        for sha in gone:
            del self.sources[sha]
        # Forgotten only once deleted: interrupted meanwhile (Ctrl-C), ``staged_blobs`` still discards them.
        discard_unreferenced(self.store, [sha for sha in self.created if sha not in keep])
        self.created = [sha for sha in self.created if sha in keep]

    def commit(self, command: Callable[[Txn], Sequence[NewEvent]]) -> list[int]:
        """``store.transact(command)`` naming every staged blob; retried if one vanished meanwhile."""
        for attempt in range(_ATTEMPTS):
            try:
                return self.store.transact(command, blobs=list(self.sources))
            except ConflictError:
                missing = [sha for sha in self.sources if not self.store.blobs.exists(sha)]
                if not missing or attempt == _ATTEMPTS - 1:
                    raise
                for sha in missing:
                    self.put_stream(self.sources[sha])
        raise AssertionError("unreachable")


@contextmanager
def staged_blobs(store: Store) -> Iterator[StagedBlobs]:
    """Stage a command's blobs; if the block raises, the blobs it created are discarded."""
    staged = StagedBlobs(store)
    try:
        yield staged
    except BaseException:
        discard_unreferenced(store, staged.created)
        raise


def discard_unreferenced(store: Store, shas: Sequence[str]) -> list[str]:
    """Delete these blobs unless a view references them (checked under the write lock); returns those gone."""
    if not shas:
        return []
    deleted: list[str] = []

    def sweep(txn: Txn) -> None:
        referenced: set[str] = set()
        for view in store.views:
            referenced.update(view.referenced_blobs(txn, store.environment))
        for sha in dict.fromkeys(shas):
            if sha not in referenced:
                store.blobs.delete(sha)
                deleted.append(sha)

    store.environment.write(sweep)
    return deleted
