"""The blobs of one command: stored before its transaction, deleted again if the command fails.

Blobs must exist before the events naming them commit, so a command stores its files first.
If it then fails, the blobs it newly created are deleted, but only inside a write transaction
and only if no view references them by then: the write lock guarantees no other command can
commit a reference while we look. A concurrent command that stored the same content (and so
did not create it) finds the blob gone when it commits; ``StagedBlobs.commit`` re-stores it
and retries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from .blobs import BlobInfo
from .environment import Txn
from .errors import ConflictError
from .log import NewEvent

if TYPE_CHECKING:
    from .store import Store

__all__ = ["StagedBlobs", "staged_blobs", "discard_unreferenced"]

_ATTEMPTS = 3


class StagedBlobs:
    """Files one command has stored as blobs, and which of them it created."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.created: list[str] = []
        self.sources: dict[str, Path] = {}

    def put(self, path: Path) -> BlobInfo:
        """Store ``path`` as a blob (remembering where it came from, to re-store it if need be)."""
        info, new = self.store.blobs.put_file(path)
        if new:
            self.created.append(info.sha256)
        self.sources.setdefault(info.sha256, path)
        return info

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
                    self.put(self.sources[sha])
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
