"""HTTP plumbing shared by every route module: fast JSON bodies, HEAD/OPTIONS, the per-request store.

Routes build bodies with msgspec (several times faster than pydantic serialisation) and declare
pydantic models from ``api.schemas`` only to document them in ``/openapi.json``.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import anyio
import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from rgstore.servedstore import ServedStore
from rgstore.store import Store

__all__ = [
    "json_response",
    "json_bytes",
    "store_of",
    "ServedStoreMiddleware",
    "SERVED_STORE",
    "ReadOnlyMethodsMiddleware",
    "RevalidateByDefaultMiddleware",
    "is_head",
    "HEAD_FLAG",
    "IMMUTABLE",
    "ROUTE_METHODS",
    "route_methods",
    "send_until_disconnect",
]

IMMUTABLE = {"Cache-Control": "public, max-age=31536000, immutable"}
"""Headers of a success answer fixed by the digests in its URL: caches may keep it for good (a year)."""

HEAD_FLAG = "rgstore.head"
"""Scope key set on HEAD requests that are routed as GET (the body is then never produced)."""

_ENCODER = msgspec.json.Encoder()


def json_bytes(obj: Any) -> bytes:
    """Encode plain data, Structs and datetimes as compact JSON."""
    return _ENCODER.encode(msgspec.to_builtins(obj, builtin_types=None, str_keys=True))


def json_response(
    obj: Any, status_code: int = 200, media_type: str = "application/json",
    headers: dict[str, str] | None = None,
) -> Response:
    """A JSON response with Content-Length, encoded by msgspec."""
    return Response(json_bytes(obj), status_code=status_code, media_type=media_type, headers=headers)


SERVED_STORE = "rgstore.store"
"""Scope key: the Store handle this request answers from (held until its answer is sent)."""


def store_of(request: Request) -> Store:
    """The read-only Store this request answers from (the store at the served path when the request began)."""
    store: Store | None = request.scope.get(SERVED_STORE)
    return store if store is not None else request.app.state.store


def is_head(request: Request) -> bool:
    """Whether the client sent HEAD (routed as GET): responses may skip producing a body."""
    return bool(request.scope.get(HEAD_FLAG))


ROUTE_METHODS = "route_methods"
"""``app.state`` attribute: (path regex, methods) of every route, for ``Allow`` (see ``route_methods``)."""


def route_methods(routes: Iterable[BaseRoute]) -> list[tuple[re.Pattern[str], frozenset[str]]]:
    """(path regex, methods) of each plain route; ``create_app`` passes its own and its routers' routes."""
    table = []
    for route in routes:
        regex, methods = getattr(route, "path_regex", None), getattr(route, "methods", None)
        if regex is not None and methods:
            table.append((regex, frozenset(methods)))
    return table


def _allowed(scope: Scope) -> str | None:
    """The methods of the routes serving this path (HEAD with GET, OPTIONS always); None: no route does."""
    path, root = scope["path"], scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root):] or "/"
    methods: set[str] = set()
    for regex, accepted in getattr(scope["app"].state, ROUTE_METHODS, ()):
        if regex.match(path):
            methods |= accepted
    if not methods:
        return None
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods | {"OPTIONS"}))


class _HttpMiddleware:
    """An ASGI middleware that passes lifespan and websocket scopes through and handles HTTP in ``http``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.http(scope, receive, send)

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one HTTP request."""
        raise NotImplementedError


class ReadOnlyMethodsMiddleware(_HttpMiddleware):
    """Serve HEAD through the GET routes (body dropped) and answer plain OPTIONS with ``Allow``.

    FastAPI registers GET routes for GET only; the spec-level contract of this server is that
    every resource answers GET, HEAD and OPTIONS, and nothing else changes state.
    """

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer OPTIONS here, route HEAD as GET without its body, pass the rest on."""
        method = scope["method"]
        if method == "OPTIONS":
            allow = _allowed(scope)
            if allow is None:  # as GET answers for a path no route serves
                await json_response({"detail": "Not Found"}, status_code=404)(scope, receive, send)
                return
            headers = [(b"allow", allow.encode()), (b"content-length", b"0")]
            await send({"type": "http.response.start", "status": 204, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        if method == "GET":
            await self.app(scope, receive, send)
            return
        if method != "HEAD":
            await self.app(scope, receive, _with_allow(send, _allowed(scope) or "GET, HEAD, OPTIONS"))
            return
        routed = {**scope, "method": "GET", HEAD_FLAG: True}

        async def send_headers_only(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b""}
            await send(message)

        allow = _allowed(scope) or "GET, HEAD, OPTIONS"
        await self.app(routed, receive, _with_allow(send_headers_only, allow))  # type: ignore[arg-type]


ANSWERED_WHILE_CATCHING_UP = frozenset({"/healthz", "/readyz", "/docs", "/openapi.json"})
"""Paths that read no view: they answer while a worker catches up views after an upgrade (the rest: 503)."""


class ServedStoreMiddleware(_HttpMiddleware):
    """Hold the worker's current Store handle for each request, first reopening it if the store directory was replaced.

    The handle stays held until the answer is sent (a streamed sequence included), so a handle
    replaced meanwhile is closed only after its last request.
    """

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Reopen if due (off the event loop: an open may catch up views), then pass the request on holding the handle."""
        state = scope["app"].state
        served: ServedStore | None = getattr(state, "served", None)
        if served is None:  # no lifespan ran (an app built without serving)
            await self.app(scope, receive, send)
            return
        if served.catching_up is not None \
                and scope["path"].removeprefix(scope.get("root_path", "")) not in ANSWERED_WHILE_CATCHING_UP:
            busy = json_response({"detail": served.problem or served.catching_up}, status_code=503,
                                 headers={"Retry-After": "5"})
            await busy(scope, receive, send)
            return
        if served.due():
            await anyio.to_thread.run_sync(served.reopen)
        store = served.acquire()
        scope[SERVED_STORE] = store
        state.store = store  # for code that reads the app's state outside a request
        try:
            await self.app(scope, receive, send)
        finally:
            served.release(store)


REVALIDATE = (b"cache-control", b"no-cache")


class RevalidateByDefaultMiddleware(_HttpMiddleware):
    """Add ``Cache-Control: no-cache`` to every answer that does not state its own caching.

    Only answers fixed by the digests in their URL say ``IMMUTABLE``; everything else (``/events``,
    ``/events/head``, aliases, listings, service-info, errors such as a 404 for a sequence not here
    yet) changes as the log grows. Without a header a shared cache applies its default lifetime
    (nginx ``proxy_cache_valid``, a CDN's default TTL) and a mirror following through it would read
    a stale ``/events/head``, lag for that long, or take the primary for rolled back and stop.
    """

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, adding the header to an answer that has no Cache-Control."""

        async def send_revalidated(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(key.lower() == b"cache-control" for key, _ in headers):
                    message = {**message, "headers": [*headers, REVALIDATE]}
            await send(message)

        await self.app(scope, receive, send_revalidated)  # type: ignore[arg-type]


def _with_allow(send: Send, allow: str) -> Send:
    """Wrap ``send`` so a 405 names every method this server accepts, not just the route's GET."""

    async def wrapped(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start" and message["status"] == 405:
            headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"allow"]
            message = {**message, "headers": [*headers, (b"allow", allow.encode())]}
        await send(message)

    return wrapped  # type: ignore[return-value]


async def send_until_disconnect(receive: Receive, body: Callable[[], Awaitable[None]]) -> None:
    """Run ``body`` (which sends a response's chunks) until it ends or the client goes away.

    uvicorn silently drops sends after a disconnect, so without this a streamed body would go on
    reading its file for nobody; here a disconnect cancels it.
    """
    async with anyio.create_task_group() as group:

        async def until_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            group.cancel_scope.cancel()

        group.start_soon(until_disconnect)
        await body()
        group.cancel_scope.cancel()
