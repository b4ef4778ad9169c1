"""The FASTA cache view: ``/cache/entries`` and ``/cache/entries/{key}``.

Reads only: serving an entry's description records no access (``CacheTouched`` is written by
the commands that use the files, never by this server). Directories are given relative to the
store's cache root, so the server does not disclose its filesystem layout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from rgstore.errors import NotFoundError
from rgstore.pagecursor import decode_row, encode_row, window
from rgstore.views.cache import CacheEntry, CacheView, Tombstone, iso_time

from .cacheorder import CacheOrder
from .files import StoredFileResponse, fd_checksums, file_responses
from .keyset import After, next_after, only_one_start, paged_responses
from .lazyfetch import lazy_fetcher
from .schemas import CacheEntryView, CacheList, ErrorBody
from .wire import json_response, store_of

__all__ = ["router", "entry_json"]

router = APIRouter(prefix="/cache", tags=["cache"])

Offset = Annotated[int, Query(ge=0, le=2**31, description="Number of items to skip")]
Limit = Annotated[int, Query(ge=1, le=1000, description="Maximum number of items to return")]
Level = Annotated[int | None, Query(ge=1, le=2, description="Only entries of this level (1 regions, 2 raw)")]


def entry_json(entry: CacheEntry) -> dict[str, Any]:
    """A live entry as the API shows it."""
    return {
        "key": entry.key, "state": "live", "level": entry.level, "path": entry.path,
        "size": entry.size, "files": entry.files, "request": entry.request,
        "inserted_seq": entry.inserted_seq, "inserted_at": iso_time(entry.inserted_at),
        "last_access": iso_time(entry.last_access), "touches": entry.touches, "pinned": entry.pinned,
        "access_seq": entry.access_seq,  # the LRU order gc evicts by, as `rgstore cache ls/show --json` give it
        "annotation_release": entry.annotation_release,  # NCBI: the release its GTF header names ("" if none)
    }


def _tombstone_json(tomb: Tombstone) -> dict[str, Any]:
    return {"key": tomb.key, "state": "evicted", "level": tomb.level, "path": tomb.path,
            "evicted_seq": tomb.evicted_seq, "evicted_at": iso_time(tomb.evicted_at), "reason": tomb.reason,
            # What was evicted, with its checksums, as `rgstore cache show --json` gives the tombstone.
            "files": tomb.files, "pinned": tomb.pinned, "annotation_release": tomb.annotation_release}


@router.get("/entries", response_model=CacheList, summary="Live cache entries, by level then path",
            responses=paged_responses())
def list_entries(
    request: Request, level: Level = None, offset: Offset = 0, limit: Limit = 100, after: After = None,
) -> Response:
    """Every live entry (optionally one level's) with its files, checksums, last access and pin.

    Ordered by (level, path, key); ``after`` pages by that key (``X-Rgstore-Next-After``), which an
    entry evicted since still marks. Only the page's entries are read: the listing order is kept
    per log head by ``CacheOrder``.
    """
    only_one_start(request, after, "offset")
    past = decode_row(after, tuple[int, str, str]) if after is not None else None
    store = store_of(request)
    env = store.environment
    order: CacheOrder = store.service("api.cache_order", CacheOrder)
    with store.read() as txn:
        placement = order.placement(txn)
        lo, hi = placement.span(level)
        start, end, more = window(placement.rows, offset, limit, past, lo, hi)
        rows = placement.rows[start:end]
        entries = [CacheView.get(txn, env.db("cache.entries"), key) for _, _, key in rows]
    page = [entry_json(e) for e in entries if e is not None]
    return json_response({"items": page, "pagination": {"offset": offset, "limit": limit, "total": hi - lo}},
                         headers=next_after(encode_row(rows[-1]) if more else None))


@router.get("/entries/{key}", response_model=CacheEntryView, summary="One cache entry, live or evicted",
            responses={404: {"model": ErrorBody}})
async def get_entry(request: Request, key: str) -> Response:
    """The live entry for ``key``, else its eviction tombstone; 404 if the key was never cached."""
    store = store_of(request)
    env = store.environment
    entry = tomb = None
    with store.read() as txn:
        if env.has_db("cache.entries"):
            entry = CacheView.get(txn, env.db("cache.entries"), key)
        if entry is None and env.has_db("cache.evicted"):
            tomb = CacheView.tombstone(txn, env.db("cache.evicted"), key)
    if entry is not None:
        return json_response(entry_json(entry))
    if tomb is not None:
        return json_response(_tombstone_json(tomb))
    raise NotFoundError(f"no cache entry {key!r} in this store")


@router.get("/entries/{key}/files/{path:path}", summary="One file of a live cache entry, checksum-verified",
            response_class=Response,
            responses={**file_responses("application/octet-stream", verified=True),
                       502: {"model": ErrorBody, "description": "A mirror could not fetch the file from its "
                             "upstream (the detail says why and what to do)"},
                       503: {"model": ErrorBody, "description": "A mirror's fetch slots stayed busy (`Retry-After`)"}})
async def get_entry_file(request: Request, key: str, path: str) -> Response:
    """The file's bytes, after checking them against the sha256 its insert event recorded (mirrors fetch these).

    A mirror fetches a file of a live entry it lacks from its upstream first (verified by sha256,
    under the fetch slots), as it does a refpkg blob.
    """
    from rgstore.cachecopy import local_cache_file
    from rgstore.errors import IntegrityError, InvalidInputError, RemoteError

    store = store_of(request)
    env = store.environment
    with store.read() as txn:
        entry = CacheView.get(txn, env.db("cache.entries"), key) if env.has_db("cache.entries") else None
        mirror = store.log.meta_get(txn, "replica_of") is not None
    ref = entry.files.get(path) if entry is not None else None
    if entry is None or ref is None:
        raise NotFoundError(f"no file {path!r} in live cache entry {key!r}")
    try:
        local = local_cache_file(store, entry, path)
    except (InvalidInputError, OSError):
        raise NotFoundError(f"cache file {path!r} of entry {key!r} is missing here") from None
    if mirror and not _has_size(local, ref.size):
        try:  # a mirror pulled without --with-blobs fetches the file now, as a pull --with-blobs would
            await lazy_fetcher(request).cache_file(key, path, lambda: _has_size(local, ref.size))
        except NotFoundError as exc:  # the upstream lacks it: a bad gateway, not a file this route does not know
            raise RemoteError(str(exc)) from None
        # Not fetched (nothing upstream can supply it): the response below says it is missing here.

    def verify(fd: int) -> None:  # hashed in chunks from the descriptor the bytes are then sent from
        if fd_checksums(fd).sha256 != ref.sha256:
            raise IntegrityError(f"cache file {path!r} of entry {key!r} fails its recorded sha256; not served")

    return StoredFileResponse(local, media_type="application/octet-stream", verify=verify,
                              headers={"ETag": f'"{ref.sha256}"', "X-Checksum-Sha256": ref.sha256})


def _has_size(path: Path, size: int) -> bool:
    """Whether ``path`` is a file of ``size`` bytes: what a mirror counts as fetched."""
    try:
        return path.stat().st_size == size
    except OSError:
        return False
