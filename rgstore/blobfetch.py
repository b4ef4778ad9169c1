"""A mirror's missing blob, fetched from its upstream on first read and verified by sha256 before it is stored.

A mirror pulled without ``--with-blobs`` holds the events naming refpkg files but not their bytes.
``fetch_missing_blob`` fetches one from the upstream its log records (``meta/replica_of``) exactly
as ``mirror pull --with-blobs`` does (``rgstore.mirror.fetch_blob``): streamed into ``blobs/``
through a temp file and kept only if its sha256 matches. Blobs live outside the LMDB log, so this
is no log write: a read-only open (the API server's fetch workers) fetches too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import NotFoundError, RemoteError

if TYPE_CHECKING:
    from .store import Store

__all__ = ["fetch_missing_blob"]


def fetch_missing_blob(store: Store, sha256: str, size: int | None = None) -> bool:
    """Fetch blob ``sha256`` (``size`` bytes, if known) from the mirror's upstream unless present; False if no mirror.

    True once the blob is here. NotFoundError when the upstream lacks it (an exported log file
    never has blobs), RemoteError when the upstream cannot be reached, IntegrityError when its bytes
    fail the sha256 (nothing is stored); each one line saying what to do.
    """
    if store.blobs.exists(sha256):
        return True
    with store.read() as txn:
        source = store.log.meta_get(txn, "replica_of")
    if source is None:  # a primary (or promoted copy): nothing upstream can supply it
        return False
    from .mirror import fetch_blob

    upstream = source.decode()
    try:
        fetch_blob(store, upstream, sha256, size)
    except (NotFoundError, RemoteError) as exc:
        if str(exc).startswith(f"blob {sha256} "):  # already says which blob and what to do
            raise
        # A pull would fail the same way: say whether to wait for the upstream or fix what it publishes.
        what = "its upstream lacks it" if isinstance(exc, NotFoundError) else "its upstream could not supply it"
        raise type(exc)(f"blob {sha256} is not in this mirror and {what}: {exc}") from None
    return True
