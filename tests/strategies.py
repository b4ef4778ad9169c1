"""Hypothesis strategies for every event type, derived from the Structs' annotations."""

from __future__ import annotations

import typing
from typing import Any, Union

import msgspec
from hypothesis import strategies as st

from rgstore.events import EVENT_TYPES, Event, HistoryStripped, Redone, Undone

_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12)
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=6,
)


def for_type(tp: Any) -> st.SearchStrategy[Any]:
    """A strategy for a field annotation used in rgstore/events.py."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is str:
        return _text
    if tp is int:
        return st.integers(0, 2**40)
    if tp is bool:
        return st.booleans()
    if tp is bytes:
        return st.binary(max_size=64)
    if tp is Any:
        return _json
    if origin is list:
        return st.lists(for_type(args[0]), max_size=4)
    if origin is dict:
        return st.dictionaries(_text, for_type(args[1]), max_size=3)
    if origin is Union or str(origin) == "types.UnionType":
        return st.one_of([for_type(a) for a in args])
    if tp is type(None):
        return st.none()
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return struct_of(tp)
    raise TypeError(f"no strategy for {tp!r}")


def struct_of(cls: type[msgspec.Struct]) -> st.SearchStrategy[Any]:
    """Any instance of a Struct, every field drawn from its annotation."""
    hints = typing.get_type_hints(cls)
    fields = {f: for_type(hints[f]) for f in cls.__struct_fields__}
    return st.builds(cls, **fields)


ENGINE_FILLED = (Undone, Redone, HistoryStripped)
"""Zipper events whose fields the engine fills; tests append them bare."""


def any_event() -> st.SearchStrategy[Event]:
    """Any event of any registered type (zipper events bare, as a command would append them)."""
    plain = [struct_of(cls) for cls in EVENT_TYPES.values() if cls not in ENGINE_FILLED]
    return st.one_of(plain)
