"""The application factory: ``create_app(store_path)`` builds the read-only projection server.

uvicorn runs it as a factory (``rgstore_api.app:create_app``), once per worker process. The LMDB
environment is opened read-only in the lifespan, i.e. after any worker fork, and every request
reads in one short transaction of its own. The store path comes from the argument, else
``$RGSTORE_SERVE_STORE`` (set by ``rgstore serve`` for its workers), else ``$RGSTORE_HOME`` or
the user data directory.
"""

from __future__ import annotations

import html
import os
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Annotated, Any

import anyio
from fastapi import Depends, FastAPI, Query, Request
from fastapi.middleware.cors import CORSMiddleware
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp

from rgstore.errors import InvalidInputError
from rgstore.follow import parse_interval
from rgstore.readiness import ReadinessProbe
from rgstore.servedstore import ServedStore
from rgstore.store import Store

from . import cache, events, refgenie, refget, refpkgs, seqcol, seqcol_extensions, store_files
from .app_info import app_version
from .errors import install_error_handlers, problem
from .fetchworker import FetchWorkers
from .lazyfetch import FetchLimits, LazyFetcher
from .queryparams import checked_query_values
from .regionbudget import RegionBudget, RegionLimits
from .schemas import ErrorBody, Health, StoreStatusView
from .sequences import set_lazy_fetch
from .storepath import ENV_STORE, resolve_store_path
from .wire import (
    ROUTE_METHODS,
    ReadOnlyMethodsMiddleware,
    RevalidateByDefaultMiddleware,
    ServedStoreMiddleware,
    json_response,
    route_methods,
    store_of,
)

__all__ = ["create_app", "ENV_STORE", "ENV_FOLLOW_INTERVAL", "resolve_store_path"]

ENV_FOLLOW_INTERVAL = "RGSTORE_SERVE_FOLLOW_INTERVAL"
"""Set by ``rgstore serve --follow`` for its workers: the puller's interval, which bounds ``/readyz``'s freshness."""

def _one_line_validation_errors(app: FastAPI) -> None:
    """Document 422 bodies as ``{"detail": str}``, the shape ``api.errors`` sends."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            components = schema.get("components", {}).get("schemas", {})
            if "HTTPValidationError" in components:
                components["HTTPValidationError"] = {
                    "title": "HTTPValidationError",
                    "type": "object",
                    "properties": {"detail": {"type": "string", "title": "Detail"}},
                    "required": ["detail"],
                }
                components.pop("ValidationError", None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


class _JsonCorsMiddleware(CORSMiddleware):
    """CORS whose refused preflight answers one line of JSON, like every other client error."""

    def preflight_response(self, request_headers: Headers) -> Response:
        """Starlette's preflight answer, its text/plain 400 (e.g. "Disallowed CORS method") as ``{"detail"}``."""
        response = super().preflight_response(request_headers)
        if response.status_code != 400:
            return response
        kept = {k: v for k, v in response.headers.items() if k not in ("content-length", "content-type")}
        detail = bytes(response.body).decode()
        return problem(400, f"{detail}: any origin may use GET, HEAD, OPTIONS and POST", headers=kept)


def create_app(store_path: str | None = None) -> FastAPI:
    """Build the read-only server for the store at ``store_path`` (see module docstring for the default)."""
    path = resolve_store_path(store_path)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        limits = FetchLimits.from_environment()  # a bad $RGSTORE_SERVE_FETCH_* fails here, before serving
        app.state.region_budget = RegionBudget(RegionLimits.from_environment())  # and $RGSTORE_SERVE_REGIONS_*
        # Views an upgrade left behind are caught up after the port is bound, not before (a load balancer
        # would see connection refused for that long): meanwhile only /healthz and /readyz (503) answer.
        store = Store.open(path, readonly=True, catch_up_views=False)
        app.state.store = store
        # A store directory replaced under the server (a restored backup, a rebuilt mirror renamed into
        # place) is opened and served from then on by each worker, without a restart (ServedStoreMiddleware).
        served = app.state.served = ServedStore(store)
        catching_up = threading.Thread(target=served.catch_up_views, name="rgstore-catch-up", daemon=True) \
            if served.catching_up else None
        interval = os.environ.get(ENV_FOLLOW_INTERVAL)
        app.state.readiness = ReadinessProbe(served, follow_interval_s=parse_interval(interval) if interval else None)
        # Sequences not fetched yet (a remote genome's, or a mirror's from its primary) are fetched
        # on first request, in long-lived worker processes (one per fetch slot at most), and verified
        # against their digests; the event log stays read-only. The fetch answers False when nothing
        # can supply a sequence. Fetches run under their own small limits, never on the threadpool
        # the other routes need.
        root = store.path  # the served path: a store replaced there is fetched into as well
        workers = FetchWorkers(root, slots=limits.slots, timeout=limits.timeout_s)
        set_lazy_fetch(workers.fetch)
        # A mirror's refpkg blobs and cache files not fetched yet come from its upstream the same way (by sha256).
        app.state.lazy_fetcher = LazyFetcher(limits, workers.stop, workers.fetch_blob, workers.fetch_cache_file)
        if catching_up is not None:
            catching_up.start()
        try:
            yield
        finally:
            set_lazy_fetch(None)
            workers.close()
            served.close()

    app = FastAPI(
        title="rgstore",
        version=app_version(),
        summary="Read-only projections of an rgstore: GA4GH refget sequences v2 and seqcol, "
        "refgenie-compatible genomes and aliases, refpkgs, caches and the event feed.",
        lifespan=lifespan,
        docs_url=None,  # served below, with a word for browsers that cannot reach the CDN
        dependencies=[Depends(checked_query_values)],  # blank or repeated query values: 422 on every route
    )
    install_error_handlers(app)

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> Response:
        """Swagger UI; it loads from a CDN, so until it renders the page says where the API description is."""
        from fastapi.openapi.docs import get_swagger_ui_html

        openapi_url = html.escape(request.scope.get("root_path", "").rstrip("/") + (app.openapi_url or ""))
        page = get_swagger_ui_html(openapi_url=openapi_url, title=f"{app.title} - Swagger UI")
        # Swagger UI renders over this: only a browser that cannot reach cdn.jsdelivr.net (an offline lab) keeps it.
        waiting = ('<div id="swagger-ui"><p style="font-family: sans-serif; margin: 2em">Swagger UI loads from '
                   "cdn.jsdelivr.net; if this text stays, this browser cannot reach it. The API is described in "
                   f'<a href="{openapi_url}">{openapi_url}</a> (OpenAPI 3 JSON).</p>')
        body = bytes(page.body).decode().replace('<div id="swagger-ui">', waiting, 1)
        return Response(body, media_type="text/html; charset=utf-8")
    _one_line_validation_errors(app)

    @app.get("/healthz", response_model=Health, tags=["service"], summary="Liveness and log position")
    async def healthz(request: Request) -> Response:
        """``ok`` plus the log id and head seq this worker sees."""
        store = store_of(request)
        with store.read() as txn:
            seq, _ = store.log.head(txn)
            log_id = store.log.log_id(txn)
        return json_response({"status": "ok", "log_id": log_id, "head_seq": seq})

    @app.get("/readyz", tags=["service"], summary="Readiness for a load balancer: 200, or 503 and why",
             responses={400: {"model": ErrorBody, "description": "`max_age` is not a duration"},
                        503: {"description": "Not ready: `{\"ready\": false, \"detail\": \"...\"}`"}})
    async def readyz(request: Request, max_age: Annotated[str | None, Query(
            description="A mirror is not ready when its last successful pull is older than this (e.g. 60s, 10m); "
                        "default on a `--follow` server: 3 intervals, at least 30s")] = None) -> Response:
        """Ready when the store can be read and, on a following server, its last successful pull is recent."""
        probe: ReadinessProbe = request.app.state.readiness
        try:
            bound = parse_interval(max_age) if max_age is not None else None
        except InvalidInputError as exc:
            raise InvalidInputError(f"max_age: {exc}") from None
        if probe.replaced():  # a restore renamed into place: open it off the event loop, and answer from it
            state = await anyio.to_thread.run_sync(partial(probe.check, max_age_s=bound))
        else:
            state = probe.check(max_age_s=bound)
        return json_response(state, status_code=200 if state.ready else 503)

    @app.get("/status", response_model=StoreStatusView, tags=["service"],
             summary="What the store holds and whether it is healthy (`rgstore status`)")
    def status(request: Request) -> Response:
        """Counts, disk use, replication and view health from the views (no file walk); the store's path is withheld."""
        from rgstore.status import store_status

        result = store_status(store_of(request), served=getattr(request.app.state, "served", None))
        here, result.path = result.path, None  # the server does not disclose its filesystem layout
        replica = result.replica
        if replica is not None and replica.upstream is not None \
                and not replica.upstream.lower().startswith(("http://", "https://")):
            if replica.error is not None:  # why pulls fail may name the upstream's path
                replica.error = replica.error.replace(replica.upstream, "(a local path)")
            replica.upstream = "(a local path)"  # a mirror of a directory or file: the same reason
        if replica is not None and replica.error is not None and here:
            replica.error = replica.error.replace(here, "(the store)")
        if here:  # a warning names the directory it may not write
            result.warnings = [warning.replace(here, "(the store)") for warning in result.warnings]
        return json_response(result)

    # FastAPI matches included routers in order: the hot lookups go first.
    routers = [refget.router, refgenie.router, seqcol.router, seqcol_extensions.router, refgenie.service_router,
               refpkgs.router, cache.router, events.router, store_files.router]
    for router in routers:
        app.include_router(router)
    setattr(app.state, ROUTE_METHODS,
            route_methods([*app.router.routes, *(route for router in routers for route in router.routes)]))

    app.add_middleware(ServedStoreMiddleware)
    app.add_middleware(ReadOnlyMethodsMiddleware)
    # Chrome asks a server on a private address or loopback, in the preflight, whether public pages
    # may read it (Private Network Access): refusing fails those preflights (400), so a lab's
    # intranet server could not be read by a web tool on the internet, which "any origin" promises.
    # CORS and the revalidation default wrap the whole stack: added with add_middleware they would
    # sit inside Starlette's ServerErrorMiddleware, and the JSON 500 a bug answers (api.errors) would
    # lack Access-Control-Allow-Origin (a page on another origin could not read it) and no-cache.
    build_stack = app.build_middleware_stack

    def build_with_cors() -> ASGIApp:
        return _JsonCorsMiddleware(
            RevalidateByDefaultMiddleware(build_stack()),  # shared caches must not serve the log's head stale
            allow_origins=["*"], allow_methods=["GET", "HEAD", "OPTIONS", "POST"],
            allow_headers=["*"], expose_headers=["*"], allow_private_network=True,
        )

    app.build_middleware_stack = build_with_cors  # type: ignore[method-assign]
    return app
