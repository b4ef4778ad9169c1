"""One file sent from one open descriptor: HEAD, conditional requests (304) and a single ``Range`` (206).

Writers replace RefgetStore files by rename (gtars' indexes, the alias TSVs). A response that
stats the path and later opens it can meet the next version and send more or fewer bytes than
its Content-Length, which breaks the connection mid-body. Here the file is opened once; its
size, ETag and Last-Modified come from ``fstat`` of that descriptor, and every byte sent (and
every checksum verified) is read from it, so each answer is one consistent version.

Range errors answer as the refget route does: a malformed header 400, an unsatisfiable one 416
with ``Content-Range: bytes */size``, both ``{"detail": ...}``. A header asking for several
ranges is answered whole (200), which RFC 9110 allows. ``If-None-Match`` (else
``If-Modified-Since``) answers 304 without reading or verifying the file.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import timezone
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from rgstore.blobs import BlobInfo
from rgstore.errors import NotFoundError, OutOfRangeError

from .errors import problem
from .negotiation import field_value, parse_range
from .schemas import ErrorBody
from .wire import HEAD_FLAG, send_until_disconnect

__all__ = ["StoredFileResponse", "Verify", "etag_matches", "fd_checksums", "file_responses", "CHUNK"]

CHUNK = 1 << 18
Verify = Callable[[int], None]
"""Checks the open file (by descriptor) before any byte is sent; raises an RgstoreError to refuse it."""

_NOT_MODIFIED_KEEP = (b"etag", b"last-modified", b"cache-control", b"vary", b"expires", b"content-location")


CHECKSUMS_KEPT_S = 60.0
"""How long a file version's checksums are reused before it is hashed again (bit rot shows within this)."""
_CHECKSUMS_SIZE = 1024
_RACY_S = 2.0
_checksums: OrderedDict[tuple[int, ...], tuple[float, BlobInfo]] = OrderedDict()
_checksums_lock = threading.Lock()


def fd_checksums(fd: int) -> BlobInfo:
    """sha256, md5 and size of the open file ``fd``, read with ``pread`` (its offset is left alone).

    Reused for ``CHECKSUMS_KEPT_S`` while the file's inode, size, mtime and ctime are unchanged (any
    write or rename moves ctime): hashing every request made a HEAD or a one-byte Range of a
    gigabyte blob hash the gigabyte. A file changed within ``_RACY_S`` of hashing is never reused
    (a write in the same timestamp tick would not move ctime).
    """
    st = os.fstat(fd)
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    with _checksums_lock:
        kept = _checksums.get(key)
    if kept is not None and time.monotonic() - kept[0] < CHECKSUMS_KEPT_S:
        return kept[1]
    hashed_at, wall = time.monotonic(), time.time()
    sha, md5, offset = hashlib.sha256(), hashlib.md5(), 0
    while chunk := os.pread(fd, 1 << 20, offset):
        sha.update(chunk)
        md5.update(chunk)
        offset += len(chunk)
    info = BlobInfo(sha256=sha.hexdigest(), md5=md5.hexdigest(), size=offset)
    if wall - max(st.st_mtime, st.st_ctime) > _RACY_S:
        with _checksums_lock:
            _checksums[key] = (hashed_at, info)
            _checksums.move_to_end(key)
            while len(_checksums) > _CHECKSUMS_SIZE:
                _checksums.popitem(last=False)
    return info


def file_responses(*media_types: str, verified: bool = False) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` of a route answered with ``StoredFileResponse`` in one of ``media_types``."""
    # A JSON file's bytes are JSON only whole; a byte range of any file is just bytes.
    binary = {"schema": {"type": "string", "format": "binary"}}
    whole = {media: {} if media.endswith("json") else binary for media in media_types}
    responses: dict[int | str, dict[str, Any]] = {
        200: {"description": "The whole file", "content": whole},
        206: {"description": "The bytes of a single `Range: bytes=first-last` (0-based, inclusive)",
              "content": {media: {} for media in media_types}},
        304: {"description": "Not modified: `If-None-Match` matched the ETag, or `If-Modified-Since` is not older"},
        400: {"model": ErrorBody, "description": "A malformed Range header"},
        404: {"model": ErrorBody},
        416: {"model": ErrorBody, "description": "The range lies outside the file (`Content-Range: bytes */size`)"},
    }
    if verified:
        responses[500] = {"model": ErrorBody, "description": "The file no longer matches its checksums; not sent"}
    return responses


def etag_matches(header: str, etag: str) -> bool:
    """RFC 9110 weak comparison of ``If-None-Match`` against our (strong) ETag."""
    if header.strip() == "*":
        return True
    ours = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == ours for tag in header.split(","))


def _not_modified_since(header: str, mtime: float) -> bool:
    try:
        date = parsedate_to_datetime(header)
        # asctime dates carry no zone and parse naive: HTTP dates are all GMT, not the server's local time.
        since = (date if date.tzinfo else date.replace(tzinfo=timezone.utc)).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return False  # an unparsable date is ignored (RFC 9110 section 13.1.3)
    return int(mtime) <= since


class StoredFileResponse(Response):
    """A regular file answered from one descriptor opened when the response is sent (see module docstring)."""

    def __init__(
        self, path: Path, *, media_type: str, headers: dict[str, str] | None = None, filename: str | None = None,
        verify: Verify | None = None,
    ) -> None:
        self.path = path
        self.status_code = 200
        self.media_type = media_type
        self.background = None
        self.verify = verify
        self.init_headers(headers)
        self.headers.setdefault("accept-ranges", "bytes")
        if filename is not None:
            quoted = quote(filename)
            self.headers.setdefault("content-disposition", f'attachment; filename="{filename}"' if quoted == filename
                                    else f"attachment; filename*=utf-8''{quoted}")

    def _open(self) -> tuple[int, os.stat_result]:
        try:
            # O_NONBLOCK: opening a FIFO planted in the store would otherwise block the event loop
            # (every request of the worker) until something writes to it.
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError:
            raise NotFoundError(f"file {self.path.name!r} is missing here") from None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise NotFoundError(f"{self.path.name!r} is not a file")
        os.set_blocking(fd, True)
        return fd, st

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer 200, 206, 304, 400 or 416 from one open descriptor."""
        fd, st = self._open()
        try:
            await self._answer(fd, st, scope, receive, send)
        finally:
            os.close(fd)

    async def _answer(self, fd: int, st: os.stat_result, scope: Scope, receive: Receive, send: Send) -> None:
        head = bool(scope.get(HEAD_FLAG)) or scope["method"] == "HEAD"
        request = Headers(scope=scope)
        self.headers.setdefault("etag", f'"{st.st_ino:x}-{st.st_mtime_ns:x}-{st.st_size:x}"')
        self.headers["last-modified"] = formatdate(st.st_mtime, usegmt=True)
        etag = self.headers["etag"]
        if_none_match = field_value(request.getlist("if-none-match"))
        if_modified_since = request.get("if-modified-since")
        if (if_none_match is not None and etag_matches(if_none_match, etag)) or (
            if_none_match is None and if_modified_since is not None
            and _not_modified_since(if_modified_since, st.st_mtime)
        ):
            kept = [(k, v) for k, v in self.raw_headers if k in _NOT_MODIFIED_KEEP]
            await send({"type": "http.response.start", "status": 304, "headers": kept})
            await send({"type": "http.response.body", "body": b""})
            return
        if self.verify is not None:
            await anyio.to_thread.run_sync(self.verify, fd)
        start, end, status = 0, st.st_size, 200
        wanted = field_value(request.getlist("range"))  # on two lines it is a list of two ranges (RFC 9110 5.3)
        if_range = request.get("if-range")
        current = if_range is None or if_range in (etag, self.headers["last-modified"])  # strong comparison
        if wanted is not None and "," not in wanted and current:
            try:
                start, end = parse_range(wanted, st.st_size, unit="byte file")
            except OutOfRangeError as exc:
                await problem(416, str(exc), headers={"Content-Range": f"bytes */{st.st_size}"})(scope, receive, send)
                return
            status = 206
            self.headers["content-range"] = f"bytes {start}-{end - 1}/{st.st_size}"
        self.headers["content-length"] = str(end - start)
        await send({"type": "http.response.start", "status": status, "headers": self.raw_headers})
        if head or start == end:
            await send({"type": "http.response.body", "body": b""})
            return
        await send_until_disconnect(receive, lambda: self._send_bytes(fd, start, end, send))

    @staticmethod
    async def _send_bytes(fd: int, start: int, end: int, send: Send) -> None:
        offset = start
        while offset < end:
            chunk = await anyio.to_thread.run_sync(os.pread, fd, min(CHUNK, end - offset), offset)
            if not chunk:
                break  # truncated in place under us: the server reports the short body
            offset += len(chunk)
            await send({"type": "http.response.body", "body": chunk, "more_body": offset < end})
