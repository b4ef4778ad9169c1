"""refget's seqcol-server extensions under ``/seqcol``: alias lookups and FHR metadata, read-only.

Clients written against refget's server (``refgenie/refget``, ``refget/router.py``) find the
same routes and bodies here:

- ``GET /alias/{kind}/{namespace}/{alias}`` -> ``{namespace, alias, digest}``
- ``GET /list/alias/{kind}`` -> ``{namespaces: [...]}``
- ``GET /list/alias/{kind}/{namespace}`` -> ``{namespace, aliases: [name, ...]}``
- ``GET /aliases/{kind}/{digest}`` -> ``{digest, aliases: [[namespace, name], ...]}``
- ``GET /collection/{digest}/fhr`` -> the FHR document; ``GET /list/fhr`` -> ``{collections: [digest, ...]}``

``kind`` is ``collection`` or ``sequence`` (else 400, as refget answers). The two listings that
grow with the store also take ``page``/``page_size``/``after`` and add ``pagination`` (refget's
``{page, page_size, total}``); without ``page_size`` they list everything, as refget does. Errors
are ``{"detail": ...}``; an unknown namespace or digest gets 404 where refget answers an empty list.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from starlette.responses import Response

from rgstore import seqcolextras
from rgstore.pagecursor import decode_text, encode_text, window

from .keyset import After, next_after, only_one_start, paged_responses
from .schemas import ErrorBody
from .wire import json_response, store_of

__all__ = ["router"]

router = APIRouter(prefix="/seqcol", tags=["seqcol"])
"""Included by the app beside ``api.seqcol.router``; ``/seqcol/openapi.json`` lists these routes too."""

MAX_PAGE_SIZE = 10_000

Page = Annotated[int, Query(ge=0, le=2**31, description="0-based page number")]
OptionalPageSize = Annotated[int | None, Query(
    ge=1, le=MAX_PAGE_SIZE, description="Items per page; absent: every item (refget's listing is not paged)")]

_KIND = "`collection` or `sequence`"
_ERRORS: dict[int | str, dict[str, Any]] = {400: {"model": ErrorBody, "description": f"`kind` is not {_KIND}"},
                                            404: {"model": ErrorBody}}


class OptionalPagination(BaseModel):
    page: int
    page_size: int | None
    total: int


class AliasResolution(BaseModel):
    namespace: str
    alias: str
    digest: str


class AliasNamespaces(BaseModel):
    namespaces: list[str]


class NamespaceAliases(BaseModel):
    namespace: str
    aliases: list[str]
    pagination: OptionalPagination


class DigestAliases(BaseModel):
    digest: str
    aliases: list[tuple[str, str]]


class FhrCollections(BaseModel):
    collections: list[str]
    pagination: OptionalPagination


def _paged(key: str, items: list[str], page: int, page_size: int | None, after: str | None,
           **fields: Any) -> Response:
    """``{**fields, key: one page of sorted items, pagination}``; the next page's cursor as a header."""
    size = page_size if page_size is not None else max(len(items), 1)
    past = decode_text(after) if after is not None else None
    start, end, more = window(items, page * size, size, past)
    return json_response({**fields, key: items[start:end],
                          "pagination": {"page": page, "page_size": page_size, "total": len(items)}},
                         headers=next_after(encode_text(items[end - 1]) if more else None))


@router.get("/alias/{kind}/{namespace}/{alias}", response_model=AliasResolution, responses=_ERRORS,
            summary="Resolve a namespace:alias to a digest (refget extension)")
def resolve_alias(request: Request, kind: str, namespace: str, alias: str) -> Response:
    """The digest alias ``namespace:alias`` of ``kind`` names; a sequence's bare (no ``SQ.``), as refget gives it."""
    digest = seqcolextras.resolve_alias(store_of(request), kind, namespace, alias)
    return json_response({"namespace": namespace, "alias": alias, "digest": digest})


@router.get("/list/alias/{kind}", response_model=AliasNamespaces, responses=_ERRORS,
            summary="Alias namespaces of one kind (refget extension)")
def list_alias_namespaces(request: Request, kind: str) -> Response:
    """Every namespace holding aliases of ``kind``, sorted."""
    return json_response({"namespaces": seqcolextras.kind_namespaces(store_of(request), kind)})


@router.get("/list/alias/{kind}/{namespace}", response_model=NamespaceAliases, responses=paged_responses(_ERRORS),
            summary="Alias names in one namespace (refget extension)")
def list_aliases(request: Request, kind: str, namespace: str, page: Page = 0, page_size: OptionalPageSize = None,
                 after: After = None) -> Response:
    """The namespace's alias names, sorted; 404 when it holds none. ``page_size`` pages them (``after``: by name)."""
    only_one_start(request, after, "page")
    names = seqcolextras.namespace_aliases(store_of(request), kind, namespace)
    return _paged("aliases", names, page, page_size, after, namespace=namespace)


@router.get("/aliases/{kind}/{digest}", response_model=DigestAliases, responses=_ERRORS,
            summary="Aliases pointing at one digest (refget extension)")
def aliases_for(request: Request, kind: str, digest: str) -> Response:
    """``[namespace, name]`` of each alias of ``kind`` naming ``digest``; 404 when the store has no such digest."""
    found = seqcolextras.aliases_for(store_of(request), kind, digest)
    return json_response({"digest": digest, "aliases": [list(pair) for pair in found]})


@router.get("/collection/{digest}/fhr", summary="A collection's FHR metadata (refget extension)",
            responses={200: {"content": {"application/json": {"schema": {"type": "object"}}}},
                       404: {"model": ErrorBody}},
            response_class=Response)
def collection_fhr(request: Request, digest: str) -> Response:
    """The genome's FHR 1.0 document as recorded (unknown keys kept); 404 for an unknown genome or one without."""
    return json_response(seqcolextras.collection_fhr(store_of(request), digest))


@router.get("/list/fhr", response_model=FhrCollections, responses=paged_responses(),
            summary="Collections that have FHR metadata (refget extension)")
def list_fhr(request: Request, page: Page = 0, page_size: OptionalPageSize = None, after: After = None) -> Response:
    """Digests of the genomes with an FHR document, sorted; ``page_size`` pages them (``after``: by digest)."""
    only_one_start(request, after, "page")
    return _paged("collections", seqcolextras.fhr_collections(store_of(request)), page, page_size, after)
