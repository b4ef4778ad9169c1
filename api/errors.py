"""Map rgstore's deliberate failures to HTTP: ``RgstoreError.http_status`` and a one-line ``detail``."""

from __future__ import annotations

import logging

import lmdb
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.requests import Request
from starlette.responses import Response

from rgstore.errors import RgstoreError, clip

from .wire import json_response

__all__ = ["install_error_handlers", "problem", "SERVER_OUT_OF_MEMORY"]

SERVER_OUT_OF_MEMORY = ("out of memory: the server reached its memory limit (ulimit -v, the service's) or the "
                        "machine's memory while answering; try again later")
"""The 503 detail of a request that ran out of memory (``OutOfMemoryError`` keeps its own message)."""

_log = logging.getLogger("uvicorn.error")


def problem(status_code: int, detail: str, headers: dict[str, str] | None = None) -> Response:
    """An error response: ``{"detail": "..."}`` with the given status, the detail one short line (``clip``)."""
    # Details built here echo request headers too (a 406 quotes Accept): cut as RgstoreError messages are.
    return json_response({"detail": clip(detail)}, status_code=status_code, headers=headers)


def _validation_detail(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("query", "path", "body"))
        parts.append(f"{where or 'request'}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers: RgstoreError by its http_status, validation 422, out of memory 503, anything else 500."""

    async def rgstore_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RgstoreError)
        headers: dict[str, str] = {}
        retry_after = getattr(exc, "retry_after", None)  # a 503 that says when to come back
        if retry_after:
            headers["Retry-After"] = str(retry_after)
        if getattr(exc, "close_connection", False):  # a 408: the rest of the request is not read
            headers["Connection"] = "close"
        return problem(exc.http_status, str(exc), headers=headers or None)

    async def validation_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return problem(422, _validation_detail(exc))

    async def out_of_memory(request: Request, exc: Exception) -> Response:
        # A memory limit (the service's, ulimit -v) reached while answering: the request may well succeed once
        # memory is free again, so 503, and one line in the server log rather than a traceback anywhere.
        _log.warning("out of memory answering %s %s (%s)", request.method, request.url.path, type(exc).__name__)
        return problem(503, SERVER_OUT_OF_MEMORY)

    async def unexpected_error(_request: Request, exc: Exception) -> Response:
        # Starlette still logs the traceback; the client gets the same one-line JSON shape as every error.
        return problem(500, f"internal server error ({type(exc).__name__}); see the server log")

    app.add_exception_handler(RgstoreError, rgstore_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(MemoryError, out_of_memory)
    app.add_exception_handler(lmdb.MemoryError, out_of_memory)  # LMDB's ENOMEM: no Python MemoryError
    app.add_exception_handler(Exception, unexpected_error)
