"""Static read-only files: ``/store/...`` (the RefgetStore directory) and ``/blobs/{sha256}``.

gtars ``RefgetStore.open_remote`` reads sequence slices with single ``Range: bytes=a-b``
requests and refuses a 200 answer, so ranged requests get 206 with ``Content-Range``. Only
regular files under ``STORE/refget`` are served: no listings, no dot-files (locks, temp files),
and nothing a ``..`` or a symlink would reach outside the directory.

On a store that fetches sequences lazily (a mirror, or remote genomes), a sequence file the store
catalogues but has not fetched yet is fetched and verified first, as ``/sequence`` does, so a
mirror of a lazy mirror can read every sequence through it.

``/blobs/{sha256}`` serves content-addressed blobs (refpkg files) for mirrors pulling with
``--with-blobs``; the name is the checksum, so clients verify what they receive.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from rgstore.errors import IntegrityError, NotFoundError

from .files import StoredFileResponse, fd_checksums, file_responses
from .wire import store_of

__all__ = ["router", "resolve_store_file", "MEDIA_TYPES"]

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


def resolve_store_file(root: Path, relative: str) -> tuple[Path, os.stat_result]:
    """The regular file ``relative`` names inside ``root``; NotFoundError for anything else."""
    parts = [p for p in relative.split("/") if p]  # "store//x" from clients joining "store/" + "/x"
    if (
        not parts
        or len(relative) > 1024
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
    try:
        # Async so that a lazy fetch below waits on the fetch slots, not on a threadpool token.
        real, st = await run_in_threadpool(resolve_store_file, store.refget_path, path)
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
    except IntegrityError:
        return False  # nothing can supply it: the file is simply not here (404)
    return True


@router.get(
    "/blobs/{sha256}", summary="A content-addressed blob (refpkg files), for mirrors",
    response_class=Response,
    responses=file_responses("application/octet-stream", verified=True),
)
def blob(request: Request, sha256: str) -> Response:
    """The blob whose sha256 is ``sha256`` (lower-case hex), byte for byte; Range requests answered with 206."""
    store = store_of(request)
    if not _SHA256.fullmatch(sha256) or not store.blobs.exists(sha256):
        raise NotFoundError(f"no blob {sha256!r} in this store")

    def verify(fd: int) -> None:  # every blob read is verified: a corrupt blob is a 500, never served
        if fd_checksums(fd).sha256 != sha256:
            raise IntegrityError(f"blob {sha256} is corrupt; not served")

    return StoredFileResponse(store.blobs.path(sha256), media_type="application/octet-stream", verify=verify,
                              headers={"Cache-Control": _IMMUTABLE, "ETag": f'"{sha256}"'})
