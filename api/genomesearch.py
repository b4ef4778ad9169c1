"""``/v4/genomes?q=``: the genomes a case-insensitive substring is found in, without a seek per genome.

A genome matches when ``q``, lower-cased, is a substring of its digest, description, species or
one of its flat alias names, each lower-cased on its own (a match never spans two fields). The
answer carries how many genomes match (``pagination.total``), so every genome is looked at and
the scan cannot stop at a full page; what keeps it cheap is that each genome's lower-cased
catalogue fields are kept between requests (they change only with its ``GenomeSummary``) and
the aliases come from one walk of the alias view's reverse index, not one seek per genome.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rgstore.environment import Txn
from rgstore.store import Store
from rgstore.views.aliases import collection_alias_keys, split_alias_key

from .catalog import GenomeSummary

__all__ = ["GenomeSearch"]

_SEP = "\x00"
"""Joins a genome's lower-cased fields: a needle without it cannot match across two of them."""


class GenomeSearch:
    """Per-worker memo of lower-cased genome fields and alias names; ``matching`` answers one ``q``."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._fields: dict[str, tuple[GenomeSummary, tuple[str, ...], str]] = {}
        """digest -> (summary, its lower-cased digest/description/species, those joined by ``_SEP``)."""
        self._aliases: dict[bytes, tuple[str, str]] = {}
        """Reverse-index key -> (digest, lower-cased flat alias name); a key's meaning never changes."""

    def _lowered(self, summary: GenomeSummary) -> tuple[GenomeSummary, tuple[str, ...], str]:
        kept = self._fields.get(summary.digest)
        # Snapshots share unchanged summaries, so identity says the genome's fields are the same.
        if kept is not None and kept[0] is summary:
            return kept
        fields = (summary.digest.lower(), summary.description.lower(), summary.species.lower())
        kept = self._fields[summary.digest] = (summary, fields, _SEP.join(fields))
        return kept

    def _alias_hits(self, txn: Txn, needle: str, flat: Callable[[str, str], str]) -> set[str]:
        """Digests one of whose flat alias names, lower-cased, holds ``needle`` (keys split at their first NUL)."""
        keys = collection_alias_keys(txn, self.store.environment)
        if len(self._aliases) > 2 * len(keys) + 1024:  # keys of aliases since removed: start afresh
            self._aliases = {}
        known = self._aliases
        hits = set()
        for key in keys:
            entry = known.get(key)
            if entry is None:
                digest, namespace, name = split_alias_key(key)
                entry = known[key] = (digest, flat(namespace, name).lower())
            if needle in entry[1]:
                hits.add(entry[0])
        return hits

    def matching(
        self, txn: Txn, summaries: Sequence[GenomeSummary], needle: str,
        flat: Callable[[str, str], str], aliases_of: Callable[[str], list[str]],
    ) -> list[str]:
        """Digests of ``summaries``, in their order, whose digest, description, species or a flat alias name
        holds ``needle`` (already lower-case) once lower-cased (each on its own).

        ``flat`` names an alias from (namespace, name); ``aliases_of`` gives one genome's flat
        names for a digest the reverse-index keys cannot name exactly (one holding NUL or non-ASCII).
        """
        if len(self._fields) > 2 * len(summaries) + 1024:  # removed genomes' entries: start afresh
            self._fields = {}
        lowered = [self._lowered(summary) for summary in summaries]
        if _SEP in needle:
            by_field = [s.digest for s, fields, _ in lowered if any(needle in f for f in fields)]
        else:
            by_field = [s.digest for s, _, joined in lowered if needle in joined]
        if len(by_field) == len(lowered):
            return by_field
        matched = set(by_field)
        by_alias = self._alias_hits(txn, needle, flat)
        found = []
        for summary in summaries:
            digest = summary.digest
            if digest in matched:
                found.append(digest)
            elif digest.isascii() and _SEP not in digest:
                if digest in by_alias:
                    found.append(digest)
            elif any(needle in name.lower() for name in aliases_of(digest)):
                found.append(digest)
        return found
