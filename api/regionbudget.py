"""A worker's budget for the regions answers it holds in memory at once (``POST /seqcol/collection/{d}/regions``).

One regions answer is laid out whole in memory (up to ~100 MB at the per-request caps), so a few
large requests at once could take a small server's memory. Each answer reserves its size here
before it is laid out and gives it back once its last byte is handed to the connection, or the
request fails, or its client goes away. An answer larger than the whole budget is refused at once
(413, like the per-request caps); one that does not fit beside those in flight waits up to
``wait_s`` for room, then gets 503 with ``Retry-After``. The budget and the wait come from
``$RGSTORE_SERVE_REGIONS_BUDGET_MIB`` (default 256) and ``$RGSTORE_SERVE_REGIONS_WAIT_S`` (default 5).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import anyio
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from rgstore.errors import RgstoreError
from rgstore.seqcolregions import RegionsTooLargeError

from .lazyfetch import env_number
from .wire import send_until_disconnect

__all__ = ["RETRY_AFTER_S", "RegionBudget", "RegionLimits", "RegionsBusyError", "ReservedAnswer", "region_budget"]

RETRY_AFTER_S = 5
"""What a 503 for a full budget tells the client to wait: answers in flight are sent in seconds."""
_PIECE = 1 << 20
"""Bytes of an answer handed to the connection at a time: its buffer then holds at most this beyond ours."""


class RegionsBusyError(RgstoreError):
    """The answers in flight left no room for this one for the whole wait: ask again later (503 with Retry-After)."""

    http_status = 503
    retry_after = RETRY_AFTER_S


@dataclass(frozen=True)
class RegionLimits:
    """Bytes of regions answers a worker holds at once, and how long a request waits for room."""

    budget_bytes: int = 256 << 20
    wait_s: float = 5.0

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> RegionLimits:
        """The limits ``$RGSTORE_SERVE_REGIONS_{BUDGET_MIB,WAIT_S}`` set (defaults for unset ones)."""
        default = cls()
        mib = env_number(environ, "RGSTORE_SERVE_REGIONS_BUDGET_MIB", default.budget_bytes >> 20, minimum=1, whole=True)
        return cls(budget_bytes=int(mib) << 20,
                   wait_s=env_number(environ, "RGSTORE_SERVE_REGIONS_WAIT_S", default.wait_s, minimum=0))


class RegionBudget:
    """The bytes of regions answers one worker holds at once: create it inside the event loop (in the lifespan)."""

    def __init__(self, limits: RegionLimits) -> None:
        self.limits = limits
        self.in_flight = 0
        self._freed = anyio.Event()  # set (and replaced) whenever a reservation is given back

    def check(self, size: int) -> None:
        """RegionsTooLargeError (413) when an answer of ``size`` bytes could never fit, however long it waited."""
        if size > self.limits.budget_bytes:
            raise RegionsTooLargeError(f"the answer would take {size:,} bytes, more than the "
                                       f"{self.limits.budget_bytes >> 20:,} MiB this server holds for regions "
                                       "answers at once; ask in smaller requests")

    async def reserve(self, size: int) -> Reservation:
        """Room for an answer of ``size`` bytes, waiting up to ``wait_s`` for it; RegionsBusyError (503) after."""
        self.check(size)
        with anyio.move_on_after(self.limits.wait_s):
            while self.in_flight + size > self.limits.budget_bytes:
                await self._freed.wait()
        if self.in_flight + size > self.limits.budget_bytes:
            raise RegionsBusyError(f"this server holds as many regions answers as it may at once "
                                   f"({self.in_flight:,} bytes in flight); ask again in {RETRY_AFTER_S} s")
        self.in_flight += size
        return Reservation(self, size)

    def _give_back(self, size: int) -> None:
        self.in_flight -= size
        freed, self._freed = self._freed, anyio.Event()
        freed.set()  # every waiter looks again; one that still does not fit waits on the new event


class Reservation:
    """Room held for one answer; ``release`` gives it back (once, however often it is called)."""

    def __init__(self, budget: RegionBudget, size: int) -> None:
        self._budget: RegionBudget | None = budget
        self.size = size

    def release(self) -> None:
        """Give the room back; later calls do nothing."""
        budget, self._budget = self._budget, None
        if budget is not None:
            budget._give_back(self.size)


class ReservedAnswer(Response):
    """A JSON answer sent a piece at a time, its reservation given back once it is sent or its client is gone."""

    media_type = "application/json"

    def __init__(self, body: memoryview, reservation: Reservation) -> None:
        super().__init__(body, media_type=self.media_type)
        self.reservation = reservation

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send the headers and the answer in pieces; give the room back on every way out."""
        # One send of the whole answer would leave what a slow client has not read yet copied into the
        # connection's buffer after this returns, outside the budget; a piece at a time waits for the client.
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            await send_until_disconnect(receive, lambda: self._send_pieces(send))
        finally:
            self.reservation.release()

    async def _send_pieces(self, send: Send) -> None:
        view = memoryview(self.body)
        for at in range(0, len(view), _PIECE):
            await send({"type": "http.response.body", "body": view[at:at + _PIECE], "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def region_budget(request: Request) -> RegionBudget:
    """The worker's budget, made in the app's lifespan."""
    budget: RegionBudget = request.app.state.region_budget
    return budget
