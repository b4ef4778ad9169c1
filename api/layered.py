"""Immutable string-keyed maps and sets whose small updates share storage with the version they came from.

The genome catalog keeps an MD5 -> sequence map and a set of circular sequences over every genome
of a store: millions of keys for a few dozen big assemblies. Each log head gets its own snapshot
(requests holding an older one keep reading it), so a genome event must not copy the whole map,
nor edit it in place. ``LayeredMap.updated`` stacks the changes as a new small dict on top of the
unchanged ones; a layer is merged into the one below once that one is no more than twice its size,
so a map keeps O(log n) layers and each key is copied O(log n) times over its life.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping, Set
from typing import Generic, TypeVar, cast

__all__ = ["GONE", "LayeredMap", "LayeredSet"]

V = TypeVar("V")


class _Gone:
    __slots__ = ()

    def __repr__(self) -> str:
        return "GONE"


GONE = _Gone()
"""The value of a change that removes its key."""

_MISSING = object()


class LayeredMap(Mapping[str, V], Generic[V]):
    """An immutable mapping; ``updated(changes)`` returns a new one sharing every unchanged layer."""

    __slots__ = ("_layers", "_len")

    def __init__(self, base: dict[str, V] | None = None) -> None:
        """A map holding ``base`` (taken over, not copied: the caller must not change it again)."""
        self._layers: tuple[dict[str, object], ...] = (cast("dict[str, object]", base),) if base else ()
        self._len = len(base) if base else 0

    def _find(self, key: str) -> object:
        for layer in reversed(self._layers):
            value = layer.get(key, _MISSING)
            if value is not _MISSING:
                return value
        return _MISSING

    def __getitem__(self, key: str) -> V:
        value = self._find(key)
        if value is _MISSING or value is GONE:
            raise KeyError(key)
        return cast(V, value)

    def get(self, key: str, default: V | None = None) -> V | None:  # type: ignore[override]
        """The value of ``key``, or ``default``."""
        value = self._find(key)
        return default if value is _MISSING or value is GONE else cast(V, value)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        value = self._find(key)
        return value is not _MISSING and value is not GONE

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[str]:
        return iter(self._flat())

    def __repr__(self) -> str:
        return f"LayeredMap({self._flat()!r})"

    @property
    def depth(self) -> int:
        """How many layers a lookup may visit."""
        return len(self._layers)

    def lookup(self, keys: Iterable[str]) -> dict[str, V]:
        """Those of ``keys`` this map holds, with their values (one pass per layer: cheaper than ``get`` per key)."""
        found: dict[str, object] = {}
        left = keys if isinstance(keys, (set, frozenset)) else set(keys)
        for layer in reversed(self._layers):
            if not left:
                break
            hits = {k: v for k in left if (v := layer.get(k, _MISSING)) is not _MISSING}
            if hits:
                found.update(hits)
                left = left.difference(hits)
        return {k: v for k, v in found.items() if v is not GONE}  # type: ignore[misc]

    def _flat(self) -> dict[str, V]:
        out: dict[str, object] = {}
        for layer in self._layers:
            out.update(layer)
        return {k: cast(V, v) for k, v in out.items() if v is not GONE}

    def updated(self, changes: Mapping[str, V | _Gone], *, held: Collection[str] | None = None) -> LayeredMap[V]:
        """This map with ``changes`` applied (``GONE`` removes a key); this one is left as it was.

        ``held``, when the caller knows it: a set holding exactly those keys of ``changes`` this map
        holds (other keys may be in it too); it spares a lookup per key in a big map.
        """
        if held is None:
            held = self.lookup(changes.keys()).keys()
        top: dict[str, object] = {k: v for k, v in changes.items() if v is not GONE or k in held}
        size = self._len + sum(1 for k, v in top.items() if v is not GONE and k not in held) - sum(
            1 for v in top.values() if v is GONE)
        if not top:
            return self
        layers = [*self._layers, top]
        while len(layers) >= 2 and len(layers[-2]) <= 2 * len(layers[-1]):
            merged = dict(layers[-2])
            merged.update(layers.pop())
            if len(layers) == 1:  # the bottom layer: nothing below it for a removal to hide
                merged = {k: v for k, v in merged.items() if v is not GONE}
            layers[-1] = merged
        out: LayeredMap[V] = LayeredMap()
        out._layers = tuple(layers)
        out._len = size
        return out


class LayeredSet(Set[str]):
    """An immutable set of strings over a ``LayeredMap``; ``updated(add, remove)`` shares storage likewise."""

    __slots__ = ("_map",)

    def __init__(self, items: Iterable[str] = ()) -> None:
        """A set of ``items``."""
        self._map: LayeredMap[bool] = LayeredMap(dict.fromkeys(items, True))

    def __contains__(self, item: object) -> bool:
        return item in self._map

    def __iter__(self) -> Iterator[str]:
        return iter(self._map)

    def __len__(self) -> int:
        return len(self._map)

    def having(self, items: Iterable[str]) -> set[str]:
        """Those of ``items`` in this set (one pass per layer)."""
        return set(self._map.lookup(items))

    def __repr__(self) -> str:
        return f"LayeredSet({set(self._map)!r})"

    def updated(self, add: Iterable[str] = (), remove: Iterable[str] = ()) -> LayeredSet:
        """This set with ``add`` added and then ``remove`` removed; this one is left as it was."""
        changes: dict[str, bool | _Gone] = dict.fromkeys(add, True)
        changes.update(dict.fromkeys(remove, GONE))
        out = LayeredSet()
        out._map = self._map.updated(changes)
        return out
