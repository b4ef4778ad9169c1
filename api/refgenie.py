"""refgenie-compatible routes: ``/service-info`` (client bootstrap) and ``/v4`` genomes and aliases.

Shapes follow refgenie 1.0's server (``refgenie/server/routers/catalog.py``): lists are
``{"items": [...], "pagination": {"offset", "limit", "total"}}``; ``/v4/aliases/{name}`` answers
``{alias, digest, source, collection, fhr}`` and keeps refgenie's operationId, which refgenie
clients look up in ``/openapi.json``; ``/service-info`` advertises ``seqcol.refget_store.url``,
the field refgenie's ``make_source`` bootstraps from. Flat names are refgenie's: an alias in the
default ``refgenie`` namespace is its bare name, any other is ``namespace:name``; a bare name the
``refgenie`` namespace lacks resolves through the other namespaces (the seed's server order).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from rgstore.aliases import find_genome_alias
from rgstore.environment import Txn
from rgstore.errors import NotFoundError
from rgstore.pagecursor import decode_pair, decode_text, encode_pair, encode_text, window
from rgstore.store import Store
from rgstore.views.aliases import (
    COLLECTION,
    DEFAULT_NAMESPACE,
    AliasCounts,
    alias_page,
    collection_alias,
    collection_aliases_of,
)
from rgstore.views.genomes import genome_fhr, genome_record

from .app_info import app_version, organization
from .catalog import CollectionCache, GenomeCatalog, GenomeSummary
from .genomesearch import GenomeSearch
from .keyset import After, next_after, only_one_start, paged_responses
from .schemas import AliasPage, AliasRecord, ErrorBody, GenomePage, RefgenieServiceInfo
from .schemas import GenomeRecord as GenomeRecordModel
from .seqcol import store_url
from .wire import json_bytes, json_response, store_of

__all__ = ["router", "service_router", "flat_name", "DEFAULT_LIMIT", "MAX_LIMIT"]

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
_TAXON = re.compile(r"taxonomy[:/](\d+)$")

router = APIRouter(prefix="/v4", tags=["refgenie v4"])
service_router = APIRouter(tags=["service"])

Offset = Annotated[int, Query(ge=0, le=2**31, description="Number of items to skip")]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Maximum number of items to return")]
Text = Annotated[str | None, Query(max_length=512)]


def flat_name(namespace: str, name: str) -> str:
    """refgenie's flat alias: the bare name in the default namespace, else ``namespace:name``."""
    return name if namespace == DEFAULT_NAMESPACE else f"{namespace}:{name}"


def _split(flat: str) -> tuple[str, str]:
    namespace, sep, name = flat.partition(":")
    return (namespace, name) if sep else (DEFAULT_NAMESPACE, flat)


def _page(items: list[Any], offset: int, limit: int) -> dict[str, Any]:
    return {"items": items[offset:offset + limit], "pagination": {"offset": offset, "limit": limit, "total": len(items)}}


def _has_aliases(store: Store) -> bool:
    return store.environment.has_db("aliases.collections")


def _resolve(txn: Txn, store: Store, name: str) -> str | None:
    """The digest a flat alias names, or None: ``ns:name`` exactly; a bare name in ``refgenie`` first, else elsewhere."""
    if not _has_aliases(store):
        return None
    namespace, alias = _split(name)
    return find_genome_alias(txn, store.environment, namespace, alias, bare=":" not in name)[1]


def _aliases_of(txn: Txn, store: Store, digest: str) -> list[str]:
    if not _has_aliases(store):
        return []
    return [flat_name(ns, name) for ns, name in collection_aliases_of(txn, store.environment, digest)]


def _taxon_id(fhr: dict[str, Any] | None) -> int | None:
    taxon = fhr.get("taxon") if fhr else None
    uri = taxon.get("uri") if isinstance(taxon, dict) else None
    match = _TAXON.search(uri) if isinstance(uri, str) else None
    return int(match.group(1)) if match else None


def _genome_item(record: GenomeSummary, aliases: list[str], fhr: dict[str, Any] | None) -> dict[str, Any]:
    taxon_id = _taxon_id(fhr)
    return {
        "digest": record.digest,
        "description": record.description,
        "aliases": aliases,
        "asset_count": 0,
        "species_name": record.species or None,
        "common_name": None,
        "taxon_id": taxon_id,
        "assembly_source": None,
        "assembly_accession": fhr.get("assemblyAccession") if fhr else None,
        "n_sequences": record.n_sequences,
        "total_length": record.total_length,
        "added_at": record.added_at,
    }


@service_router.get("/service-info", response_model=RefgenieServiceInfo, summary="refgenie-style service-info")
async def service_info(request: Request) -> Response:
    """refgenie's root service-info: capabilities, the seqcol mount and the RefgetStore URL clients bootstrap from."""
    root = request.scope.get("root_path", "").rstrip("/")  # behind a proxy every advertised path carries it
    mount = {
        "id": "org.rgstore.seqcol",
        "name": "rgstore seqcol",
        "store": "rgstore",
        "url": f"{root}/seqcol",
        "service_info": f"{root}/seqcol/service-info",
        "refget_store": {"enabled": True, "url": store_url(request)},
    }
    return json_response({
        "id": "org.refgenie.api",
        "name": "rgstore",
        "type": {"group": "org.refgenie", "artifact": "refgenie", "version": "4.0.0"},
        "description": "A read-only rgstore projection: refgenie genomes and aliases, GA4GH seqcol and refget.",
        "organization": organization(request),
        "version": app_version(),
        "refgenie": {
            "mode": "server",
            "api_base": f"{root}/v4",
            "root_path": root,
            "service_name": "rgstore server",
            "capabilities": {
                "genomes": True, "aliases": True, "assets": False, "seqcol": True, "sequences": True,
                "refpkgs": True, "cache": True, "events": True, "writes": False,
            },
            "links": {"openapi": f"{root}/openapi.json", "refget": f"{root}/sequence/service-info",
                      "events": f"{root}/events"},
        },
        "seqcol": {**mount, "services": [mount]},
    })


@router.get("/aliases", response_model=AliasPage, summary="Genome aliases, filtered and paged",
            responses=paged_responses())
def list_aliases_route(
    request: Request, name: Text = None, genome_digest: Text = None, namespace: Text = None,
    offset: Offset = 0, limit: Limit = DEFAULT_LIMIT, after: After = None,
) -> Response:
    """Every genome alias ``{name, namespace, genome_digest}`` (``name`` in refgenie's flat form).

    Ordered by namespace, then name; ``after`` pages by that key (``X-Rgstore-Next-After``).
    Costs the page, not the store: ``name`` is one lookup, ``genome_digest`` reads the by-digest
    index, and an unfiltered page counts keys (a namespace's once per commit) and decodes only the
    aliases it returns.
    """
    only_one_start(request, after, "offset")
    past = decode_pair(after) if after is not None else None
    store = store_of(request)
    if not _has_aliases(store):
        return json_response(_page([], offset, limit))
    env = store.environment
    with store.read() as txn:
        if name is None and genome_digest is None:
            counts: AliasCounts = store.service("api.alias_counts", lambda s: AliasCounts(s.environment))
            total = counts.count(txn, COLLECTION, namespace)
            rows, more = alias_page(txn, env, COLLECTION, namespace, limit, skip=offset, after=past)
            page = [{"name": flat_name(ns, alias), "namespace": ns, "genome_digest": digest}
                    for ns, alias, digest, _ in rows]
            token = encode_pair(*rows[-1][:2]) if more else None
            return json_response({"items": page, "pagination": {"offset": offset, "limit": limit, "total": total}},
                                 headers=next_after(token))
        if name is not None:
            ns, alias = _split(name)
            target = collection_alias(txn, env, ns, alias) if flat_name(ns, alias) == name else None
            pairs = [(ns, alias, target)] if target is not None else []
        else:
            assert genome_digest is not None
            # A NUL would reach past the digest into the index's namespace part.
            found = collection_aliases_of(txn, env, genome_digest) if "\x00" not in genome_digest else []
            pairs = [(ns, alias, genome_digest) for ns, alias in found]
    listed = sorted((ns, alias, digest) for ns, alias, digest in pairs
                    if namespace in (None, ns) and genome_digest in (None, digest))
    keys = [(ns, alias) for ns, alias, _ in listed]
    start, end, more = window(keys, offset, limit, past)
    items = [{"name": flat_name(ns, alias), "namespace": ns, "genome_digest": digest}
             for ns, alias, digest in listed[start:end]]
    return json_response({"items": items, "pagination": {"offset": offset, "limit": limit, "total": len(keys)}},
                         headers=next_after(encode_pair(*keys[end - 1]) if more else None))


@router.get(
    "/aliases/{name}", response_model=AliasRecord, operation_id="get_alias_v4_aliases__name__get",
    summary="Resolve a genome alias to its digest, level-2 collection and FHR",
    responses={404: {"model": ErrorBody}, 409: {"model": ErrorBody}},
)
async def get_alias(request: Request, name: str) -> Response:
    """``{alias, digest, source: "server", collection: {names, lengths, sequences}, fhr}``; 404 if unknown.

    A bare name not in the ``refgenie`` namespace is looked up in every other one; 409 when
    those name different genomes.
    """
    store = store_of(request)
    cache: CollectionCache = store.service("api.collections", CollectionCache)
    with store.read() as txn:
        digest = _resolve(txn, store, name)
        if digest is None:
            raise NotFoundError(f"Alias '{name}' not found")
        try:
            collection = cache.body(txn, digest, "core")
        except NotFoundError:
            raise NotFoundError(f"Collection data not found for {digest}") from None
        fhr = genome_fhr(txn, store.environment, digest)
    # The level-2 part is pre-encoded and cached per digest; splice it in rather than re-encode.
    body = b"".join((b'{"alias":', json_bytes(name), b',"digest":', json_bytes(digest), b',"source":"server"',
                     b',"collection":', collection, b',"fhr":', json_bytes(fhr), b"}"))
    return Response(body, media_type="application/json")


@router.get("/genomes", response_model=GenomePage, summary="Genomes, filtered and paged",
            responses=paged_responses({409: {"model": ErrorBody}}))
def list_genomes(
    request: Request, digest: Text = None, alias: Text = None, q: Text = None,
    offset: Offset = 0, limit: Limit = DEFAULT_LIMIT, after: After = None,
) -> Response:
    """Genomes with their aliases; ``alias`` resolves as ``/v4/aliases/{name}`` does, ``digest`` filters exactly
    (unknown: empty page), ``q`` by substring.

    Ordered by digest; ``after`` pages by it (``X-Rgstore-Next-After``). Costs a few dict lookups
    per genome and no genome record decoded (the catalog keeps each genome's listed fields); only
    the page's aliases and FHR documents are read.
    """
    only_one_start(request, after, "offset")
    past = decode_text(after) if after is not None else None
    store = store_of(request)
    catalog: GenomeCatalog = store.service("api.catalog", GenomeCatalog)
    env = store.environment
    with store.read() as txn:
        digests = catalog.snapshot(txn).digests
        if alias is not None:
            target = _resolve(txn, store, alias)
            digests = [target] if target in catalog.snapshot(txn).known else []
        if digest is not None:
            digests = [d for d in digests if d == digest]
        if q:
            search: GenomeSearch = store.service("api.genomesearch", GenomeSearch)
            digests = search.matching(txn, catalog.summaries(txn, digests), q.lower(), flat_name,
                                      lambda d: _aliases_of(txn, store, d))
        start, end, more = window(digests, offset, limit, past)
        items = [_genome_item(s, _aliases_of(txn, store, s.digest), genome_fhr(txn, env, s.digest))
                 for s in catalog.summaries(txn, digests[start:end])]
    return json_response({"items": items, "pagination": {"offset": offset, "limit": limit, "total": len(digests)}},
                         headers=next_after(encode_text(digests[end - 1]) if more else None))


@router.get(
    "/genomes/{digest}", response_model=GenomeRecordModel, operation_id="get_genome_v4_genomes__digest__get",
    summary="One genome with its FHR document", responses={404: {"model": ErrorBody}},
)
async def get_genome(request: Request, digest: str) -> Response:
    """A genome's catalogue fields plus ``taxon_uri``, ``fhr``, names, lengths and sequences; 404 if unknown."""
    store = store_of(request)
    with store.read() as txn:
        record = genome_record(txn, store.environment, digest)
        if record is None:
            raise NotFoundError(f"Genome {digest} not found")
        fhr = genome_fhr(txn, store.environment, digest)
        item = _genome_item(GenomeSummary.of(record), _aliases_of(txn, store, digest), fhr)
    taxon_id = item["taxon_id"]
    item.update({
        "taxon_uri": f"https://identifiers.org/taxonomy:{taxon_id}" if taxon_id is not None else None,
        "fhr": fhr,
        "names": record.names, "lengths": record.lengths, "sequences": record.sequences,
        "circular": record.circular,
    })
    return json_response(item)
