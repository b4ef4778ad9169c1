"""Interrupts that wait for a critical section: a signal handler raises now, or when the section ends.

A foreign call (gtars' import) may finish its side effect on disk and return just as a signal
arrives. CPython runs the handler right after the call returns, before the caller can bind the
result it needs to undo that side effect. Handlers that go through ``interrupt`` instead of
raising directly let such a section bind its result first; the exception is raised at its end.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["deferred", "interrupt"]

_depth = 0
_pending: BaseException | None = None


def interrupt(exc: BaseException) -> None:
    """Raise ``exc`` now, or at the end of the outermost ``deferred`` block if one is running."""
    global _pending
    if _depth:
        if _pending is None:
            _pending = exc
        return
    raise exc


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
