"""Reference packages: ``/refpkgs``, ``/refpkgs/{name}`` (CONTENTS.json), files and history.

``/refpkgs/{name}`` is the package's CONTENTS.json exactly as ``rgstore refpkg export`` (and
taxtastic) writes it, rollback and rollforward states included. A file download is verified
first: the blob is re-hashed and must match both the sha256 it is stored under and the md5 the
package records, else the request fails with 500 rather than serve damaged bytes.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from rgstore.environment import Txn
from rgstore.errors import IntegrityError, NotFoundError
from rgstore.events import FileRef
from rgstore.refpkg_manifest import Manifest, ManifestState, render_manifest
from rgstore.store import Store
from rgstore.views.refpkgs import Head, Step, list_heads, refpkg_chain, refpkg_log, refpkg_step

from .files import StoredFileResponse, fd_checksums, file_responses
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


def contents(store: Store, txn: Txn, name: str) -> str:
    """The package's CONTENTS.json text with its whole retained history."""
    env = store.environment
    head, current = _state(store, txn, name)
    rollbacks = [_manifest_state(step) for step in list(refpkg_chain(txn, env, name, current.seq))[1:]]
    rollforwards = []
    for seq in reversed(head.redo):
        step = refpkg_step(txn, env, name, seq)
        rollforwards.append(_manifest_state(step, step.log[0] if step.log else ""))
    manifest = Manifest(current=_manifest_state(current), log=refpkg_log(txn, env, name, current.seq),
                        rollbacks=rollbacks, rollforwards=rollforwards)
    return render_manifest(manifest)


@router.get("", response_model=RefpkgList, summary="Reference packages, paged")
def list_refpkgs(request: Request, offset: Offset = 0, limit: Limit = 100) -> Response:
    """Every existing package: name, current step, locus, file count, possible rollbacks/rollforwards."""
    store = store_of(request)
    items: list[dict[str, Any]] = []
    if store.environment.has_db("refpkgs.heads"):
        with store.read() as txn:
            for name, head in list_heads(txn, store.environment):
                if not head.current:
                    continue
                step = refpkg_step(txn, store.environment, name, head.current)
                items.append({"name": name, "seq": step.seq, "time": step.time,
                              "locus": step.metadata.get("locus", ""), "files": len(step.files),
                              "rollbacks": step.depth, "rollforwards": len(head.redo)})
    return json_response({"items": items[offset:offset + limit],
                          "pagination": {"offset": offset, "limit": limit, "total": len(items)}})


@router.get(
    "/{name}", summary="A package's CONTENTS.json", response_class=Response,
    responses={200: {"content": {"application/json": {"schema": {"type": "object"}}}}, 404: {"model": ErrorBody}},
)
def get_refpkg(request: Request, name: str) -> Response:
    """CONTENTS.json as taxtastic writes it: current files, md5s, metadata, log, rollback and rollforward."""
    store = store_of(request)
    with store.read() as txn:
        text = contents(store, txn, name)
    return Response(text.encode(), media_type="application/json")


@router.get(
    "/{name}/history", response_model=RefpkgHistory, summary="Every retained step of a package",
    responses={404: {"model": ErrorBody}},
)
def refpkg_history(request: Request, name: str) -> Response:
    """Steps newest first: the current one, those a rollback reaches, then those a rollforward re-applies."""
    store = store_of(request)
    env = store.environment
    with store.read() as txn:
        head, current = _state(store, txn, name)
        chain = list(refpkg_chain(txn, env, name, current.seq))
        undone = [refpkg_step(txn, env, name, seq) for seq in reversed(head.redo)]
    steps = [_step(step, "current" if i == 0 else "done") for i, step in enumerate(chain)]
    steps += [_step(step, "undone") for step in undone]
    return json_response({"name": name, "steps": steps})


def _step(step: Step, state: str) -> dict[str, Any]:
    return {"seq": step.seq, "state": state, "time": step.time, "actor": step.actor, "log": step.log,
            "files": {k: r.name for k, r in step.files.items()}, "metadata": step.metadata}


@router.get(
    "/{name}/files/{key}", summary="Download one file of a package, verified against its checksums",
    response_class=Response,
    responses=file_responses("application/octet-stream", verified=True),
)
def refpkg_file(request: Request, name: str, key: str) -> Response:
    """The file under ``key`` in the current state, after re-hashing it (sha256 and md5 must match)."""
    store = store_of(request)
    with store.read() as txn:
        _, current = _state(store, txn, name)
    ref: FileRef | None = current.files.get(key)
    if ref is None:
        raise NotFoundError(f"no file {key!r} in refpkg {name!r}; keys: {', '.join(sorted(current.files))}")
    if not store.blobs.exists(ref.sha256):
        raise IntegrityError(f"refpkg {name!r} file {key!r}: its blob {ref.sha256} is missing")

    def verify(fd: int) -> None:  # hashed from the descriptor the bytes are then sent from
        found = fd_checksums(fd)
        if found.sha256 != ref.sha256 or found.md5 != ref.md5 or found.size != ref.size:
            raise IntegrityError(f"refpkg {name!r} file {key!r} is corrupt: it no longer matches its checksums")

    return StoredFileResponse(
        store.blobs.path(ref.sha256), media_type="application/octet-stream", filename=ref.name, verify=verify,
        headers={"ETag": f'"{ref.sha256}"', "X-Checksum-Sha256": ref.sha256, "X-Checksum-Md5": ref.md5},
    )
