"""Map rgstore's deliberate failures to HTTP: ``RgstoreError.http_status`` and a one-line ``detail``."""

from __future__ import annotations

import errno
import logging
import re

import lmdb
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.requests import Request
from starlette.responses import Response

from rgstore.errors import (
    IntegrityError,
    NewerRgstoreError,
    ReadOnlyError,
    RgstoreError,
    TooManyOpenFilesError,
    clip,
)
from rgstore.retries import NOT_TRANSIENT_HEADER

from .wire import json_response

__all__ = ["install_error_handlers", "problem", "SERVER_OUT_OF_MEMORY", "SYSTEM_OUT_OF_FILES"]

SERVER_OUT_OF_MEMORY = ("out of memory: the server reached its memory limit (ulimit -v, the service's) or the "
                        "machine's memory while answering; try again later")
"""The 503 detail of a request that ran out of memory (``OutOfMemoryError`` keeps its own message)."""

SYSTEM_OUT_OF_FILES = ("too many open files: the machine's table of open files is full (ENFILE, fs.file-max); "
                       "try again later")
"""The 503 detail of a request that found the system's file table full (the process's own limit: TooManyOpenFilesError)."""

_OUT_OF_FILES = (errno.EMFILE, errno.ENFILE)
_OUT_OF_FILES_TEXT = re.compile(rf"\(os error ({errno.EMFILE}|{errno.ENFILE})\)")
"""gtars' OSErrors carry their errno only in their text."""

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
    """Register the handlers: RgstoreError by its http_status, validation 422, out of memory or files 503, else 500."""

    async def rgstore_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RgstoreError)
        headers: dict[str, str] = {}
        retry_after = getattr(exc, "retry_after", None)  # a 503 that says when to come back
        if retry_after:
            headers["Retry-After"] = str(retry_after)
        if getattr(exc, "close_connection", False):  # a 408: the rest of the request is not read
            headers["Connection"] = "close"
        if isinstance(exc, (IntegrityError, ReadOnlyError, NewerRgstoreError)):
            # Bad bytes (its upstream's or its own), a log too new, a store it may not write: the same on a retry.
            headers[NOT_TRANSIENT_HEADER] = "0"
        return problem(exc.http_status, str(exc), headers=headers or None)

    async def validation_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return problem(422, _validation_detail(exc))

    async def out_of_memory(request: Request, exc: Exception) -> Response:
        # A memory limit (the service's, ulimit -v) reached while answering: the request may well succeed once
        # memory is free again, so 503, and one line in the server log rather than a traceback anywhere.
        _log.warning("out of memory answering %s %s (%s)", request.method, request.url.path, type(exc).__name__)
        return problem(503, SERVER_OUT_OF_MEMORY)

    async def os_error(request: Request, exc: Exception) -> Response:
        # Out of descriptors (the server's `ulimit -n`, or the system's file table) wherever a route opened a
        # file, not only at store open: the limit is the cause, and the request may succeed once some close.
        assert isinstance(exc, OSError)
        if exc.errno not in _OUT_OF_FILES and not _OUT_OF_FILES_TEXT.search(str(exc)):
            raise exc  # on to the 500 handler, which keeps the traceback in the server log
        _log.warning("out of open files answering %s %s (%s)", request.method, request.url.path, exc)
        system = exc.errno == errno.ENFILE or f"(os error {errno.ENFILE})" in str(exc)
        return problem(503, SYSTEM_OUT_OF_FILES if system else str(TooManyOpenFilesError()))

    async def unexpected_error(_request: Request, exc: Exception) -> Response:
        # Starlette still logs the traceback; the client gets the same one-line JSON shape as every error.
        return problem(500, f"internal server error ({type(exc).__name__}); see the server log")

    app.add_exception_handler(RgstoreError, rgstore_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(MemoryError, out_of_memory)
    app.add_exception_handler(lmdb.MemoryError, out_of_memory)  # LMDB's ENOMEM: no Python MemoryError
    app.add_exception_handler(OSError, os_error)
    app.add_exception_handler(Exception, unexpected_error)
