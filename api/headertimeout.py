"""uvicorn's HTTP/1.1 protocol, closing a connection whose request head does not arrive in time.

uvicorn 0.54 has no such timeout: its keep-alive timer only runs while a kept-alive connection is
idle, and the first byte of a request stops it. A client that connected and sent nothing, or a
request head without its closing blank line, held its socket for ever, so a few thousand of them
(slowloris) used up a worker's file descriptors and locked real clients out.

Here a connection is closed, without an answer, once ``config.header_timeout`` seconds pass from
connecting, or from the end of its previous response, without a complete request head. The clock
stops at the end of the head: a request body, the app's work and a response streamed to a slow
reader (a sequence download) are never timed by it. A route that reads a body times the gaps in it
itself (``body_timeout``: the same value, which this protocol puts in each request's scope), since
only the route can answer 408 for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["HEADER_TIMEOUT_S", "HeaderTimeoutProtocol", "body_timeout"]

HEADER_TIMEOUT_S = 30.0  # nginx allows 60 s, Apache's mod_reqtimeout 20-40 s; a real client needs well under 1 s
_SCOPE_EXTENSION = "rgstore.header_timeout"  # ASGI: a server's own additions go under scope["extensions"]


def body_timeout(scope: Mapping[str, Any]) -> float:
    """Seconds a request body may go without a byte arriving: the server's header timeout.

    ``HEADER_TIMEOUT_S`` when the request came through another server (a test client, another ASGI server).
    """
    extension = (scope.get("extensions") or {}).get(_SCOPE_EXTENSION) or {}
    return float(extension.get("seconds", HEADER_TIMEOUT_S))


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol (which its "auto" picks: httptools is our dependency) with a head clock.

    The timeout is ``config.header_timeout`` (``HEADER_TIMEOUT_S`` for a config without one).
    """

    _head_timer: asyncio.TimerHandle | None = None
    _handed_over = False  # an upgrade gave the transport to another protocol: never close it from here

    def _awaiting_head(self) -> bool:
        """True while the connection waits for (the rest of) a request head.

        Each complete head makes a new cycle, so none yet, or the latest one answered, means waiting;
        a pipelined request whose head is complete is the latest cycle, queued and unanswered.
        """
        return self.cycle is None or bool(self.cycle.response_complete)

    def _check_head_clock(self) -> None:
        """Start the clock when waiting for a head begins, stop it once a head is complete.

        Never restarted while it runs: a client dribbling a byte at a time must not keep it going.
        """
        waiting = not self._handed_over and not self.transport.is_closing() and self._awaiting_head()
        if waiting and self._head_timer is None:
            self._head_timer = self.loop.call_later(self._timeout(), self._head_timed_out)
        elif not waiting:
            self._stop_head_clock()

    def _timeout(self) -> float:
        return float(getattr(self.config, "header_timeout", HEADER_TIMEOUT_S))

    def _stop_head_clock(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        """Close the connection: no request was read, so there is nothing to answer."""
        self._head_timer = None
        if not self._handed_over and not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """As uvicorn does, then start the clock for the first request's head."""
        super().connection_made(transport)
        self._check_head_clock()

    def data_received(self, data: bytes) -> None:
        """As uvicorn does (which parses any complete head and starts its request), then start or stop the clock."""
        super().data_received(data)
        self._check_head_clock()

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the clock, then as uvicorn does."""
        self._stop_head_clock()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        """As uvicorn does (a new request's scope), then put the timeout in it for ``body_timeout``."""
        super().on_message_begin()
        extensions = self.scope.setdefault("extensions", {})
        extensions[_SCOPE_EXTENSION] = {"seconds": self._timeout()}

    def on_response_complete(self) -> None:
        """As uvicorn does (which may start a pipelined request), then time the next head unless one is queued."""
        super().on_response_complete()
        self._check_head_clock()

    def handle_websocket_upgrade(self) -> None:
        """Hand the connection over for good (no route of ours upgrades, but uvicorn would with a ws library)."""
        self._handed_over = True
        self._stop_head_clock()
        super().handle_websocket_upgrade()
