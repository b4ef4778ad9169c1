"""Resolve refget identifiers to stored sequences, and read their bases from the RefgetStore.

Identifiers: MD5 (32 hex, any case, optionally ``md5:``), ``SQ.…`` / ``ga4gh:SQ.…``, TRUNC512
(48 hex, optionally ``trunc512:``) and namespaced CURIEs (``insdc:BK006935.2``) resolved through
the store's sequence aliases (``rgstore.seqids``: ``getseq --sequence`` reads the same grammar).
A sequence exists for the server when some genome in the genome view holds it; it is circular
when a genome that holds it recorded it as circular.

Bases are read straight from the RefgetStore's Raw-mode ``.seq`` files (rgstore creates only
Raw stores, whose payload is the upper-case sequence itself): ``os.pread`` of exactly the bytes
asked for, with no gtars call holding the GIL and no whole chromosome in memory. Nothing here
blocks the event loop: ``cached_bases`` serves only what the page cache holds, and a file not
fetched yet (a remote genome's, a mirror's) is fetched by the lazy fetch the app sets (``set_lazy_fetch``:
a worker process of ``fetchworker``).
"""

from __future__ import annotations

import base64
import json
import os
import stat
import threading
from collections.abc import Callable, Iterator

import msgspec

from rgstore.checkpoints import rebuild_count
from rgstore.environment import Txn
from rgstore.errors import IntegrityError, NotFoundError, RemoteError
from rgstore.seqids import digest_of, is_checksum
from rgstore.store import Store
from rgstore.views.aliases import SEQUENCE, aliases_of
from rgstore.views.genomes import genomes_with_sequence

from .catalog import GenomeCatalog

__all__ = [
    "CHUNK",
    "FETCH_TIMEOUT_S",
    "SequenceIndex",
    "StoredSequence",
    "cached_bases",
    "fetch_and_open",
    "is_checksum",
    "iter_bases",
    "open_stored",
    "read_bases",
    "lazy_fetch_enabled",
    "set_lazy_fetch",
]

CHUNK = 1 << 18
_FOUND_MAX = 1 << 16
"""Resolved sequences kept per worker (a few hundred bytes each); the cache restarts when full."""


class StoredSequence(msgspec.Struct, frozen=True, kw_only=True):
    """One sequence as refget sees it, plus the file holding its bases."""

    digest: str
    """sha512t24u, without ``SQ.``."""
    md5: str
    length: int
    circular: bool
    path: str

    @property
    def ga4gh(self) -> str:
        """The ``SQ.`` identifier."""
        return "SQ." + self.digest

    @property
    def trunc512(self) -> str:
        """The deprecated TRUNC512 form: the same 24 digest bytes as hex."""
        return base64.urlsafe_b64decode(self.digest).hex()


class SequenceIndex:
    """Identifier resolution for one open store; cheap to share between request threads."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.catalog: GenomeCatalog = store.service("api.catalog", GenomeCatalog)
        self._manifest: tuple[int, dict[str, object]] | None = None
        self._root = str(store.refget_path)
        self._template: str | None = None
        self._found: tuple[list[str], dict[str, StoredSequence]] = ([], {})

    # -- identifiers --------------------------------------------------------------------------

    def resolve(self, txn: Txn, ident: str) -> StoredSequence:
        """The stored sequence an identifier names; NotFoundError if none."""
        digest = self._digest_of(txn, ident)
        found = self.lookup(txn, digest) if digest is not None else None
        if found is None:
            raise NotFoundError(f"no sequence {ident!r} in this store")
        return found

    def _digest_of(self, txn: Txn, ident: str) -> str | None:
        # The identifier grammar is the engine's (``rgstore getseq --sequence`` resolves the same way);
        # MD5s are looked up in the catalogue, not by walking the genome view per request.
        return digest_of(txn, self.store.environment, ident, lambda md5: self._by_md5(txn, md5))

    def lookup(self, txn: Txn, digest: str) -> StoredSequence | None:
        """The sequence with this bare sha512t24u, if a genome holds it."""
        snap = self.catalog.snapshot(txn)
        genomes, found = self._found
        if genomes is not snap.digests:
            # The catalog builds a new snapshot (a new ``digests`` list) whenever a genome event
            # arrives; only then can an answer change, so the cache starts over.
            genomes, found = self._found = (snap.digests, {})
        seq = found.get(digest)
        if seq is not None:
            return seq
        holders = genomes_with_sequence(txn, self.store.environment, digest)
        if not holders:
            return None
        _, _, length, md5 = holders[0]
        seq = StoredSequence(digest=digest, md5=md5, length=length, circular=digest in snap.circular,
                             path=self._sequence_path(digest))
        # A snapshot newer than txn (a later head or rebuild) must not key an older answer.
        if snap.head == self.store.log.head(txn)[0] and snap.rebuilds == rebuild_count(self.store.log, txn):
            if len(found) >= _FOUND_MAX:
                found.clear()
            found[digest] = seq
        return seq

    def _by_md5(self, txn: Txn, md5: str) -> str | None:
        return self.catalog.snapshot(txn).md5.get(md5)

    def aliases(self, txn: Txn, digest: str) -> list[tuple[str, str]]:
        """(naming authority, alias) of every sequence alias of this digest."""
        if not self.store.environment.has_db("aliases.sequences"):
            return []
        return aliases_of(txn, self.store.environment, SEQUENCE, digest)

    # -- the RefgetStore's files --------------------------------------------------------------

    def manifest(self) -> dict[str, object]:
        """``refget/rgstore.json`` (cached until the file changes); {} when there is none."""
        path = os.path.join(self._root, "rgstore.json")
        try:
            mtime = os.stat(path).st_mtime_ns
        except FileNotFoundError:
            return {}
        cached = self._manifest
        if cached is None or cached[0] != mtime:
            with open(path, "rb") as fh:
                data = json.loads(fh.read())
            mode = str(data.get("mode", "Raw"))
            if mode.lower() != "raw":  # clients see this text: no path in it (as in /status)
                raise IntegrityError(f"the store's RefgetStore is in {mode} mode; rgstore serves Raw only")
            cached = self._manifest = (mtime, data)
        return cached[1]

    def _sequence_path(self, digest: str) -> str:
        template = self._template
        if template is None:
            # Fixed when the RefgetStore is created, so read once (the manifest's mode is checked then).
            template = self._template = str(self.manifest().get("seqdata_path_template", "sequences/%s2/%s.seq"))
        return os.path.join(self._root, template.replace("%s2", digest[:2]).replace("%s", digest))


_lazy_fetch: Callable[[str], bool] | None = None
_fetch_locks: dict[str, threading.Lock] = {}
_fetch_locks_guard = threading.Lock()

FETCH_TIMEOUT_S = 600.0
"""A worker fetching one sequence is killed after this long (a whole chromosome over a slow link fits,
and a request path is not held for half an hour by an upstream that stopped answering)."""


def lazy_fetch_enabled() -> bool:
    """Whether this worker fetches catalogued sequences it lacks (a mirror, or a store with remote genomes)."""
    return _lazy_fetch is not None


def set_lazy_fetch(fetch: Callable[[str], bool] | None) -> None:
    """How to fetch a catalogued sequence whose file is not here yet (True if fetched; None: never)."""
    global _lazy_fetch
    _lazy_fetch = fetch


def open_stored(seq: StoredSequence) -> int | None:
    """A descriptor on the sequence's file, checked for its length; None when the file is not here yet.

    One ``open`` and one ``fstat``: cheap enough for the event loop.
    """
    try:
        # O_NONBLOCK: opening a FIFO planted in the store must not block the event loop (every request).
        fd = os.open(seq.path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_size != seq.length:
        os.close(fd)
        # Clients see this text: the store's own paths stay out of it, as in /status; `verify` names the file.
        raise IntegrityError(f"the stored file of sequence SQ.{seq.digest} does not hold {seq.length} bases; "
                             "the store's operator can run `rgstore verify`")
    os.set_blocking(fd, True)
    return fd


def fetch_and_open(seq: StoredSequence) -> int:
    """Blocking (run it off the event loop): fetch a missing sequence file with the lazy fetch, then open it.

    Fetches of one sequence are serialised per process, so concurrent requests for it download it
    once. IntegrityError when nothing can supply it (the catalogue names a file the store lacks);
    RemoteError (502) when its source fails, UpstreamIntegrityError (502) when its source's residues
    fail the digest (nothing stored).
    """
    with _fetch_locks_guard:
        lock = _fetch_locks.setdefault(seq.digest, threading.Lock())
    with lock:
        fd = open_stored(seq)  # another request may have fetched it while this one waited
        try:
            if fd is None and _lazy_fetch is not None and _lazy_fetch(seq.digest):
                fd = open_stored(seq)
        except (NotFoundError, RemoteError) as exc:  # catalogued here, so a failing source is a bad gateway
            raise RemoteError(f"sequence SQ.{seq.digest} could not be fetched: {exc}") from None
    if fd is None:
        raise IntegrityError(f"sequence SQ.{seq.digest} is catalogued but its file is missing; "
                             "the store's operator can run `rgstore verify`")
    return fd


def _open(seq: StoredSequence) -> int:
    fd = open_stored(seq)
    return fd if fd is not None else fetch_and_open(seq)


_NOWAIT: int | None = getattr(os, "RWF_NOWAIT", None)


def cached_bases(fd: int, segments: list[tuple[int, int]]) -> bytes | None:
    """The bases of ``segments`` if the page cache holds all of them, else None; never waits on the disk.

    ``preadv(RWF_NOWAIT)`` fails rather than block, so the event loop can serve a hot read itself
    (a threadpool hop costs more than the read) and hand a cold one to a thread. ``fd`` stays open.
    """
    if _NOWAIT is None:
        return None
    parts = []
    for start, end in segments:
        buf = bytearray(end - start)
        try:
            if os.preadv(fd, [buf], start, _NOWAIT) != len(buf):
                return None  # partly cached (or short): the blocking read decides
        except OSError:  # EAGAIN (not cached), or a kernel or filesystem without RWF_NOWAIT
            return None
        parts.append(buf)
    return b"".join(parts)


def read_bases(seq: StoredSequence, segments: list[tuple[int, int]], fd: int | None = None) -> bytes:
    """The bases of the half-open ``segments`` (in order), read in one go; closes ``fd`` if given."""
    fd = _open(seq) if fd is None else fd
    try:
        return b"".join(os.pread(fd, end - start, start) for start, end in segments)
    finally:
        os.close(fd)


def iter_bases(
    seq: StoredSequence, segments: list[tuple[int, int]], chunk: int = CHUNK, fd: int | None = None
) -> Iterator[bytes]:
    """The bases of the half-open ``segments`` in chunks of at most ``chunk`` bytes; closes ``fd`` if given.

    The file is opened and checked before this returns, so a damaged store fails before any
    response header is sent, not in the middle of a body.
    """
    return _chunks(_open(seq) if fd is None else fd, seq, segments, chunk)


def _chunks(fd: int, seq: StoredSequence, segments: list[tuple[int, int]], chunk: int) -> Iterator[bytes]:
    try:
        for start, end in segments:
            pos = start
            while pos < end:
                data = os.pread(fd, min(chunk, end - pos), pos)
                if not data:
                    raise IntegrityError(f"sequence file {seq.path} ended early at byte {pos}")
                yield data
                pos += len(data)
    finally:
        os.close(fd)
