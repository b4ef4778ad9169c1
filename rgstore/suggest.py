"""Close matches for a mistyped name: the "did you mean" hint of a not-found message.

Only the failure path calls this, so a miss costs nothing on a hit. Fuzzy matching
(difflib) is bounded to ``FUZZY_LIMIT`` candidates (difflib takes 8-55 ms over 1,000 names,
~0.8 s over 50,000): from a larger pool, the ones sharing the longest start plus end with the
name (a typo keeps the rest of the name; ranking 20,000 names costs ~30 ms), so the close name
is found wherever it sorts. The cheap checks (another case, the UCSC ``chr`` prefix added or
dropped) cover any number of names.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from itertools import islice
from typing import Final

__all__ = ["FUZZY_LIMIT", "SCAN_LIMIT", "close_names", "did_you_mean", "phrase"]

FUZZY_LIMIT: Final = 1000
SCAN_LIMIT: Final = 20000  # names a caller reads from a view for one hint (~20 ms); a miss stays cheap


def close_names(name: str, candidates: Iterable[str], *, limit: int = 3) -> list[str]:
    """Up to ``limit`` candidates a user most likely meant by ``name`` (best first); [] if none is close."""
    pool = [c for c in candidates if c != name]
    if not pool:
        return []
    folded = name.casefold()
    # Naming conventions first: Ensembl's "1" for UCSC's "chr1" (and back) is no typo difflib would find.
    swapped = {folded[3:]} if folded.startswith("chr") else {"chr" + folded}
    if folded in ("chrm", "chrmt", "mt", "m"):
        swapped |= {"chrm", "mt", "m", "chrmt"} - {folded}
    exact = [c for c in pool if c.casefold() == folded or c.casefold() in swapped]
    if exact:
        return exact[:limit]
    import difflib  # ~0.5 ms of imports that only a miss should pay

    if len(pool) > FUZZY_LIMIT:
        # Not the first names in the pool's order: in a store of 10,000 packages that left every
        # name sorting after the thousandth without a hint.
        pool = heapq.nlargest(FUZZY_LIMIT, islice(pool, SCAN_LIMIT), key=_shared_ends(folded))
    fuzzy = difflib.get_close_matches(name, pool, n=limit, cutoff=0.75)
    return fuzzy


def _shared_ends(folded: str) -> Callable[[str], int]:
    """Key: how many leading plus trailing characters a candidate shares with ``folded``, ignoring case."""
    backwards = folded[::-1]

    def shared(candidate: str) -> int:
        other = candidate.casefold()
        count = 0
        for mine, theirs in zip(folded, other):
            if mine != theirs:
                break
            count += 1
        for mine, theirs in zip(backwards, reversed(other)):
            if mine != theirs:
                break
            count += 1
        return count

    return shared


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """``"did you mean 'x'?"`` (or ``'x' or 'y'``) for a not-found message, or ``""`` when nothing is close."""
    return phrase(close_names(name, candidates, limit=2))


def phrase(found: list[str]) -> str:
    """``"did you mean 'x' or 'y'?"`` for names already chosen; ``""`` for none."""
    return "did you mean " + " or ".join(repr(f) for f in found[:2]) + "?" if found else ""
