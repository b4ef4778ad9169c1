"""Layered maps and sets: every version answers like a plain dict/set of its own changes, and stays shallow."""

from __future__ import annotations

import random

from rgstore_api.layered import GONE, LayeredMap, LayeredSet


def test_every_version_of_a_layered_map_answers_like_a_dict_of_its_own_changes() -> None:
    rng = random.Random(5)
    versions: list[tuple[LayeredMap[int], dict[str, int]]] = [(LayeredMap({"a": 1, "b": 2}), {"a": 1, "b": 2})]
    for step in range(400):
        current, model = versions[-1]
        changes: dict[str, object] = {}
        for _ in range(rng.choice([1, 1, 3, 20, 200])):
            key = f"k{rng.randint(0, 600)}"
            changes[key] = GONE if rng.random() < 0.4 else step
        nxt = current.updated(changes)  # type: ignore[arg-type]
        expected = dict(model)
        for key, value in changes.items():
            if value is GONE:
                expected.pop(key, None)
            else:
                expected[key] = value  # type: ignore[assignment]
        versions.append((nxt, expected))
        # Lookups visit O(log n) layers however many updates came before.
        assert nxt.depth <= 12
    for version, model in versions:  # older versions were never edited by later updates
        assert dict(version) == model and len(version) == len(model)
        for key in ("a", "b", "k1", "k77", "k600", "nope"):
            assert (key in version) == (key in model) and version.get(key) == model.get(key)


def test_a_layered_set_equals_the_plain_set_after_adds_and_removes() -> None:
    start = LayeredSet(["x", "y"])
    later = start.updated(add=["z", "w"], remove=["x"]).updated(remove=["w", "never"])
    assert later == {"y", "z"} and len(later) == 2 and "x" not in later
    assert start == frozenset({"x", "y"})
