"""Building httpx clients: proxy settings from the environment that httpx cannot use become one-line errors.

httpx reads ``HTTP_PROXY``/``HTTPS_PROXY``/``ALL_PROXY``/``NO_PROXY`` when a client is built and
raises ValueError (``socks4://``, a typo'd scheme) or InvalidURL there, before any request: a
traceback from every network command unless translated here. A SOCKS proxy that breaks its
handshake raises socksio's own error from inside httpcore; clients built here raise httpx.ProxyError
instead, which every caller already reports.

Credentials never go in a URL: a URL is printed in errors and may be recorded in the log, which is
replicated and served forever. ``check_url`` refuses them where a URL enters rgstore, ``redact``
masks them in any message, and clients built here send Basic auth from ``$NETRC`` or ``~/.netrc``
(httpx itself no longer reads netrc).

httpx's timeouts are per read, so an upstream sending a byte every few seconds would keep a
download alive forever: ``iter_body`` (which every streamed body goes through) gives up, as curl's
``--speed-limit``/``--speed-time`` do, once a body averages under ``$RGSTORE_LOW_SPEED_LIMIT``
bytes/s over ``$RGSTORE_LOW_SPEED_TIME_S`` seconds.

``kept_client`` hands out one client per origin per process, kept between calls, so reads of many
sequences from one server reuse its connections (and one TLS context) instead of building a
client, and connecting, for each. A server may close such a connection just as a request goes out
on it: clients built here send a GET/HEAD that met that (no answer at all) once more, on another
connection.
"""

from __future__ import annotations

import atexit
import functools
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .errors import InvalidInputError, RemoteError

if TYPE_CHECKING:
    import httpx

__all__ = ["check_url", "describe", "failure", "is_http_url", "iter_body", "kept_client", "low_speed", "new_client", "read_capped",
           "redact", "streamed"]

_PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")
_USERINFO = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://)[^/?#@\s]*@")
NETRC_HINT = "put credentials in ~/.netrc (or the file $NETRC names) instead"
LOW_SPEED_LIMIT = 1024
"""Bytes/s a streamed body must average (``$RGSTORE_LOW_SPEED_LIMIT``; 0 turns the guard off)."""
LOW_SPEED_TIME_S = 60.0
"""Over how many seconds of waiting for the body (``$RGSTORE_LOW_SPEED_TIME_S``)."""


def redact(text: str) -> str:
    """``text`` with the ``user:password@`` of every URL in it replaced by ``***@``."""
    return _USERINFO.sub(r"\1***@", text)


def is_http_url(text: str) -> bool:
    """Whether ``text`` starts with ``http://`` or ``https://`` in any case (schemes are case-insensitive)."""
    return text[:8].lower().startswith(("http://", "https://"))


def check_url(url: str, what: str) -> str:
    """``url`` (an http(s) base URL) with its scheme lower-cased and no trailing slash; InvalidInputError if unusable.

    Refused: another scheme, no host, ``user:password@`` (it would be printed and recorded; netrc
    is the place for it) and a query or fragment (paths are appended to the URL, which would land
    after them).
    """
    url = url.strip()
    if not is_http_url(url):
        raise InvalidInputError(f"{what} {redact(url)!r} must start with http:// or https://")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 -- raises ValueError for a port that is not a number
    except ValueError as exc:
        raise InvalidInputError(f"{what} {redact(url)!r} is not a valid URL ({exc})") from None
    if "@" in parts.netloc:
        raise InvalidInputError(
            f"{what} {redact(url)!r} carries credentials, which would be printed and recorded; {NETRC_HINT}")
    if not host:
        raise InvalidInputError(f"{what} {url!r} is not a valid URL (no host)")
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        raise InvalidInputError(
            f"{what} {url!r} has a query string or fragment; give the base URL that paths are appended to")
    scheme, _, rest = url.partition("://")
    return f"{scheme.lower()}://{rest}".rstrip("/")


def _netrc_auth(httpx: Any) -> Any:
    """Basic auth from ``$NETRC`` (else ``~/.netrc``) when that file exists, as curl and requests do; else None."""
    import netrc

    path = os.environ.get("NETRC") or os.path.expanduser("~/.netrc")
    if not os.path.isfile(path):
        return None
    try:
        return httpx.NetRCAuth(path)
    except netrc.NetrcParseError as exc:
        # Never the parser's message: it quotes the offending token, which may be a password.
        raise InvalidInputError(f"cannot read the netrc file {path} (line {exc.lineno}); fix or remove it") from None
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"cannot read the netrc file {path}: {type(exc).__name__}") from None


def new_client(**kw: Any) -> httpx.Client:
    """``httpx.Client(**kw)``; InvalidInputError naming the proxy variables when the environment's are unusable."""
    import httpx

    class Client(httpx.Client):
        # Every transport httpx builds (the direct one, one per proxy mount) retries a GET whose kept connection died.
        def _init_transport(self, *args: Any, **kw: Any) -> httpx.BaseTransport:
            given = kw.get("transport")
            built = super()._init_transport(*args, **kw)
            return built if given is not None else _retrying()(built)

        def _init_proxy_transport(self, *args: Any, **kw: Any) -> httpx.BaseTransport:
            return _retrying()(super()._init_proxy_transport(*args, **kw))

        def send(self, request: httpx.Request, **options: Any) -> httpx.Response:
            try:
                return super().send(request, **options)
            except Exception as exc:
                # httpcore lets a SOCKS proxy's broken handshake escape as socksio's own error.
                if type(exc).__module__.startswith("socksio"):
                    raise httpx.ProxyError(f"the SOCKS proxy failed: {exc}", request=request) from None
                raise

    if "auth" not in kw and kw.get("trust_env", True):
        kw["auth"] = _netrc_auth(httpx)
    try:
        return Client(**kw)
    except (ValueError, ImportError, httpx.InvalidURL) as exc:
        # A proxy URL may carry a password: never print it.
        settings = ", ".join(f"{var}={redact(os.environ[var])}"
                             for var in _PROXY_VARS if os.environ.get(var))
        raise InvalidInputError(f"unusable proxy setting ({settings or 'none set'}): {exc}") from None


_IDEMPOTENT = frozenset({"GET", "HEAD"})
"""Methods sent once more when the connection died before any answer (the server had nothing to act on twice)."""


@functools.cache
def _retrying() -> Callable[[httpx.BaseTransport], httpx.BaseTransport]:
    import httpx

    class Retrying(httpx.BaseTransport):
        """A transport that sends a GET/HEAD once more when its connection died before any response arrived.

        A kept connection may be closed by the server (uvicorn keeps an idle one 5 s, as httpx does)
        just as a request goes out on it: httpx then raises RemoteProtocolError ("Server disconnected
        without sending a response") or a ReadError/WriteError (reset), and the request never reached
        anyone. httpcore has closed that connection, so the retry goes out on another one (an idle
        connection the server closed too is dropped by the pool before use). Once: a server that always
        hangs up still fails at once. Never for a timeout, another method, or a failure once the
        response has started (that is raised when its body is read, outside ``handle_request``).
        """

        def __init__(self, inner: httpx.BaseTransport) -> None:
            self.inner = inner

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            try:
                return self.inner.handle_request(request)
            except httpx.RemoteProtocolError as exc:
                # Other protocol errors (a malformed status line, headers) mean an answer began.
                if request.method not in _IDEMPOTENT or "without sending a response" not in str(exc):
                    raise
            except (httpx.ReadError, httpx.WriteError):
                if request.method not in _IDEMPOTENT:
                    raise
            return self.inner.handle_request(request)

        def close(self) -> None:
            self.inner.close()

        def __enter__(self) -> Retrying:
            self.inner.__enter__()
            return self

        def __exit__(self, *exc: Any) -> None:
            self.inner.__exit__(*exc)

    return Retrying


_CLIENT_ENVIRONMENT = (*_PROXY_VARS, "NO_PROXY", "no_proxy", "SSL_CERT_FILE", "SSL_CERT_DIR", "NETRC")
"""What a client reads from the environment when it is built: a kept client is rebuilt when any changes."""
_CLIENTS_KEPT = 16
"""Clients ``kept_client`` keeps at once (the least recently used goes first, closed once no call uses it)."""


class _Kept:
    """A kept client, how many calls are using it, and whether it has been dropped (closed when they end)."""

    def __init__(self, client: httpx.Client) -> None:
        self.client, self.users, self.dropped = client, 0, False


_kept: OrderedDict[tuple[Any, ...], _Kept] = OrderedDict()
_kept_lock = threading.Lock()
_inherited: list[OrderedDict[tuple[Any, ...], _Kept]] = []
"""A forked child's copies of its parent's clients: never used, never closed (their sockets are the parent's)."""


def _client_key(url: str) -> tuple[Any, ...]:
    """The origin of ``url`` and everything a client reads when built (proxies, CA files, the netrc file's identity)."""
    parts = urlsplit(url)
    netrc = os.environ.get("NETRC") or os.path.expanduser("~/.netrc")
    try:
        info = os.stat(netrc)
        netrc_id: tuple[Any, ...] = (netrc, info.st_ino, info.st_size, info.st_mtime_ns)
    except OSError:
        netrc_id = (netrc,)
    return (parts.scheme.lower(), parts.hostname, parts.port, netrc_id,
            tuple(os.environ.get(name) for name in _CLIENT_ENVIRONMENT))


@contextmanager
def kept_client(url: str) -> Iterator[httpx.Client]:
    """A client for ``url``'s origin that this process keeps for later calls (redirects followed, UA ``rgstore``).

    Its connections stay open between calls (httpx keeps an idle one 5 s), so a read of hundreds
    of sequences from one server makes one connection, not hundreds, and builds one client (a
    TLS context, the netrc file parsed). Built as ``new_client`` builds one: it is rebuilt when the
    proxy variables, CA files or netrc file change. Requests pass their own timeouts. Threads may
    share it; a forked child never uses its parent's (their connections are the parent's sockets).
    """
    key = _client_key(url)
    dropped: list[_Kept] = []
    with _kept_lock:
        kept = _kept.get(key)
        if kept is None:
            kept = _kept[key] = _Kept(new_client(follow_redirects=True, headers={"User-Agent": "rgstore"}))
            while len(_kept) > _CLIENTS_KEPT:
                dropped.append(_kept.popitem(last=False)[1])
                dropped[-1].dropped = True
        _kept.move_to_end(key)
        kept.users += 1
    _close_unused(dropped)
    try:
        yield kept.client
    finally:
        with _kept_lock:
            kept.users -= 1
        _close_unused([kept])


def _close_unused(candidates: list[_Kept]) -> None:
    """Close each dropped client no call is using any more."""
    with _kept_lock:
        done = [kept for kept in candidates if kept.dropped and kept.users == 0]
        for kept in done:
            kept.dropped = False  # closed once
    for kept in done:
        kept.client.close()


@atexit.register
def _close_kept() -> None:
    with _kept_lock:
        for kept in _kept.values():
            kept.dropped = True
        candidates = list(_kept.values())
        _kept.clear()
    _close_unused(candidates)


def _forget_kept_after_fork() -> None:
    global _kept, _kept_lock
    # The parent's clients hold the parent's sockets: a request from here would interleave with its own.
    # A new lock too: another thread may have held the old one at the fork.
    _inherited.append(_kept)
    _kept, _kept_lock = OrderedDict(), threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_kept_after_fork)

def _setting(name: str, default: float, *, minimum: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value >= minimum or value == float("inf"):
        raise InvalidInputError(f"${name}={raw!r}: expected a number >= {minimum:g}")
    return value


def low_speed() -> tuple[float, float]:
    """(bytes/s, seconds) of the low-speed guard from the environment; InvalidInputError for an unusable value.

    A limit of 0 turns the guard off; its time then only has to be a number >= 0 (curl likewise
    ignores --speed-time when --speed-limit is 0).
    """
    limit = _setting("RGSTORE_LOW_SPEED_LIMIT", LOW_SPEED_LIMIT, minimum=0)
    return limit, _setting("RGSTORE_LOW_SPEED_TIME_S", LOW_SPEED_TIME_S, minimum=0.001 if limit else 0)


@functools.cache
def _too_slow() -> type[httpx.ReadTimeout]:
    import httpx

    class TooSlow(httpx.ReadTimeout):
        """The low-speed guard gave up a body: a ReadTimeout to every caller, though the server answered."""

    return TooSlow


def failure(url: str, exc: Exception) -> str:
    """The one-line message for ``exc`` (an httpx error) fetching ``url``, credentials redacted.

    "cannot reach URL: ..." except when that server was reached: the low-speed guard gave up the
    body ("gave up on URL: the transfer averaged ...") or it redirects in a loop.
    """
    if isinstance(exc, _too_slow()):
        return redact(f"gave up on {url}: {exc}")
    if _is_redirect_loop(exc):  # the server was reached: it kept sending rgstore elsewhere
        return redact(f"gave up on {url}: {describe(exc)}")
    return redact(f"cannot reach {url}: {describe(exc)}")


def _is_redirect_loop(exc: Exception) -> bool:
    import httpx

    return isinstance(exc, httpx.TooManyRedirects)


def describe(exc: Exception) -> str:
    """What went wrong in ``exc`` (an httpx error), for after a URL and a colon; a redirect loop says so."""
    if _is_redirect_loop(exc):
        # httpx says "Exceeded maximum allowed redirects.", which reads as a limit of rgstore's to raise.
        return "too many redirects (a redirect loop?)"
    return str(exc) or type(exc).__name__


@contextmanager
def streamed(
    client: httpx.Client, url: str, *, timeout: float, headers: dict[str, str] | None = None
) -> Iterator[httpx.Response]:
    """A streamed GET of ``url`` (connect timeout 5 s); an httpx failure opening or reading it is a RemoteError saying so.

    A failure a retry may get past (a reset, a timeout, a body cut short) is a ``retries.Transient``
    (see ``failed``); nothing here retries: the caller decides, since only it knows what to redo.
    """
    import httpx

    try:
        with client.stream("GET", url, headers=headers, timeout=httpx.Timeout(timeout, connect=5.0)) as resp:
            yield resp
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise failed(url, exc) from None


def failed(url: str, exc: Exception) -> RemoteError:
    """An httpx failure fetching ``url`` as the RemoteError to raise: a ``retries.Transient`` unless no retry can help."""
    import httpx

    from .retries import Transient, silence

    if isinstance(exc, httpx.TransportError) and not isinstance(exc, httpx.UnsupportedProtocol):
        timed_out = isinstance(exc, httpx.TimeoutException)
        return Transient(failure(url, exc), timed_out=timed_out, silent=silence(exc) if timed_out else float("inf"))
    return RemoteError(failure(url, exc))  # a redirect loop, a redirect to ftp://: the same again on a retry


def status_error(resp: httpx.Response, message: str) -> RemoteError:
    """The RemoteError ``message`` for ``resp``'s error status: a ``retries.Transient`` (with its Retry-After) if worth a retry."""
    from .retries import Transient, retry_after, transient

    if transient(resp.status_code, resp.headers):
        return Transient(message, wait=retry_after(resp.headers.get("retry-after")))
    return RemoteError(message)


def iter_body(response: httpx.Response, *, raw: bool = False, chunk_size: int | None = None) -> Iterator[bytes]:
    """A streamed response's body (``iter_raw`` if ``raw``, else ``iter_bytes``); httpx.ReadTimeout when too slow.

    Too slow: averaging under ``low_speed()`` bytes/s (as sent, before any Content-Encoding is
    decoded) over its window. Only time spent waiting for bytes counts (a consumer busy writing
    or hashing is not the upstream's fault), and the clock
    starts at the first piece (silence before it is the read timeout's business: a server may
    fetch from its own upstream before answering). A ReadTimeout, like the read timeout's, is a
    network failure every caller already reports with the URL (and a download retries and resumes).
    ``chunk_size`` joins pieces up to that size; the guard sees each piece as it arrives.
    """
    limit, window = low_speed()
    pieces = iter(response.iter_raw() if raw else response.iter_bytes())
    waited, got, started, seen = 0.0, 0, False, 0
    buffer = bytearray()
    while True:
        before = time.monotonic()
        piece = next(pieces, None)
        if piece is None:
            break
        # Bytes off the wire, not decoded ones: a gzip body of zeros trickled at 1 byte/s decodes to ~1 kB/s.
        if started:
            waited += time.monotonic() - before
            got += response.num_bytes_downloaded - seen
        seen, started = response.num_bytes_downloaded, True
        if limit and waited >= window:
            if got < limit * waited:
                raise _too_slow()(
                    f"the transfer averaged {got / waited:,.0f} bytes/s over {waited:,.1f} s, under the "
                    f"{limit:,.0f} bytes/s $RGSTORE_LOW_SPEED_LIMIT asks for over $RGSTORE_LOW_SPEED_TIME_S "
                    f"({window:g} s)", request=response.request)
            waited, got = 0.0, 0
        if chunk_size is None:
            yield piece
            continue
        buffer += piece
        if len(buffer) >= chunk_size:
            yield bytes(buffer)
            buffer.clear()
    if buffer:
        yield bytes(buffer)


def read_capped(response: httpx.Response, limit: int, too_long: str) -> bytes:
    """A streamed response's whole body; RemoteError(``too_long``) as soon as it runs past ``limit`` bytes.

    An endless or oversized answer (the wrong URL, a misbehaving server) stops there, not when
    memory runs out; a trickling one stops as ``iter_body`` says.
    """
    body = bytearray()
    for chunk in iter_body(response):
        body += chunk
        if len(body) > limit:
            raise RemoteError(too_long)
    return bytes(body)
