"""Cached sequence reads: genome alias -> digest -> sequence digest -> the residues' data file.

The RefgetStore is Raw (``rgstore.refgetstore``): each sequence is one file of exactly its
upper-cased residues, so a read is one ``pread``. The resolution (from the alias and genome
views) is cached per process as one ready-to-call ``_data_file_reader`` per (genome name,
sequence name), holding the open file: a read costs a dict lookup and a ``pread``, about what a
gtars ``get_substring`` call costs, with no gtars handle to open (that takes ~1 s once a store
holds 200k sequences). The cache is dropped on every commit through the same ``Store``
(``Store.generation``) and, for commits by other processes, by a daemon thread that polls the
log head every ``WATCH_INTERVAL_S``: a reader sees another process's alias change within that
interval.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable, Container, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, NamedTuple

import lmdb

from .errors import InvalidInputError, NotFoundError, OutOfRangeError, RgstoreError
from .gcpause import gc_paused
from .locus import Region
from .progress import ProgressFactory, null_progress
from .refgetstore import SequenceFiles, strip_sq
from .suggest import did_you_mean

if TYPE_CHECKING:
    from .store import Store
    from .views.genomes import GenomeRecord

__all__ = ["MAX_OPEN_FILES", "STREAM_CHUNK", "WATCH_INTERVAL_S", "SequenceReader", "check_strand_choice", "revcomp"]

WATCH_INTERVAL_S = 0.1
MAX_OPEN_FILES = 256
"""Data files one reader keeps open for its fast path (well under the usual 1,024-descriptor limit)."""
STREAM_CHUNK = 4 << 20
"""Residues per piece of a streamed region (``SequenceReader.stream``): a whole chromosome never sits in memory."""
_BY_DIGEST = "\x00"
"""Prefixes a genome digest in cache keys: no alias starts with a control character, so none can hit its entries."""

_COMPLEMENT = str.maketrans("ACGTURYKMSWBDHVNacgturykmswbdhvn", "TGCAAYRMKSWVHDBNtgcaayrmkswvhdbn")


def check_strand_choice(strand: bool, revcomp: bool) -> None:
    """InvalidInputError when both are asked: ``revcomp`` reverses every region, ``strand`` only the ``-`` ones."""
    if strand and revcomp:
        raise InvalidInputError("--strand and --revcomp cannot be combined: --revcomp reverse-complements every "
                                "region, --strand only the BED rows on the - strand")


def revcomp(seq: str) -> str:
    """The reverse complement of a nucleotide string (IUPAC codes; other letters kept)."""
    return seq.translate(_COMPLEMENT)[::-1]


def _data_file_reader(path: str, length: int) -> Callable[[int, int], str]:
    """A reader of residues ``[start, end)`` of one sequence's data file, which stays open as long as the reader.

    A read it cannot answer exactly (a bound that is None, out of range or wrapping, a file cut
    short, bytes that are not ASCII) raises KeyError or TypeError, and the caller takes the slow
    path, which says what was wrong. The file closes when the reader is collected, not by hand, so
    a thread still reading through a dropped cache never meets a closed (or reused) descriptor.
    """
    file = open(path, "rb", buffering=0)
    fd, pread = file.fileno(), os.pread

    # A closure with its values as defaults: measured ~0.3 us a read cheaper than a class's __call__.
    def read(start: int, end: int, fd: int = fd, length: int = length) -> str:
        if 0 <= start <= end <= length:
            data = pread(fd, end - start, start)
            if len(data) == end - start and data.isascii():
                return data.decode("ascii")
        raise KeyError(start, end)

    # Closed when the reader goes, by this finalizer rather than by the file's own collection: a file
    # collected open warns (ResourceWarning), which fails the tests of a user whose pytest makes warnings errors.
    weakref.finalize(read, file.close)
    return read


_REPAIR = "adding the genome's FASTA again with `rgstore genome init` rewrites it"

class _GenomeIndex(NamedTuple):
    """One genome's record as reads need it: sequence name -> position, and its circular names."""

    record: GenomeRecord
    position: dict[str, int]
    circular: frozenset[str]


class _HeadWatcher(threading.Thread):
    """Drops the reader's cache whenever the log head moves (i.e. another process committed).

    It holds the reader weakly, so a Store dropped without ``close()`` is still collected (and
    the thread then ends at its next tick).
    """

    def __init__(self, reader: SequenceReader, head: int) -> None:
        super().__init__(name="rgstore-sequence-cache", daemon=True)
        self.reader = weakref.ref(reader)
        self.head = head
        self.stopped = threading.Event()

    def run(self) -> None:
        last = self.head  # the head the first cached resolutions were read at
        while not self.stopped.wait(WATCH_INTERVAL_S):
            reader = self.reader()
            if reader is None:
                return
            try:
                head = reader.head()
            except (lmdb.Error, RgstoreError):  # the store was closed under us: nothing left to watch
                return
            if head != last:
                reader.drop_cache()
            last = head
            del reader


def _locus_string(region: str) -> str:
    """InvalidInputError: a locus string where a (seq, start, end) region belongs (its letters would be read as one)."""
    raise InvalidInputError(
        f"region {region[:80]!r} is a locus string: getseqs takes (seq, start, end) tuples; "
        "read_loci and stream_loci take locus strings"
    )


def _malformed_region(region: object) -> None:
    """InvalidInputError if ``region`` is a locus string or a tuple/list that is not (seq, start, end)."""
    if isinstance(region, str):
        _locus_string(region)
    if isinstance(region, (tuple, list)) and len(region) != 3 and not isinstance(region, Region):  # a Region has a 4th field, its strand
        raise InvalidInputError(
            f"region {repr(region)[:80]} is not (seq, start, end): give all three (None for the sequence's own "
            "start or end), or a rgstore.locus.Region"
        )


class SequenceReader:
    """Reads residues of stored genomes by name; one per Store (``store.genomes.sequences``)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._files: SequenceFiles | None = None
        self._fast: dict[tuple[str, str], Callable[[int, int], str]] = {}
        self._meta: dict[tuple[str, str], tuple[str, int, bool]] = {}
        self._genomes: dict[str, _GenomeIndex] = {}
        self._generation = store.generation
        self._lock = threading.Lock()
        self._watcher: _HeadWatcher | None = None

    def close(self) -> None:
        """Stop the head watcher and drop every cached resolution (their files close with them)."""
        if self._watcher is not None:
            self._watcher.stopped.set()
            self._watcher.join(timeout=5)
            self._watcher = None
        self._files = None
        self.drop_cache()

    def head(self) -> int:
        """The log's head seq (for the watcher)."""
        return self.store.head()[0]

    def drop_cache(self) -> None:
        """Forget every resolution (new dicts, so concurrent readers never see a half-cleared one)."""
        with self._lock:
            self._fast = {}
            self._meta = {}
            self._genomes = {}
            self._generation = self.store.generation

    def getseq(
        self, name: str, seq: str, start: int | None = None, end: int | None = None, *, by_digest: bool = False
    ) -> str:
        """Residues ``[start, end)`` (0-based, half-open) of sequence ``seq`` of genome ``name``.

        ``name`` is an alias (``hg38``, ``ns:name``) or, with ``by_digest``, a genome digest.
        ``start``/``end`` default to the sequence's ends; ``start > end`` wraps around a sequence
        declared circular. NotFoundError for an unknown genome or sequence, OutOfRangeError
        outside the sequence.
        """
        if self.store.generation != self._generation:
            self.drop_cache()
        fetch = self._fast.get((name, seq))
        if fetch is not None and not by_digest:
            try:
                return fetch(start, end)  # type: ignore[arg-type]  # None raises TypeError: slow path
            except (KeyError, OverflowError, TypeError):
                # gtars refuses a bad range, a stale handle and a missing bound (None) alike:
                # the slow path fills defaults and says which it was.
                pass
        return self._getseq_slow(name, seq, start, end, by_digest)

    def getseqs(
        self, name: str, regions: Iterable[Region | tuple[str, int | None, int | None]], *,
        by_digest: bool = False, revcomp: bool = False,
    ) -> list[str]:
        """``getseq`` for many regions of one genome; optionally reverse-complemented."""
        if isinstance(regions, str):  # one locus string, not a list: named whole, not as its first letter
            _locus_string(regions)
        if not isinstance(regions, (list, tuple)):
            regions = list(regions)  # a generator: kept, so a failure below can name the region at fault
        getseq = self.getseq
        try:
            out = [getseq(name, r[0], r[1], r[2], by_digest=by_digest) for r in regions]
        except (RgstoreError, TypeError, IndexError):
            # A locus string where a (seq, start, end) tuple belongs is read as its letters, and a tuple short
            # of its end is an IndexError: name the region. Checked only on failure: an isinstance per region
            # cost 5% of a 100k-region call.
            for region in regions:
                _malformed_region(region)
            raise
        if revcomp:
            out = [x.translate(_COMPLEMENT)[::-1] for x in out]
        return out

    def stream(
        self, name: str, regions: Iterable[Region | tuple[str, int | None, int | None]], *,
        by_digest: bool = False, revcomp: bool = False, chunk: int = STREAM_CHUNK, strand: bool = False,
    ) -> list[tuple[int, Iterator[str]]]:
        """(length, lazy pieces of at most ``chunk`` residues) per region, in output order; memory stays bounded.

        Every region is resolved and range-checked, and each sequence's data file is found (a
        remote one fetched), before this returns, so a bad region fails before any output. Each
        region is read piece by piece from the sequence resolved here (by its digest: an alias
        repointed meanwhile cannot mix two genomes in one output), reverse-complemented piece by
        piece from its end: every region with ``revcomp``, those whose ``Region.strand`` is ``-``
        with ``strand`` (the two together are refused: InvalidInputError).
        """
        if chunk < 1:
            raise InvalidInputError(f"chunk must be a positive number of residues, got {chunk}")
        check_strand_choice(strand, revcomp)
        if isinstance(regions, str):  # as in getseqs
            _locus_string(regions)
        out: list[tuple[int, Iterator[str]]] = []
        # One open data file per sequence digest (at most MAX_OPEN_FILES; the rest open per read):
        # opening the file for every region made a 50k-region BED 1.7x slower than reading it whole.
        readers: dict[str, Callable[[int, int], str] | None] = {}
        with gc_paused():  # a generator per region, and no cycles: the collector's passes over 50k cost twice the reads
            for region in regions:
                try:
                    seq, start, end = region[0], region[1], region[2]
                except IndexError:
                    _malformed_region(region)
                    raise
                if isinstance(region, str):
                    _locus_string(region)
                digest, spans = self._spans(name, seq, start, end, by_digest)
                size = spans[0][1] - spans[0][0] if len(spans) == 1 else sum(hi - lo for lo, hi in spans)
                if size and digest not in readers:  # one residue read per sequence: fetches or reports a missing file now
                    lo = next(lo for lo, hi in spans if hi > lo)
                    self._substring(name, seq, digest, lo, lo + 1)
                    readers[digest] = self._stream_reader(digest, self._locate(name, seq, by_digest)[1], len(readers))
                reverse = revcomp or (strand and len(region) > 3 and region[3] == "-")
                out.append((size, self._pieces(name, seq, digest, spans, reverse, chunk, size, readers.get(digest))))
        return out

    def region_at_fault(
        self, name: str, regions: Sequence[Region | tuple[str, int | None, int | None]], error: str, *,
        by_digest: bool = False,
    ) -> int | None:
        """The index of the first of ``regions`` whose lookup or range check fails with the message ``error``.

        None when none does (the failure was elsewhere: a missing data file). Called after a
        ``getseqs`` or ``stream`` failed, to say which region it was; the checks read no residues.
        """
        for at, region in enumerate(regions):
            try:
                self._spans(name, region[0], region[1], region[2], by_digest)
            except RgstoreError as exc:
                if str(exc) == error:
                    return at
        return None

    def _stream_reader(self, digest: str, length: int, opened: int) -> Callable[[int, int], str] | None:
        files = self.data_files() if opened < MAX_OPEN_FILES else None
        if files is None:
            return None
        try:
            return _data_file_reader(files.file(digest), length)
        except OSError:
            return None

    def _pieces(
        self, name: str, seq: str, digest: str, spans: list[tuple[int, int]], revcomp: bool, chunk: int,
        total: int, read: Callable[[int, int], str] | None,
    ) -> Iterator[str]:
        if len(spans) == 1 and 0 < total <= chunk:  # most regions: one read, no closures (50k-region BEDs)
            yield self._read_span(name, seq, digest, spans[0][0], spans[0][1], read, revcomp)
            return

        def substring(lo: int, hi: int) -> str:
            return self._read_span(name, seq, digest, lo, hi, read, False)

        def forward(a: int, b: int) -> str:  # residues [a, b) of the spans laid end to end
            parts, offset = [], 0
            for lo, hi in spans:
                first, last = max(a - offset, 0), min(b - offset, hi - lo)
                if first < last:
                    parts.append(substring(lo + first, lo + last))
                offset += hi - lo
            return "".join(parts)

        for at in range(0, total, chunk):
            stop = min(total, at + chunk)
            if revcomp:
                yield forward(total - stop, total - at).translate(_COMPLEMENT)[::-1]
            else:
                yield forward(at, stop)

    def _read_span(
        self, name: str, seq: str, digest: str, lo: int, hi: int, read: Callable[[int, int], str] | None,
        revcomp: bool,
    ) -> str:
        """Residues [lo, hi) through ``read`` (the stream's open file), else ``_substring`` (which explains a failure)."""
        piece = None
        if read is not None:
            try:
                piece = read(lo, hi)
            except KeyError:  # short or not ASCII: the slow path says which
                pass
        if piece is None:
            piece = self._substring(name, seq, digest, lo, hi)
        return piece.translate(_COMPLEMENT)[::-1] if revcomp else piece

    def _getseq_slow(self, name: str, seq: str, start: int | None, end: int | None, by_digest: bool) -> str:
        digest, spans = self._spans(name, seq, start, end, by_digest)
        return "".join(self._substring(name, seq, digest, lo, hi) for lo, hi in spans)

    def _spans(
        self, name: str, seq: str, start: int | None, end: int | None, by_digest: bool
    ) -> tuple[str, list[tuple[int, int]]]:
        """The sequence digest and the [lo, hi) spans of its data file a region reads (two for a wrap)."""
        digest, length, circular = self._locate(name, seq, by_digest)
        lo = 0 if start is None else start
        hi = length if end is None else end
        # The locus as asked for (seq:9, not seq:9-8 with the default end filled in).
        asked = seq if start is None and end is None else f"{seq}:{lo}" + ("" if end is None else f"-{end}")
        where = f"{asked} of genome {name}"
        if lo < 0 or hi < 0:
            raise OutOfRangeError(f"{where}: coordinates must not be negative")
        if lo > length or hi > length:
            raise OutOfRangeError(f"{where} is outside {seq} (length {length})")
        if lo > hi:
            if not circular:
                raise OutOfRangeError(f"{where}: start is after end ({seq} is not circular)")
            return digest, [(lo, length), (0, hi)]
        return digest, [(lo, hi)]

    def _substring(self, name: str, seq: str, digest: str, lo: int, hi: int) -> str:
        # A file missing here is a sequence this store has not fetched: a genome recorded from a
        # remote (or a mirror's primary) supplies it, checked against its digest before it is kept.
        for fetch in (False, True):
            if fetch:
                from .remotefetch import fetch_missing

                if not fetch_missing(self.store, digest):
                    break
                self.drop_cache()
            files = self.data_files()
            if files is None:
                continue
            data = files.read(digest, lo, hi)
            if data is not None:
                return data
        self.store.environment.check_in_place()  # the whole store moved or deleted, not this one file
        raise NotFoundError(
            f"sequence {seq} ({digest}) of genome {name} is recorded but missing from {self.store.refget_path}"
            f" (its data file is gone or damaged: {_REPAIR})"
        )

    def data_files(self) -> SequenceFiles | None:
        """The RefgetStore's data files (None until one exists: a store of remote genomes only)."""
        if self._files is None:
            try:
                self._files = SequenceFiles(self.store.refget_path)
            except NotFoundError:
                return None
        return self._files

    def complete_files(
        self, genome: str, records: Sequence[tuple[str, str, int]], *, progress: ProgressFactory = null_progress
    ) -> SequenceFiles:
        """The store's sequence data files, once every ``(name, sequence digest, length)`` of ``genome`` is there.

        Sequences whose data file is missing or short (never fetched, or gone) are fetched first (``remotefetch.fetch_many``: from the genome's remote, or a mirror's primary,
        verified against their digests); one that nothing can supply is a NotFoundError before
        anything is read.
        """
        # The data files alone decide, as for getseq: a gtars handle (only to ask its index) costs
        # ~700 bytes per stored sequence, 350 MB on a store of 500k sequences.
        files = self.data_files()
        missing: dict[str, str] = {}
        for name, digest, length in records:
            bare = strip_sq(digest)
            if files is None or not files.readable(bare, length):
                missing.setdefault(bare, name)
        if files is not None and not missing:
            return files
        from .remotefetch import fetch_many

        # In batches: one RefgetStore import per batch, not one per sequence (a genome of many contigs).
        unlisted = fetch_many(self.store, list(missing), progress=progress)
        if unlisted:
            bare = unlisted[0]
            raise NotFoundError(
                f"sequence {missing.get(bare, bare)} ({bare}) of genome {genome} is recorded but missing from "
                f"{self.store.refget_path}, and no remote genome or upstream holds it (its data file is gone or "
                f"damaged: {_REPAIR})"
            )
        self.drop_cache()
        return SequenceFiles(self.store.refget_path)

    def genome_names(self, name: str, *, by_digest: bool = False) -> Container[str]:
        """The sequence names of genome ``name`` (cached like reads; NotFoundError if unknown)."""
        if self.store.generation != self._generation:  # as getseq: a commit through this Store may move the alias
            self.drop_cache()
        key0 = _BY_DIGEST + name if by_digest else name
        return (self._genomes.get(key0) or self._index(name, by_digest, key0)).position

    def _index(self, name: str, by_digest: bool, key0: str) -> _GenomeIndex:
        from .views.genomes import genome_record

        with self._lock:
            generation = self.store.generation
            if generation != self._generation:
                # A commit through this Store since the caller checked: the older resolutions go with the
                # generation they belong to, or a read after that commit would be served from them.
                self._fast, self._meta, self._genomes = {}, {}, {}
            with self.store.read() as txn:
                head, _ = self.store.log.head(txn)
                record = genome_record(txn, self.store.environment, self.store.genomes.resolve_in(txn, name, by_digest))
            assert record is not None
            # One dict built in C, not an entry per sequence: a 200k-contig assembly costs ~20 ms
            # here, and each sequence is resolved on its first read (see _locate).
            index = _GenomeIndex(record, dict(zip(record.names, range(len(record.names)))), frozenset(record.circular))
            self._genomes[key0] = index
            self._generation = generation
            if self._watcher is None:
                watcher = _HeadWatcher(self, head)
                watcher.start()  # kept only once started: close() joins it (a thread a memory limit refused cannot be)
                self._watcher = watcher
        return index

    def _locate(self, name: str, seq: str, by_digest: bool) -> tuple[str, int, bool]:
        key = (_BY_DIGEST + name if by_digest else name, seq)
        hit = self._meta.get(key)
        if hit is not None:
            return hit
        index = self._genomes.get(key[0]) or self._index(name, by_digest, key[0])
        position = index.position.get(seq)
        if position is None:
            names = index.record.names
            hint = did_you_mean(seq, names)
            shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
            raise NotFoundError(f"genome {name} has no sequence {seq!r} ({hint or f'it has {shown}'})")
        record = index.record
        hit = (strip_sq(record.sequences[position]), record.lengths[position], seq in index.circular)
        files = None if by_digest else self.data_files()
        reader = None
        if files is not None:
            try:
                reader = _data_file_reader(files.file(hit[0]), hit[1])
            except OSError:  # not fetched yet (a remote genome's): reads take the slow path, which fetches
                pass
        with self._lock:
            if self._genomes.get(key[0]) is index:  # not dropped meanwhile: never cache a stale resolution
                self._meta[key] = hit
                if reader is not None:
                    fast = self._fast
                    if len(fast) >= MAX_OPEN_FILES:  # bounded descriptors: the oldest entry goes (and closes)
                        del fast[next(iter(fast))]
                    fast[(name, seq)] = reader
        return hit
