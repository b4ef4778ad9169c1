"""The seqcol JSON schema this server publishes in ``/seqcol/service-info`` (GA4GH seqcol 1.0).

Inherent attributes are ``names`` and ``sequences`` (``lengths`` left the inherent set in the
2024-10-02 ADR); ``sorted_name_length_pairs`` is transient: it exists at level 1 only and is not
served by ``/attribute``. These are exactly the attributes ``rgstore.seqcol`` computes.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SEQCOL_SCHEMA", "LEVEL2_ATTRIBUTES", "TRANSIENT", "LEVEL1_ATTRIBUTES"]

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
