"""Interrupts that wait for a critical section: a signal handler raises now, or when the section ends.

A foreign call (gtars' import) may finish its side effect on disk and return just as a signal
arrives. CPython runs the handler right after the call returns, before the caller can bind the
result it needs to undo that side effect. Handlers that go through ``interrupt`` instead of
raising directly let such a section bind its result first; the exception is raised at its end.

A handler can also run inside a weakref callback or a ``__del__`` (the import system's module
locks have one), where CPython prints the exception and drops it: the signal was lost and the
process went on, blocked on a FIFO for good. Inside ``redelivered`` such a dropped interrupt
sends its signal again, so the handler runs once more in ordinary code.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["deferred", "interrupt", "redelivered"]

RESEND_DELAY_S = 0.01  # lets the main thread leave the unraisable hook before the signal comes back
RESEND_INTERVAL_S = 0.1
RESEND_TRIES = 50

_depth = 0
_pending: BaseException | None = None
_raised: tuple[BaseException, int] | None = None  # what a signal's handler raised last, and the signal
_dropped: int | None = None  # a signal whose interrupt CPython dropped, until its handler runs again
_in_hook = False
_resending = threading.RLock()  # re-entrant: a handler may run while the main thread holds it


def interrupt(exc: BaseException, signum: int | None = None) -> None:
    """Raise ``exc`` now, or at the end of the outermost ``deferred`` block if one is running.

    A handler passes its ``signum`` so that ``redelivered`` can send the signal again if the
    exception is dropped where it was raised.
    """
    global _pending, _raised, _dropped
    if signum is not None:
        if _in_hook:  # raised here it would be dropped again; the resending thread sends it once more
            return
        with _resending:  # a send the resending thread has checked for is not made after this
            _dropped = None
    if _depth:
        if _pending is None:
            _pending = exc
        return
    if signum is not None:
        _raised = (exc, signum)
    raise exc


def _resend(signum: int) -> None:
    """Send ``signum`` to the main thread until its handler has run outside the unraisable hook."""
    main = threading.main_thread().ident
    assert main is not None
    time.sleep(RESEND_DELAY_S)
    for _ in range(RESEND_TRIES):
        with _resending:  # never sent once the handler has run again or the block has ended
            if _dropped is None:
                return
            signal.pthread_kill(main, signum)
        time.sleep(RESEND_INTERVAL_S)


@contextmanager
def redelivered() -> Iterator[None]:
    """While the block runs, a signal whose ``interrupt`` CPython dropped as unraisable is sent again."""
    previous = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        global _dropped, _in_hook
        raised = _raised
        if raised is None or unraisable.exc_value is not raised[0]:
            previous(unraisable)
            return
        # Not re-raised from here: a handler run inside this hook is dropped too. Another thread
        # sends the signal again once the main thread is back in ordinary code (or blocked in a call).
        _in_hook = True
        try:
            resending = _dropped is not None
            _dropped = raised[1]
            if not resending:
                threading.Thread(target=_resend, args=(raised[1],), name="rgstore-redeliver", daemon=True).start()
        finally:
            _in_hook = False

    global _dropped
    sys.unraisablehook = hook
    try:
        yield
    finally:
        sys.unraisablehook = previous
        # Past the block its caller may restore SIG_DFL (a resent SIGTERM would kill it without cleanup),
        # or keep a handler that no longer calls ``interrupt`` (nothing would tell the thread to stop resending).
        with _resending:
            outstanding, _dropped = _dropped, None
    if outstanding is not None and _raised is not None:
        raise _raised[0]  # the dropped signal was never handled again: it stops the block at its end


@contextmanager
def deferred() -> Iterator[None]:
    """Hold interrupts raised through ``interrupt`` until the block has ended (then raise the first)."""
    global _depth, _pending
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if not _depth and _pending is not None:
            exc, _pending = _pending, None
            raise exc
