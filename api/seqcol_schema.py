"""The seqcol JSON schema this server publishes in ``/seqcol/service-info`` (GA4GH seqcol 1.0).

Inherent attributes are ``names`` and ``sequences`` (``lengths`` left the inherent set in the
2024-10-02 ADR); ``sorted_name_length_pairs`` is transient: it exists at level 1 only and is not
served by ``/attribute``. These are exactly the attributes ``rgstore.seqcol`` computes.
"""

from __future__ import annotations

from typing import Any

from rgstore.seqcol import MAX_LENGTH

__all__ = ["SEQCOL_SCHEMA", "LEVEL2_ATTRIBUTES", "TRANSIENT", "LEVEL1_ATTRIBUTES", "POSTED_COLLECTION"]

LEVEL2_ATTRIBUTES = ("names", "lengths", "sequences", "name_length_pairs", "sorted_sequences")
"""Attributes with a level-2 value (collection level 2, ``/attribute``, comparison)."""
TRANSIENT = ("sorted_name_length_pairs",)
LEVEL1_ATTRIBUTES = (*LEVEL2_ATTRIBUTES, *TRANSIENT)

_PAIR: dict[str, Any] = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "length": {"type": "integer", "minimum": 0}},
    "required": ["name", "length"],
}

SEQCOL_SCHEMA: dict[str, Any] = {
    "description": "A collection of biological sequences.",
    "type": "object",
    "properties": {
        "names": {
            "type": "array", "collated": True,
            "description": "Human-readable labels of each sequence (chromosome names).",
            "items": {"type": "string"},
        },
        "lengths": {
            "type": "array", "collated": True,
            "description": "Number of elements, such as nucleotides or amino acids, in each sequence.",
            "items": {"type": "integer", "minimum": 0},
        },
        "sequences": {
            "type": "array", "collated": True,
            "description": "Refget sequences v2 identifiers (SQ.-prefixed) of the sequences.",
            "items": {"type": "string"},
        },
        "name_length_pairs": {
            "type": "array", "collated": True,
            "description": "The name and length of each sequence, in collection order.",
            "items": _PAIR,
        },
        "sorted_name_length_pairs": {
            "type": "array", "collated": False,
            "description": "Digests of the canonical name-length pairs, sorted: the coordinate system.",
            "items": {"type": "string"},
        },
        "sorted_sequences": {
            "type": "array", "collated": False,
            "description": "The sequence identifiers, sorted.",
            "items": {"type": "string"},
        },
    },
    "required": ["names", "lengths", "sequences"],
    "ga4gh": {"inherent": ["names", "sequences"], "transient": list(TRANSIENT), "passthru": []},
}


def _posted_attribute(name: str) -> dict[str, Any]:
    """One schema attribute as a posted array: the seqcol keywords (``collated``) left out, lengths capped."""
    attribute = {k: v for k, v in SEQCOL_SCHEMA["properties"][name].items() if k != "collated"}
    if name == "lengths":
        attribute["items"] = {**attribute["items"], "maximum": MAX_LENGTH}
    return attribute


POSTED_COLLECTION: dict[str, Any] = {
    "title": "Collection",
    "description": "A level-2 sequence collection: an object of arrays, as `/seqcol/collection/{digest}` answers. "
                   "Attributes may be missing or of unequal lengths (the comparison counts them); one named here "
                   "must hold the elements given (else 422); any other array may hold anything. `digests.b` is "
                   "its level-0 digest when `names`, `lengths` and `sequences` are all given and equally long, "
                   "else null.",
    "type": "object",
    "properties": {name: _posted_attribute(name) for name in LEVEL1_ATTRIBUTES},
    "additionalProperties": {"type": "array", "items": {}},
    "examples": [{"names": ["chr1", "chr2"], "lengths": [10, 8],
                  "sequences": ["SQ.5qtCMY5Xfy7qDQObgJp-F4dWcXwvTij7", "SQ.4Iwu-WAjggJ3690tEYrH-7_1Ju6-5bCy"]}],
}
"""The body ``POST /seqcol/comparison/{digest1}`` takes, for OpenAPI only: ``rgstore.seqcol.posted_collection``
checks it at run time (the route reads the raw body to count its values before parsing it)."""
