"""GA4GH seqcol 1.0 under ``/seqcol``: service-info, collection, attribute, comparison and list endpoints
(plus refget's alias and FHR extensions, ``api.seqcol_extensions``).

Collections are the genomes of the genome view; digests, level-1 and level-2 values are those
``rgstore.seqcol`` computed at ingest (and checked against gtars). A genome's level-1 and
level-2 bodies never change for a digest, so their encoded JSON is kept in a small LRU; whether
the genome still exists is checked on every request. Answers fixed by the digests in their URL
(collection, attribute, GET comparison) tell caches they are immutable. ``/seqcol/openapi.json``
describes just this API, for seqcol clients (and the compliance suite) that look for it under the
API root.
"""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.openapi.utils import get_openapi
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from rgstore import seqcol as seqcol_digests
from rgstore import seqcolextras
from rgstore.environment import Txn
from rgstore.errors import InvalidInputError, NotFoundError
from rgstore.pagecursor import decode_text, encode_text, window
from rgstore.store import Store
from rgstore.views.genomes import GenomeRecord, genome_record

from .app_info import app_version, organization
from .catalog import CatalogSnapshot, CollectionCache, GenomeCatalog, level2
from .keyset import After, next_after, only_one_start, paged_responses
from .postbody import posted_body
from .schemas import AttributeList, ComparisonResult, ErrorBody, SeqcolList, SeqcolServiceInfo
from .seqcol_extensions import router as extensions_router
from .seqcol_schema import LEVEL1_ATTRIBUTES, LEVEL2_ATTRIBUTES, POSTED_COLLECTION, SEQCOL_SCHEMA, TRANSIENT
from .wire import IMMUTABLE, json_response, store_of

__all__ = ["router", "MAX_POST_BYTES", "MAX_POST_VALUES", "store_url"]

PREFIX = "/seqcol"
MAX_POST_BYTES = 64 << 20
MAX_POST_VALUES = 4_000_000
"""JSON values a posted collection may hold: a full level-2 body of ~550k sequences, more than fits in
``MAX_POST_BYTES`` (parsing costs ~100 bytes of memory per value, however short the value's text)."""
MAX_PAGE_SIZE = 10_000

router = APIRouter(prefix=PREFIX, tags=["seqcol"])

_COMPARED: OrderedDict[tuple[str, str], bytes] = OrderedDict()
"""Encoded GET comparisons by (digest1, digest2), most recent last: the same in any store."""
_COMPARED_SIZE = 256
_COMPARED_LOCK = threading.Lock()

Page = Annotated[int, Query(ge=0, le=2**31, description="0-based page number")]
PageSize = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Items per page")]
Filter = Annotated[str | None, Query(max_length=64, description="A level-1 digest this attribute must have")]


def store_url(request: Request) -> str:
    """Absolute URL of this server's RefgetStore mirror (``/store``), as clients must reach it.

    Behind a proxy or load balancer, ``rgstore serve --public-url`` (``$RGSTORE_PUBLIC_URL``)
    pins it; otherwise it is derived from the request (its Host header).
    """
    public = os.environ.get("RGSTORE_PUBLIC_URL")
    if public:
        return f"{public.rstrip('/')}/store"
    return f"{request.base_url}store"


def _record(txn: Txn, store: Store, digest: str) -> GenomeRecord:
    record = genome_record(txn, store.environment, digest)
    if record is None:
        raise NotFoundError(f"no sequence collection {digest!r} in this store")
    return record


def _catalog(request: Request, txn: Txn) -> CatalogSnapshot:
    catalog: GenomeCatalog = store_of(request).service("api.catalog", GenomeCatalog)
    return catalog.snapshot(txn)


def _paginate(items: list[str], page: int, page_size: int, after: str | None) -> Response:
    """One page of sorted ``items``, from ``page`` or past ``after``, with the next page's cursor as a header."""
    start, end, more = window(items, page * page_size, page_size, after)
    return json_response({"results": items[start:end],
                          "pagination": {"page": page, "page_size": page_size, "total": len(items)}},
                         headers=next_after(encode_text(items[end - 1]) if more else None))


@router.get("/service-info", response_model=SeqcolServiceInfo, summary="seqcol service-info with its schema")
async def service_info(request: Request) -> Response:
    """GA4GH service-info: the seqcol schema this server digests with, the RefgetStore URL, and refget's flags."""
    features = seqcolextras.seqcol_features(store_of(request))
    return json_response({
        "id": "org.rgstore.seqcol",
        "name": "rgstore seqcol",
        "type": {"group": "org.ga4gh", "artifact": "refget-seqcol", "version": "1.0.0"},
        "description": "Sequence collections of an rgstore store, read-only.",
        "organization": organization(request),
        "version": app_version(),
        "seqcol": {
            "schema": SEQCOL_SCHEMA,
            "refget_store": {"enabled": True, "url": store_url(request)},
            # refget's server flags (refget/seqcolapi/app.py): whether its alias and FHR routes have data.
            "aliases": {"enabled": features.aliases},
            "fhr_metadata": {"enabled": features.fhr_metadata},
        },
    })


@router.get(
    "/collection/{digest}", summary="A sequence collection at level 1 (digests) or 2 (arrays)",
    # An object as collated (the default); an array for collated=false (one object per sequence) or attribute=A.
    responses={200: {"content": {"application/json": {"schema": {"anyOf": [{"type": "object"}, {"type": "array"}]}}}},
               404: {"model": ErrorBody}},
    response_class=Response,
)
async def collection(
    request: Request, digest: str,
    level: Annotated[int, Query(ge=1, le=2, description="1: attribute digests; 2: arrays")] = 2,
    collated: Annotated[bool, Query(description="false: one object per sequence (names, lengths, sequences)")] = True,
    attribute: Annotated[str | None, Query(max_length=64, description="Only this attribute's level-2 array")] = None,
) -> Response:
    """Level 2 (default): names, lengths, sequences and the non-transient ancillary arrays; level 1: their digests.

    As refget's seqcol API: ``collated=false`` answers the collection itemwise, and ``attribute=A``
    just A's level-2 array (404 for a transient or unknown attribute), whatever ``level`` says.
    """
    store = store_of(request)
    if not collated or attribute is not None:
        # Silently answering the collated collection would hand a client the shape it did not ask for.
        if collated:
            _check_attribute(attribute)
        with store.read() as txn:
            record = _record(txn, store, digest)
        if not collated:
            return json_response([{"names": n, "lengths": length, "sequences": s}
                                  for n, length, s in zip(record.names, record.lengths, record.sequences)],
                                 headers=IMMUTABLE)
        return json_response(level2(record)[str(attribute)], headers=IMMUTABLE)
    cache: CollectionCache = store.service("api.collections", CollectionCache)
    with store.read() as txn:
        body = cache.body(txn, digest, "level2" if level == 2 else "level1")
    return Response(body, media_type="application/json", headers=IMMUTABLE)


def _check_attribute(attribute: str | None) -> None:
    """NotFoundError unless ``attribute`` is a level-2 attribute (transient ones are level 1 only)."""
    if attribute not in LEVEL2_ATTRIBUTES:
        why = "is transient (level 1 only)" if attribute in TRANSIENT else "is not a seqcol attribute here"
        raise NotFoundError(f"attribute {attribute!r} {why}")


@router.get(
    "/attribute/collection/{attribute}/{digest}", summary="The level-2 value of one attribute digest",
    responses={200: {"content": {"application/json": {"schema": {"type": "array", "items": {}}}}},
               404: {"model": ErrorBody}},
    response_class=Response,
)
async def attribute(request: Request, attribute: str, digest: str) -> Response:
    """The array whose level-1 digest is ``digest``; 404 for unknown or transient attributes."""
    _check_attribute(attribute)
    store = store_of(request)
    with store.read() as txn:
        holders = _catalog(request, txn).by_attribute.get(attribute, {}).get(digest)
        if not holders:
            raise NotFoundError(f"no {attribute} with digest {digest!r} in this store")
        record = _record(txn, store, holders[0])
    return json_response(level2(record)[attribute], headers=IMMUTABLE)


def _compare(request: Request, a: str, b: str) -> Response:
    """Compare stored collections ``a`` and ``b``."""
    store = store_of(request)
    with store.read() as txn:
        left, right = level2(_record(txn, store, a)), level2(_record(txn, store, b))
    return json_response(seqcol_digests.compare(a, left, b, right), headers=IMMUTABLE)


@router.get("/comparison/{digest1}/{digest2}", response_model=ComparisonResult,
            summary="Compare two collections", responses={404: {"model": ErrorBody}})
def comparison(request: Request, digest1: str, digest2: str) -> Response:
    """The seqcol comparison of two stored collections (attributes present, element counts, order)."""
    # Fixed by the two content digests, so kept: recomputing it reads and compares both collections
    # whole (~0.4 s for two of 50k sequences) for a few hundred bytes. Existence is checked every time.
    with store_of(request).read() as txn:
        known = _catalog(request, txn).known
    for digest in (digest1, digest2):
        if digest not in known:
            raise NotFoundError(f"no sequence collection {digest!r} in this store")
    key = (digest1, digest2)
    with _COMPARED_LOCK:
        body = _COMPARED.get(key)
        if body is not None:
            _COMPARED.move_to_end(key)
    if body is None:
        body = bytes(_compare(request, digest1, digest2).body)
        with _COMPARED_LOCK:
            _COMPARED[key] = body
            while len(_COMPARED) > _COMPARED_SIZE:
                _COMPARED.popitem(last=False)
    return Response(body, media_type="application/json", headers=IMMUTABLE)


_POSTED_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": POSTED_COLLECTION}}}}


def _posted_json(body: bytes) -> Any:
    """The posted body parsed: InvalidInputError (400) when it is not JSON, _TooManyValues (413) past the value cap."""
    # Every array element and object member is its container's first or follows a comma, so this
    # bounds what parsing makes, before it makes anything (brackets or commas in strings only raise it).
    if body.count(b",") + body.count(b"[") + body.count(b"{") > MAX_POST_VALUES:
        raise _TooManyValues(f"the posted collection has more than {MAX_POST_VALUES:,} JSON values; "
                             "post at most its names, lengths and sequences arrays")
    try:
        return json.loads(body, parse_constant=_not_json)
    except (ValueError, RecursionError):  # RecursionError: arrays nested thousands deep
        raise InvalidInputError("the posted body is not JSON (post a level-2 collection: an object of arrays)") from None


def _not_json(constant: str) -> Any:
    """Refuse NaN and Infinity, which Python's parser takes but JSON (and JCS) have not."""
    raise ValueError(f"{constant} is not JSON")


class _TooManyValues(InvalidInputError):
    """More JSON values than any collection within ``MAX_POST_BYTES`` holds: 413."""

    http_status = 413


async def _posted_body(request: Request) -> bytes:
    """The request body (``api.postbody``): 413 past ``MAX_POST_BYTES``, 408 once it stops arriving."""
    return await posted_body(request, MAX_POST_BYTES, f"the posted body is more than {MAX_POST_BYTES >> 20} MiB; "
                             "post a level-2 collection's names, lengths and sequences arrays")


@router.post("/comparison/{digest1}", response_model=ComparisonResult,
             summary="Compare a stored collection with a posted level-2 collection",
             openapi_extra=_POSTED_BODY,
             responses={400: {"model": ErrorBody}, 404: {"model": ErrorBody}, 408: {"model": ErrorBody},
                        413: {"model": ErrorBody}, 422: {"model": ErrorBody}})
async def comparison_post(request: Request, digest1: str) -> Response:
    """Compare with the posted collection (at most ``MAX_POST_BYTES`` and ``MAX_POST_VALUES``, else 413); never stored.

    A body that is not JSON gets 400; JSON that is no level-2 collection (not an object of arrays,
    or a schema attribute holding a wrong element, such as a length of -1, true or 1.5) gets 422.
    ``digests.b`` is the posted collection's level-0 digest, or null when it lacks ``names``,
    ``lengths`` or ``sequences``, or they differ in length. The body is parsed on a worker thread,
    not on the event loop, and counted before it is parsed. A body that stops arriving for the server's
    ``--header-timeout`` gets 408 and the connection is closed.
    """
    body = await _posted_body(request)

    def compare() -> Response:
        posted = _posted_json(body)
        store = store_of(request)
        with store.read() as txn:
            left = level2(_record(txn, store, digest1))
        return json_response(seqcol_digests.compare_posted(digest1, left, posted))

    return await run_in_threadpool(compare)


@router.get("/list/collection", response_model=SeqcolList, summary="Collection digests, filtered and paged",
            responses=paged_responses({400: {"model": ErrorBody}}))
def list_collections(
    request: Request, page: Page = 0, page_size: PageSize = 100,
    names: Filter = None, lengths: Filter = None, sequences: Filter = None, name_length_pairs: Filter = None,
    sorted_name_length_pairs: Filter = None, sorted_sequences: Filter = None, after: After = None,
) -> Response:
    """Digests of collections whose level-1 attributes equal every given filter (AND), sorted; ``after`` pages
    by digest (``X-Rgstore-Next-After``)."""
    unknown = sorted(set(request.query_params) - {"page", "page_size", "after", *LEVEL1_ATTRIBUTES})
    if unknown:
        raise InvalidInputError(f"unknown filter {unknown[0]!r}; filter by {', '.join(LEVEL1_ATTRIBUTES)}")
    only_one_start(request, after, "page")
    past = decode_text(after) if after is not None else None
    given = {k: v for k, v in zip(LEVEL1_ATTRIBUTES, (names, lengths, sequences, name_length_pairs,
                                                       sorted_sequences, sorted_name_length_pairs)) if v}
    with store_of(request).read() as txn:
        snap = _catalog(request, txn)
    found: set[str] | None = None
    for attr, value in given.items():
        hits = set(snap.by_attribute.get(attr, {}).get(value, ()))
        found = hits if found is None else found & hits
    items = snap.digests if found is None else sorted(found)
    return _paginate(items, page, page_size, past)


@router.get("/list/attributes/{attribute}", response_model=AttributeList,
            summary="Distinct level-1 digests of one attribute", responses=paged_responses({404: {"model": ErrorBody}}))
def list_attributes(
    request: Request, attribute: str, page: Page = 0, page_size: PageSize = 100, after: After = None,
) -> Response:
    """Every distinct digest of ``attribute`` across the store's collections, sorted and paged (``after``: by digest)."""
    if attribute not in LEVEL1_ATTRIBUTES:
        raise NotFoundError(f"{attribute!r} is not a seqcol attribute; known: {', '.join(LEVEL1_ATTRIBUTES)}")
    only_one_start(request, after, "page")
    past = decode_text(after) if after is not None else None
    with store_of(request).read() as txn:
        snap = _catalog(request, txn)
    return _paginate(snap.attribute_values.get(attribute, []), page, page_size, past)


@router.get("/openapi.json", include_in_schema=False)
def seqcol_openapi(request: Request) -> Response:
    """OpenAPI for the seqcol API alone, paths relative to ``/seqcol``."""
    # refget's extensions too: the app includes their router beside this one, under the same prefix.
    spec = get_openapi(title="rgstore seqcol", version=app_version(), routes=[*router.routes, *extensions_router.routes])
    spec["paths"] = {path.removeprefix(PREFIX) or "/": ops for path, ops in spec["paths"].items()}
    spec["servers"] = [{"url": f"{request.scope.get('root_path', '')}{PREFIX}"}]
    return json_response(spec)
