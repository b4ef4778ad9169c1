"""Resolve refget identifiers to stored sequences, and read their bases from the RefgetStore.

Identifiers: MD5 (32 hex, any case, optionally ``md5:``), ``SQ.…`` / ``ga4gh:SQ.…``, TRUNC512
(48 hex, optionally ``trunc512:``) and namespaced CURIEs (``insdc:BK006935.2``) resolved through
the store's sequence aliases. A sequence exists for the server when some genome in the genome
view holds it; it is circular when a genome that holds it recorded it as circular.

Bases are read straight from the RefgetStore's Raw-mode ``.seq`` files (rgstore creates only
Raw stores, whose payload is the upper-case sequence itself): ``os.pread`` of exactly the bytes
asked for, with no gtars call holding the GIL and no whole chromosome in memory.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections.abc import Callable, Iterator

import msgspec

from rgstore.environment import Txn
from rgstore.errors import IntegrityError, NotFoundError
from rgstore.store import Store
from rgstore.views.aliases import SEQUENCE, aliases_of, sequence_alias
from rgstore.views.genomes import genomes_with_sequence

from .catalog import GenomeCatalog

__all__ = ["StoredSequence", "SequenceIndex", "read_bases", "iter_bases", "CHUNK"]

CHUNK = 1 << 18
_MD5 = re.compile(r"[0-9a-fA-F]{32}")
_TRUNC512 = re.compile(r"[0-9a-fA-F]{48}")
_SQ = re.compile(r"SQ\.[A-Za-z0-9_\-]{32}")


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


def _trunc512_to_digest(hex48: str) -> str:
    return base64.urlsafe_b64encode(binascii.unhexlify(hex48)).decode()


class SequenceIndex:
    """Identifier resolution for one open store; cheap to share between request threads."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.catalog: GenomeCatalog = store.service("api.catalog", GenomeCatalog)
        self._manifest: tuple[int, dict[str, object]] | None = None
        self._root = str(store.refget_path)
        self._template: str | None = None

    # -- identifiers --------------------------------------------------------------------------

    def resolve(self, txn: Txn, ident: str) -> StoredSequence:
        """The stored sequence an identifier names; NotFoundError if none."""
        digest = self._digest_of(txn, ident)
        found = self.lookup(txn, digest) if digest is not None else None
        if found is None:
            raise NotFoundError(f"no sequence {ident!r} in this store")
        return found

    def _digest_of(self, txn: Txn, ident: str) -> str | None:
        namespace, sep, local = ident.partition(":")
        if not sep:
            if _MD5.fullmatch(ident):
                return self._by_md5(txn, ident.lower())
            if _TRUNC512.fullmatch(ident):
                return _trunc512_to_digest(ident)
            if _SQ.fullmatch(ident):
                return ident[3:]
            return None
        lowered = namespace.lower()
        if lowered == "md5":
            return self._by_md5(txn, local.lower()) if _MD5.fullmatch(local) else None
        if lowered == "ga4gh":
            return local[3:] if _SQ.fullmatch(local) else None
        if lowered == "trunc512":
            return _trunc512_to_digest(local) if _TRUNC512.fullmatch(local) else None
        if not self.store.environment.has_db("aliases.sequences") or not local:
            return None
        return sequence_alias(txn, self.store.environment, namespace, local)

    def lookup(self, txn: Txn, digest: str) -> StoredSequence | None:
        """The sequence with this bare sha512t24u, if a genome holds it."""
        holders = genomes_with_sequence(txn, self.store.environment, digest)
        if not holders:
            return None
        _, _, length, md5 = holders[0]
        return StoredSequence(digest=digest, md5=md5, length=length,
                              circular=digest in self.catalog.snapshot(txn).circular,
                              path=self._sequence_path(digest))

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
            if mode.lower() != "raw":
                raise IntegrityError(f"the RefgetStore at {self._root} is in {mode} mode; rgstore serves Raw only")
            cached = self._manifest = (mtime, data)
        return cached[1]

    def _sequence_path(self, digest: str) -> str:
        template = self._template
        if template is None:
            # Fixed when the RefgetStore is created, so read once (the manifest's mode is checked then).
            template = self._template = str(self.manifest().get("seqdata_path_template", "sequences/%s2/%s.seq"))
        return os.path.join(self._root, template.replace("%s2", digest[:2]).replace("%s", digest))

_lazy_fetch: Callable[[str], bool] | None = None


def set_lazy_fetch(fetch: Callable[[str], bool] | None) -> None:
    """On a mirror: how to fetch a catalogued sequence whose file is not here yet (True if fetched)."""
    global _lazy_fetch
    _lazy_fetch = fetch


def _open(seq: StoredSequence) -> int:
    try:
        fd = os.open(seq.path, os.O_RDONLY)
    except FileNotFoundError:
        if _lazy_fetch is None or not _lazy_fetch(seq.digest):
            raise IntegrityError(f"sequence SQ.{seq.digest} is catalogued but its file {seq.path} is missing") from None
        fd = os.open(seq.path, os.O_RDONLY)
    if os.fstat(fd).st_size != seq.length:
        os.close(fd)
        raise IntegrityError(f"sequence file {seq.path} does not hold {seq.length} bases")
    return fd


def read_bases(seq: StoredSequence, segments: list[tuple[int, int]]) -> bytes:
    """The bases of the half-open ``segments`` (in order), read in one go."""
    fd = _open(seq)
    try:
        return b"".join(os.pread(fd, end - start, start) for start, end in segments)
    finally:
        os.close(fd)


def iter_bases(seq: StoredSequence, segments: list[tuple[int, int]], chunk: int = CHUNK) -> Iterator[bytes]:
    """The bases of the half-open ``segments`` in chunks of at most ``chunk`` bytes.

    The file is opened and checked before this returns, so a damaged store fails before any
    response header is sent, not in the middle of a body.
    """
    return _chunks(_open(seq), seq, segments, chunk)


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
