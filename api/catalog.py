"""An in-memory index over the genome view: seqcol list filters, attribute lookups, MD5 ids, circularity.

The genome view answers "genome by digest" and "genomes holding sequence S"; seqcol also needs
"collections whose level-1 ``attr`` digest is D" and refget needs "sequence with MD5 M". This
index answers those from a snapshot of the view, tagged with the log head it reflects. A request
brings it up to date by reading the log records since that head: only when one of them is on a
``genome:`` stream is the snapshot rebuilt from the view (cache touches and alias changes, the
common events, cost one cheap scan and no rebuild). It also keeps each genome's catalogue fields
(``GenomeSummary``), so listing and searching genomes decode no genome record: a record holds
every sequence's name, length, digest and MD5, megabytes for a big assembly.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Literal

import msgspec

from rgstore import seqcol
from rgstore.checkpoints import rebuild_count
from rgstore.codec import decode_envelope, unframe
from rgstore.environment import Txn
from rgstore.errors import NotFoundError
from rgstore.store import Store
from rgstore.views.genomes import GenomeRecord, all_genomes, genome_record

from .seqcol_schema import LEVEL1_ATTRIBUTES, LEVEL2_ATTRIBUTES
from .wire import json_bytes

__all__ = ["GenomeCatalog", "CatalogSnapshot", "CollectionCache", "Form", "GenomeSummary", "level2", "REBUILD_GAP"]

REBUILD_GAP = 5_000
"""Past this many new log records, rebuilding outright is cheaper than scanning them."""

_GENOME_STREAM = "genome:"


class GenomeSummary(msgspec.Struct, frozen=True, kw_only=True):
    """The fields genome listings show and search, without the per-sequence arrays."""

    digest: str
    description: str
    species: str
    n_sequences: int
    total_length: int
    added_at: datetime | None

    @classmethod
    def of(cls, record: GenomeRecord) -> GenomeSummary:
        """The summary of a full record."""
        return cls(digest=record.digest, description=record.description, species=record.species,
                   n_sequences=len(record.names), total_length=sum(record.lengths), added_at=record.added_at)


class CatalogSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """The genome view's genomes as of log head ``head``."""

    head: int
    rebuilds: int = 0
    """The store's rebuild count when built: a rebuild may change the views without moving the head."""
    digests: list[str]
    """Every genome digest, sorted."""
    known: frozenset[str]
    by_attribute: dict[str, dict[str, list[str]]]
    """level-1 attribute -> attribute digest -> genome digests (sorted)."""
    md5: dict[str, str]
    """lower-case MD5 -> bare sha512t24u of every sequence in some genome."""
    circular: frozenset[str]
    """Bare sha512t24u of every sequence some genome recorded as circular."""
    summaries: dict[str, GenomeSummary] = {}
    """Digest -> catalogue fields of every genome."""


_EMPTY = CatalogSnapshot(head=-1, digests=[], known=frozenset(), by_attribute={}, md5={}, circular=frozenset())


class GenomeCatalog:
    """The per-worker index; ``snapshot(txn)`` returns one consistent with ``txn``'s head or newer."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._snapshot = _EMPTY
        self._lock = threading.Lock()
        self.builds = 0
        """Snapshots built from the view (each decodes every genome record once)."""
        self.record_reads = 0
        """Genome records ``summaries`` decoded because the snapshot was newer than the caller's txn."""

    def snapshot(self, txn: Txn) -> CatalogSnapshot:
        """The index for ``txn`` (refreshed from the log and view if genomes changed since)."""
        head, _ = self.store.log.head(txn)
        rebuilds = rebuild_count(self.store.log, txn)
        snap = self._snapshot
        if snap.head >= head and snap.rebuilds >= rebuilds:
            return snap
        with self._lock:
            snap = self._snapshot
            if snap.head >= head and snap.rebuilds >= rebuilds:
                return snap
            if (snap.head < 0 or snap.rebuilds != rebuilds or head - snap.head > REBUILD_GAP
                    or self._genomes_changed(txn, snap.head, head)):
                snap = self._build(txn, head, rebuilds)
            else:
                snap = msgspec.structs.replace(snap, head=head)
            self._snapshot = snap
            return snap

    def summaries(self, txn: Txn, digests: Iterable[str]) -> list[GenomeSummary]:
        """The summaries of those ``digests`` that are genomes in ``txn``'s view, in the given order.

        From the snapshot when it reflects exactly ``txn``'s head; a snapshot already moved past it
        (another request saw newer writes) may disagree, so then each record is read from ``txn``.
        """
        snap = self.snapshot(txn)
        if snap.head == self.store.log.head(txn)[0] and snap.rebuilds == rebuild_count(self.store.log, txn):
            return [snap.summaries[d] for d in digests if d in snap.summaries]
        out = []
        for d in digests:
            record = genome_record(txn, self.store.environment, d)
            self.record_reads += 1
            if record is not None:
                out.append(GenomeSummary.of(record))
        return out

    def _genomes_changed(self, txn: Txn, after: int, upto: int) -> bool:
        for seq, record in self.store.log.records(txn, after=after, upto=upto):
            if decode_envelope(unframe(record, seq)[1]).stream.startswith(_GENOME_STREAM):
                return True
        return False

    def _build(self, txn: Txn, head: int, rebuilds: int) -> CatalogSnapshot:
        digests: list[str] = []
        by_attribute: dict[str, dict[str, list[str]]] = {}
        md5: dict[str, str] = {}
        circular: set[str] = set()
        summaries: dict[str, GenomeSummary] = {}
        self.builds += 1
        for record in all_genomes(txn, self.store.environment):  # ordered by digest
            digests.append(record.digest)
            summaries[record.digest] = GenomeSummary.of(record)
            for attr, value in record.level1.items():
                by_attribute.setdefault(attr, {}).setdefault(value, []).append(record.digest)
            for sq, checksum in zip(record.sequences, record.md5s):
                md5[checksum.lower()] = sq.removeprefix("SQ.")
            wraps = set(record.circular)
            circular.update(sq.removeprefix("SQ.") for name, sq in zip(record.names, record.sequences) if name in wraps)
        return CatalogSnapshot(head=head, rebuilds=rebuilds, digests=digests, known=frozenset(digests), by_attribute=by_attribute,
                               md5=md5, circular=frozenset(circular), summaries=summaries)


Form = Literal["level1", "level2", "core"]
"""A collection body: level-1 digests, level-2 arrays, or just names/lengths/sequences (refgenie)."""


def level2(record: GenomeRecord) -> dict[str, list[Any]]:
    """The non-transient level-2 attributes of a genome, in schema order."""
    values = seqcol.comparable_level2(record.names, record.lengths, record.sequences)
    return {attr: values[attr] for attr in LEVEL2_ATTRIBUTES}


def _render(record: GenomeRecord, form: Form) -> bytes:
    if form == "level2":
        return json_bytes(level2(record))
    if form == "level1":
        return json_bytes({a: record.level1[a] for a in LEVEL1_ATTRIBUTES if a in record.level1})
    return json_bytes({"names": record.names, "lengths": record.lengths, "sequences": record.sequences})


class CollectionCache:
    """Encoded collection bodies by (digest, form), bounded and shared by request threads.

    A digest's bodies never change (it is a content digest); only whether the genome still
    exists does, and that is checked against the catalog on every call.
    """

    SIZE = 512

    def __init__(self, store: Store) -> None:
        self.store = store
        self.catalog: GenomeCatalog = store.service("api.catalog", GenomeCatalog)
        self._items: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def body(self, txn: Txn, digest: str, form: Form) -> bytes:
        """The JSON of collection ``digest`` in ``form``; NotFoundError if no such genome."""
        if digest not in self.catalog.snapshot(txn).known:
            raise NotFoundError(f"no sequence collection {digest!r} in this store")
        key = (digest, form)
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
                return hit
        record = genome_record(txn, self.store.environment, digest)
        if record is None:
            raise NotFoundError(f"no sequence collection {digest!r} in this store")
        body = _render(record, form)
        with self._lock:
            self._items[key] = body
            while len(self._items) > self.SIZE:
                self._items.popitem(last=False)
        return body
