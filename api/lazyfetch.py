"""Lazy sequence fetches kept off the shared threadpool: a few slots, one download per sequence, a bounded wait.

FastAPI runs sync routes on AnyIO's default threadpool (40 tokens per worker). A fetch waits on its
upstream for as long as the fetch deadline allows, so fetches run there would, against an upstream
that accepts connections and never answers, take every token and leave ``/events`` (which mirrors
pull), ``/v4/genomes``, ``/refpkgs`` and the file routes hanging. Here each fetch holds one of
``slots`` fetch slots and runs on a thread of its own limiter; a request that finds every slot busy
waits ``wait_s`` for one, then gets 503 with ``Retry-After``. Requests for a sequence already being
fetched wait for that download and share its outcome instead of taking a slot; a mirror's missing
refpkg blobs (``LazyFetcher.blob``) and cache files (``LazyFetcher.cache_file``) share the same slots. The limits come from
``$RGSTORE_SERVE_FETCH_SLOTS``, ``$RGSTORE_SERVE_FETCH_WAIT_S`` and ``$RGSTORE_SERVE_FETCH_TIMEOUT_S``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

import anyio
from starlette.requests import Request

from rgstore.errors import InvalidInputError, RgstoreError

from .fetchworker import cache_fetch_key
from .sequences import FETCH_TIMEOUT_S, StoredSequence, fetch_and_open, open_stored

__all__ = ["FetchLimits", "FetchSlotsBusyError", "LazyFetcher", "RETRY_AFTER_S", "env_number", "lazy_fetcher"]

T = TypeVar("T")
RETRY_AFTER_S = 30
"""What a 503 for busy fetch slots tells the client to wait before asking again."""


class FetchSlotsBusyError(RgstoreError):
    """Every fetch slot stayed busy for the whole wait: the client should ask again later (503 with Retry-After)."""

    http_status = 503
    retry_after = RETRY_AFTER_S


@dataclass(frozen=True)
class FetchLimits:
    """How many fetches run at once, how long a request waits for a slot, and a fetch's deadline."""

    slots: int = 4
    wait_s: float = 10.0
    timeout_s: float = FETCH_TIMEOUT_S

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> FetchLimits:
        """The limits ``$RGSTORE_SERVE_FETCH_{SLOTS,WAIT_S,TIMEOUT_S}`` set (defaults for unset ones)."""
        default = cls()
        return cls(
            slots=int(env_number(environ, "RGSTORE_SERVE_FETCH_SLOTS", default.slots, minimum=1, whole=True)),
            wait_s=env_number(environ, "RGSTORE_SERVE_FETCH_WAIT_S", default.wait_s, minimum=0),
            timeout_s=env_number(environ, "RGSTORE_SERVE_FETCH_TIMEOUT_S", default.timeout_s, minimum=1),
        )


def env_number(environ: Mapping[str, str], name: str, default: float, *, minimum: float, whole: bool = False) -> float:
    """The server setting ``$name`` (``default`` when unset or blank); InvalidInputError unless a finite number >= ``minimum``."""
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(int(raw)) if whole else float(raw)
    except (ValueError, OverflowError):  # OverflowError: a whole number too large for a float
        value = float("nan")
    if not value >= minimum or value == float("inf"):
        kind = "a whole number" if whole else "a number of seconds"
        raise InvalidInputError(f"${name}={raw!r}: expected {kind} >= {minimum:g}")
    return value


class _Flight:
    """One download in progress: done when it ends; ``error`` is why it failed, if it did."""

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.error: RgstoreError | None = None


class LazyFetcher:
    """The fetches of one worker: create it inside the event loop (in the lifespan)."""

    def __init__(self, limits: FetchLimits, stop_fetch: Callable[[str], None],
                 fetch_blob: Callable[[str, int | None], bool] | None = None,
                 fetch_cache_file: Callable[[str, str], bool] | None = None) -> None:
        """``stop_fetch(key)`` ends the fetch of a sequence digest, blob sha256 or ``cache_fetch_key`` under way, if
        any (its request was cancelled); ``fetch_blob(sha256, size)`` and ``fetch_cache_file(key, relative)`` fetch
        a mirror's missing blob or cache file (blocking; True once here)."""
        self.limits = limits
        self._stop_fetch = stop_fetch
        self._fetch_blob = fetch_blob
        self._fetch_cache_file = fetch_cache_file
        self._slots = anyio.Semaphore(limits.slots)
        # The thread hop needs a limiter other than the default one; admission (``_slots``) bounds it.
        self._threads = anyio.CapacityLimiter(limits.slots)
        self._flights: dict[str, _Flight] = {}

    async def open(self, seq: StoredSequence) -> int:
        """A descriptor on the sequence's file, fetched first if not here; raises what ``fetch_and_open`` raises, or FetchSlotsBusyError."""
        while True:
            fd = open_stored(seq)
            if fd is not None:
                return fd
            flight = self._flights.get(seq.digest)
            if flight is None:
                break
            await flight.done.wait()
            if flight.error is not None:
                raise type(flight.error)(str(flight.error))
            # It succeeded (the file is here now) or its request was cancelled (fetch it here): look again.
        flight = self._flights[seq.digest] = _Flight()
        try:
            return await self._in_slot(partial(fetch_and_open, seq), seq.digest, f"sequence SQ.{seq.digest}")
        except RgstoreError as exc:
            flight.error = exc
            raise
        finally:
            del self._flights[seq.digest]
            flight.done.set()

    async def blob(self, sha256: str, size: int | None, present: Callable[[], bool]) -> bool:
        """Fetch a mirror's missing blob unless ``present()``, under the fetch slots, one download per blob at once.

        True once the blob is here, False if nothing can supply it (no mirror, or no ``fetch_blob``);
        raises what ``fetch_blob`` raises, or FetchSlotsBusyError.
        """
        if self._fetch_blob is None:
            return present()
        fetch_blob = self._fetch_blob
        # hex sha256: never a sequence's base64url digest
        return await self._once(sha256, lambda: fetch_blob(sha256, size), present, f"blob {sha256}")

    async def cache_file(self, key: str, relative: str, present: Callable[[], bool]) -> bool:
        """Fetch a mirror's missing file ``relative`` of cache entry ``key`` unless ``present()``, as ``blob`` does.

        True once the file is here, False if nothing can supply it (no mirror, no such live entry or
        file in the log, or no ``fetch_cache_file``); raises what it raises, or FetchSlotsBusyError.
        """
        if self._fetch_cache_file is None:
            return present()
        fetch = self._fetch_cache_file
        return await self._once(cache_fetch_key(key, relative), lambda: fetch(key, relative), present,
                                f"cache file {relative!r} of entry {key}")

    async def _once(self, key: str, fetch: Callable[[], bool], present: Callable[[], bool], what: str) -> bool:
        """``fetch()`` in a slot unless ``present()``; requests for ``key`` meanwhile share this download's outcome."""
        while not present():
            flight = self._flights.get(key)
            if flight is None:
                break
            await flight.done.wait()
            if flight.error is not None:
                raise type(flight.error)(str(flight.error))
        else:
            return True
        flight = self._flights[key] = _Flight()
        try:
            return await self._in_slot(fetch, key, what)
        except RgstoreError as exc:
            flight.error = exc
            raise
        finally:
            del self._flights[key]
            flight.done.set()

    async def _in_slot(self, fetch: Callable[[], T], key: str, what: str) -> T:
        """``fetch()`` on a thread of its own once a fetch slot is free; ``key`` is what ``stop_fetch`` is told."""
        acquired = False
        try:  # a free slot first: under a wait of 0 the scope below is cancelled before it could take one
            self._slots.acquire_nowait()
            acquired = True
        except anyio.WouldBlock:
            with anyio.move_on_after(self.limits.wait_s):
                await self._slots.acquire()
                acquired = True
        if not acquired:
            raise FetchSlotsBusyError(
                f"{what} is not fetched yet and all {self.limits.slots} fetch slots stayed "
                f"busy for {self.limits.wait_s:g}s; try again in {RETRY_AFTER_S}s"
            )
        try:
            # Abandoned on cancellation (a server shutting down): the worker is killed, so the thread ends too.
            return await anyio.to_thread.run_sync(fetch, limiter=self._threads, abandon_on_cancel=True)
        except anyio.get_cancelled_exc_class():
            self._stop_fetch(key)
            raise
        finally:
            self._slots.release()


def lazy_fetcher(request: Request) -> LazyFetcher:
    """The worker's fetcher, made in the app's lifespan."""
    fetcher: LazyFetcher = request.app.state.lazy_fetcher
    return fetcher
