"""GA4GH seqcol 1.0 digests and comparison, computed with hashlib from level-2 arrays.

This is rgstore's own implementation, independent of gtars: ingest uses it to check the
collection digest gtars reports, and ``genome compare`` uses it on the genome view. Inherent
attributes are ``names`` and ``sequences`` (``lengths`` left the inherent set in 2024-10).
A collection posted as JSON is checked against the schema's element types before it is compared.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Any

from .errors import MalformedCollectionError

__all__ = ["canonical", "comparable_level2", "compare", "compare_posted", "level1", "posted_collection",
           "posted_digest", "sha512t24u", "Sha512t24u", "top_level_digest"]

INHERENT = ("names", "sequences")
MAX_LENGTH = 2**53 - 1
"""Largest length a posted collection may give: JCS writes numbers as IEEE doubles, exact up to here."""


def sha512t24u(data: bytes | str) -> str:
    """base64url(sha512(data)[:24]): the GA4GH digest, 32 characters, no padding."""
    raw = data.encode() if isinstance(data, str) else data
    return base64.urlsafe_b64encode(hashlib.sha512(raw).digest()[:24]).decode()


class Sha512t24u:
    """``sha512t24u`` of data given in pieces (a streamed region's residues): ``update`` then ``digest``."""

    def __init__(self) -> None:
        self._sha = hashlib.sha512()

    def update(self, data: bytes | str) -> None:
        self._sha.update(data.encode() if isinstance(data, str) else data)

    def digest(self) -> str:
        """The 32-character digest of everything given so far."""
        return base64.urlsafe_b64encode(self._sha.digest()[:24]).decode()


def canonical(value: Any) -> bytes:
    """RFC-8785 JCS for seqcol values (ASCII keys, integers, strings): sorted keys, no spaces."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False, sort_keys=True).encode()


def level1(names: Sequence[str], lengths: Sequence[int], sequences: Sequence[str]) -> dict[str, str]:
    """Level-1 digests of every attribute, ancillary ones included (sequences keep ``SQ.``)."""
    pairs = [{"length": length, "name": name} for name, length in zip(names, lengths)]
    return {
        "names": sha512t24u(canonical(list(names))),
        "lengths": sha512t24u(canonical(list(lengths))),
        "sequences": sha512t24u(canonical(list(sequences))),
        "name_length_pairs": sha512t24u(canonical(pairs)),
        # transient: digest each pair, sort the digests (not the pair strings), digest the list
        "sorted_name_length_pairs": sha512t24u(canonical(sorted(sha512t24u(canonical(p)) for p in pairs))),
        "sorted_sequences": sha512t24u(canonical(sorted(sequences))),
    }


def top_level_digest(level1_digests: dict[str, str]) -> str:
    """Level 0: the digest of the canonical object of the inherent attributes' level-1 digests."""
    return sha512t24u(canonical({k: level1_digests[k] for k in INHERENT}))


def comparable_level2(names: Sequence[str], lengths: Sequence[int], sequences: Sequence[str]) -> dict[str, list[Any]]:
    """The level-2 arrays the comparison function looks at (non-transient attributes)."""
    return {
        "lengths": list(lengths),
        "name_length_pairs": [{"length": length, "name": name} for name, length in zip(names, lengths)],
        "names": list(names),
        "sequences": list(sequences),
        "sorted_sequences": sorted(sequences),
    }


def _element_key(x: Any) -> Any:
    """A hashable key equal for two elements exactly when their canonical forms are equal.

    A str or (exact) int is its own key and a name_length_pairs dict of str and int a tuple, none
    of which equals another's canonical bytes; anything else is canonical bytes (which raises on
    NaN). One ``json.dumps`` per element made comparing two 50k-contig collections take 1.2 s.
    """
    kind = type(x)
    if kind is str or kind is int:
        return x
    if kind is dict and len(x) == 2:
        length, name = x.get("length"), x.get("name")
        if type(length) is int and type(name) is str:
            return (length, name)
    return canonical(x)


def _keys(values: list[Any]) -> list[Any]:
    if all(type(x) is str for x in values) or all(type(x) is int for x in values):
        return values  # the common arrays (names, lengths, sequences): their own keys
    return [_element_key(x) for x in values]


def _compare_arrays(a: list[Any], b: list[Any]) -> tuple[int, bool | None]:
    # Elements are compared by their canonical form (via _element_key) so dicts (name_length_pairs) hash.
    ka, kb = _keys(a), _keys(b)
    sa, sb = set(ka), set(kb)
    a_filtered = [x for x in ka if x in sb]
    b_filtered = [x for x in kb if x in sa]
    overlap = min(len(a_filtered), len(b_filtered))
    if len(a_filtered) + len(b_filtered) < 1 or not (len(a_filtered) == len(b_filtered) == overlap):
        # Order is undefined with no overlap or with unbalanced duplicates (the reference rule).
        return overlap, None
    return overlap, a_filtered == b_filtered


def compare(
    a_digest: str | None, a: dict[str, list[Any]], b_digest: str | None, b: dict[str, list[Any]]
) -> dict[str, Any]:
    """The seqcol comparison object of two level-2 collections (spec section 3.4 semantics)."""
    keys = sorted(set(a) | set(b))
    result: dict[str, Any] = {
        "digests": {"a": a_digest, "b": b_digest},
        "attributes": {
            "a_only": [k for k in keys if k in a and k not in b],
            "b_only": [k for k in keys if k in b and k not in a],
            "a_and_b": [k for k in keys if k in a and k in b],
        },
        "array_elements": {
            "a_count": {k: len(a[k]) for k in sorted(a)},
            "b_count": {k: len(b[k]) for k in sorted(b)},
            "a_and_b_count": {},
            "a_and_b_same_order": {},
        },
    }
    for k in result["attributes"]["a_and_b"]:
        count, order = _compare_arrays(a[k], b[k])
        result["array_elements"]["a_and_b_count"][k] = count
        result["array_elements"]["a_and_b_same_order"][k] = order
    return result


def _shown(value: Any) -> str:
    """A JSON value as an error message names it: scalars as written, containers by kind."""
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    text = json.dumps(value, ensure_ascii=True)
    return text if len(text) <= 40 else f"{text[:30]}…{text[-6:]}"


def _length(value: Any) -> int | None:
    """``value`` as a sequence length, or None when it is no integer in 0..MAX_LENGTH (1.0 is 1, as JCS writes it)."""
    if type(value) is float and value.is_integer():
        value = int(value)
    return value if type(value) is int and 0 <= value <= MAX_LENGTH else None


def _string(value: Any) -> str | None:
    """``value`` when it is a string JCS can write (no lone surrogate), else None."""
    if type(value) is not str:
        return None
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            return None
    return value


def _pair(value: Any) -> dict[str, Any] | None:
    """``value`` when it is a name_length_pairs element (a string name and a length), else None."""
    if type(value) is not dict:
        return None
    name, length = _string(value.get("name")), _length(value.get("length"))
    return None if name is None or length is None else {**value, "name": name, "length": length}


_LENGTHS = "a non-negative integer (at most 2^53 - 1)"
_ELEMENTS: dict[str, tuple[Callable[[Any], Any], str]] = {
    "names": (_string, "a Unicode string"),
    "lengths": (_length, _LENGTHS),
    "sequences": (_string, "a Unicode string"),
    "name_length_pairs": (_pair, "an object of a Unicode string name and a non-negative integer length"),
    "sorted_sequences": (_string, "a Unicode string"),
    "sorted_name_length_pairs": (_string, "a Unicode string"),
}
"""The element each schema attribute holds; any other attribute may hold any JSON values."""


def _checked(attribute: str, values: list[Any]) -> list[Any]:
    """``values`` with each element checked (and lengths made integers) when ``attribute`` is in the schema."""
    if attribute not in _ELEMENTS:
        return values
    check, want = _ELEMENTS[attribute]
    # The common arrays pass whole, checked in C; only a suspect one is walked element by element.
    if check is _length and all(type(x) is int for x in values) and min(values, default=0) >= 0 \
            and max(values, default=0) <= MAX_LENGTH:
        return values
    if check is _string and all(type(x) is str and x.isascii() for x in values):
        return values
    out = []
    for i, value in enumerate(values):
        good = check(value)
        if good is None:
            raise MalformedCollectionError(f"{attribute}[{i}] of the posted collection is {_shown(value)}, not {want}")
        out.append(good)
    return out


def posted_collection(value: Any) -> dict[str, list[Any]]:
    """``value`` (parsed JSON) as a level-2 collection: an object of arrays whose schema attributes hold the
    elements the seqcol schema gives them; MalformedCollectionError (422) otherwise.

    Attributes may be missing or of unequal lengths (the comparison still counts them) and other
    attributes may hold anything. An integral float length (``8.0``) becomes the integer JCS writes.
    """
    if not isinstance(value, dict):
        raise MalformedCollectionError(f"the posted collection is {_shown(value)}, not an object of arrays")
    collection = {}
    for attribute, values in value.items():
        if not isinstance(values, list):
            raise MalformedCollectionError(
                f"attribute {_shown(attribute)} of the posted collection is {_shown(values)}, not an array")
        collection[attribute] = _checked(attribute, values)
    return collection


def posted_digest(collection: dict[str, list[Any]]) -> str | None:
    """The level-0 digest of a checked posted collection, or None unless it has collated names, lengths, sequences.

    The spec lets ``digests.b`` be that digest or null, never another string (seqcol 1.0 section 3.3).
    """
    names, lengths, sequences = (collection.get(k) for k in ("names", "lengths", "sequences"))
    if names is None or lengths is None or sequences is None or not len(names) == len(lengths) == len(sequences):
        return None
    # Only the inherent attributes make the digest: skip level1()'s per-pair ancillary digests.
    return top_level_digest({k: sha512t24u(canonical(collection[k])) for k in INHERENT})


def compare_posted(a_digest: str, a: dict[str, list[Any]], posted: Any) -> dict[str, Any]:
    """The comparison of stored level-2 collection ``a`` with a posted one (parsed JSON), checked first.

    MalformedCollectionError (422) when ``posted`` is no level-2 collection (see ``posted_collection``).
    """
    b = posted_collection(posted)
    try:
        return compare(a_digest, a, posted_digest(b), b)
    except (TypeError, ValueError) as exc:  # e.g. NaN inside another attribute, from a caller that allowed it
        raise MalformedCollectionError(f"cannot compare the posted collection: {exc}") from None
