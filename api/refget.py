"""GA4GH refget sequences v2.0.0: ``/sequence/service-info``, ``/sequence/{id}``, ``/sequence/{id}/metadata``.

Status matrix (refget v2 text; Range per RFC 7233, see ``api.negotiation.parse_range``):
unsupported ``Accept`` 406; unknown id 404; ``start``/``end`` not 32-bit unsigned, ``start``
beyond the length, or ``start``/``end`` together with ``Range`` 400; ``end`` beyond the length,
``start`` at the length, or ``start > end`` on a sequence no genome recorded as circular 416
(circular ones wrap: ``seq[start:] + seq[:end]``); a satisfiable ``Range`` 206. Every body has a
Content-Length; bodies above ``INLINE_LIMIT`` are streamed from the file in chunks. Bases asked
for by checksum are immutable and say so (``Cache-Control``); by alias they are not.

A namespaced CURIE resolves through the store's sequence aliases, where ``namespace:name`` names
exactly one digest by construction, so the spec's 300/409 for ambiguous identifiers cannot arise.
"""

from __future__ import annotations

import json
import os
from typing import Any

import anyio
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from rgstore.errors import IntegrityError, InvalidInputError, OutOfRangeError

from .app_info import app_version, organization
from .errors import problem
from .files import etag_matches
from .lazyfetch import lazy_fetcher
from .negotiation import (
    JSON_OFFERS,
    JSON_V1,
    MAX_COORDINATE,
    SEQUENCE_OFFERS,
    SEQUENCE_V1,
    SEQUENCE_V2,
    field_value,
    negotiate,
    parse_coordinate,
    parse_range,
)
from .schemas import ErrorBody, RefgetServiceInfo, SequenceMetadataResponse
from .sequences import (
    CHUNK,
    SequenceIndex,
    StoredSequence,
    cached_bases,
    is_checksum,
    open_stored,
    read_bases,
)
from .wire import IMMUTABLE, is_head, send_until_disconnect, store_of

__all__ = ["router", "INLINE_LIMIT", "BasesResponse", "sequence_index"]

INLINE_LIMIT = 1 << 16
"""Bodies up to this many bases are read in one call; larger ones are streamed in chunks."""

router = APIRouter(prefix="/sequence", tags=["refget sequences v2"])

_COORDINATE_DOC: dict[str, Any] = {"type": "integer", "minimum": 0, "maximum": MAX_COORDINATE}
_SEQUENCE_PARAMS: dict[str, Any] = {
    "parameters": [
        {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "title": "Id"}},
        {"name": "start", "in": "query", "required": False, "schema": _COORDINATE_DOC,
         "description": "0-based inclusive start; with start > end a circular sequence wraps the origin"},
        {"name": "end", "in": "query", "required": False, "schema": _COORDINATE_DOC,
         "description": "0-based exclusive end"},
        {"name": "Range", "in": "header", "required": False, "schema": {"type": "string"},
         "description": "a single `bytes=first-last` range (0-based, inclusive); not with start/end"},
    ],
}


def _refget_json(model: str) -> dict[int | str, dict[str, Any]]:
    # The body is sent as refget's own JSON media types (v1 ones for v1 clients), not application/json.
    schema = {"schema": {"$ref": f"#/components/schemas/{model}"}}
    return {200: {"content": {"application/vnd.ga4gh.refget.v2.0.0+json": schema,
                              "application/vnd.ga4gh.refget.v1.0.0+json": schema}}}


_VARY = {"Vary": "Accept"}  # the media type answered depends on Accept: shared caches must key on it
_BASES = {"schema": {"type": "string"}}
_BASES_CONTENT = {"text/vnd.ga4gh.refget.v2.0.0+plain": _BASES, "text/vnd.ga4gh.refget.v1.0.0+plain": _BASES}


def sequence_index(request: Request) -> SequenceIndex:
    """The worker's identifier resolver for its open store."""
    index: SequenceIndex = store_of(request).service("api.sequences", SequenceIndex)
    return index


def _json(obj: Any, media_type: str, status_code: int = 200) -> Response:
    # refget JSON is declared us-ascii: escape anything else.
    body = json.dumps(obj, ensure_ascii=True, separators=(",", ":")).encode()
    return Response(body, status_code=status_code, media_type=media_type, headers=_VARY)


def _not_acceptable(accept: str | None, offers: dict[str, str]) -> Response:
    supported = ", ".join(k for k in offers if "*" not in k)
    return problem(406, f"cannot answer with any of Accept: {accept!r}; supported: {supported}")


@router.get(
    "/service-info", response_model=RefgetServiceInfo, summary="refget service-info",
    responses={**_refget_json("RefgetServiceInfo"), 406: {"model": ErrorBody}},
)
async def service_info(request: Request) -> Response:
    """GA4GH service-info with the ``refget`` section: circular support, algorithms, identifier types.

    Answered in a v1 media type, it also carries refget v1's ``service`` section.
    """
    accept = field_value(request.headers.getlist("accept"))
    media = negotiate(accept, JSON_OFFERS)
    if media is None:
        return _not_acceptable(accept, JSON_OFFERS)
    namespaces = sequence_index(request).manifest().get("sequence_alias_namespaces", [])
    info: dict[str, Any] = {
        "id": "org.rgstore.refget",
        "name": "rgstore refget sequences",
        "type": {"group": "org.ga4gh", "artifact": "refget-sequence", "version": "2.0.0"},
        "description": "Reference sequences by checksum, served read-only from an rgstore store.",
        "organization": organization(request),
        "version": app_version(),
        "refget": {
            "circular_supported": True,
            "algorithms": ["md5", "ga4gh", "trunc512"],
            "identifier_types": sorted(str(ns) for ns in namespaces) if isinstance(namespaces, list) else [],
            "subsequence_limit": None,
        },
    }
    if media == JSON_V1:
        # refget v1 clients (and the v1 compliance suite) read a top-level "service" object.
        info["service"] = {
            "circular_supported": True,
            "algorithms": ["md5", "trunc512", "ga4gh"],
            "subsequence_limit": None,
            "supported_api_versions": ["1.0", "2.0.0"],
        }
    return _json(info, media)


@router.get(
    "/{id}/metadata", response_model=SequenceMetadataResponse, summary="Checksums, length and aliases of a sequence",
    responses={**_refget_json("SequenceMetadataResponse"), 404: {"model": ErrorBody}, 406: {"model": ErrorBody}},
)
async def metadata(request: Request, id: str) -> Response:
    """``{"metadata": {md5, ga4gh, trunc512, length, aliases}}``; aliases are the store's sequence aliases."""
    accept = field_value(request.headers.getlist("accept"))
    media = negotiate(accept, JSON_OFFERS)
    if media is None:
        return _not_acceptable(accept, JSON_OFFERS)
    index = sequence_index(request)
    with store_of(request).read() as txn:
        seq = index.resolve(txn, id)
        aliases = index.aliases(txn, seq.digest)
    return _json({"metadata": {
        "md5": seq.md5,
        "ga4gh": seq.ga4gh,
        "trunc512": seq.trunc512,
        "length": seq.length,
        "aliases": [{"alias": name, "naming_authority": ns} for ns, name in aliases],
    }}, media)


def _segments(seq: StoredSequence, start: int | None, end: int | None) -> list[tuple[int, int]]:
    length = seq.length
    s = 0 if start is None else start
    e = length if end is None else end
    if s > length:
        raise InvalidInputError(f"start={s} is beyond the end of this {length} bp sequence")
    if e > length:
        raise OutOfRangeError(f"end={e} is beyond the end of this {length} bp sequence")
    if s == length and length > 0:
        raise OutOfRangeError(f"start={s} is not a position of this {length} bp sequence (0-based)")
    if s <= e:
        return [(s, e)]
    if not seq.circular:
        raise OutOfRangeError(f"start={s} > end={e}, and no genome records this sequence as circular")
    return [(s, length), (0, e)]


@router.get(
    "/{id}",
    summary="The bases of a sequence or sub-sequence",
    response_class=Response,
    openapi_extra=_SEQUENCE_PARAMS,
    responses={
        200: {"description": "The (sub-)sequence, upper-case ASCII, no line breaks", "content": _BASES_CONTENT},
        206: {"description": "The bytes of the requested Range", "content": _BASES_CONTENT},
        304: {"description": "Not modified: `If-None-Match` matched the ETag (a checksum id's bases never change)"},
        400: {"model": ErrorBody}, 404: {"model": ErrorBody}, 406: {"model": ErrorBody},
        416: {"model": ErrorBody},
    },
)
async def sequence(request: Request) -> Response:
    """Bases by any supported id, whole or by ``start``/``end`` (0-based, half-open) or a single ``Range``."""
    id = request.path_params["id"]
    accept = field_value(request.headers.getlist("accept"))
    media = negotiate(accept, SEQUENCE_OFFERS)
    if media is None:
        return _not_acceptable(accept, SEQUENCE_OFFERS)
    start = parse_coordinate("start", request.query_params.getlist("start"))
    end = parse_coordinate("end", request.query_params.getlist("end"))
    # An empty Range is no range (RFC 9110 14.2); Range sent on two lines is one list (RFC 9110 5.3), so two ranges.
    range_header = field_value(request.headers.getlist("range"))
    if range_header is not None and (start is not None or end is not None):
        raise InvalidInputError("give either a Range header or start/end query parameters, not both")
    index = sequence_index(request)
    with store_of(request).read() as txn:
        seq = index.resolve(txn, id)
    headers = {"Accept-Ranges": "bytes", **_VARY}
    status = 200
    # The bases of a checksum never change, so its digest is a strong validator: a browser keeps and
    # combines Range answers only with one. Not for an alias (it may be repointed).
    # Each content type is its own representation (text/plain when the v2 type is refused): its own tag.
    tag = {SEQUENCE_V2: "", SEQUENCE_V1: "-v1"}.get(media, "-plain")
    etag = f'"{seq.digest}{tag}"' if is_checksum(id) else None
    if range_header is not None and etag is not None:
        if_none_match = field_value(request.headers.getlist("if-none-match"))
        if if_none_match is not None and etag_matches(if_none_match, etag):  # preconditions before Range (RFC 9110 13.2.2)
            return Response(status_code=304, headers={**headers, **IMMUTABLE, "ETag": etag})
        if request.headers.get("if-range", etag) != etag:
            range_header = None  # If-Range names another representation: the whole sequence (RFC 9110 13.1.5)
    elif range_header is not None and "if-range" in request.headers:
        # An alias's bases have no validator (it may be repointed), so no If-Range can match the ones
        # served now: the whole sequence, never a range spliced onto a copy of another sequence.
        range_header = None
    if range_header is not None:
        try:
            first, stop = parse_range(range_header, seq.length)
        except OutOfRangeError as exc:
            return problem(416, str(exc), headers={"Content-Range": f"bytes */{seq.length}"})
        segments = [(first, stop)]
        status = 206
        headers["Content-Range"] = f"bytes {first}-{stop - 1}/{seq.length}"
    else:
        segments = _segments(seq, start, end)
        if start is not None or end is not None:
            headers["Accept-Ranges"] = "none"
    if len(segments) == 1 and is_checksum(id):
        # The bases of a checksum never change. Not for an alias (it may be repointed) nor a wrap
        # across the origin (it depends on a genome recording the sequence as circular).
        headers.update(IMMUTABLE)
        if etag is not None:
            headers["ETag"] = etag
            if_none_match = field_value(request.headers.getlist("if-none-match"))
            if if_none_match is not None and etag_matches(if_none_match, etag):
                return Response(status_code=304, headers=headers)
    size = sum(b - a for a, b in segments)
    headers["Content-Length"] = str(size)
    if is_head(request):
        return Response(b"", status_code=status, media_type=media, headers=headers)
    fd = open_stored(seq)
    if fd is None:  # not fetched yet (a remote genome's, a mirror's): download off the event loop and threadpool
        fd = await lazy_fetcher(request).open(seq)
    if size <= INLINE_LIMIT:
        body = cached_bases(fd, segments)  # from the page cache only: the loop never waits on the disk
        if body is None:
            body = await run_in_threadpool(read_bases, seq, segments, fd)  # closes fd
        else:
            os.close(fd)
        return Response(body, status_code=status, media_type=media, headers=headers)
    return BasesResponse(fd, seq, segments, status_code=status, media_type=media, headers=headers)


class BasesResponse(Response):
    """The bases of ``segments`` streamed from the open ``fd``, which is closed when the response ends, however it ends.

    A StreamingResponse over a generator that owns the descriptor keeps it open after a client
    disconnects mid-body until the garbage collector finds the abandoned generator (one descriptor
    per aborted download of a large sequence), and never closes it if the body had not started.
    """

    def __init__(self, fd: int, seq: StoredSequence, segments: list[tuple[int, int]], *, status_code: int,
                 media_type: str, headers: dict[str, str]) -> None:
        self.fd, self.seq, self.segments = fd, seq, segments
        self.status_code = status_code
        self.media_type = media_type
        self.background = None
        self.init_headers(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send the headers, then the bases in chunks read off the event loop."""
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            await send_until_disconnect(receive, lambda: self._send_bases(send))
        finally:
            os.close(self.fd)

    async def _send_bases(self, send: Send) -> None:
        for start, end in self.segments:
            pos = start
            while pos < end:
                data = await anyio.to_thread.run_sync(os.pread, self.fd, min(CHUNK, end - pos), pos)
                if not data:
                    raise IntegrityError(f"sequence file {self.seq.path} ended early at byte {pos}")
                pos += len(data)
                await send({"type": "http.response.body", "body": data, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
