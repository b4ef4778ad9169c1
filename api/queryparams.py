"""One rule for every route's declared query parameters: a blank or repeated value is a 422 naming the parameter.

``?namespace=`` (a client templating ``namespace=${NS}`` with NS unset) would otherwise mean
whatever each route happened to do with ``""``: an exact filter matching nothing, a filter left
out (every collection), or a log id no server has. And ``?limit=1&limit=2`` would silently take the
last value. Both are refused before the route runs, as the CLI refuses an empty option. Only
``EMPTY_MEANS_ALL`` parameters take an empty value (an empty search matches everything); routes
that parse their own parameters (refget's ``start``/``end``, which refget answers with 400) are
not covered, and parameters no route declares are ignored (cache-busters, tracking tags).
"""

from __future__ import annotations

from fastapi import Request
from fastapi.routing import APIRoute

from rgstore.errors import InvalidInputError

__all__ = ["EMPTY_MEANS_ALL", "QueryValueError", "checked_query_values"]

EMPTY_MEANS_ALL = frozenset({"q"})
"""Declared parameters a blank value has an obvious meaning for: ``q`` is a substring, and every genome holds ``""``."""


class QueryValueError(InvalidInputError):
    """A declared query parameter given blank (empty or only whitespace), or more than once: 422."""

    http_status = 422


async def checked_query_values(request: Request) -> None:
    """QueryValueError for the first declared query parameter given blank (unless ``EMPTY_MEANS_ALL``) or twice."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not request.url.query:
        return
    query = request.query_params
    for field in route.dependant.query_params:
        name = field.alias
        values = query.getlist(name)
        # Every declared parameter takes one value (a list one would need exempting here): a second would win.
        if len(values) > 1:
            raise QueryValueError(f"{name}: given {len(values)} times; give it once")
        if values and not values[0].strip() and name not in EMPTY_MEANS_ALL:
            why = "is empty" if not values[0] else f"is only whitespace ({values[0]!r})"
            raise QueryValueError(f"{name}: {why}; give a value or leave {name} out")
