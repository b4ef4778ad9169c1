"""The Genomes service: add, list, show, remove, compare and export genomes; read their sequences.

A genome is a GA4GH sequence collection stored in the store's RefgetStore and recorded in the log
(``GenomeAdded`` on ``genome:<digest>``); its names are collection aliases (namespace ``refgenie``
by default). Sequence reads are delegated to ``rgstore.sequences.SequenceReader``
(``self.sequences``), which caches name resolutions so a read costs little more than gtars.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast

import msgspec
from msgspec import UNSET, UnsetType

from .aliases import find_genome_alias, normalise_digest, sequence_id, shadowed_by, split_alias
from .bgzf import BGZF_SUFFIXES, BgzfWriter
from .environment import Environment, Txn
from .errors import ConflictError, InvalidInputError, NotFoundError, OutOfRangeError
from .events import AliasRemoved, AliasSet, FhrSet, GenomeAdded, GenomeRemoved, GenomeSource, SequenceAliasSet
from .fastaspool import STDIN, recorded_path, spooled
from .gcpause import gc_paused
from .genomeundo import GenomeMove, move_genome
from .locus import Region, parse_locus, read_bed_rows
from .log import NewEvent
from .outputs import output_file, output_path
from .pathtext import given_path
from .progress import ProgressFactory, null_progress
from .refgetstore import Ingested, collection_removed, ingest_fasta, strip_sq, sweep_scratch, write_fasta
from .sequences import STREAM_CHUNK, SequenceReader, check_strand_choice, revcomp
from .suggest import SCAN_LIMIT, did_you_mean, phrase
from .views.aliases import (
    COLLECTION,
    DEFAULT_NAMESPACE,
    SEQUENCE,
    alias_names,
    alias_stream,
    collection_alias,
    collection_aliases_of,
    sequence_alias,
)
from .views.aliasnames import DIGEST_RE, check_new_name, check_sequence_namespace
from .views.genomes import (
    GenomeRecord,
    all_genomes,
    genome_digests,
    genome_exists,
    genome_fhr,
    genome_record,
    genome_stream,
)

if TYPE_CHECKING:
    from .fasta import FastaSummary
    from .store import Store

__all__ = ["AliasMoved", "GenomeInfo", "GenomeMove", "GenomeRemoval", "Genomes", "InitResult", "check_fhr", "check_same_metadata", "read_fhr", "revcomp"]

_reverse_complement = revcomp  # read_loci's ``revcomp`` parameter shadows the function

LIST_CHUNK = 32
"""Genome records read per read transaction by ``Genomes.stream`` (a big assembly's record is MBs)."""


class GenomeInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A genome as ``genome show`` reports it: identity, aliases, level-2 arrays, source, FHR."""

    digest: str
    aliases: list[str]
    description: str
    species: str
    n_sequences: int
    total_length: int
    names: list[str]
    lengths: list[int]
    sequences: list[str]
    md5s: list[str]
    circular: list[str]
    level1: dict[str, str]
    source: GenomeSource
    added_seq: int
    added_at: datetime | None
    added_by: str
    fhr: dict[str, Any] | None = None


class AliasMoved(msgspec.Struct, frozen=True, kw_only=True):
    """An alias ``init --force`` repointed at its genome: ``alias`` (``ns:name``) and the genome digest it ``was``."""

    alias: str
    was: str


class InitResult(msgspec.Struct, frozen=True, kw_only=True):
    """What ``genome init`` did: the genome, whether it was new, and which aliases it added."""

    genome: GenomeInfo
    added: bool
    aliases_added: list[str]
    sequence_aliases_added: int
    seqs: list[int]
    shadows: dict[str, str] | UnsetType = UNSET
    """Set when a new name took a bare name from other namespaces' aliases of other genomes:
    ``{"ncbi:hg38": digest}`` of each (see ``aliases.shadowed_by``)."""
    fhr_set: bool = False
    """This command recorded an FHR document (``--fhr`` given and not the stored one, or the remote's:
    ``fhr_from_remote``)."""
    fhr_replaced: bool = False
    """The FHR document it recorded replaced a different one (still in the log, as its FhrSet event)."""
    remote_not_recorded: str | None = None
    """``init --remote URL`` of a genome already recorded with another source: the store URL this command did
    not record (the genome keeps ``genome.source``, where its unfetched sequences still come from); else None."""
    aliases_moved: list[AliasMoved] = []
    """The aliases in ``aliases_added`` that ``force`` took from another genome, each with the digest it
    left (as ``alias set --force`` reports ``previous``); the others are new."""
    fhr_from_remote: bool = False
    """``init --remote`` without ``fhr``: the FHR document ``fhr_set`` reports is the remote's own."""
    fhr_not_recorded: str | None = None
    """``init --remote`` without ``fhr``: why the remote's FHR document was not recorded (not FHR 1.0, not JSON,
    unreadable), one line; the genome was recorded without it. None otherwise."""


class GenomeRemoval(msgspec.Struct, frozen=True, kw_only=True):
    """What ``remove_genome`` removed: the genome's digest, the aliases (``ns:name``) that named it, the seqs appended."""

    digest: str
    aliases: list[str]
    seqs: list[int]


def read_fhr(path: Path) -> dict[str, Any]:
    """An FHR JSON document from a file, or standard input for ``-`` (errors then name it), checked with ``check_fhr``."""
    import json  # here: every genome read loads this module, only an FHR file is parsed as JSON (~1.5 ms)

    if os.fspath(path) == STDIN:  # as `genome init --fasta -` reads a FASTA
        shown, text = "standard input", _stdin_text()
    else:
        shown = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise InvalidInputError(f"{path}: no such FHR file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInputError(f"{path}: cannot read the FHR file ({exc})") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"{shown}: not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except ValueError:  # json.loads refuses an integer of 4,301+ digits (CPython's DoS guard)
        raise InvalidInputError(f"{shown}: a number in the JSON has more than 4,300 digits") from None
    except RecursionError:
        raise InvalidInputError(f"{shown}: JSON nested too deeply to be an FHR document") from None
    return check_fhr(doc, where=shown)


def _stdin_text() -> str:
    """Standard input read whole as UTF-8 (an FHR document piped in); InvalidInputError naming it otherwise."""
    import sys

    stdin = getattr(sys.stdin, "buffer", None)
    if stdin is None:
        raise InvalidInputError("standard input is closed: pipe the FHR document into the command, or give its path")
    try:
        return cast(bytes, stdin.read()).decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"standard input: cannot read the FHR document ({exc})") from None


def check_fhr(doc: Any, *, where: str = "FHR document") -> dict[str, Any]:
    """The document unchanged if it is FHR 1.0 JSON (typed fields checked, unknown keys kept)."""
    from gtars.refget import FhrMetadata  # type: ignore[import-untyped]

    if not isinstance(doc, dict):
        raise InvalidInputError(f"{where}: an FHR document must be a JSON object")
    version = doc.get("schemaVersion")
    if version is not None and not (isinstance(version, (int, float)) and 1 <= version < 2):
        raise InvalidInputError(f"{where}: schemaVersion {version!r} is not FHR 1.x")
    try:
        FhrMetadata(**doc)  # gtars' typed model: rejects wrong types, keeps extra keys
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(f"{where}: not a valid FHR 1.0 document ({exc})") from None
    try:
        msgspec.msgpack.encode(doc)  # what the event will hold: extra keys are kept unchecked by gtars
    except OverflowError as exc:
        raise InvalidInputError(f"{where}: a number is too large to store ({exc})") from None
    return doc


def _fhr_doc(fhr: dict[str, Any] | Path | str) -> dict[str, Any]:
    """An FHR document given as a dict, or as the path (Path or str) of its JSON file."""
    return read_fhr(given_path(fhr, "FHR file")) if isinstance(fhr, (str, os.PathLike)) else check_fhr(fhr)


class Genomes:
    """Commands and queries over the store's genomes and their sequences (``store.genomes``)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.sequences = SequenceReader(store)

    def close(self) -> None:
        """Drop the cached gtars handle and resolutions."""
        self.sequences.close()

    # -- commands -----------------------------------------------------------------------------

    def init(
        self, fasta: Path | str, names: Sequence[str], *, description: str = "", species: str = "",
        fhr: dict[str, Any] | Path | str | None = None, circular: Sequence[str] = (),
        seq_namespace: str | Sequence[str] | None = None, force: bool = False,
        progress: ProgressFactory = null_progress,
    ) -> InitResult:
        """Store a FASTA as a genome named by ``names`` (``ns:name``, or a bare name in namespace refgenie).

        Re-initialising identical content only adds the names that are new; a ``description``,
        ``species`` or ``circular`` that differs from the stored one is refused (ConflictError,
        see ``check_same_metadata``), and a different ``fhr`` replaces the FHR document (reported as
        ``fhr_replaced``; the old one stays in the log). A name
        that already points at another genome is refused (ConflictError) unless ``force``.
        Header tokens ``NS:ID`` of each namespace in ``seq_namespace`` (one, or several) are
        recorded as sequence aliases. Nothing is recorded if the FASTA is malformed or any check fails, and a collection the
        import added to the RefgetStore is removed again when the command is refused. ``fasta`` may be ``-``
        (standard input) or a pipe, socket or character device: it is read once into the store's scratch
        area (``fastaspool.spooled``) and recorded as given.
        """
        # A lone str is one name, not its letters (list("hg38") would record aliases h, g, 3 and 8).
        names = [names] if isinstance(names, str) else names
        fasta = given_path(fasta, "FASTA file")
        source_path = recorded_path(fasta)  # before a stream is read: ``-`` or its path, not the scratch copy's
        circular = [circular] if isinstance(circular, str) else circular
        # (namespace, name) pairs: "hg38" and "refgenie:hg38" are one alias, recorded once.
        aliases = list(dict.fromkeys(split_alias(n) for n in names))
        for _ns, local in aliases:
            check_new_name(local)
        if not aliases:
            raise InvalidInputError("a genome needs at least one name (--name)")
        sweep_scratch(self.store)  # what killed imports left behind
        # A lone str is one namespace, not its letters; a repeated one is recorded once.
        namespaces = [seq_namespace] if isinstance(seq_namespace, str) else list(seq_namespace or ())
        namespaces = list(dict.fromkeys(check_sequence_namespace(ns) for ns in namespaces))
        fhr_doc = _fhr_doc(fhr) if fhr is not None else None
        env = self.store.environment
        token_aliases: list[tuple[str, str, int]] = []  # (namespace, alias name, record index)

        def precheck(summary: FastaSummary) -> None:
            # Runs after validation, before gtars imports anything: refuse what we already can.
            missing = [c for c in circular if c not in set(summary.names)]
            if missing:
                raise InvalidInputError(f"--circular {missing[0]}: {summary.path} has no sequence of that name")
            for namespace in namespaces:
                token_aliases.extend((namespace, local, i) for local, i in _sequence_tokens(summary, namespace))
            if force:
                return
            with self.store.read() as txn:
                for alias_ns, name in aliases:
                    target = collection_alias(txn, env, alias_ns, name)
                    record = genome_record(txn, env, target) if target else None
                    if target and (record is None or record.names != summary.names
                                   or record.lengths != summary.lengths):
                        raise _taken(alias_ns, name, target)

        added: list[str] = []  # "ns:name" of each alias the command sets
        moved: list[AliasMoved] = []  # those of them --force took from another genome
        state: dict[str, Any] = {}

        def record(ingested: Ingested) -> None:
            # Runs inside ingest_fasta's guard: a refusal or an interrupt takes the import back.
            state["seqs"] = self.store.transact(lambda txn: command(txn, ingested))

        def command(txn: Txn, ingested: Ingested) -> list[NewEvent]:
            if not (self.store.refget_path / "collections" / f"{ingested.digest}.rgsi").is_file():
                # Removed since the import (gc, or an interrupted import of the same FASTA taking its
                # collection back); both remove inside a write transaction, so this check is final.
                raise collection_removed(ingested.digest)
            seq_aliases = [(ns, local, strip_sq(ingested.sequences[i])) for ns, local, i in token_aliases]
            added.clear()
            moved.clear()
            shadows: dict[str, str] = {}
            state["shadows"] = shadows
            events: list[NewEvent] = []
            existing = genome_record(txn, env, ingested.digest)
            state["new"] = existing is None
            if existing is not None:
                check_same_metadata(existing, description=description, species=species, circular=circular)
            else:
                events.append(NewEvent(
                    stream=genome_stream(ingested.digest),
                    event=_genome_added(ingested, source_path, description, species,
                                        list(dict.fromkeys(circular))),
                ))
            for alias_ns, name in aliases:
                target = collection_alias(txn, env, alias_ns, name)
                if target == ingested.digest:
                    continue
                if target is not None and not force:
                    raise _taken(alias_ns, name, target)
                if target is None and alias_ns == DEFAULT_NAMESPACE:  # only a refgenie name takes the bare name
                    shadows.update(shadowed_by(txn, env, name, ingested.digest))
                added.append(f"{alias_ns}:{name}")
                if target is not None:
                    moved.append(AliasMoved(alias=f"{alias_ns}:{name}", was=target))
                events.append(NewEvent(
                    stream=alias_stream(COLLECTION, alias_ns, name),
                    event=AliasSet(namespace=alias_ns, name=name, digest=ingested.digest),
                ))
            previous_fhr = genome_fhr(txn, env, ingested.digest)
            state["fhr_set"] = fhr_doc is not None and previous_fhr != fhr_doc
            state["fhr_replaced"] = state["fhr_set"] and previous_fhr is not None
            if fhr_doc is not None and state["fhr_set"]:
                events.append(NewEvent(stream=genome_stream(ingested.digest),
                                       event=FhrSet(digest=ingested.digest, fhr=fhr_doc)))
            state["seq_aliases"] = 0
            for ns, local, digest in seq_aliases:
                target = sequence_alias(txn, env, ns, local)
                if target == digest:
                    continue
                if target is not None and not force:
                    raise ConflictError(
                        f"sequence alias {ns}:{local} already points at {sequence_id(target)}; "
                        "use --force to repoint it"
                    )
                state["seq_aliases"] += 1
                events.append(NewEvent(
                    stream=alias_stream(SEQUENCE, ns, local),
                    event=SequenceAliasSet(namespace=ns, name=local, digest=digest),
                ))
            return events

        with spooled(self.store, fasta, progress=progress) as readable:  # a stream (``-``, a pipe) read once into scratch
            ingested = ingest_fasta(self.store, readable, progress=progress, before_import=precheck, then=record)
        seqs = state["seqs"]
        self.sequences.drop_cache()
        return InitResult(
            genome=self.show(ingested.digest, by_digest=True), added=bool(state["new"]),
            aliases_added=list(added),
            sequence_aliases_added=int(state["seq_aliases"]), seqs=seqs, shadows=state["shadows"] or UNSET,
            fhr_set=bool(state["fhr_set"]), fhr_replaced=bool(state["fhr_replaced"]), aliases_moved=list(moved),
        )

    def remove(self, name: str, *, by_digest: bool = False) -> list[int]:
        """Remove a genome from the catalogue with every collection alias pointing at it; returns seqs.

        The sequences stay in the RefgetStore (content-addressed, possibly shared).
        A bare name is taken from the ``refgenie`` namespace only (``exact``): once its genome is
        gone, a retried removal must not fall through to the genome another namespace names.
        """
        return self.remove_genome(name, by_digest=by_digest).seqs

    def remove_genome(self, name: str, *, by_digest: bool = False) -> GenomeRemoval:
        """``remove``, returning the removed genome's digest and aliases with the seqs (the name may be an alias)."""
        env = self.store.environment
        removed: list[GenomeRemoval] = []  # of the transaction that committed (a retry recomputes it)

        def command(txn: Txn) -> list[NewEvent]:
            digest = self.resolve_in(txn, name, by_digest, exact=True)
            events = [NewEvent(stream=genome_stream(digest), event=GenomeRemoved(digest=digest))]
            aliases = list(collection_aliases_of(txn, env, digest))
            for ns, local in aliases:
                events.append(NewEvent(stream=alias_stream(COLLECTION, ns, local),
                                       event=AliasRemoved(namespace=ns, name=local)))
            removed[:] = [GenomeRemoval(digest=digest, aliases=[f"{ns}:{local}" for ns, local in aliases], seqs=[])]
            return events

        seqs = self.store.transact(command)
        self.sequences.drop_cache()
        return msgspec.structs.replace(removed[0], seqs=seqs)

    def undo(self, name: str, *, by_digest: bool = False) -> GenomeMove:
        """Take back the latest change to a genome: an FHR document set, or its removal with the aliases it
        took (a removed genome is named by digest, ``by_digest``); see ``rgstore.genomeundo``."""
        try:
            return move_genome(self.store, name, by_digest=by_digest)
        finally:
            self.sequences.drop_cache()

    def redo(self, name: str, *, by_digest: bool = False) -> GenomeMove:
        """Re-apply the change to a genome that ``undo`` most recently took back (the same command shape)."""
        try:
            return move_genome(self.store, name, by_digest=by_digest, redo=True)
        finally:
            self.sequences.drop_cache()

    def fhr_set(self, name: str, fhr: dict[str, Any] | Path | str, *, by_digest: bool = False) -> list[int]:
        """Replace a genome's FHR document (a no-op if identical); returns the seqs appended."""
        doc = _fhr_doc(fhr)
        env = self.store.environment

        def command(txn: Txn) -> list[NewEvent]:
            digest = self.resolve_in(txn, name, by_digest)
            if genome_fhr(txn, env, digest) == doc:
                return []
            return [NewEvent(stream=genome_stream(digest), event=FhrSet(digest=digest, fhr=doc))]

        return self.store.transact(command)

    # -- queries ------------------------------------------------------------------------------

    def resolve(self, name: str, *, by_digest: bool = False) -> str:
        """The seqcol digest of a genome named by alias (``hg38``, ``ns:name``) or, with ``by_digest``, digest."""
        with self.store.read() as txn:
            return self.resolve_in(txn, name, by_digest)

    def resolve_in(self, txn: Txn, name: str, by_digest: bool = False, *, exact: bool = False) -> str:
        """``resolve`` inside a caller's transaction (a command's write txn or a read txn); ``exact``: no other namespace."""
        env = self.store.environment
        if by_digest:
            digest = normalise_digest(name)
            if not genome_exists(txn, env, digest):
                raise NotFoundError(f"no genome with digest {digest}; see `rgstore genome list`")
            return digest
        ns, local = split_alias(name)
        ns, digest_or_none = find_genome_alias(txn, env, ns, local, bare=":" not in name and not exact)
        if digest_or_none is None:
            hint = _genome_hint(txn, env, name, ns, local) or "see `rgstore genome list`"
            raise NotFoundError(f"no genome named {name!r} (alias {ns}:{local}); {hint}")
        if not genome_exists(txn, env, digest_or_none):
            raise NotFoundError(f"alias {ns}:{local} points at {digest_or_none}, which is not a genome in this store")
        return digest_or_none

    def show(self, name: str, *, by_digest: bool = False) -> GenomeInfo:
        """Everything recorded about one genome."""
        env = self.store.environment
        with self.store.read() as txn:
            digest = self.resolve_in(txn, name, by_digest)
            record = genome_record(txn, env, digest)
            assert record is not None
            return _info(record, collection_aliases_of(txn, env, digest), genome_fhr(txn, env, digest))

    def fhr_get(self, name: str, *, by_digest: bool = False) -> dict[str, Any]:
        """A genome's FHR document; NotFoundError if it has none."""
        with self.store.read() as txn:
            digest = self.resolve_in(txn, name, by_digest)
            doc = genome_fhr(txn, self.store.environment, digest)
        if doc is None:
            raise NotFoundError(f"genome {name} has no FHR metadata; set it with `rgstore genome fhr set`")
        return doc

    def compare(self, a: str, b: str, *, by_digest: bool = False) -> dict[str, Any]:
        """The GA4GH seqcol comparison of two genomes."""
        from . import seqcol

        env = self.store.environment
        with self.store.read() as txn:
            ra, rb = (genome_record(txn, env, self.resolve_in(txn, x, by_digest)) for x in (a, b))
        assert ra is not None and rb is not None
        return seqcol.compare(
            ra.digest, seqcol.comparable_level2(ra.names, ra.lengths, ra.sequences),
            rb.digest, seqcol.comparable_level2(rb.names, rb.lengths, rb.sequences),
        )

    def export(
        self, name: str, out: Path | str | BinaryIO, *, width: int = 80, by_digest: bool = False,
        progress: ProgressFactory = null_progress,
    ) -> GenomeInfo:
        """Write a genome as FASTA (upper case, ``width`` residues a line); a path is written atomically
        (a FIFO, a device or this process's open descriptor, such as /dev/stdout, in place).

        A path ending in ``.gz``/``.bgz``/``.bgzf`` is written BGZF-compressed (gzip that htslib can index).

        Sequences not stored yet (a remote genome's, a mirror's) are fetched and verified first,
        so a failure leaves no partial output. A ``.fai`` index beside the replaced file is removed.
        """
        if isinstance(out, (str, os.PathLike)):  # refused before any sequence is fetched
            out = output_path(out, "FASTA file")
        genome = self.show(name, by_digest=by_digest)
        records = list(zip(genome.names, genome.sequences, genome.lengths))
        files = self.sequences.complete_files(name, records, progress=progress)
        if not isinstance(out, Path):
            write_fasta(files, records, out, width=width, progress=progress)
            return genome
        packed = out.suffix.lower() in BGZF_SUFFIXES

        def write(fh: BinaryIO) -> None:
            if packed:  # compressed as its name says, and seekable: `samtools faidx hg38.fa.gz` indexes it
                with BgzfWriter(fh) as bgzf:
                    write_fasta(files, records, cast(BinaryIO, bgzf), width=width, progress=progress)
            else:
                write_fasta(files, records, fh, width=width, progress=progress)

        asked = out

        def drop_indexes(target: Path) -> None:
            # A .fai (or .gzi) of the file being replaced makes samtools and pysam read wrong bases from
            # the new one (htslib never compares it with the FASTA); without one they index it afresh.
            for index in {f"{asked}.fai", f"{asked}.gzi", f"{target}.fai", f"{target}.gzi"}:
                Path(index).unlink(missing_ok=True)

        with output_file(out, before_replace=drop_indexes) as fh:
            write(fh)
        return genome

    # -- sequences ------------------------------------------------------------------------------

    def getseq(
        self, name: str, seq: str, start: int | None = None, end: int | None = None, *, by_digest: bool = False
    ) -> str:
        """Residues ``[start, end)`` (0-based, half-open) of sequence ``seq`` of genome ``name``.

        See ``SequenceReader.getseq`` (``self.sequences``), which does the work with cached resolutions.
        """
        return self.sequences.getseq(name, seq, start, end, by_digest=by_digest)

    def getseqs(
        self, name: str, regions: Iterable[Region | tuple[str, int | None, int | None]], *,
        by_digest: bool = False, revcomp: bool = False,
    ) -> list[str]:
        """``getseq`` for many regions of one genome; optionally reverse-complemented."""
        return self.sequences.getseqs(name, regions, by_digest=by_digest, revcomp=revcomp)

    def read_loci(
        self, name: str, loci: Sequence[str], *, bed: Path | None = None, by_digest: bool = False,
        revcomp: bool = False, one_based: bool = False, strand: bool = False,
    ) -> list[tuple[Region, str]]:
        """(region, residues) for locus strings (``seq``, ``seq:start``, ``seq:start-end``) and a BED file.

        A locus that is exactly a sequence name of the genome is that whole sequence before it is
        read as ``name:start-end`` (``HLA:01``). Loci are 0-based and half-open, or with
        ``one_based`` 1-based and inclusive (samtools faidx); BED stays 0-based, and the regions
        returned are 0-based. InvalidInputError when there is no region at all. With ``strand``
        the BED's 6th column is read (``bedtools getfasta -s``): rows on ``-`` come back
        reverse-complemented, and a strand other than ``+``, ``-``, ``.`` is refused; ``strand``
        and ``revcomp`` together are refused.
        """
        check_strand_choice(strand, revcomp)
        regions, rows = self._loci_regions(name, loci, bed, by_digest, one_based, strand)
        with _zero_based_note(one_based), self._naming_bed_rows(name, regions, rows, by_digest):
            residues = self.getseqs(name, regions, by_digest=by_digest, revcomp=revcomp)
        if strand:
            residues = [_reverse_complement(r) if region.strand == "-" else r for region, r in zip(regions, residues)]
        return list(zip(regions, residues))

    def stream_loci(
        self, name: str, loci: Sequence[str], *, bed: Path | None = None, by_digest: bool = False,
        revcomp: bool = False, chunk: int = STREAM_CHUNK, one_based: bool = False, strand: bool = False,
    ) -> list[tuple[Region, int, Iterator[str]]]:
        """``read_loci`` with each region's residues as lazy pieces of at most ``chunk`` (and its length).

        Every region is checked before this returns (see ``SequenceReader.stream``); the residues
        are read as the pieces are consumed, so printing a whole chromosome or a large BED file
        holds one piece in memory, not the output.
        """
        with gc_paused(), _zero_based_note(one_based):  # gc: a tuple and a generator per region, no cycles
            check_strand_choice(strand, revcomp)
            regions, rows = self._loci_regions(name, loci, bed, by_digest, one_based, strand)
            with self._naming_bed_rows(name, regions, rows, by_digest):
                streamed = self.sequences.stream(name, regions, by_digest=by_digest, revcomp=revcomp, chunk=chunk,
                                                 strand=strand)
            return [(region, size, pieces) for region, (size, pieces) in zip(regions, streamed)]

    def read_sequence(self, ident: str, start: int | None = None, end: int | None = None, *,
                      revcomp: bool = False) -> str:
        """Residues ``[start, end)`` (0-based) of the sequence a refget id names (``SQ.…``, MD5, ``insdc:X``...).

        Resolved as the server's ``/sequence/{id}`` does (``rgstore.seqids``), whichever genome holds it.
        """
        from .seqids import read_sequence

        return read_sequence(self.store, ident, start, end, revcomp=revcomp)

    def stream_sequence(
        self, ident: str, regions: Sequence[str] = (), *, one_based: bool = False, revcomp: bool = False,
        chunk: int = STREAM_CHUNK,
    ) -> list[tuple[Region, int, Iterator[str]]]:
        """``stream_loci`` for ``start-end`` / ``start`` regions of the sequence a refget id names (none: all of it)."""
        from .seqids import stream_sequence

        return stream_sequence(self.store, ident, regions, one_based=one_based, revcomp=revcomp, chunk=chunk)

    def _loci_regions(
        self, name: str, loci: Sequence[str], bed: Path | None, by_digest: bool, one_based: bool = False,
        strand: bool = False,
    ) -> tuple[list[Region], list[tuple[str, int]]]:
        """The loci's regions then the BED's, and (file, line) of each BED region (they come last)."""
        names = self.sequences.genome_names(name, by_digest=by_digest)
        regions = [parse_locus(locus, names, one_based=one_based) for locus in loci]
        rows: list[tuple[str, int]] = []
        if bed is not None:
            for path, number, region in read_bed_rows(bed, strand=strand):
                regions.append(region)
                rows.append((path, number))
        if not regions:
            raise InvalidInputError("give at least one LOCUS or a --bed FILE with regions")
        return regions, rows

    @contextmanager
    def _naming_bed_rows(
        self, name: str, regions: list[Region], rows: list[tuple[str, int]], by_digest: bool
    ) -> Iterator[None]:
        """A BED row's unknown sequence or bad range names ``FILE: line N:``, as the BED parser's own errors do."""
        try:
            yield
        except (NotFoundError, OutOfRangeError) as exc:
            # Which region failed is worked out only on failure: the reads carry no line numbers.
            at = self.sequences.region_at_fault(name, regions, str(exc), by_digest=by_digest) if rows else None
            first = len(regions) - len(rows)
            if at is None or at < first:
                raise
            path, number = rows[at - first]
            raise type(exc)(f"{path}: line {number}: {exc}") from None

    def list(self) -> list[GenomeInfo]:
        """Every genome, ordered by first alias (genomes without one last, by digest)."""
        env = self.store.environment
        with self.store.read() as txn:
            out = [_info(r, collection_aliases_of(txn, env, r.digest), genome_fhr(txn, env, r.digest))
                   for r in all_genomes(txn, env)]
        return sorted(out, key=lambda g: _sort_key(g.aliases, g.digest))

    def stream(self, *, chunk: int = LIST_CHUNK) -> Iterator[GenomeInfo]:
        """``list``, yielded as read: the order from the keys and alias index, then ``chunk`` genomes per short read.

        No read transaction stays open while the consumer holds a genome (a paged terminal may hold
        it for long), and at most ``chunk`` records are in memory. A genome removed meanwhile is
        left out; each genome is shown as it stood when its chunk was read.
        """
        if chunk < 1:
            raise InvalidInputError(f"chunk must be a positive number of genomes, got {chunk}")
        env = self.store.environment
        with self.store.read() as txn:
            order = sorted((_sort_key(_alias_names(collection_aliases_of(txn, env, digest)), digest), digest)
                           for digest in genome_digests(txn, env))
        for at in range(0, len(order), chunk):
            infos = []
            with self.store.read() as txn:
                for _, digest in order[at:at + chunk]:
                    record = genome_record(txn, env, digest)
                    if record is not None:
                        infos.append(_info(record, collection_aliases_of(txn, env, digest), genome_fhr(txn, env, digest)))
            yield from infos


@contextmanager
def _zero_based_note(one_based: bool) -> Iterator[None]:
    """Out-of-range errors name regions 0-based: after 1-based loci, say so (chr1:10-5 was asked as chr1:9-5)."""
    try:
        yield
    except OutOfRangeError as exc:
        if not one_based:
            raise
        raise OutOfRangeError(f"{exc} (coordinates here are 0-based and half-open: a 1-based start is one more)") from None


def check_same_metadata(
    record: GenomeRecord, *, description: str = "", species: str = "", circular: Sequence[str] = ()
) -> None:
    """Refuse (ConflictError) a re-init whose given description, species or circular set differ from the record.

    Options left empty are not compared: re-running init to add names need not repeat them.
    """
    differs = []
    if description and description != record.description:
        differs.append(f"description {record.description!r} (not {description!r})")
    if species and species != record.species:
        differs.append(f"species {record.species!r} (not {species!r})")
    if circular and set(circular) != set(record.circular):
        differs.append(f"circular {', '.join(record.circular) or 'none'} (not {', '.join(dict.fromkeys(circular))})")
    if differs:
        raise ConflictError(
            f"genome {record.digest} is already stored with {'; '.join(differs)}; init never changes a "
            "stored genome: drop those options to add names, record provenance with `rgstore genome fhr set`, "
            "or `rgstore genome remove` it and init it again"
        )


def _taken(namespace: str, name: str, target: str) -> ConflictError:
    return ConflictError(
        f"alias {namespace}:{name} already points at genome {target}; "
        "use --force to repoint it (the old target stays in its history)"
    )


def _sequence_tokens(summary: FastaSummary, namespace: str) -> list[tuple[str, int]]:
    """(alias name, record index) for header tokens ``<namespace>:<id>`` (name or description)."""
    prefix = namespace + ":"
    seen: dict[str, int] = {}
    for i, record in enumerate(summary.records):
        for token in [record.name, *record.description.split()]:
            if not token.startswith(prefix):
                continue
            local = token[len(prefix):]
            try:
                check_new_name(local)
            except InvalidInputError as exc:
                raise InvalidInputError(f"{summary.path}: header token {token!r} of {record.name}: {exc}") from None
            if seen.get(local, i) != i:
                raise InvalidInputError(
                    f"{summary.path}: {token} appears in the headers of two sequences "
                    f"({summary.records[seen[local]].name} and {record.name})"
                )
            seen[local] = i
    return list(seen.items())


def _genome_added(
    ingested: Ingested, source_path: str, description: str, species: str, circular: list[str]
) -> GenomeAdded:
    return GenomeAdded(
        digest=ingested.digest, names=ingested.names, lengths=ingested.lengths, sequences=ingested.sequences,
        level1=ingested.level1, md5s=ingested.md5s, description=description, species=species,
        circular=circular,
        source=GenomeSource(path=source_path, size=ingested.source_size,
                            md5=ingested.source_md5),
    )


def _sort_key(aliases: Sequence[str], digest: str) -> tuple[bool, str]:
    """Where a genome goes in ``genome list``: by its first name, genomes without one last (by digest)."""
    return not aliases, aliases[0] if aliases else digest


def _alias_names(aliases: Iterable[tuple[str, str]]) -> list[str]:
    """A genome's aliases as listings name them: refgenie's bare and first, then ``ns:name``."""
    ordered = sorted(aliases, key=lambda a: (a[0] != DEFAULT_NAMESPACE, a[0], a[1]))
    return [f"{ns}:{n}" if ns != DEFAULT_NAMESPACE else n for ns, n in ordered]


def _info(record: GenomeRecord, aliases: list[tuple[str, str]], fhr: dict[str, Any] | None) -> GenomeInfo:
    return GenomeInfo(
        digest=record.digest, aliases=_alias_names(aliases),
        description=record.description, species=record.species, n_sequences=len(record.names),
        total_length=sum(record.lengths), names=record.names, lengths=record.lengths,
        sequences=record.sequences, md5s=record.md5s, circular=record.circular, level1=record.level1,
        source=record.source, added_seq=record.added_seq, added_at=record.added_at, added_by=record.added_by,
        fhr=fhr,
    )


def _genome_hint(txn: Txn, env: Environment, name: str, ns: str, local: str) -> str:
    """The "did you mean" for an unknown genome name: a close one in its namespace, else the same in another
    (or, for a genome's digest given as a name, --digest)."""
    qualified = ":" in name
    if not qualified and DIGEST_RE.fullmatch(name) and genome_exists(txn, env, name):
        # refgenie users pass digests as names (its --genome-digest is a separate option, as our --digest is).
        return f"{name} is a genome digest: give it with --digest"
    same: list[str] = []
    elsewhere: list[str] = []
    for alias_ns, alias_name in islice(alias_names(txn, env, COLLECTION), SCAN_LIMIT):
        if alias_ns == ns:
            same.append(f"{alias_ns}:{alias_name}" if qualified else alias_name)
        elif alias_name == local:
            elsewhere.append(f"{alias_ns}:{alias_name}")
    return did_you_mean(name, same) or phrase(elsewhere)
