"""Reading a primary's records: HTTP requests, ``/events`` pages, published segments, prefetching.

The transport half of ``rgstore.mirror``: everything here only fetches and checks framing and
segment digests; the chain, log id and applying records are the mirror's business.
"""

from __future__ import annotations

import contextvars
import hashlib
import io
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import ChainError, IntegrityError, LogMismatchError, NotFoundError, RemoteError
from .files import CHUNK
from .logfile import MAX_RECORD, frame_list, read_log_stream
from .retries import DEFAULT_RETRIES, Transient, current, pause_or_raise, retried, retry_after, transient
from .segments import Manifest

if TYPE_CHECKING:
    import httpx

__all__ = ["FRAMES_MEDIA_TYPE", "LogReplacedError", "PAGE", "client", "get", "is_url", "prefetched", "fetch", "segment_records",
           "server_records", "stream", "timeout"]

FRAMES_MEDIA_TYPE = "application/vnd.rgstore.frames"
PAGE = 10_000
SMALL_LIMIT = 256 << 20
"""The most a manifest or ``/events/head`` may be: an endless answer fails instead of filling memory."""
PAGE_LIMIT = MAX_RECORD + (64 << 20)
"""The most an ``/events`` page may be: the server stops a page after the record crossing 16 MiB."""
TIMEOUT_S = 30.0
"""Seconds an upstream may stay silent (connecting: at most 5) before a request fails."""
T = TypeVar("T")


class _Conflict(RemoteError):
    """A 409: for ``/events`` with ``log_id``, the server serves another log."""


class LogReplacedError(LogMismatchError):
    """A server answered a page of one log with 409: it serves another log now."""


def is_url(source: str) -> bool:
    """Whether a source names an HTTP(S) location (else a path); the scheme in any case, as RFC 3986 says."""
    from .httpclient import is_http_url

    return is_http_url(source)


def timeout() -> httpx.Timeout:
    """An upstream request's timeouts: ``TIMEOUT_S`` reads, 5 s connects (pass it to a ``kept_client``'s requests)."""
    import httpx  # imported lazily: only remote pulls need it

    return httpx.Timeout(TIMEOUT_S, connect=min(TIMEOUT_S, 5.0))


def client() -> httpx.Client:
    """An HTTP client for an upstream: ``TIMEOUT_S`` reads (a stalled server fails), 5 s connects, redirects followed."""
    from .httpclient import new_client

    return new_client(timeout=timeout(), follow_redirects=True)


def get(client: httpx.Client, url: str, *, limit: int | None = None, retries: int = DEFAULT_RETRIES,
        **kw: Any) -> bytes:
    """The body of ``url`` (``SMALL_LIMIT`` bytes at most by default); NotFoundError for 404, RemoteError otherwise.

    Transient failures (5xx, 408, 429, connection errors, short bodies) are retried as ``rgstore.retries`` says.
    """
    return fetch(client, url, limit=limit, retries=retries, **kw)[0]


def fetch(client: httpx.Client, url: str, *, limit: int | None = None, retries: int = DEFAULT_RETRIES,
          **kw: Any) -> tuple[bytes, str]:
    """(body, media type) of ``url``; a body beyond ``limit`` bytes is refused, never buffered; errors as ``get``."""
    return retried(lambda: _fetch_once(client, url, limit=limit, **kw), retries=retries)


def _check_status(resp: httpx.Response, shown: str) -> None:
    """NotFoundError for 404, ``_Conflict`` for 409, ``Transient`` for a status worth a retry, else RemoteError."""
    status = resp.status_code
    if status == 404:
        raise NotFoundError(f"{shown}: 404 Not Found")
    if status == 409:
        raise _Conflict(f"{shown}: HTTP 409")
    if transient(status, resp.headers):
        raise Transient(f"{shown}: HTTP {status}", wait=retry_after(resp.headers.get("retry-after")))
    if status >= 400:
        raise RemoteError(f"{shown}: HTTP {status}")


def _fetch_once(client: httpx.Client, url: str, *, limit: int | None, **kw: Any) -> tuple[bytes, str]:
    import httpx

    from .httpclient import failed, read_capped, redact

    limit = SMALL_LIMIT if limit is None else limit
    shown = redact(url)
    try:
        with client.stream("GET", url, **kw) as resp:
            _check_status(resp, shown)
            body = read_capped(resp, limit, f"{shown}: the answer runs past {limit:,} bytes, more than it can hold; "
                               "is this an rgstore upstream?")
            return body, resp.headers.get("content-type", "").partition(";")[0].strip()
    except httpx.HTTPError as exc:
        raise failed(url, exc) from None


def stream(client: httpx.Client, url: str, *, limit: int | None) -> Iterator[bytes]:
    """The body of ``url`` in pieces (cache files and blobs can be gigabytes); errors as ``get``.

    ``limit`` is the size the caller expects (None: unknown): a longer answer raises RemoteError
    before its excess is handed over, so an endless one cannot fill the disk. A transient failure
    is retried as ``fetch`` retries: the body is asked for again and the bytes already handed
    over are skipped (what is fetched so is content-addressed, and the caller checks its digest).
    """
    import httpx

    from .httpclient import failed, iter_body, redact

    shown = redact(url)
    got = 0

    def attempt() -> Iterator[bytes]:
        nonlocal got
        skip = got  # handed over by an earlier try
        try:
            with client.stream("GET", url) as resp:
                _check_status(resp, shown)
                for chunk in iter_body(resp, chunk_size=CHUNK):
                    if skip:
                        chunk, skip = chunk[skip:], max(skip - len(chunk), 0)
                        if not chunk:
                            continue
                    got += len(chunk)
                    if limit is not None and got > limit:
                        raise RemoteError(f"{shown}: the answer runs past the {limit:,} bytes recorded for it; "
                                          "is this an rgstore upstream?")
                    yield chunk
        except httpx.HTTPError as exc:
            raise failed(url, exc) from None
        if skip:
            raise Transient(f"{shown}: the answer ended after {got - skip:,} bytes, before the {got:,} already read")

    budget, failures = current(), 0
    while True:
        started = time.monotonic()
        try:
            yield from attempt()
            return
        except Transient as exc:
            failures += 1
            pause_or_raise(exc, failures, started, budget)


def segment_records(
    head: int, manifest: Manifest, fetch: Callable[[str], bytes], origin: str
) -> Iterator[tuple[int, bytes]]:
    """The records after ``head`` from published segments, each segment checked against the manifest."""

    def fetched() -> Iterator[tuple[Any, bytes]]:
        for seg in manifest.segments:
            if seg.last_seq <= head:
                continue
            try:
                data = fetch(seg.file)
            except (FileNotFoundError, NotFoundError):  # a directory's bare OSError named no seqs and no manifest
                raise NotFoundError(
                    f"{origin}/{seg.file}: segment with seqs {seg.first_seq}-{seg.last_seq} that the manifest lists "
                    f"is missing (an incomplete copy?); first affected seq {max(seg.first_seq, head + 1)}"
                ) from None
            if hashlib.sha256(data).hexdigest() != seg.sha256:
                raise IntegrityError(
                    f"{origin}/{seg.file}: segment with seqs {seg.first_seq}-{seg.last_seq} fails its sha256 "
                    f"(tampered, truncated, or missing and answered with a page); "
                    f"first affected seq {max(seg.first_seq, head + 1)}"
                )
            yield seg, data

    for seg, data in prefetched(fetched(), depth=1):  # the next segment downloads while this one folds
        header, frames = read_log_stream(io.BytesIO(data), f"{origin}/{seg.file}")
        if (header.log_id, header.first_seq, header.last_seq, header.prev_hash, header.head_hash) != (
                manifest.log_id, seg.first_seq, seg.last_seq, seg.prev_hash, seg.last_hash):
            raise ChainError(seg.first_seq, f"{seg.file} header does not match the manifest")
        yield from frames


def server_pages(client: httpx.Client, base: str, start: int, upstream_head: int,
                 log_id: str | None = None) -> Iterator[list[tuple[int, bytes]]]:
    """Pages of (seq, record) from a server's ``/events`` after ``start`` up to ``upstream_head``, as stored frames.

    With ``log_id``, every page asks for records of that log only: a server now serving another
    (its store replaced, a load balancer's other backend) answers 409, raised as LogMismatchError.
    """
    after = start
    cursor = {"log_id": log_id} if log_id else {}
    while after < upstream_head:
        try:
            # A page is asked for by position: a retry asks for the same records again, nothing is applied twice.
            page = retried(lambda: _page(client, base, after, cursor))
        except _Conflict:
            raise LogReplacedError(f"{base} no longer serves log {log_id} (its store was replaced during the pull?): "
                                   "refusing to mix different logs") from None
        if not page:
            raise RemoteError(f"{base}/events returned no records after seq {after} (head {upstream_head})")
        # A primary written to meanwhile answers past the head this pull read: stop there, so the pull's
        # "head N of M" never reads N > M (taken for an upstream behind the mirror); the next pull gets the rest.
        page = [(seq, record) for seq, record in page if seq <= upstream_head] or page
        after = page[-1][0]
        yield page


def _page(client: httpx.Client, base: str, after: int, cursor: dict[str, str]) -> list[tuple[int, bytes]]:
    """One ``/events`` page after ``after``, as stored frames; a short body is ``Transient``."""
    body, media = _fetch_once(client, f"{base}/events", params={"after": after, "limit": PAGE, **cursor},
                              headers={"Accept": FRAMES_MEDIA_TYPE}, limit=PAGE_LIMIT)
    try:
        return frame_list(body)
    except ChainError as exc:
        if media and media != FRAMES_MEDIA_TYPE:  # a login page or a proxy's error page, not the log
            raise RemoteError(
                f"{base}/events answered {media}, not rgstore records (a proxy or login page in the way?)"
            ) from None
        if exc.seq == 0:  # a short body: the connection broke, not the log
            raise Transient(f"{base}/events: truncated response after seq {after}") from None
        raise


def server_records(client: httpx.Client, base: str, start: int, upstream_head: int,
                   log_id: str | None = None) -> Iterator[tuple[int, bytes]]:
    """(seq, record) from a server's ``/events`` (of log ``log_id`` only, if given), the next page fetched while this one is used."""
    for page in prefetched(server_pages(client, base, start, upstream_head, log_id)):
        yield from page


_DONE = object()


def prefetched(pages: Iterator[T], depth: int = 2) -> Iterator[T]:
    """Run a page producer in a background thread, ``depth`` pages ahead of the consumer.

    Fetching the next page (socket reads release the GIL; the server works on another core)
    then overlaps with folding this one. The producer's exceptions are re-raised here, in order;
    closing this generator early stops the producer after its current page (waiting at most 1 s).
    """
    import queue
    import threading

    box: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item: object) -> bool:
        while not stop.is_set():
            try:
                box.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False  # the consumer has gone

    def produce() -> None:
        try:
            for page in pages:
                if not offer(page):
                    return
            offer(_DONE)
        except BaseException as exc:  # handed to the consumer, which raises it
            offer(exc)

    # The caller's context: requests made here share its pull's retry budget and report retries as it does.
    context = contextvars.copy_context()
    worker = threading.Thread(target=context.run, args=(produce,), name="rgstore-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = box.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        # A page download in flight may take up to the read timeout: do not make Ctrl-C wait for it.
        # The producer checks ``stop`` before handing anything over, so it ends on its own.
        worker.join(timeout=1.0)
