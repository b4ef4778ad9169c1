"""The one retry policy for HTTP reads: which failures are a blip, how long to wait, and when to give up.

Cache downloads (``rgstore.download``) and a mirror's pulls (``rgstore.upstream``) both follow it:
5xx, 408, 429, connection errors, timeouts and short bodies are retried up to ``DEFAULT_RETRIES``
times, each pause honouring ``Retry-After`` (capped at ``RETRY_AFTER_CAP``) else backing off, while
the time waited in all stays within ``$RGSTORE_RETRY_BUDGET_S`` seconds (default ``RETRY_WAIT_BUDGET``).
Time spent in a try that timed out counts too: a silent server then costs at most the budget plus
one read timeout, not four read timeouts. Any other 4xx, and a checksum or chain failure (tampering,
not a blip), is never retried.

A pull runs its requests inside ``scope``: they share one budget (a whole pull, not each page,
waits at most the budget) and report each retry to the scope's ``note`` (a line on a terminal).
"""

from __future__ import annotations

import contextvars
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TypeVar

from .errors import InvalidInputError, RemoteError

__all__ = ["Budget", "DEFAULT_RETRIES", "NOT_TRANSIENT_HEADER", "RETRY_AFTER_CAP", "RETRY_WAIT_BUDGET", "Transient", "current", "retried",
           "pause_or_raise", "retry_after", "scope", "silence", "transient", "wait_budget"]

DEFAULT_RETRIES = 3
RETRY_AFTER_CAP = 60.0
"""The longest an upstream's ``Retry-After`` makes a retry wait (a day-long one would look like a hang)."""
RETRY_WAIT_BUDGET = 90.0
"""Default of ``$RGSTORE_RETRY_BUDGET_S``: the most one download or pull waits on retries in all."""
BUDGET_VAR = "RGSTORE_RETRY_BUDGET_S"
_RETRIED = frozenset({408, 429})
"""Statuses below 500 worth a retry: 408 Request Timeout and 429 Too Many Requests (NCBI rate-limits per client)."""
T = TypeVar("T")


def wait_budget() -> float:
    """Seconds of retry waits allowed in all, from ``$RGSTORE_RETRY_BUDGET_S``; InvalidInputError if unusable."""
    raw = os.environ.get(BUDGET_VAR, "").strip()
    if not raw:
        return RETRY_WAIT_BUDGET
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0 <= value < float("inf"):
        raise InvalidInputError(f"${BUDGET_VAR}={raw!r}: expected a number of seconds >= 0")
    return value


def retry_after(value: str | None) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (delay-seconds or an HTTP date), capped; None if absent or bad."""
    from email.utils import parsedate_to_datetime

    text = (value or "").strip()
    if not text:
        return None
    if text.isascii() and text.isdigit():
        seconds = float(text)
    else:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # RFC 9110 dates are GMT
            return None
        seconds = when.timestamp() - time.time()
    return min(max(seconds, 0.0), RETRY_AFTER_CAP)


NOT_TRANSIENT_HEADER = "X-Rgstore-Transient"
"""Set to "0" by an rgstore server on an error no retry can mend (bad bytes from its upstream, a newer log,
a store it may not write), whatever its 5xx status says: a mirror of it then fails at once."""


def transient(status: int, headers: Mapping[str, str] | None = None) -> bool:
    """Whether an HTTP answer is worth a retry: 5xx, 408, 429, unless an rgstore server says it is not."""
    if headers is not None and headers.get(NOT_TRANSIENT_HEADER) == "0":
        return False
    return status >= 500 or status in _RETRIED


class Budget:
    """Seconds of retry waits one operation has left (shared by threads: a pull prefetches pages)."""

    def __init__(self, seconds: float | None = None) -> None:
        self.seconds = wait_budget() if seconds is None else seconds
        self.spent = 0.0
        self._lock = threading.Lock()

    def charge(self, seconds: float) -> None:
        """Count ``seconds`` (a try that timed out) against the budget."""
        with self._lock:
            self.spent += seconds

    def take(self, pause: float) -> bool:
        """Whether a pause of ``pause`` seconds still fits; if so it is counted."""
        with self._lock:
            if self.spent + pause > self.seconds:
                return False
            self.spent += pause
            return True

    def past(self, pause: float) -> str:
        """Why no retry was made: its wait would take the waits past the budget."""
        if pause <= 0 or self.spent >= self.seconds:
            return f"past the {self.seconds:g} s rgstore waits on retries in all (${BUDGET_VAR})"
        return f"the upstream asks to wait {pause:g} s more, past the {self.seconds:g} s rgstore waits in all"


class _Scope:
    def __init__(self, budget: Budget, note: Callable[[str], None]) -> None:
        self.budget, self.note = budget, note


_SCOPE: contextvars.ContextVar[_Scope | None] = contextvars.ContextVar("rgstore_retry_scope", default=None)


@contextmanager
def scope(note: Callable[[str], None] = lambda _text: None, *, seconds: float | None = None) -> Iterator[Budget]:
    """Run requests made inside (by ``retried``) on one shared budget, telling ``note`` of each retry.

    ``seconds`` overrides ``$RGSTORE_RETRY_BUDGET_S`` (0: nothing is retried, each failure raised as it is).
    """
    outer = _SCOPE.get()
    if outer is not None and seconds is None:  # a pull inside a pull (promote's): the outer budget and note stay
        yield outer.budget
        return
    token = _SCOPE.set(_Scope(Budget(seconds), note))
    try:
        yield _SCOPE.get().budget  # type: ignore[union-attr]
    finally:
        _SCOPE.reset(token)


def current() -> Budget:
    """The scope's budget, else a new one for this request alone."""
    active = _SCOPE.get()
    return active.budget if active is not None else Budget()


def silence(exc: BaseException) -> float:
    """The longest a request that raised httpx's ``exc`` waited on a silent server: its longest timeout (inf: unknown).

    A try that streamed a large body for minutes and then timed out was silent only that long: charging
    the whole try would spend the budget on bytes that did arrive, and no retry would be left to resume them.
    """
    try:
        timeouts = exc.request.extensions.get("timeout") or {}  # type: ignore[attr-defined]
    except (AttributeError, RuntimeError):  # no request attached
        return float("inf")
    values = [float(v) for v in timeouts.values() if isinstance(v, (int, float))]
    return max(values) if values else float("inf")


class Transient(RemoteError):
    """A failure worth a retry: ``wait`` is the server's Retry-After, ``timed_out`` whether the try timed out.

    ``silent``: the most of the try the server was silent (``silence``); only that much of it is charged.
    """

    def __init__(self, message: str, *, wait: float | None = None, timed_out: bool = False,
                 silent: float = float("inf")) -> None:
        super().__init__(message)
        self.wait, self.timed_out, self.silent = wait, timed_out, silent


def retried(attempt: Callable[[], T], *, retries: int = DEFAULT_RETRIES, budget: Budget | None = None) -> T:
    """``attempt()``, tried again after each ``Transient`` it raises (up to ``retries`` times, within the budget).

    The last failure is raised as a plain RemoteError saying how many tries were made.
    """
    budget = budget or current()
    failures = 0
    while True:
        started = time.monotonic()
        try:
            return attempt()
        except Transient as exc:
            failures += 1
            pause_or_raise(exc, failures, started, budget, retries)


def pause_or_raise(exc: Transient, failures: int, started: float, budget: Budget, retries: int = DEFAULT_RETRIES,
                   backoff: float = 0.3) -> None:
    """After the ``failures``-th failed try (begun at monotonic ``started``): sleep before the next, or raise.

    The RemoteError raised once no try is left, or the next one's wait is past the budget, says so.
    """
    if exc.timed_out:  # a silent server's tries count: the whole wait stays bounded
        budget.charge(min(time.monotonic() - started, exc.silent))
    pause = backoff * failures if exc.wait is None else exc.wait
    tries = f" (tried {failures} times)" if failures > 1 else ""
    if failures > retries or budget.seconds == 0:  # no retry allowed at all: the failure as it is
        raise RemoteError(f"{exc}{tries}") from None
    if not budget.take(pause):
        raise RemoteError(f"{exc}{tries}; {budget.past(0 if exc.wait is None else pause)}") from None
    active = _SCOPE.get()
    if active is not None:
        active.note(f"{exc}; retrying in {pause:.1f} s (try {failures + 1} of {retries + 1})")
    time.sleep(pause)
