"""refget's seqcol-server extensions under ``/seqcol``: alias lookups and FHR metadata, read-only.

Clients written against refget's server (``refgenie/refget``, ``refget/router.py``) find the
same routes and bodies here:

- ``GET /alias/{kind}/{namespace}/{alias}`` -> ``{namespace, alias, digest}``
- ``GET /list/alias/{kind}`` -> ``{namespaces: [...]}``
- ``GET /list/alias/{kind}/{namespace}`` -> ``{namespace, aliases: [name, ...]}``
- ``GET /aliases/{kind}/{digest}`` -> ``{digest, aliases: [[namespace, name], ...]}``
- ``GET /collection/{digest}/fhr`` -> the FHR document; ``GET /list/fhr`` -> ``{collections: [digest, ...]}``
- ``POST /collection/{digest}/regions`` with ``[{chrom, start, end}, ...]`` (0-based, half-open) ->
  ``[{chrom_name, start, end, sequence}, ...]`` in the same order (``rgstore.seqcolregions``)

``kind`` is ``collection`` or ``sequence`` (else 400, as refget answers). The two listings that
grow with the store also take ``page``/``page_size``/``after`` and add ``pagination`` (refget's
``{page, page_size, total}``); without ``page_size`` they list everything, as refget does. Errors
are ``{"detail": ...}``; an unknown namespace or digest gets 404 where refget answers an empty list.
A region refget answers 404 for (every failure) gets the status the refget sequence routes give the
same fault (400, 416; 422 for a body of the wrong shape, 413 past the caps).
"""

from __future__ import annotations

import json
import os
import re
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from rgstore import seqcolextras, seqcolregions
from rgstore.errors import IntegrityError, InvalidInputError, NotFoundError
from rgstore.pagecursor import decode_text, encode_text, window
from rgstore.seqcolregions import MAX_REGIONS, PlannedRegion, RegionsTooLargeError

from .keyset import After, next_after, only_one_start, paged_responses
from .lazyfetch import lazy_fetcher
from .postbody import posted_body
from .refget import sequence_index
from .regionbudget import ReservedAnswer, region_budget
from .schemas import ErrorBody
from .sequences import StoredSequence, open_stored
from .wire import json_response, store_of

__all__ = ["MAX_REGIONS_BYTES", "router"]

router = APIRouter(prefix="/seqcol", tags=["seqcol"])
"""Included by the app beside ``api.seqcol.router``; ``/seqcol/openapi.json`` lists these routes too."""

MAX_PAGE_SIZE = 10_000
MAX_REGIONS_BYTES = 16 << 20
"""A posted list of regions may be this long: ``MAX_REGIONS`` regions with sequence names of 1,000 characters."""
_MAX_REGION_VALUES = MAX_REGIONS * 8
"""JSON values (counted before parsing, as for a posted collection) ``MAX_REGIONS`` regions need: 4 each, and room."""
_OPEN_AT_ONCE = 64
"""Sequence files a regions request holds open at once (read together on one worker thread)."""
_NOT_JSON_SAFE = re.compile(rb"[^A-Za-z*\-]")
"""Anything but a residue (``rgstore.fasta.RESIDUES``): a damaged data file, and no byte to put in a JSON string."""

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


class RegionSequence(BaseModel):
    chrom_name: str
    start: int
    end: int
    sequence: str


_COORDINATE = {"type": "integer", "minimum": 0}
_REGIONS_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "array", "maxItems": MAX_REGIONS, "items": {
        "type": "object", "required": ["chrom", "start", "end"],
        "properties": {"chrom": {"type": "string"}, "start": _COORDINATE, "end": _COORDINATE}}}}}}}


@router.post("/collection/{digest}/regions", response_model=list[RegionSequence], openapi_extra=_REGIONS_BODY,
             summary="Bases of regions of a collection's sequences (refget extension)",
             responses={code: {"model": ErrorBody} for code in (400, 404, 408, 413, 416, 422, 503)})
async def collection_regions(request: Request, digest: str) -> Response:
    """``[{chrom_name, start, end, sequence}]`` for the posted ``[{chrom, start, end}]`` (0-based, half-open), in order.

    404 for an unknown collection or sequence name, 400 for a negative coordinate or a start past
    the sequence's end, 416 for an end past it or start > end on a sequence the collection does not
    record as circular (a circular one wraps), 422 for a body that is not a list of such objects,
    400 for one that is not JSON, 413 past ``MAX_REGIONS`` regions, ``MAX_REGION_BASES`` bases or
    ``MAX_REGIONS_BYTES`` of body or the worker's budget for answers in flight (``api.regionbudget``),
    408 for a body that stops arriving, 503 (with Retry-After) while the answers in flight leave no room.
    """
    body = await posted_body(request, MAX_REGIONS_BYTES, f"the posted body is more than {MAX_REGIONS_BYTES >> 20} "
                             f"MiB; post at most {MAX_REGIONS:,} regions")
    store, index = store_of(request), sequence_index(request)

    def plan() -> tuple[list[PlannedRegion], dict[str, StoredSequence], list[StoredSequence]]:
        planned = seqcolregions.plan_regions(store, digest, _regions_json(body))
        seqs = {}
        with store.read() as txn:
            for region in planned:
                if region.size and region.sequence not in seqs:
                    seq = index.lookup(txn, region.sequence)
                    if seq is None:  # its genome was removed since the plan was made
                        raise NotFoundError(f"no sequence collection {digest!r} in this store")
                    seqs[region.sequence] = seq
        return planned, seqs, [seq for seq in seqs.values() if not os.path.exists(seq.path)]

    planned, seqs, missing = await run_in_threadpool(plan)
    heads, size = _layout(planned)
    budget = region_budget(request)
    budget.check(size)  # an answer larger than the whole budget: 413 before anything is fetched
    for seq in missing:  # fetched (as the refget route fetches) before the answer's memory is taken, not while held
        os.close(await lazy_fetcher(request).open(seq))
    reservation = await budget.reserve(size)
    try:
        answer = await _regions_body(request, planned, heads, size, seqs)
    except BaseException:
        reservation.release()
        raise
    return ReservedAnswer(answer, reservation)  # gives the room back once sent, or its client is gone


def _regions_json(body: bytes) -> Any:
    """The posted regions parsed: InvalidInputError (400) when not JSON, 413 past the value cap."""
    if body.count(b",") + body.count(b"[") + body.count(b"{") > _MAX_REGION_VALUES:
        raise RegionsTooLargeError(f"the posted body has more than {_MAX_REGION_VALUES:,} JSON values; "
                                   f"post at most {MAX_REGIONS:,} regions")
    try:
        return json.loads(body, parse_constant=_not_json)
    except (ValueError, RecursionError):
        raise InvalidInputError("the posted body is not JSON (post a list of {chrom, start, end} objects)") from None


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def _layout(planned: list[PlannedRegion]) -> tuple[list[bytes], int]:
    """Each region's JSON up to its bases, and the bytes of the whole answer."""
    heads = [b'{"chrom_name":%s,"start":%d,"end":%d,"sequence":"' % (json.dumps(r.chrom).encode(), r.start, r.end)
             for r in planned]
    return heads, 2 + sum(len(h) + r.size + 2 for h, r in zip(heads, planned)) + max(len(planned) - 1, 0)


async def _regions_body(request: Request, planned: list[PlannedRegion], heads: list[bytes], size: int,
                        seqs: dict[str, StoredSequence]) -> memoryview:
    """The JSON answer of ``size`` bytes, laid out whole and the bases read into their places: one copy in memory."""
    buf = bytearray(size)
    slots: dict[str, list[tuple[int, PlannedRegion]]] = {}
    at = 1
    buf[0:1] = b"["
    for n, (head, region) in enumerate(zip(heads, planned)):
        buf[at:at + len(head)] = head
        at += len(head)
        if region.size:
            slots.setdefault(region.sequence, []).append((at, region))
        at += region.size
        buf[at:at + 2] = b'"}'
        at += 2
        if n + 1 < len(planned):
            buf[at:at + 1] = b","
            at += 1
    buf[at:at + 1] = b"]"
    groups = list(slots.items())
    for first in range(0, len(groups), _OPEN_AT_ONCE):
        opened: list[tuple[int, StoredSequence, list[tuple[int, PlannedRegion]]]] = []
        try:
            for digest, places in groups[first:first + _OPEN_AT_ONCE]:
                seq = seqs[digest]
                fd = open_stored(seq)
                if fd is None:  # not fetched yet (a remote genome's, a mirror's), as the refget route fetches it
                    fd = await lazy_fetcher(request).open(seq)
                opened.append((fd, seq, places))
            await run_in_threadpool(_fill, buf, opened)
        finally:
            for fd, _, _ in opened:
                os.close(fd)
    return memoryview(buf)


def _fill(buf: bytearray, opened: list[tuple[int, StoredSequence, list[tuple[int, PlannedRegion]]]]) -> None:
    """Read each region's spans from its open sequence file into its place in ``buf``."""
    view = memoryview(buf)
    for fd, seq, places in opened:
        for at, region in places:
            pos = at
            for lo, hi in region.spans:
                if os.preadv(fd, [view[pos:pos + hi - lo]], lo) != hi - lo:
                    raise IntegrityError(f"the stored file of sequence SQ.{seq.digest} ended early; "
                                         "the store's operator can run `rgstore verify`")
                pos += hi - lo
            if _NOT_JSON_SAFE.search(buf, at, pos):
                raise IntegrityError(f"the stored file of sequence SQ.{seq.digest} holds a byte that is no residue; "
                                     "the store's operator can run `rgstore verify`")
