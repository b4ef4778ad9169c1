"""The event feed: ``/events`` (stored records, as frames for mirrors or JSON lines for people) and ``/events/head``.

The binary body is the concatenation of ``rgstore.logfile.encode_frame(seq, record)`` with the
records byte-for-byte as stored (header with chain hash, payload as stored), so a mirror can
verify the chain and append them unchanged. Each page is read in one short transaction and sent
with a Content-Length; a client pages with ``after=<X-Rgstore-Last-Seq>`` until it reaches
``X-Rgstore-Head-Seq``. A seq means something only within one log: a client that also sends
``log_id=<X-Rgstore-Log-Id>`` gets a 409, not another log's records, once the server serves a
different log (the store was replaced, or a load balancer sent it to an unrelated store).
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from rgstore.codec import decode_envelope, unframe
from rgstore.errors import LogMismatchError
from rgstore.logfile import encode_frame

from .errors import problem
from .negotiation import field_value, negotiate
from .schemas import ErrorBody, EventsHead
from .wire import json_bytes, json_response, store_of

__all__ = ["router", "FRAMES_MEDIA_TYPE", "JSONL_MEDIA_TYPE", "MAX_PAGE_BYTES", "MAX_LIMIT"]

FRAMES_MEDIA_TYPE = "application/vnd.rgstore.frames"
JSONL_MEDIA_TYPE = "application/x-ndjson"
MAX_LIMIT = 10_000
MAX_PAGE_BYTES = 16 << 20
"""A page stops after the record that crosses this many bytes (always at least one record)."""

router = APIRouter(tags=["events"])


# JSON lines are the default (people, curl); frames only when asked for by name. Highest q wins.
_OFFERS = {JSONL_MEDIA_TYPE: JSONL_MEDIA_TYPE, "application/jsonl": JSONL_MEDIA_TYPE,
           "application/*": JSONL_MEDIA_TYPE, "*/*": JSONL_MEDIA_TYPE, FRAMES_MEDIA_TYPE: FRAMES_MEDIA_TYPE}


def _json_line(seq: int, record: bytes) -> bytes:
    chain, payload = unframe(record, seq)
    envelope: dict[str, Any] = msgspec.to_builtins(decode_envelope(payload), builtin_types=None)
    envelope["chain_hash"] = chain.hex()
    return json_bytes(envelope) + b"\n"


@router.get(
    "/events",
    summary="Stored log records after a seq",
    response_class=Response,
    responses={
        200: {
            "description": "Records in seq order: frames (seq u64 BE, length u32 BE, stored record) for "
            f"`Accept: {FRAMES_MEDIA_TYPE}`, else one JSON envelope per line with its `chain_hash`.",
            "content": {FRAMES_MEDIA_TYPE: {}, JSONL_MEDIA_TYPE: {}},
        },
        406: {"model": ErrorBody},
        409: {"model": ErrorBody, "description": "`log_id` is not the id of the log this server serves"},
    },
)
def events(
    request: Request,
    after: Annotated[int, Query(ge=0, le=2**63 - 1, description="Only records with seq > after")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="At most this many records")] = 1000,
    log_id: Annotated[str | None, Query(max_length=64, description="The log `after` was read from "
                                        "(`X-Rgstore-Log-Id`); 409 if this server serves another")] = None,
) -> Response:
    """Records with seq in (after, after+limit], byte-exact as stored, in one read transaction.

    A page holding ``MAX_PAGE_BYTES`` stops early: the next page starts after ``X-Rgstore-Last-Seq``.
    """
    accept = field_value(request.headers.getlist("accept"))
    media = negotiate(accept, _OFFERS)
    if media is None:
        return problem(406, f"cannot answer /events with any of Accept: {accept!r}; supported: "
                            f"{JSONL_MEDIA_TYPE} (JSON lines), {FRAMES_MEDIA_TYPE} (stored records)")
    frames = media == FRAMES_MEDIA_TYPE
    store = store_of(request)
    chunks: list[bytes] = []
    size = 0
    last = after
    with store.read() as txn:
        head, _ = store.log.head(txn)
        served = store.log.log_id(txn)
        if log_id is not None and log_id != served:
            raise LogMismatchError(f"after={after} is a seq of log {log_id!r}, but this server serves log "
                                   f"{served!r} (the store was replaced?); page again from after=0")
        for seq, record in store.log.records(txn, after=after, upto=min(head, after + limit)):
            chunk = encode_frame(seq, bytes(record)) if frames else _json_line(seq, bytes(record))
            chunks.append(chunk)
            size += len(chunk)
            last = seq
            if size >= MAX_PAGE_BYTES:
                break
    headers = {
        "X-Rgstore-Log-Id": served,
        "X-Rgstore-Head-Seq": str(head),
        "X-Rgstore-Last-Seq": str(last),
        "Vary": "Accept",
    }
    return Response(b"".join(chunks), media_type=media, headers=headers)


@router.get("/events/head", response_model=EventsHead, summary="The log's id, head seq and head hash")
async def events_head(request: Request) -> Response:
    """Log id, head seq and the head's chain hash (hex), read together in one transaction."""
    store = store_of(request)
    with store.read() as txn:
        seq, digest = store.log.head(txn)
        log_id = store.log.log_id(txn)
    return json_response({"log_id": log_id, "head_seq": seq, "head_hash": digest.hex()})
