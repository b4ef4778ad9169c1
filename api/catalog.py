"""An in-memory index over the genome view: seqcol list filters, attribute lookups, MD5 ids, circularity.

The genome view answers "genome by digest" and "genomes holding sequence S"; seqcol also needs
"collections whose level-1 ``attr`` digest is D" and refget needs "sequence with MD5 M". This
index answers those from a snapshot of the view, tagged with the log head it reflects. A request
brings it up to date by reading the log records since that head (only their stream and event
type are decoded): cache touches and alias changes, the common events, change nothing; each genome
added or removed is applied on its own (``_Update``): its record is read from the view, the record
it replaces from the log's ``GenomeAdded`` event, and the big maps get a small new layer
(``layered``), so the cost follows the genomes the new events name, not the store. A full rebuild
decodes every record: the first request, after a ``rebuild`` of the views, past ``REBUILD_GAP``
new records (or a quarter of the catalog's MD5s, if more), or when some MD5 names two sequences
(a forged log). It also keeps each genome's catalogue fields (``GenomeSummary``), so listing and
searching genomes decode no genome record: a record holds every sequence's name, length, digest
and MD5, megabytes for a big assembly.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections import Counter, OrderedDict
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Literal

import msgspec

from rgstore import seqcol
from rgstore.checkpoints import rebuild_count
from rgstore.codec import payload_of
from rgstore.environment import Txn
from rgstore.errors import ChainError, NotFoundError
from rgstore.events import GenomeAdded, GenomeRemoved, Redone, Undone
from rgstore.log import undecodable
from rgstore.store import Store
from rgstore.views.genomes import GenomeRecord, all_genomes, genome_record

from .layered import GONE, LayeredMap, LayeredSet
from .seqcol_schema import LEVEL1_ATTRIBUTES, LEVEL2_ATTRIBUTES
from .wire import json_bytes

__all__ = ["GenomeCatalog", "CatalogSnapshot", "CollectionCache", "Form", "GenomeSummary", "level2", "REBUILD_GAP"]

REBUILD_GAP = 5_000
"""Past this many new log records, rebuilding outright is cheaper than scanning them (for a small catalog)."""


def _rebuild_gap(snap: CatalogSnapshot) -> int:
    """How many new records ``snap`` is brought up to date by scanning rather than rebuilt from every genome."""
    # A build decodes every sequence (~2.5 us each), a scan reads a record's head (~3 us): for a catalog
    # of big assemblies a fixed 5,000 made a follower's larger pull cost ~1 s (8 x 50k contigs) instead of ~20 ms.
    return max(REBUILD_GAP, len(snap.md5) // 4)

_GENOME_STREAM = "genome:"
_RECORD_EVENTS = frozenset({GenomeAdded.__struct_config__.tag, GenomeRemoved.__struct_config__.tag,
                            Undone.__struct_config__.tag, Redone.__struct_config__.tag})
"""The event types that may change a genome record on a genome stream (FHR steps do not; undo and redo
bring a removed genome back or remove it again, and those of an FHR step are cheap to re-read)."""


class _Head(msgspec.Struct):
    stream: str
    event: msgspec.Raw  # left undecoded: a GenomeAdded holds every sequence's name, digest and MD5


class _Kind(msgspec.Struct):
    type: str = ""


_HEAD_DECODER = msgspec.msgpack.Decoder(_Head)
_KIND_DECODER = msgspec.msgpack.Decoder(_Kind)


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
    attribute_values: dict[str, list[str]] = {}
    """level-1 attribute -> its distinct digests (the keys of ``by_attribute[attr]``), sorted: kept with the
    snapshot so ``/seqcol/list/attributes`` pages by bisection instead of sorting every value per request."""
    md5: LayeredMap[str]
    """lower-case MD5 -> bare sha512t24u of every sequence in some genome."""
    circular: LayeredSet
    """Bare sha512t24u of every sequence some genome recorded as circular."""
    summaries: dict[str, GenomeSummary] = {}
    """Digest -> catalogue fields of every genome."""
    added: dict[str, int] = {}
    """Digest -> seq of the ``GenomeAdded`` its record came from (what an update reads to take it out)."""
    md5_shared: LayeredMap[int] = msgspec.field(default_factory=LayeredMap)
    """MD5s held more than once (by several genomes, or twice by one) -> how many times."""
    circular_shared: LayeredMap[int] = msgspec.field(default_factory=LayeredMap)
    """Circular sequences held more than once -> how many times."""
    clash: bool = False
    """Some MD5 names two different sequences (only a forged log): which one wins needs a full rebuild."""


_EMPTY = CatalogSnapshot(head=-1, digests=[], known=frozenset(), by_attribute={}, md5=LayeredMap(),
                         circular=LayeredSet())


class GenomeCatalog:
    """The per-worker index; ``snapshot(txn)`` returns one consistent with ``txn``'s head or newer."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._snapshot = _EMPTY
        self._lock = threading.Lock()
        self.builds = 0
        """Snapshots built from the view (each decodes every genome record once)."""
        self.updates = 0
        """Snapshots made by applying new genome events to the previous one."""
        self.records_decoded = 0
        """Genome records (and, for updates, the ``GenomeAdded`` events of replaced ones) decoded for snapshots."""
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
            updated = None
            if snap.head >= 0 and snap.rebuilds == rebuilds and head - snap.head <= _rebuild_gap(snap):
                updated = self._update(txn, snap, head)
            self._snapshot = snap = updated if updated is not None else self._build(txn, head, rebuilds)
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

    def _update(self, txn: Txn, snap: CatalogSnapshot, head: int) -> CatalogSnapshot | None:
        """``snap`` moved to ``head`` by the genome events since its own; None if it takes a full rebuild."""
        named: set[str] = set()
        for seq, record in self.store.log.records(txn, after=snap.head, upto=head):
            try:
                found = _HEAD_DECODER.decode(payload_of(record, seq))
                if found.stream.startswith(_GENOME_STREAM) and _KIND_DECODER.decode(found.event).type in _RECORD_EVENTS:
                    named.add(found.stream[len(_GENOME_STREAM):])
            except (msgspec.DecodeError, UnicodeDecodeError) as exc:
                raise ChainError(seq, undecodable(exc)) from None
        if not named:
            return msgspec.structs.replace(snap, head=head)
        if snap.clash:
            return None
        update = _Update(snap)
        for digest in sorted(named):
            if digest in snap.known:
                envelope = self.store.log.get(txn, snap.added.get(digest, 0))
                self.records_decoded += 1
                if (envelope is None or not isinstance(envelope.event, GenomeAdded)
                        or envelope.event.digest != digest or envelope.stream != _GENOME_STREAM + digest):
                    return None  # not the event the record came from: trust only a rebuild
                update.remove(envelope.event)
            now = genome_record(txn, self.store.environment, digest)
            if now is not None:
                self.records_decoded += 1
                update.add(now)
        if update.clash:
            return None
        self.updates += 1
        return update.snapshot(head)

    def _build(self, txn: Txn, head: int, rebuilds: int) -> CatalogSnapshot:
        digests: list[str] = []
        by_attribute: dict[str, dict[str, list[str]]] = {}
        md5: dict[str, str] = {}
        md5_shared: dict[str, int] = {}
        circular: dict[str, bool] = {}
        circular_shared: dict[str, int] = {}
        summaries: dict[str, GenomeSummary] = {}
        added: dict[str, int] = {}
        clash = False
        self.builds += 1
        for record in all_genomes(txn, self.store.environment):  # ordered by digest
            self.records_decoded += 1
            digests.append(record.digest)
            summaries[record.digest] = GenomeSummary.of(record)
            added[record.digest] = record.added_seq
            for attr, value in record.level1.items():
                by_attribute.setdefault(attr, {}).setdefault(value, []).append(record.digest)
            for key, sq in _md5_pairs(record):
                was = md5.get(key)
                if was is not None:
                    md5_shared[key] = md5_shared.get(key, 1) + 1
                    clash = clash or was != sq
                md5[key] = sq
            for sq in _circular_of(record):
                if sq in circular:
                    circular_shared[sq] = circular_shared.get(sq, 1) + 1
                circular[sq] = True
        return CatalogSnapshot(
            head=head, rebuilds=rebuilds, digests=digests, known=frozenset(digests), by_attribute=by_attribute,
            attribute_values={attr: sorted(values) for attr, values in by_attribute.items()},
            md5=LayeredMap(md5), circular=LayeredSet(circular), summaries=summaries, added=added,
            md5_shared=LayeredMap(md5_shared), circular_shared=LayeredMap(circular_shared), clash=clash)


_Genome = GenomeRecord | GenomeAdded
"""A genome's contents: its record, or the event a record was made from (the same fields)."""


def _md5_pairs(genome: _Genome) -> Iterable[tuple[str, str]]:
    return ((checksum.lower(), sq.removeprefix("SQ.")) for sq, checksum in zip(genome.sequences, genome.md5s))


def _circular_of(genome: _Genome) -> Iterable[str]:
    wraps = set(genome.circular)
    return (sq.removeprefix("SQ.") for name, sq in zip(genome.names, genome.sequences) if name in wraps)


class _Update:
    """A snapshot's changes as genomes are taken out and put in: only the keys they hold are touched.

    Each MD5 and circular sequence keeps how many times genomes hold it (``*_shared`` above 1), so
    taking a genome out drops exactly the keys no other genome still holds.
    """

    def __init__(self, snap: CatalogSnapshot) -> None:
        self.snap = snap
        self.md5: dict[str, str] = {}
        self.md5_count: dict[str, int] = {}
        self.md5_held: set[str] = set()
        """The touched MD5s the snapshot holds."""
        self.circular_count: dict[str, int] = {}
        self.holders: dict[tuple[str, str], set[str]] = {}
        self.summaries = dict(snap.summaries)
        self.added = dict(snap.added)
        self.clash = False

    def _load(self, counts: dict[str, int], shared: LayeredMap[int], held: set[str], keys: Iterable[str]) -> None:
        """Fetch how many times the snapshot holds those ``keys`` not fetched yet (``held``: those it holds)."""
        counts.update(dict.fromkeys(keys, 0))
        counts.update(dict.fromkeys(held, 1))
        counts.update(shared.lookup(held))

    def _md5_counts(self, keys: Iterable[str], *, all_held: bool = False) -> None:
        new = set(keys).difference(self.md5_count)
        if new:
            # A genome the snapshot holds has all its keys there: no lookups in the big map.
            held = new if all_held else set(self.snap.md5.lookup(new))
            self.md5_held.update(held)
            self._load(self.md5_count, self.snap.md5_shared, held, new)

    def _circular_counts(self, keys: Iterable[str]) -> None:
        new = set(keys).difference(self.circular_count)
        if new:
            self._load(self.circular_count, self.snap.circular_shared, self.snap.circular.having(new), new)

    def _holders(self, attr: str, value: str) -> set[str]:
        key = (attr, value)
        if key not in self.holders:
            self.holders[key] = set(self.snap.by_attribute.get(attr, {}).get(value, ()))
        return self.holders[key]

    def remove(self, genome: _Genome) -> None:
        """Take out a genome the snapshot holds."""
        md5s = Counter(key for key, _ in _md5_pairs(genome))
        self._md5_counts(md5s, all_held=True)
        for key, n in md5s.items():
            self.md5_count[key] -= n
        circular = Counter(_circular_of(genome))
        self._circular_counts(circular)
        for sq, n in circular.items():
            self.circular_count[sq] -= n
        for attr, value in genome.level1.items():
            self._holders(attr, value).discard(genome.digest)
        del self.summaries[genome.digest]
        del self.added[genome.digest]

    def add(self, record: GenomeRecord) -> None:
        """Put in a genome the snapshot does not hold (any old version was removed first)."""
        pairs = list(_md5_pairs(record))
        md5s = Counter(key for key, _ in pairs)
        self._md5_counts(md5s)
        held = [key for key in md5s if self.md5_count[key] > 0]
        current = self.snap.md5.lookup(key for key in held if key not in self.md5)
        current.update((key, self.md5[key]) for key in held if key in self.md5)
        mine = dict(pairs)
        # A full build lets the last genome win, so an MD5 naming two sequences has no incremental answer.
        if any(current.get(key, sq) != sq or mine[key] != sq for key, sq in pairs):
            self.clash = True
        self.md5.update(mine)
        for key, n in md5s.items():
            self.md5_count[key] += n
        circular = Counter(_circular_of(record))
        self._circular_counts(circular)
        for sq, n in circular.items():
            self.circular_count[sq] += n
        for attr, value in record.level1.items():
            self._holders(attr, value).add(record.digest)
        self.summaries[record.digest] = GenomeSummary.of(record)
        self.added[record.digest] = record.added_seq

    def snapshot(self, head: int) -> CatalogSnapshot:
        """The updated snapshot at ``head`` (the old one is left as it was)."""
        snap = self.snap
        md5: dict[str, str | Any] = {k: GONE for k, n in self.md5_count.items() if n == 0}
        md5.update((k, v) for k, v in self.md5.items() if self.md5_count[k] > 0)
        by_attribute = dict(snap.by_attribute)
        attribute_values = dict(snap.attribute_values)
        for attr in {attr for attr, _ in self.holders}:
            values = dict(by_attribute.get(attr, {}))
            ordered = list(attribute_values.get(attr, ()))  # a copy: older snapshots keep theirs
            for (a, value), holders in self.holders.items():
                if a != attr:
                    continue
                at = bisect_left(ordered, value)
                listed = at < len(ordered) and ordered[at] == value
                if holders:
                    values[value] = sorted(holders)
                    if not listed:
                        ordered.insert(at, value)
                else:
                    values.pop(value, None)
                    if listed:
                        del ordered[at]
            if values:
                by_attribute[attr] = values
                attribute_values[attr] = ordered
            else:
                by_attribute.pop(attr, None)
                attribute_values.pop(attr, None)
        digests = sorted(self.summaries)
        return CatalogSnapshot(
            head=head, rebuilds=snap.rebuilds, digests=digests, known=frozenset(digests), by_attribute=by_attribute,
            attribute_values=attribute_values, md5=snap.md5.updated(md5, held=self.md5_held),
            circular=snap.circular.updated(add=[k for k, n in self.circular_count.items() if n > 0],
                                           remove=[k for k, n in self.circular_count.items() if n == 0]),
            summaries=self.summaries, added=self.added,
            md5_shared=snap.md5_shared.updated(_shared(self.md5_count)),
            circular_shared=snap.circular_shared.updated(_shared(self.circular_count)), clash=False)


def _shared(counts: dict[str, int]) -> dict[str, int | Any]:
    return {k: n if n > 1 else GONE for k, n in counts.items()}


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
    MAX_BYTES = 64 << 20
    """Bytes of bodies kept (a level-2 body of a 50k-contig genome is ~3 MB: a count alone let a worker keep GBs)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.catalog: GenomeCatalog = store.service("api.catalog", GenomeCatalog)
        self._items: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._bytes = 0
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
            if key not in self._items:
                self._items[key] = body
                self._bytes += len(body)
            # The newest body stays even when it alone is over budget: the next request for it is likely.
            while len(self._items) > 1 and (len(self._items) > self.SIZE or self._bytes > self.MAX_BYTES):
                self._bytes -= len(self._items.popitem(last=False)[1])
        return body
