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


NAMES = ("a", "b")
NAMESPACES = ("refgenie", "ucsc")
DIGESTS = ("g" * 32, "h" * 32)
CACHE_KEYS = ("a" * 64, "b" * 64)


def _natural(event: Event, pick: int, ns: str) -> tuple[str, Event]:
    """Put an event on the stream its service would use, with keys from a small vocabulary.

    Services only ever write an alias event to its alias's stream, a refpkg event to its
    package's stream, and so on; a small vocabulary makes events collide on the same streams.
    """
    from msgspec.structs import replace

    from rgstore.views.aliases import alias_stream

    kind = type(event).__name__
    name, digest, key = NAMES[pick], DIGESTS[pick], CACHE_KEYS[pick]
    if kind in ("AliasSet", "AliasRemoved"):
        return alias_stream("collection", ns, name), replace(event, namespace=ns, name=name)  # type: ignore[arg-type]
    if kind in ("SequenceAliasSet", "SequenceAliasRemoved"):
        return alias_stream("sequence", ns, name), replace(event, namespace=ns, name=name)  # type: ignore[arg-type]
    if kind in ("GenomeAdded", "GenomeRemoved", "FhrSet"):
        from rgstore.views.genomes import genome_stream

        return genome_stream(digest), replace(event, digest=digest)  # type: ignore[arg-type]
    if kind.startswith("Refpkg"):
        from rgstore.views.refpkgs import refpkg_stream

        return refpkg_stream(name), replace(event, name=name)  # type: ignore[arg-type]
    if kind.startswith("Cache"):
        return f"cache:{key}", replace(event, key=key)  # type: ignore[arg-type]
    return f"note:{name}", event


def natural_streams() -> list[str]:
    """Every stream ``plausible_event`` can produce (for undo/redo/strip targets)."""
    from rgstore.views.aliases import alias_stream
    from rgstore.views.genomes import genome_stream
    from rgstore.views.refpkgs import refpkg_stream

    return sorted(
        {alias_stream(k, ns, n) for k in ("collection", "sequence") for ns in NAMESPACES for n in NAMES}
        | {genome_stream(d) for d in DIGESTS} | {refpkg_stream(n) for n in NAMES}
        | {f"cache:{k}" for k in CACHE_KEYS} | {f"note:{n}" for n in NAMES}
    )


def plausible_event() -> st.SearchStrategy[tuple[str, Event]]:
    """(stream, event) as a service would append it, or an undo/redo/strip on such a stream."""
    from rgstore.events import CodecDictionaryAdded

    plain = st.one_of([struct_of(c) for c in EVENT_TYPES.values()
                       if c not in ENGINE_FILLED and c is not CodecDictionaryAdded])
    placed = st.tuples(plain, st.integers(0, 1), st.sampled_from(NAMESPACES)).map(lambda t: _natural(*t))
    zipper = st.tuples(st.sampled_from(natural_streams()),
                       st.sampled_from([Undone(), Redone(), HistoryStripped()]))
    return st.one_of(placed, zipper)  # type: ignore[return-value]
