"""Pages of one package's retained steps (``/refpkgs/{name}/history``), by offset or by keyset cursor.

The listing is newest first: the current step, the steps a rollback reaches, then the steps a
rollforward re-applies, in the order it would. Along the zipper every step's seq is above the
one below it (a step is written on top of its parent; the undone steps sit above the current
one, the next redo lowest), so the listing is the zipper folded at the current step: seqs at or
below it descending, then seqs above it ascending. A cursor holds that fold and the page's last
seq. A walk keeps its first page's fold, so an update, rollback or rollforward between pages
moves no step across the cursor: each step retained throughout comes exactly once (one added
since comes where its seq falls, one dropped since, by an update's discarded redo or a strip, is
simply absent), and a walk with no write between its pages lists exactly the offset listing.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from typing import NamedTuple

from .environment import Environment, Txn
from .errors import refuse_negative
from .pagecursor import decode_row, encode_row
from .views.refpkgstate import Head, Step, refpkg_log_chain, refpkg_step

__all__ = ["HistoryPage", "history_page", "decode_history_cursor"]


class HistoryPage(NamedTuple):
    """One page: the package's retained steps in all, the page's (step, state) pairs, the next cursor."""

    total: int
    steps: list[tuple[Step, str]]
    """Each step with its state: ``current``, ``done`` (a rollback reaches it) or ``undone``."""
    next_after: str | None
    """The cursor of the page's last step when more follow; None on the last page."""


def decode_history_cursor(token: str) -> tuple[int, int]:
    """(fold, last seq) of a cursor ``history_page`` handed out; BadCursorError (422) otherwise."""
    return decode_row(token, tuple[int, int])


def history_page(
    txn: Txn, environment: Environment, name: str, head: Head, current: Step, *,
    offset: int = 0, limit: int = 100, after: tuple[int, int] | None = None,
) -> HistoryPage:
    """Up to ``limit`` steps of package ``name`` (``head``, ``current`` read in ``txn``), from ``offset``
    or after cursor ``after`` (then ``offset`` is ignored).

    Only the page's steps are read whole (each carries the package's file table); those before
    it are walked for their links alone, and the walk stops one step past the page. A negative
    ``offset`` or ``limit`` is InvalidInputError.
    """
    refuse_negative("offset", offset)
    refuse_negative("limit", limit)
    fold, last = after if after is not None else (current.seq, None)
    listed: Iterator[tuple[int, str]] = _listing(txn, environment, name, head, current.seq, fold)
    if last is not None:
        cursor = _key(last, fold)
        listed = (entry for entry in listed if _key(entry[0], fold) > cursor)
    else:
        listed = islice(listed, offset, None)
    window = list(islice(listed, limit + 1))
    steps = [(current if seq == current.seq else refpkg_step(txn, environment, name, seq), state)
             for seq, state in window[:limit]]
    more = len(window) > limit
    total = current.depth + 1 + len(head.redo)
    return HistoryPage(total, steps, encode_row((fold, steps[-1][0].seq)) if more else None)


def _key(seq: int, fold: int) -> tuple[int, int]:
    """The listing's sort key of ``seq`` when folded at ``fold``: at or below it newest first, above it oldest first."""
    return (0, -seq) if seq <= fold else (1, seq)


def _listing(
    txn: Txn, environment: Environment, name: str, head: Head, current: int, fold: int,
) -> Iterator[tuple[int, str]]:
    """(seq, state) of every retained step in ``_key`` order for ``fold``, walking the chain lazily."""
    undone = list(reversed(head.redo))  # the next redo first: ascending seqs, all above the current step
    for seq in reversed(undone):
        if seq <= fold:  # a rollback since the fold: these were done then, they list among them
            yield seq, "undone"
    above: list[int] = []  # steps done since the fold (an update or rollforward), newest first
    for link in refpkg_log_chain(txn, environment, name, current):
        state = "current" if link.seq == current else "done"
        if link.seq > fold:
            above.append(link.seq)
            continue
        yield link.seq, state
    for seq in reversed(above):
        yield seq, "current" if seq == current else "done"
    for seq in undone:
        if seq > fold:
            yield seq, "undone"
