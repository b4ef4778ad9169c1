"""The genome view: one record per stored genome (seqcol digests, level-2 arrays, source) and its FHR.

Folds ``GenomeAdded`` / ``GenomeRemoved`` (stream ``genome:<digest>``) and ``FhrSet`` on the same
stream, following that stream's undo/redo zipper for FHR documents: ``FhrSet`` carries the whole
document, so undo restores the document of the step now current (or none) by reading that one
event. Sub-dbs: ``genomes.records`` (digest -> GenomeRecord), ``genomes.fhr`` (digest -> FHR
JSON object) and ``genomes.sequences`` (sequence digest NUL genome digest -> [name, length, md5]).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any, ClassVar

import msgspec

from ..codec import decode_value, encode_value
from ..environment import Environment, Txn
from ..events import Envelope, Event, FhrSet, GenomeAdded, GenomeRemoved, GenomeSource, Redone, Undone
from . import FoldContext, View, iter_prefix

__all__ = [
    "GenomeRecord",
    "GenomesView",
    "all_genomes",
    "genome_fhr",
    "genome_record",
    "genome_stream",
    "genomes_with_sequence",
]

_RECORDS = "genomes.records"
_FHR = "genomes.fhr"
_SEQUENCES = "genomes.sequences"
_STREAM_PREFIX = "genome:"


class GenomeRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A stored genome as the view keeps it: the GenomeAdded facts plus when and by whom."""

    digest: str
    names: list[str]
    lengths: list[int]
    sequences: list[str]
    level1: dict[str, str] = {}
    md5s: list[str] = []
    description: str = ""
    species: str = ""
    circular: list[str] = []
    source: GenomeSource = GenomeSource()
    added_seq: int = 0
    added_at: datetime | None = None
    added_by: str = ""


_RECORD_DECODER = msgspec.msgpack.Decoder(GenomeRecord)


def genome_stream(digest: str) -> str:
    """The stream of one genome: ``genome:<digest>``."""
    return _STREAM_PREFIX + digest


def _db(environment: Environment, name: str) -> object | None:
    # A read-only handle on a store no genome was ever added to has no such sub-db yet.
    return environment.db(name) if environment.has_db(name) else None


def genome_record(txn: Txn, environment: Environment, digest: str) -> GenomeRecord | None:
    """The genome with this seqcol digest, or None."""
    db = _db(environment, _RECORDS)
    raw = txn.get(digest.encode(), db=db) if db is not None else None
    return _RECORD_DECODER.decode(raw) if raw is not None else None


def genome_fhr(txn: Txn, environment: Environment, digest: str) -> dict[str, Any] | None:
    """The genome's current FHR document, or None."""
    db = _db(environment, _FHR)
    raw = txn.get(digest.encode(), db=db) if db is not None else None
    if raw is None:
        return None
    value = decode_value(raw)
    assert isinstance(value, dict)
    return value


def all_genomes(txn: Txn, environment: Environment) -> Iterator[GenomeRecord]:
    """Every genome, ordered by digest."""
    db = _db(environment, _RECORDS)
    if db is None:
        return
    for _, raw in iter_prefix(txn, db, b""):
        yield _RECORD_DECODER.decode(raw)


def genomes_with_sequence(txn: Txn, environment: Environment, sequence: str) -> list[tuple[str, str, int, str]]:
    """(genome digest, name, length, md5) of every genome holding this sequence digest (no ``SQ.``)."""
    db = _db(environment, _SEQUENCES)
    if db is None:
        return []
    prefix = sequence.encode() + b"\x00"
    out = []
    for key, raw in iter_prefix(txn, db, prefix):
        value = decode_value(raw)
        assert isinstance(value, list)
        name, length, md5 = value
        out.append((bytes(key[len(prefix):]).decode(), str(name), int(length), str(md5)))
    return out


class GenomesView(View):
    """Genome records, their FHR documents and a sequence -> genome index."""

    name: ClassVar[str] = "genomes"
    version: ClassVar[int] = 1
    dbs: ClassVar[tuple[str, ...]] = (_RECORDS, _FHR, _SEQUENCES)
    streams: ClassVar[tuple[str, ...]] = ("genome:",)
    handles: ClassVar[tuple[type[Event], ...]] = (GenomeAdded, GenomeRemoved, FhrSet, Undone, Redone)

    def apply(self, ctx: FoldContext, envelope: Envelope) -> None:
        """Add or drop a genome, or switch its FHR document."""
        if not envelope.stream.startswith(_STREAM_PREFIX):
            return  # an undo/redo on another domain's stream, or a misfiled event
        event = envelope.event
        txn = ctx.txn
        records, fhr, sequences = ctx.db(_RECORDS), ctx.db(_FHR), ctx.db(_SEQUENCES)
        digest = envelope.stream[len(_STREAM_PREFIX):]
        if isinstance(event, GenomeAdded):
            if event.digest != digest:
                return  # the stream names the aggregate; a mismatched payload changes nothing
            old = txn.get(digest.encode(), db=records)
            if old is not None:
                self._drop_sequences(txn, sequences, _RECORD_DECODER.decode(old))
            record = GenomeRecord(
                digest=event.digest, names=event.names, lengths=event.lengths, sequences=event.sequences,
                level1=event.level1, md5s=event.md5s, description=event.description, species=event.species,
                circular=event.circular, source=event.source, added_seq=envelope.seq, added_at=envelope.time,
                added_by=envelope.actor,
            )
            txn.put(digest.encode(), encode_value(record), db=records)
            for i, (name, length, seq) in enumerate(zip(event.names, event.lengths, event.sequences)):
                md5 = event.md5s[i] if i < len(event.md5s) else ""
                txn.put(_seq_key(seq, digest), encode_value([name, length, md5]), db=sequences)
            return
        if txn.get(digest.encode(), db=records) is None:
            return  # FHR steps of a removed genome stay in the log, not in the view
        if isinstance(event, GenomeRemoved):
            old = txn.get(digest.encode(), db=records)
            self._drop_sequences(txn, sequences, _RECORD_DECODER.decode(old))
            txn.delete(digest.encode(), db=records)
            txn.delete(digest.encode(), db=fhr)
        elif isinstance(event, FhrSet):
            txn.put(digest.encode(), encode_value(event.fhr), db=fhr)
        elif isinstance(event, (Undone, Redone)):
            at = event.restored_seq if isinstance(event, Undone) else event.redone_seq
            step = ctx.event_at(at).event if at else None
            if isinstance(step, FhrSet):
                txn.put(digest.encode(), encode_value(step.fhr), db=fhr)
            else:
                txn.delete(digest.encode(), db=fhr)

    @staticmethod
    def _drop_sequences(txn: Txn, db: object, record: GenomeRecord) -> None:
        for seq in record.sequences:
            txn.delete(_seq_key(seq, record.digest), db=db)


def _seq_key(sequence: str, genome: str) -> bytes:
    bare = sequence.removeprefix("SQ.")
    return bare.encode() + b"\x00" + genome.encode()
