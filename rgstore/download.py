"""HTTP downloads that resume, verify, and only then publish: ``<dest>.part`` -> checks -> rename to ``dest``.

Bytes are streamed with httpx ``iter_raw()`` and ``Accept-Encoding: identity``, so what lands on disk
is exactly what the upstream checksum describes. An interrupted transfer keeps ``<dest>.part`` plus
the server's validator in ``<dest>.part.json``; the next attempt (a retry here, or a later run)
sends ``Range: bytes=<size>-`` with ``If-Range``. A 206 whose ``Content-Range`` starts elsewhere is
honoured by seeking there; a 200 means the server ignored the range (or the file changed), so the
part is truncated; a 416 means the part may already be complete. Without a strong ETag or a
Last-Modified date, a part is never resumed (it could splice two versions of a file).
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .blobs import BlobInfo, hash_file
from .checksums import Expected, verify_file
from .diskspace import WRITE_ERRNOS, free_bytes
from .environment import fsync_dir
from .errors import DiskWriteError, IntegrityError, InvalidInputError, NotFoundError, RemoteError
from .httpclient import describe, iter_body, read_capped, redact
from .progress import ProgressFactory, null_progress
from .retries import DEFAULT_RETRIES, RETRY_AFTER_CAP, RETRY_WAIT_BUDGET, Budget, retry_after, silence
from .retries import transient as _transient

if TYPE_CHECKING:
    import httpx

__all__ = ["http_client", "download", "get_text", "retry_after", "DEFAULT_RETRIES", "DISK_RESERVE", "RETRY_AFTER_CAP",
           "RETRY_WAIT_BUDGET"]

TEXT_LIMIT = 64 << 20
"""The most ``get_text`` reads (a human genome's NCBI md5checksums.txt is a few KiB)."""
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")
_UNSATISFIED = re.compile(r"^bytes \*/(\d+)$")


DISK_RESERVE = 256 << 20
"""A download stops rather than leave less than this free on its disk (an endless or oversized upstream answer)."""
_SPACE_CHECK_EVERY = 64 << 20


class _Incomplete(Exception):
    """The body ended before the announced length (the server closed early), or a transient HTTP status."""

    def __init__(self, message: str, wait: float | None = None) -> None:
        super().__init__(message)
        self.wait = wait
        """Seconds the server asked to wait before the retry (``Retry-After``), if it said."""


def http_client(timeout: float = 60.0) -> httpx.Client:
    """The client every cache download uses: redirects followed, identity encoding, an rgstore User-Agent."""
    # Imported here, not at module level: `import httpx` also imports click when click is installed
    # (httpx's optional CLI), and importing rgstore must never load the CLI stack.
    import httpx

    from .httpclient import new_client

    return new_client(
        follow_redirects=True,
        timeout=httpx.Timeout(timeout, connect=min(timeout, 15.0)),
        headers={"User-Agent": "rgstore-cache/1", "Accept-Encoding": "identity"},
    )


def get_text(client: httpx.Client, url: str, *, retries: int = DEFAULT_RETRIES,
             wait_budget: float | None = None) -> str:
    """A small upstream file (checksum list, directory listing) as text; NotFoundError on 404.

    Transient failures are retried ``retries`` times, waiting at most ``wait_budget`` seconds in all
    (default ``$RGSTORE_RETRY_BUDGET_S``), tries that timed out included.

    At most ``TEXT_LIMIT`` bytes are read: a URL answering with an endless or huge body (the wrong
    base URL, a misconfigured mirror) is refused instead of filling memory.
    """
    import httpx

    budget = Budget(wait_budget)
    for attempt in range(retries + 1):
        started = time.monotonic()
        try:
            with client.stream("GET", url) as resp:
                if resp.status_code == 404:
                    raise NotFoundError(
                        f"upstream has no {redact(url)} (HTTP 404); check the source, species, release and assembly"
                    )
                if resp.status_code != 200:
                    if attempt >= retries or not _transient(resp.status_code):
                        raise RemoteError(f"cannot fetch {redact(url)}: HTTP {resp.status_code}")
                    wait = retry_after(resp.headers.get("retry-after"))
                    pause = 0.2 * (attempt + 1) if wait is None else wait
                    if not budget.take(pause):
                        raise RemoteError(f"cannot fetch {redact(url)}: HTTP {resp.status_code} on try {attempt + 1}"
                                          f"; {budget.past(pause)}; run the command again later")
                    time.sleep(pause)
                    continue
                body = read_capped(resp, TEXT_LIMIT, f"cannot fetch {redact(url)}: the answer exceeds "
                                   f"{TEXT_LIMIT >> 20} MiB, far more than a checksum file or listing; check the base URL")
                return body.decode(resp.encoding or "utf-8", errors="replace")
        except httpx.InvalidURL as exc:
            raise InvalidInputError(f"invalid upstream URL {redact(url)!r}: {exc}") from None
        except (httpx.TransportError, httpx.DecodingError) as exc:
            # A redirect to another scheme, or a body that does not decode, will not change on retry.
            if isinstance(exc, httpx.TimeoutException):  # a silent server's tries count: the wait stays bounded
                budget.charge(min(time.monotonic() - started, silence(exc)))
            pause = 0.2 * (attempt + 1)
            if attempt >= retries or isinstance(exc, (httpx.UnsupportedProtocol, httpx.DecodingError)) or (
                    not budget.take(pause)):
                over = "" if attempt >= retries or budget.spent + pause <= budget.seconds else f"; {budget.past(0)}"
                raise RemoteError(f"cannot fetch {redact(url)}: {exc or type(exc).__name__}"
                                  f"{_tries(client, exc, attempt + 1)}{over}") from None
            time.sleep(pause)
        except httpx.HTTPError as exc:  # e.g. a redirect loop
            raise RemoteError(f"cannot fetch {redact(url)}: {describe(exc)}") from None
    raise AssertionError("unreachable")


def _tries(client: httpx.Client, exc: Exception, tries: int) -> str:
    """What to add to a failure that was retried, ``(tried N times ...)``; "" after one try.

    A bare "timed out" after four tries of a minute each reads as one minute's wait.
    """
    import httpx

    if tries < 2:
        return ""
    read = client.timeout.read if isinstance(exc, httpx.TimeoutException) else None
    return f" (tried {tries} times" + (f", each waiting {read:g} s for an answer)" if read else ")")


def _validator(resp: httpx.Response) -> str:
    etag = str(resp.headers.get("etag", ""))
    if etag and not etag.startswith("W/"):
        return etag
    return str(resp.headers.get("last-modified", ""))


def _sent_encoding(meta: Path) -> str:
    """The Content-Encoding other than identity the last answer recorded in ``meta`` carried; "" if none."""
    try:
        encoding = str(json.loads(meta.read_text()).get("encoding", "")).strip()
    except (OSError, ValueError, AttributeError):
        return ""
    return "" if encoding.lower() in ("", "identity") else encoding


def _load_meta(meta: Path, url: str) -> str:
    try:
        data = json.loads(meta.read_text())
    except (OSError, ValueError):
        return ""
    return str(data.get("validator", "")) if data.get("url") == url else ""


def _attempt(client: httpx.Client, url: str, part: Path, meta: Path, progress: ProgressFactory,
             limit: int | None = None) -> None:
    have = part.stat().st_size if part.exists() else 0
    validator = _load_meta(meta, url) if have else ""
    if have and not validator:
        have = 0
    headers = {"Range": f"bytes={have}-", "If-Range": validator} if have else {}
    with client.stream("GET", url, headers=headers) as resp:
        status = resp.status_code
        if status == 404:
            raise NotFoundError(f"upstream has no {redact(url)} (HTTP 404)")
        if status == 416:
            match = _UNSATISFIED.match(resp.headers.get("content-range", ""))
            if match and int(match.group(1)) == have:
                return  # the part already holds the whole file
            part.unlink(missing_ok=True)
            raise _Incomplete("the server refused the resume range; restarting from zero")
        if status == 206:
            match = _CONTENT_RANGE.match(resp.headers.get("content-range", ""))
            if match is None or int(match.group(1)) > have:
                part.unlink(missing_ok=True)
                raise _Incomplete(f"unusable Content-Range {resp.headers.get('content-range')!r}; restarting")
            offset = int(match.group(1))
            total = None if match.group(3) == "*" else int(match.group(3))
        elif status == 200:
            offset = 0
            length = resp.headers.get("content-length")
            total = int(length) if length and length.isdigit() else None
        elif _transient(status):  # a server-side hiccup or a rate limit: worth a retry, when the server says
            raise _Incomplete(f"HTTP {status}", wait=retry_after(resp.headers.get("retry-after")))
        else:
            raise RemoteError(f"cannot download {redact(url)}: HTTP {status}")
        # The encoding is kept to explain a checksum mismatch: rgstore asked for identity, so a gzip here is a proxy's.
        meta.write_text(json.dumps({"url": url, "validator": _validator(resp),
                                    "encoding": resp.headers.get("content-encoding", "")}))
        bar = progress(f"download {part.name.removesuffix('.part')}", total=total, unit="B")
        try:
            bar.update(offset)
            with open(part, "r+b" if part.exists() else "wb") as out:
                out.seek(offset)
                out.truncate()
                written, next_check = offset, offset
                for chunk in iter_body(resp, raw=True):  # no chunk size: a buffered chunk would be lost on a drop
                    written += len(chunk)
                    if limit is not None and written > limit:
                        raise _Oversized(f"upstream sent more than the {limit:,} bytes its checksum file allows "
                                         f"for {redact(url)}; nothing was kept")
                    if written >= next_check:
                        _check_room(part, url)
                        next_check = written + _SPACE_CHECK_EVERY
                    out.write(chunk)
                    bar.update(len(chunk))
                out.flush()
                os.fsync(out.fileno())
        finally:
            bar.close()
        if total is not None and written != total:
            raise _Incomplete(f"got {written} of {total} bytes")


class _Oversized(Exception):
    """The body grew past the size the upstream checksum file promises."""


def _check_room(part: Path, url: str) -> None:
    """DiskWriteError if the part's disk is down to ``DISK_RESERVE`` free (the part is kept for a resume)."""
    free = free_bytes(part.parent)
    if free is not None and free < DISK_RESERVE:
        raise DiskWriteError(
            f"stopped downloading {redact(url)}: only {free:,} bytes left free on {part.parent} (rgstore keeps "
            f"{DISK_RESERVE:,}); free space and run the command again to resume it"
        )


def download(
    client: httpx.Client,
    url: str,
    dest: Path,
    *,
    expected: Expected | None,
    progress: ProgressFactory = null_progress,
    retries: int = DEFAULT_RETRIES,
    backoff: float = 0.3,
    wait_budget: float | None = None,
) -> BlobInfo:
    """Fetch ``url`` to ``dest``: resume a leftover part, retry drops, verify, then rename into place.

    A checksum mismatch deletes the part and raises IntegrityError (nothing is published). After
    ``retries`` failed attempts, or once the next wait (``Retry-After``, else ``backoff``) would take
    the waits past ``wait_budget`` seconds in all (default ``$RGSTORE_RETRY_BUDGET_S``; time spent in tries that
    timed out counts too, so a silent server costs at most that plus one read timeout), RemoteError is raised and
    the part is kept for the next run.
    Returns the published file's sha256, md5 and size.
    """
    import httpx

    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    meta = dest.with_name(dest.name + ".part.json")
    failures, budget = 0, Budget(wait_budget)
    limit = expected.max_size() if expected is not None else None
    while True:
        started = time.monotonic()
        try:
            _attempt(client, url, part, meta, progress, limit)
            break
        except _Oversized as exc:
            part.unlink(missing_ok=True)
            meta.unlink(missing_ok=True)
            raise IntegrityError(str(exc)) from None
        except httpx.InvalidURL as exc:
            raise InvalidInputError(f"invalid upstream URL {redact(url)!r}: {exc}") from None
        except (httpx.TransportError, _Incomplete) as exc:
            failures += 1
            if isinstance(exc, httpx.UnsupportedProtocol):  # e.g. redirected to ftp://: no retry will do
                raise RemoteError(f"cannot download {redact(url)}: {exc}") from None
            if isinstance(exc, httpx.TimeoutException):  # a silent server's tries count (its silence, not the bytes)
                budget.charge(min(time.monotonic() - started, silence(exc)))
            wait = exc.wait if isinstance(exc, _Incomplete) else None
            pause = backoff * failures if wait is None else wait
            if failures > retries or not budget.take(pause):
                # Only a part holding bytes is resumed; after e.g. an HTTP 500 on every try there is none.
                kept = part.exists() and part.stat().st_size > 0
                over = "" if failures > retries else f"; {budget.past(0 if wait is None else pause)}"
                raise RemoteError(
                    f"download of {redact(url)} failed {failures} times (last: {exc}{over}); "
                    + ("the partial file is kept and the next run resumes it" if kept
                       else "no byte of it arrived; run the command again later")
                ) from None
            time.sleep(pause)
        except httpx.HTTPError as exc:  # a redirect loop: retrying will not help, but the part stays resumable
            raise RemoteError(f"cannot download {redact(url)}: {describe(exc)}") from None
        except OSError as exc:  # the disk (or a quota) refused a write between two free-space checks
            if exc.errno not in WRITE_ERRNOS:
                raise
            raise DiskWriteError(
                f"stopped downloading {redact(url)}: the disk refused a write in {part.parent} ({exc.strerror}; "
                f"{free_bytes(part.parent) or 0:,} bytes free); free space and run the command again to resume it"
            ) from None
    info = hash_file(part)
    if expected is not None:
        try:
            verify_file(part, expected, md5=info.md5, what=url)
        except BaseException as exc:
            encoding = _sent_encoding(meta)
            part.unlink(missing_ok=True)
            meta.unlink(missing_ok=True)
            if isinstance(exc, IntegrityError) and encoding:
                said, tail = str(exc), "; nothing was cached"
                said, ending = (said.removesuffix(tail), tail) if said.endswith(tail) else (said, "")
                raise IntegrityError(
                    f"{said} (the upstream sent it with Content-Encoding: {encoding} although rgstore asked for "
                    f"identity: a proxy or server compressing it on the way?){ending}") from None
            raise
    os.replace(part, dest)
    meta.unlink(missing_ok=True)
    fsync_dir(dest.parent)
    return info
