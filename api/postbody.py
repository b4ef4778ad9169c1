"""A posted request body read whole, within a size limit and the server's body timeout (the seqcol POST routes)."""

from __future__ import annotations

import asyncio

from starlette.requests import ClientDisconnect, Request

from rgstore.errors import InvalidInputError

from .headertimeout import body_timeout

__all__ = ["BodyTimedOutError", "BodyTooLargeError", "posted_body"]


class BodyTooLargeError(InvalidInputError):
    """A posted body over its route's limit: 413."""

    http_status = 413


class BodyTimedOutError(InvalidInputError):
    """No byte of a posted body arrived for the server's header timeout: 408, and the connection is closed."""

    http_status = 408
    close_connection = True  # RFC 9110 15.5.9: a late byte of this body must not be read as a new request


async def posted_body(request: Request, limit: int, refusal: str) -> bytes:
    """The request body, refused (413 with ``refusal``, one line of JSON) once it is past ``limit`` bytes, by its
    Content-Length before any of it is read, or by its bytes as they arrive (a chunked body); 408 (and
    the connection closed) once no byte of it arrives for ``--header-timeout`` seconds."""
    # Not the route's max_body_size: Starlette's limiter swaps the answer to a too-long Content-Length
    # for a text/plain "Content Too Large", whatever the error handler made of it.
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLargeError(refusal)
    # uvicorn never times a body: a Content-Length that is never made good held the request (and its
    # socket) open for ever. The clock restarts with each byte, as nginx's client_body_timeout does, so a
    # 64 MiB body on a slow link is never cut off while it moves.
    timeout = body_timeout(request.scope)
    chunks, size = [], 0
    stream = request.stream()
    try:
        while True:
            try:
                chunk = await asyncio.wait_for(anext(stream), timeout)
            except StopAsyncIteration:
                break
            except TimeoutError:
                raise BodyTimedOutError(f"no byte of the posted body arrived for {timeout:g} s "
                                        f"({size:,} of {declared or 'an unknown number of'} bytes came); "
                                        "send the body without pausing") from None
            size += len(chunk)
            if size > limit:
                raise BodyTooLargeError(refusal)
            chunks.append(chunk)
    except ClientDisconnect:  # a client's hang-up mid-body is its mistake: no 500 and traceback in the log
        raise InvalidInputError("the client hung up before the posted body was complete") from None
    return b"".join(chunks)
