"""Keyset paging of the offset-paged listings: the ``after`` parameter and the ``X-Rgstore-Next-After`` header.

Every answer of such a listing that has a page after it carries ``X-Rgstore-Next-After``: the
cursor of its last entry. Passing it back as ``after`` (instead of ``offset``/``page``) starts the
next page at the first entry above it, so a walk sees every entry that existed throughout exactly
once while the primary writes (an offset walk repeats or misses one per insert or removal before
it). Bodies keep their shapes: with ``after`` their ``offset``/``page`` is 0.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query, Request

from rgstore.errors import InvalidInputError
from rgstore.pagecursor import MAX_CURSOR_CHARS

__all__ = ["NEXT_AFTER", "After", "next_after", "only_one_start", "paged_responses"]

NEXT_AFTER = "X-Rgstore-Next-After"

After = Annotated[str | None, Query(
    max_length=MAX_CURSOR_CHARS, pattern=r"^[A-Za-z0-9_-]+$",
    description=f"Keyset paging: start after this cursor (the previous page's `{NEXT_AFTER}` header), not at "
                "`offset`/`page`. Unlike an offset, it neither repeats nor misses entries while the store changes.",
)]


class _BothStarts(InvalidInputError):
    http_status = 422


def only_one_start(request: Request, after: str | None, *positional: str) -> None:
    """422 when ``after`` comes with a positional start (``offset``, ``page``): a page starts at one or the other."""
    given = [name for name in positional if name in request.query_params]
    if after is not None and given:
        raise _BothStarts(f"after: give either after or {given[0]}, not both (after replaces {given[0]})")


def next_after(token: str | None) -> dict[str, str] | None:
    """The response headers that hand out the next page's cursor (none on the last page)."""
    return {NEXT_AFTER: token} if token is not None else None


def paged_responses(extra: dict[int | str, dict[str, Any]] | None = None) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a keyset-pageable listing: 200 documents the header, plus ``extra``."""
    return {200: {"headers": {NEXT_AFTER: {
        "description": "Cursor of this page's last entry, for `after=`; absent on the last page.",
        "schema": {"type": "string"}}}}, **(extra or {})}
