"""Reference packages: ``/refpkgs``, ``/refpkgs/{name}`` (CONTENTS.json), files and history.

``/refpkgs/{name}`` is the package's CONTENTS.json exactly as ``rgstore refpkg export`` (and
taxtastic) writes it, rollback and rollforward states included. A file download is verified
first: the blob is re-hashed and must match both the sha256 it is stored under and the md5 the
package records, else the request fails with 500 rather than serve damaged bytes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response, StreamingResponse

from rgstore.environment import Txn
from rgstore.errors import ConflictError, IntegrityError, NotFoundError, RemoteError
from rgstore.events import FileRef
from rgstore.pagecursor import decode_text, encode_text
from rgstore.refpkg_history import decode_history_cursor, history_page
from rgstore.refpkg_manifest import Manifest, ManifestState, iter_manifest, too_deep
from rgstore.store import Store
from rgstore.views.refpkgs import Head, Step, refpkg_chain, refpkg_log, refpkg_step

from .files import StoredFileResponse, fd_checksums, file_responses
from .keyset import After, next_after, only_one_start, paged_responses
from .lazyfetch import lazy_fetcher
from .schemas import ErrorBody, RefpkgHistory, RefpkgList
from .wire import json_response, store_of

__all__ = ["router", "contents"]

router = APIRouter(prefix="/refpkgs", tags=["refpkgs"])


Offset = Annotated[int, Query(ge=0, le=2**31, description="Number of items to skip")]
Limit = Annotated[int, Query(ge=1, le=1000, description="Maximum number of items to return")]


def _state(store: Store, txn: Txn, name: str) -> tuple[Head, Step]:
    if not store.environment.has_db("refpkgs.heads"):
        raise NotFoundError(f"no refpkg {name!r} in this store")
    return store.refpkgs.state(txn, name)


def _manifest_state(step: Step, message: str = "") -> ManifestState:
    return ManifestState(files={k: (r.name, r.md5) for k, r in step.files.items()}, metadata=dict(step.metadata),
                         message=message)


def contents(store: Store, txn: Txn, name: str) -> Iterator[str]:
    """The package's CONTENTS.json text with its whole retained history, in pieces of one state at most.

    ConflictError, before any state is read, for a history deeper than taxtastic can read: its
    text grows with the square of the depth (4,800 steps of 1,000 files: tens of gigabytes).
    """
    env = store.environment
    head, current = _state(store, txn, name)
    why = too_deep(name, current.depth, len(head.redo))  # a step's depth is its rollback count
    if why is not None:
        raise ConflictError(f"{why}: read /refpkgs/{name}/history instead, or strip the package")
    rollbacks = [_manifest_state(step) for step in list(refpkg_chain(txn, env, name, current.seq))[1:]]
    rollforwards = []
    for seq in reversed(head.redo):
        step = refpkg_step(txn, env, name, seq)
        rollforwards.append(_manifest_state(step, step.log[0] if step.log else ""))
    manifest = Manifest(current=_manifest_state(current), log=refpkg_log(txn, env, name, current.seq),
                        rollbacks=rollbacks, rollforwards=rollforwards)
    return iter_manifest(manifest)


@router.get("", response_model=RefpkgList, summary="Reference packages, paged", responses=paged_responses())
def list_refpkgs(request: Request, offset: Offset = 0, limit: Limit = 100, after: After = None) -> Response:
    """Every existing package: name, current step, locus, file count, possible rollbacks/rollforwards.

    Ordered by name; ``after`` pages by it (``X-Rgstore-Next-After``), a package removed since included.
    """
    only_one_start(request, after, "offset")
    past = decode_text(after) if after is not None else None
    store = store_of(request)
    items: list[dict[str, Any]] = []
    with store.read() as txn:
        # Only the page's heads and current steps (each a whole file table) are read, once the
        # snapshot's index of existing packages is built (one pass of the heads per commit).
        # One head more than the page says whether another page follows.
        total, page = store.refpkgs.page(txn, offset, limit + 1, after=past)
        for name, head in page[:limit]:
            step = refpkg_step(txn, store.environment, name, head.current)
            items.append({"name": name, "seq": step.seq, "time": step.time,
                          "locus": step.metadata.get("locus", ""), "files": len(step.files),
                          "rollbacks": step.depth, "rollforwards": len(head.redo)})
    return json_response({"items": items, "pagination": {"offset": offset, "limit": limit, "total": total}},
                         headers=next_after(encode_text(items[-1]["name"]) if len(page) > limit else None))


@router.get(
    "/{name}", summary="A package's CONTENTS.json", response_class=Response,
    responses={200: {"content": {"application/json": {"schema": {"type": "object"}}}}, 404: {"model": ErrorBody}},
)
def get_refpkg(request: Request, name: str) -> Response:
    """CONTENTS.json as taxtastic writes it: current files, md5s, metadata, log, rollback and rollforward."""
    store = store_of(request)
    with store.read() as txn:
        pieces = contents(store, txn, name)
    return StreamingResponse((piece.encode() for piece in pieces), media_type="application/json")


@router.get(
    "/{name}/history", response_model=RefpkgHistory, summary="A package's retained steps, paged",
    responses=paged_responses({404: {"model": ErrorBody}}),
)
def refpkg_history(
    request: Request, name: str, offset: Offset = 0, limit: Limit = 100, after: After = None,
) -> Response:
    """Steps newest first: the current one, those a rollback reaches, then those a rollforward re-applies.

    ``after`` pages by the first page's order (``X-Rgstore-Next-After``): an update, rollback or
    rollforward between pages neither repeats nor skips a step retained throughout. Only the
    page's steps are read whole (each carries the package's file table).
    """
    only_one_start(request, after, "offset")
    past = decode_history_cursor(after) if after is not None else None
    store = store_of(request)
    with store.read() as txn:
        head, current = _state(store, txn, name)
        page = history_page(txn, store.environment, name, head, current, offset=offset, limit=limit, after=past)
    return json_response({"name": name, "steps": [_step(step, state) for step, state in page.steps],
                          "pagination": {"offset": offset, "limit": limit, "total": page.total}},
                         headers=next_after(page.next_after))


def _step(step: Step, state: str) -> dict[str, Any]:
    return {"seq": step.seq, "state": state, "time": step.time, "actor": step.actor, "log": step.log,
            "files": {k: r.name for k, r in step.files.items()}, "metadata": step.metadata}


@router.get(
    "/{name}/files/{key}", summary="Download one file of a package, verified against its checksums",
    response_class=Response,
    responses={**file_responses("application/octet-stream", verified=True),
               502: {"model": ErrorBody, "description": "A mirror could not fetch the file from its upstream "
                     "(the detail says why and what to do)"},
               503: {"model": ErrorBody, "description": "A mirror's fetch slots stayed busy (`Retry-After`)"}},
)
async def refpkg_file(request: Request, name: str, key: str) -> Response:
    """The file under ``key`` in the current state, after re-hashing it (sha256 and md5 must match).

    A mirror fetches a blob it lacks from its upstream first (verified by sha256, under the fetch slots).
    """
    store = store_of(request)
    with store.read() as txn:
        _, current = _state(store, txn, name)
        mirror = store.log.meta_get(txn, "replica_of") is not None
    ref: FileRef | None = current.files.get(key)
    if ref is None:
        raise NotFoundError(f"no file {key!r} in refpkg {name!r}; keys: {', '.join(sorted(current.files))}")
    if not store.blobs.exists(ref.sha256):
        sha = ref.sha256
        try:  # a mirror pulled without --with-blobs fetches the blob now, as a pull --with-blobs would
            fetched = mirror and await lazy_fetcher(request).blob(sha, ref.size, lambda: store.blobs.exists(sha))
        except (NotFoundError, RemoteError) as exc:  # named by the package, so a failing upstream is a bad gateway
            raise RemoteError(f"refpkg {name!r} file {key!r} could not be fetched: {exc}") from None
        if not fetched:
            raise IntegrityError(f"refpkg {name!r} file {key!r}: its blob {sha} is missing")

    def verify(fd: int) -> None:  # hashed from the descriptor the bytes are then sent from
        found = fd_checksums(fd)
        if found.sha256 != ref.sha256 or found.md5 != ref.md5 or found.size != ref.size:
            raise IntegrityError(f"refpkg {name!r} file {key!r} is corrupt: it no longer matches its checksums")

    return StoredFileResponse(
        store.blobs.path(ref.sha256), media_type="application/octet-stream", filename=ref.name, verify=verify,
        headers={"ETag": f'"{ref.sha256}"', "X-Checksum-Sha256": ref.sha256, "X-Checksum-Md5": ref.md5},
    )
