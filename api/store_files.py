"""Static read-only files: ``/store/...`` (the RefgetStore directory) and ``/blobs/{sha256}``.

gtars ``RefgetStore.open_remote`` reads sequence slices with single ``Range: bytes=a-b``
requests and refuses a 200 answer, so ranged requests get 206 with ``Content-Range``. Only
regular files under ``STORE/refget`` are served: no listings, no dot-files (locks, temp files),
and nothing a ``..`` or a symlink would reach outside the directory.

On a store that fetches sequences lazily (a mirror, or remote genomes), a sequence file the store
catalogues but has not fetched yet is fetched and verified first, as ``/sequence`` does, so a
mirror of a lazy mirror can read every sequence through it.

``/blobs/{sha256}`` serves content-addressed blobs (refpkg files) for mirrors pulling with
``--with-blobs``; the name is the checksum, so clients verify what they receive. A mirror pulled
without ``--with-blobs`` fetches a blob it lacks from its upstream first, as ``/refpkgs/.../files``
does, but only one its log references (``ReferencedBlobs``): any other sha256 is a 404 that asks
the upstream nothing.
"""

from __future__ import annotations

import os
import re
import stat
import threading
from pathlib import Path

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from rgstore.blobfetch import referenced_blob_sizes
from rgstore.checkpoints import rebuild_count
from rgstore.environment import Txn
from rgstore.errors import IntegrityError, NotFoundError, RemoteError, UpstreamIntegrityError
from rgstore.store import Store

from .files import StoredFileResponse, fd_checksums, file_responses
from .schemas import ErrorBody
from .wire import store_of

__all__ = ["router", "resolve_store_file", "MEDIA_TYPES", "ReferencedBlobs"]

_SHA256 = re.compile(r"[0-9a-f]{64}")
_SEQ_FILE = re.compile(r"sequences/([A-Za-z0-9_-]{2})/([A-Za-z0-9_-]{32})\.seq")

MEDIA_TYPES = {
    ".json": "application/json",
    ".tsv": "text/tab-separated-values",
    ".rgsi": "text/tab-separated-values",
    ".rgci": "text/tab-separated-values",
    ".seq": "application/octet-stream",
}
_IMMUTABLE = "public, max-age=31536000, immutable"  # sequence files are named by their content digest
_MUTABLE = "no-cache"

router = APIRouter(tags=["store"])


def resolve_store_file(root: Path, relative: str, mount: str = "/store") -> tuple[Path, os.stat_result]:
    """The regular file ``relative`` names inside ``root``; NotFoundError for anything else.

    ``mount`` is where clients see ``root`` (``/store`` behind the server's root path): what a 404 names.
    """
    parts = [p for p in relative.split("/") if p]  # "store//x" from clients joining "store/" + "/x"
    if not parts:  # the directory itself, which the docs name: say where its files start (no listings)
        raise NotFoundError(f"{mount}/ is the RefgetStore directory, which lists no files: its index is "
                            f"{mount}/rgstore.json, what gtars RefgetStore.open_remote reads")
    if (
        len(relative) > 1024
        or any(p in (".", "..") or p.startswith(".") or "\\" in p or "\x00" in p for p in parts)
    ):
        raise NotFoundError(f"no such store file: {relative!r}")
    base = root.resolve()
    candidate = base.joinpath(*parts)
    try:
        real = candidate.resolve(strict=True)
        real.relative_to(base)
        st = real.stat()
    except (OSError, ValueError, RuntimeError):
        raise NotFoundError(f"no such store file: {relative!r}") from None
    if not stat.S_ISREG(st.st_mode):
        raise NotFoundError(f"no such store file: {relative!r}")
    return real, st


@router.get(
    "/store/{path:path}",
    summary="A file of the RefgetStore (Range requests answered with 206)",
    response_class=Response,
    responses=file_responses(*sorted(set(MEDIA_TYPES.values()))),
)
async def store_file(request: Request, path: str) -> Response:
    """Serve one RefgetStore file; ``Range: bytes=a-b`` gives 206 (what gtars open_remote needs)."""
    store = store_of(request)
    mount = request.scope.get("root_path", "").rstrip("/") + "/store"  # behind a proxy, as its clients see it
    try:
        # Async so that a lazy fetch below waits on the fetch slots, not on a threadpool token.
        real, st = await run_in_threadpool(resolve_store_file, store.refget_path, path, mount)
    except NotFoundError:
        if not await _fetched_lazily(request, path.strip("/")):
            raise
        real, st = await run_in_threadpool(resolve_store_file, store.refget_path, path)
    media = MEDIA_TYPES.get(real.suffix, "application/octet-stream")
    cache = _IMMUTABLE if real.suffix == ".seq" else _MUTABLE
    return StoredFileResponse(real, media_type=media, headers={"Cache-Control": cache})


async def _fetched_lazily(request: Request, relative: str) -> bool:
    """Fetch a catalogued sequence file not here yet (True if it is here now); False for any other path."""
    from .lazyfetch import lazy_fetcher
    from .refget import sequence_index
    from .sequences import lazy_fetch_enabled

    match = _SEQ_FILE.fullmatch(relative)
    if match is None or not match[2].startswith(match[1]) or not lazy_fetch_enabled():
        return False
    index = sequence_index(request)
    with store_of(request).read() as txn:
        seq = index.lookup(txn, match[2])
    if seq is None or os.path.relpath(seq.path, store_of(request).refget_path) != relative:
        return False
    try:
        os.close(await lazy_fetcher(request).open(seq))  # under the fetch slots, as /sequence fetches
    except UpstreamIntegrityError:
        raise  # the upstream's bytes fail the digest: a bad gateway (502), as /sequence answers
    except IntegrityError:
        return False  # nothing can supply it: the file is simply not here (404)
    return True


@router.get(
    "/blobs/{sha256}", summary="A content-addressed blob (refpkg files), for mirrors",
    response_class=Response,
    responses={**file_responses("application/octet-stream", verified=True),
               502: {"model": ErrorBody, "description": "A mirror could not fetch a blob its log references from "
                     "its upstream (the detail says why and what to do)"},
               503: {"model": ErrorBody, "description": "A mirror's fetch slots stayed busy (`Retry-After`)"}},
)
async def blob(request: Request, sha256: str) -> Response:
    """The blob whose sha256 is ``sha256`` (lower-case hex), byte for byte; Range requests answered with 206.

    A mirror fetches a blob its log references but it lacks from its upstream first (verified by sha256).
    """
    store = store_of(request)
    # Async so that a lazy fetch below waits on the fetch slots, not on a threadpool token.
    if not _SHA256.fullmatch(sha256) or not (store.blobs.exists(sha256) or await _blob_fetched_lazily(request, sha256)):
        raise NotFoundError(f"no blob {sha256!r} in this store")

    def verify(fd: int) -> None:  # every blob read is verified: a corrupt blob is a 500, never served
        if fd_checksums(fd).sha256 != sha256:
            raise IntegrityError(f"blob {sha256} is corrupt; not served")

    return StoredFileResponse(store.blobs.path(sha256), media_type="application/octet-stream", verify=verify,
                              headers={"Cache-Control": _IMMUTABLE, "ETag": f'"{sha256}"'})


class ReferencedBlobs:
    """Per-worker: sha256 -> size of the blobs the log references, as of one log head (rebuilt when it moves)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._snapshot: tuple[int, int, dict[str, int | None]] = (-1, -1, {})
        self._lock = threading.Lock()

    def sizes(self, txn: Txn) -> dict[str, int | None]:
        """The referenced blobs as of ``txn``'s head: one scan of the views per head, not per request."""
        head, rebuilds = self.store.log.head(txn)[0], rebuild_count(self.store.log, txn)
        with self._lock:  # concurrent misses at a new head wait for one scan rather than each making one
            if self._snapshot[:2] != (head, rebuilds):
                self._snapshot = (head, rebuilds, referenced_blob_sizes(self.store, txn))
            return self._snapshot[2]


async def _blob_fetched_lazily(request: Request, sha256: str) -> bool:
    """Fetch a blob the mirror's log references but it lacks (True once here); False if not a mirror or unreferenced.

    RemoteError (502) when the upstream lacks it or cannot supply it, as ``/refpkgs/.../files`` answers;
    otherwise raises what the fetch raises: UpstreamIntegrityError (502: the upstream's bytes fail the
    sha256, nothing stored), FetchSlotsBusyError (503).
    """
    from .lazyfetch import lazy_fetcher

    store = store_of(request)

    def referenced() -> tuple[bool, int | None]:
        with store.read() as txn:
            if store.log.meta_get(txn, "replica_of") is None:  # a primary: nothing upstream to fetch from
                return False, None
            sizes = store.service("api.referenced_blobs", ReferencedBlobs).sizes(txn)
        return sha256 in sizes, sizes.get(sha256)

    # In the threadpool: the first miss at a new head scans the views.
    wanted, size = await run_in_threadpool(referenced)
    if not wanted:
        return False
    try:
        return await lazy_fetcher(request).blob(sha256, size, lambda: store.blobs.exists(sha256))
    except NotFoundError as exc:  # referenced by the log, so a missing upstream copy is a bad gateway, not a 404
        raise RemoteError(str(exc)) from None
