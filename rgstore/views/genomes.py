"""The genome view: one record per stored genome (seqcol digests, level-2 arrays, source) and its FHR.

Folds ``GenomeAdded`` / ``GenomeRemoved`` (stream ``genome:<digest>``) and ``FhrSet`` on the same
stream, following that stream's undo/redo zipper: ``FhrSet`` carries the whole document, so undo
restores the document of the step now current (or none) by reading that one event; undoing a
``GenomeRemoved`` restores the record from the ``GenomeAdded`` its tombstone names, and redoing it
removes the genome again. Sub-dbs: ``genomes.records`` (digest -> GenomeRecord), ``genomes.fhr``
(digest -> FHR JSON object), ``genomes.sequences`` (sequence digest NUL genome digest -> [name,
length, md5]) and ``genomes.removed`` (digest of a removed genome -> seq of its ``GenomeAdded``).

FHR documents are also projected into the RefgetStore as ``refget/fhr/<digest>.fhr.json`` (the
file gtars' ``get_fhr_metadata`` and ``pull_fhr`` read), rewritten by ``sync_external``.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Collection, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import msgspec

from ..codec import decode_value, encode_value
from ..diskspace import os_error_text
from ..environment import Db, Environment, Txn
from ..errors import ConflictError, ExternalSyncError
from ..events import Envelope, Event, FhrSet, GenomeAdded, GenomeRemoved, GenomeSource, Redone, Undone
from ..files import atomic_write_bytes
from ..sharing import retry_condition
from . import FoldContext, View, iter_prefix

if TYPE_CHECKING:
    from ..store import Store

__all__ = [
    "GenomeRecord",
    "GenomesView",
    "all_fhr",
    "all_genomes",
    "genome_digests",
    "genome_exists",
    "genome_fhr",
    "genome_record",
    "genome_stream",
    "genomes_with_sequence",
    "removed_genome_added_seq",
    "write_fhr_files",
]

_RECORDS = "genomes.records"
_FHR = "genomes.fhr"
_SEQUENCES = "genomes.sequences"
_REMOVED = "genomes.removed"
_ADDED_SEQ = struct.Struct(">Q")
_STREAM_PREFIX = "genome:"
_FHR_DIR = "fhr"
_FHR_SUFFIX = ".fhr.json"
_FHR_NAME_RE = re.compile(r"[A-Za-z0-9_\-]{32}")  # a seqcol digest (sha512t24u)
_SYNC_LOCK_TIMEOUT_S = 120


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


def _db(environment: Environment, name: str) -> Db | None:
    # A read-only handle on a store no genome was ever added to has no such sub-db yet.
    return environment.db(name) if environment.has_db(name) else None


def genome_record(txn: Txn, environment: Environment, digest: str) -> GenomeRecord | None:
    """The genome with this seqcol digest, or None."""
    db = _db(environment, _RECORDS)
    raw = txn.get(digest.encode(), db=db) if db is not None else None
    return _RECORD_DECODER.decode(raw) if raw is not None else None


def genome_exists(txn: Txn, environment: Environment, digest: str) -> bool:
    """Whether a genome with this seqcol digest is stored (no record decoded: big assemblies are MBs)."""
    db = _db(environment, _RECORDS)
    return db is not None and txn.get(digest.encode(), db=db) is not None


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


def genome_digests(txn: Txn, environment: Environment) -> list[str]:
    """The seqcol digest of every genome, ordered, from the keys alone (no record decoded)."""
    db = _db(environment, _RECORDS)
    if db is None:
        return []
    with txn.cursor(db=db) as cur:
        return [bytes(key).decode() for key in cur.iternext(keys=True, values=False)]


def removed_genome_added_seq(txn: Txn, environment: Environment, digest: str) -> int:
    """Seq of the ``GenomeAdded`` of a removed genome (what undoing its removal restores); 0 if none is kept."""
    db = _db(environment, _REMOVED)
    raw = txn.get(digest.encode(), db=db) if db is not None else None
    return int(_ADDED_SEQ.unpack(raw)[0]) if raw is not None else 0


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
    version: ClassVar[int] = 2  # 2: the removed sub-db, and undo/redo of a removal
    dbs: ClassVar[tuple[str, ...]] = (_RECORDS, _FHR, _SEQUENCES, _REMOVED)
    streams: ClassVar[tuple[str, ...]] = ("genome:",)
    handles: ClassVar[tuple[type[Event], ...]] = (GenomeAdded, GenomeRemoved, FhrSet, Undone, Redone)

    def apply(self, ctx: FoldContext, envelope: Envelope) -> None:
        """Add, drop or restore a genome, or switch its FHR document."""
        if not envelope.stream.startswith(_STREAM_PREFIX):
            return  # an undo/redo on another domain's stream, or a misfiled event
        event = envelope.event
        txn = ctx.txn
        records, fhr, removed = ctx.db(_RECORDS), ctx.db(_FHR), ctx.db(_REMOVED)
        digest = envelope.stream[len(_STREAM_PREFIX):]
        if isinstance(event, GenomeAdded):
            if event.digest != digest:
                return  # the stream names the aggregate; a mismatched payload changes nothing
            self._put_record(ctx, digest, envelope)
            txn.delete(digest.encode(), db=removed)
            return
        if isinstance(event, (Undone, Redone)):
            # Only undo and redo of a removal change the record; the others switch the FHR document.
            at = event.undone_seq if isinstance(event, Undone) else event.redone_seq
            moved = ctx.event_at(at).event if at else None
            if isinstance(moved, GenomeRemoved) and isinstance(event, Undone):
                added = txn.get(digest.encode(), db=removed)
                if added is None or txn.get(digest.encode(), db=records) is not None:
                    return  # nothing kept to restore (a forged log): the record stays as it is
                self._put_record(ctx, digest, ctx.event_at(_ADDED_SEQ.unpack(added)[0]))
                txn.delete(digest.encode(), db=removed)
                self._put_fhr(ctx, digest, event.restored_seq)
                return
            if isinstance(moved, GenomeRemoved):
                event = moved  # a redone removal removes, as the removal did
        old = txn.get(digest.encode(), db=records)
        if old is None:
            return  # FHR steps of a removed genome stay in the log, not in the view
        if isinstance(event, GenomeRemoved):
            record = _RECORD_DECODER.decode(old)
            self._drop_sequences(txn, ctx.db(_SEQUENCES), record)
            txn.delete(digest.encode(), db=records)
            txn.delete(digest.encode(), db=fhr)
            txn.put(digest.encode(), _ADDED_SEQ.pack(record.added_seq), db=removed)
        elif isinstance(event, FhrSet):
            txn.put(digest.encode(), encode_value(event.fhr), db=fhr)
        elif isinstance(event, Undone):
            self._put_fhr(ctx, digest, event.restored_seq)
        elif isinstance(event, Redone):
            self._put_fhr(ctx, digest, event.redone_seq)

    @staticmethod
    def _put_record(ctx: FoldContext, digest: str, envelope: Envelope) -> None:
        """Record the genome of ``envelope``'s ``GenomeAdded`` (when and by whom from the envelope)."""
        event = envelope.event
        assert isinstance(event, GenomeAdded)
        txn, records, sequences = ctx.txn, ctx.db(_RECORDS), ctx.db(_SEQUENCES)
        old = txn.get(digest.encode(), db=records)
        if old is not None:
            GenomesView._drop_sequences(txn, sequences, _RECORD_DECODER.decode(old))
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

    @staticmethod
    def _put_fhr(ctx: FoldContext, digest: str, at: int) -> None:
        """Make the genome's FHR document that of the step at ``at`` (none unless it is an ``FhrSet``)."""
        step = ctx.event_at(at).event if at else None
        if isinstance(step, FhrSet):
            ctx.txn.put(digest.encode(), encode_value(step.fhr), db=ctx.db(_FHR))
        else:
            ctx.txn.delete(digest.encode(), db=ctx.db(_FHR))

    @staticmethod
    def _drop_sequences(txn: Txn, db: Db, record: GenomeRecord) -> None:
        for seq in record.sequences:
            txn.delete(_seq_key(seq, record.digest), db=db)

    def external_drift(self, store: Store) -> list[str]:
        """FHR files under ``refget/fhr/`` that disagree with the view (missing, stale or of no genome's FHR)."""
        with store.read() as txn:
            wanted = {digest: _render_fhr(doc) for digest, doc in all_fhr(txn, store.environment)}
        existing = _fhr_files(store.refget_path / _FHR_DIR)
        stale = sorted(d for d in wanted.keys() | existing.keys()
                       if d not in wanted or d not in existing or existing[d].read_bytes() != wanted[d])
        return [f"refget/{_FHR_DIR}/{d}{_FHR_SUFFIX}" for d in stale]

    def sync_external(self, store: Store, streams: Collection[str] | None = None) -> None:
        """Make ``refget/fhr/<digest>.fhr.json`` hold the view's FHR documents (gtars reads them there).

        With ``streams`` (a command's ``genome:<digest>`` streams), only the files of those genomes
        are compared and rewritten (removed when the genome has no FHR now): a command costs its own
        genomes, not a pass over every genome with FHR. The files matched the view before the command
        (a refresh that did not finish leaves a mark, and the next writable open syncs everything),
        so they match it after. Without ``streams`` (rebuild, replay, that open, a mirror pull) every
        file is made to match and strays go; `verify` names a file changed behind rgstore's back.
        """
        env = store.environment
        if streams is None:

            def wanted() -> dict[str, bytes | None]:
                with store.read() as txn:
                    return {digest: _render_fhr(doc) for digest, doc in all_fhr(txn, env)}

            write_fhr_files(store.refget_path, wanted)
            return
        # Only a seqcol digest names a file: a stream is any text a raw append chose.
        digests = sorted({s[len(_STREAM_PREFIX):] for s in streams if s.startswith(_STREAM_PREFIX)
                          and _FHR_NAME_RE.fullmatch(s[len(_STREAM_PREFIX):])})
        if not digests:
            return

        def scoped() -> dict[str, bytes | None]:
            with store.read() as txn:
                docs = {digest: genome_fhr(txn, env, digest) for digest in digests}
            return {digest: None if doc is None else _render_fhr(doc) for digest, doc in docs.items()}

        write_fhr_files(store.refget_path, scoped, complete=False)


def all_fhr(txn: Txn, environment: Environment) -> Iterator[tuple[str, dict[str, Any]]]:
    """(genome digest, FHR document) of every genome that has one, ordered by digest."""
    db = _db(environment, _FHR)
    if db is None:
        return
    for key, raw in iter_prefix(txn, db, b""):
        doc = decode_value(raw)
        assert isinstance(doc, dict)
        yield bytes(key).decode(), doc


# -- the RefgetStore projection ------------------------------------------------------------------


def _render_fhr(doc: dict[str, Any]) -> bytes:
    import json  # here: every store open loads this view, only an FHR sync renders (~1.5 ms import)

    return json.dumps(doc, indent=2).encode()  # the layout gtars' own set_fhr_metadata writes


def write_fhr_files(refget: Path, wanted: Callable[[], dict[str, bytes | None]], *, complete: bool = True) -> None:
    """Make ``refget/fhr/*.fhr.json`` match ``wanted()`` (genome digest -> file bytes, None: no file).

    Files are replaced atomically (temp file + rename); with ``complete`` the files of genomes
    ``wanted`` does not name are removed, without it they are left as they are. The change happens
    under the RefgetStore's writer lock with ``wanted`` re-read under it (and again after
    writing), like the alias files (``views.aliasfiles.write_alias_files``). Nothing is touched
    when all agree, and a file whose bytes already match is not rewritten.
    """
    directory = refget / _FHR_DIR
    try:
        if _fhr_files_agree(directory, wanted(), complete):
            return
        from ..refgetlock import refget_write_lock  # here: it loads json and socket, which a store's reads never need

        directory.mkdir(parents=True, exist_ok=True)
        with refget_write_lock(refget, "rgstore-fhr-sync", timeout=_SYNC_LOCK_TIMEOUT_S):
            files = wanted()
            while True:
                _sync_fhr_dir(directory, files, complete)
                # A writer that committed while we wrote may have found the old files equal to its
                # state and skipped the lock: re-read after writing, so the newest state is left.
                latest = wanted()
                if latest == files:
                    break
                files = latest
    except ConflictError as exc:
        raise ExternalSyncError(
            f"FHR change recorded, but the RefgetStore's fhr/ files were not refreshed ({exc}); "
            "run `rgstore rebuild` once the RefgetStore is free"
        ) from None
    except OSError as exc:  # e.g. a full disk: the change is committed, its mark makes the next writable open retry
        raise ExternalSyncError(
            f"FHR change recorded, but the RefgetStore's fhr/ files were not refreshed ({os_error_text(exc)}); "
            f"the next command that writes the store refreshes them {retry_condition(exc)} (or run `rgstore rebuild`)"
        ) from None


def _fhr_files(directory: Path) -> dict[str, Path]:
    if not directory.is_dir():
        return {}
    return {p.name[: -len(_FHR_SUFFIX)]: p for p in directory.glob(f"*{_FHR_SUFFIX}")}


def _fhr_bytes(path: Path) -> bytes | None:
    """The file's bytes, or None when there is none (nor an ``fhr/`` directory to hold it)."""
    try:
        return path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None


def _fhr_files_agree(directory: Path, files: dict[str, bytes | None], complete: bool) -> bool:
    if complete and _fhr_files(directory).keys() != {d for d, content in files.items() if content is not None}:
        return False
    return all(_fhr_bytes(directory / f"{d}{_FHR_SUFFIX}") == content for d, content in files.items())


def _sync_fhr_dir(directory: Path, files: dict[str, bytes | None], complete: bool) -> None:
    """Write the files of ``files`` whose bytes differ, remove those set to None (and, if ``complete``, strays)."""
    existing = _fhr_files(directory) if complete else {}
    for digest, content in files.items():
        path = directory / f"{digest}{_FHR_SUFFIX}"
        if content is None:
            path.unlink(missing_ok=True)
        elif _fhr_bytes(path) != content:
            atomic_write_bytes(path, content)
    for digest, path in existing.items():
        if files.get(digest) is None:
            path.unlink(missing_ok=True)


def _seq_key(sequence: str, genome: str) -> bytes:
    bare = sequence.removeprefix("SQ.")
    return bare.encode() + b"\x00" + genome.encode()
