"""Sequences by refget identifier: what ``/sequence/{id}`` and ``rgstore getseq --sequence`` both resolve.

Identifiers: MD5 (32 hex, any case, optionally ``md5:``), ``SQ.…`` / ``ga4gh:SQ.…``, TRUNC512
(48 hex, optionally ``trunc512:``) and namespaced CURIEs (``insdc:BK006935.2``) resolved through
the store's sequence aliases. A sequence exists when some genome in the genome view holds it; it
is circular when a genome that holds it recorded it as circular. ``namespace:name`` names one
digest by construction, so no identifier is ambiguous (refget's 300/409 cannot arise); a bare
name is no identifier, and the not-found error for one names the sequence aliases it would be.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, NamedTuple

from .environment import Environment, Txn
from .errors import InvalidInputError, NotFoundError, OutOfRangeError
from .gcpause import gc_paused
from .locus import Region, parse_locus
from .refgetstore import strip_sq
from .sequences import STREAM_CHUNK
from .views.aliases import SEQUENCE, alias_namespaces, alias_target, sequence_alias
from .views.genomes import all_genomes, genome_record, genomes_with_sequence

if TYPE_CHECKING:
    from .store import Store

__all__ = ["ResolvedSequence", "digest_of", "is_checksum", "read_sequence", "resolve_sequence", "stream_sequence",
           "trunc512_to_digest"]

_MD5 = re.compile(r"[0-9a-fA-F]{32}")
_TRUNC512 = re.compile(r"[0-9a-fA-F]{48}")
_SQ = re.compile(r"SQ\.[A-Za-z0-9_\-]{32}")
_REGION = re.compile(r"[0-9][0-9,]*(?:-[0-9][0-9,]*)?")


def is_checksum(ident: str) -> bool:
    """Whether ``ident`` is a checksum (MD5, ``SQ.``, TRUNC512, bare or namespaced), not an alias that may move."""
    namespace, sep, local = ident.partition(":")
    if not sep:
        return bool(_MD5.fullmatch(ident) or _TRUNC512.fullmatch(ident) or _SQ.fullmatch(ident))
    pattern = {"md5": _MD5, "ga4gh": _SQ, "trunc512": _TRUNC512}.get(namespace.lower())
    return bool(pattern and pattern.fullmatch(local))


def trunc512_to_digest(hex48: str) -> str:
    """The bare sha512t24u of a TRUNC512 (the same 24 digest bytes as hex)."""
    return base64.urlsafe_b64encode(binascii.unhexlify(hex48)).decode()


def digest_of(txn: Txn, environment: Environment, ident: str, by_md5: Callable[[str], str | None]) -> str | None:
    """The bare sha512t24u ``ident`` names, or None; not checked against the genomes.

    ``by_md5`` maps a lower-case MD5 to the digest of a sequence some genome holds (the server
    asks its catalogue, the CLI the genome view).
    """
    namespace, sep, local = ident.partition(":")
    if not sep:
        if _MD5.fullmatch(ident):
            return by_md5(ident.lower())
        if _TRUNC512.fullmatch(ident):
            return trunc512_to_digest(ident)
        if _SQ.fullmatch(ident):
            return ident[3:]
        return None
    lowered = namespace.lower()
    if lowered == "md5":
        return by_md5(local.lower()) if _MD5.fullmatch(local) else None
    if lowered == "ga4gh":
        return local[3:] if _SQ.fullmatch(local) else None
    if lowered == "trunc512":
        return trunc512_to_digest(local) if _TRUNC512.fullmatch(local) else None
    if not environment.has_db("aliases.sequences") or not local:
        return None
    return sequence_alias(txn, environment, namespace, local)


class ResolvedSequence(NamedTuple):
    """A stored sequence an identifier names, and one genome holding it (the one reads go through)."""

    ident: str
    digest: str
    """Bare sha512t24u."""
    md5: str
    length: int
    circular: bool
    genome: str
    """Digest of a genome holding it (one recording it as circular, if any does)."""
    name: str
    """Its sequence name in ``genome``."""


def resolve_sequence(store: Store, ident: str) -> ResolvedSequence:
    """The stored sequence ``ident`` names, as ``/sequence/{id}`` resolves it; NotFoundError if none."""
    env = store.environment
    with store.read() as txn:
        digest = digest_of(txn, env, ident, lambda md5: _md5_in_genomes(txn, env, md5))
        holders = genomes_with_sequence(txn, env, digest) if digest is not None else []
        if not holders:
            raise NotFoundError(f"no sequence {ident!r} in this store{_bare_name_hint(txn, env, ident)}")
        assert digest is not None
        genome, name, length, md5 = holders[0]
        for holder, holder_name, _, _ in holders:
            record = genome_record(txn, env, holder)
            if record is not None and holder_name in record.circular:
                return ResolvedSequence(ident, digest, md5, length, True, holder, holder_name)
    return ResolvedSequence(ident, digest, md5, length, False, genome, name)


def stream_sequence(
    store: Store, ident: str, regions: Sequence[str] = (), *, one_based: bool = False, revcomp: bool = False,
    chunk: int = STREAM_CHUNK,
) -> list[tuple[Region, int, Iterator[str]]]:
    """(region, length, lazy pieces) of ``start-end`` / ``start`` regions of the sequence ``ident`` names.

    No region is the whole sequence. Regions are 0-based and half-open, or with ``one_based``
    1-based and inclusive; the regions returned are 0-based, with ``ident`` as their ``seq``.
    ``start > end`` wraps a circular sequence. Every region is checked, and the sequence's data
    file found (a remote genome's fetched, as ``getseq`` does), before this returns.
    NotFoundError (unknown id), InvalidInputError (malformed region), OutOfRangeError.
    """
    seq = resolve_sequence(store, ident)
    parsed = [_region(ident, text, one_based) for text in regions]
    for region, text in zip(parsed, regions):
        _check_range(seq, region, f"{ident}:{text}")
    return _stream(store, seq, parsed or [Region(ident)], revcomp, chunk)


def read_sequence(store: Store, ident: str, start: int | None = None, end: int | None = None, *,
                  revcomp: bool = False) -> str:
    """Residues ``[start, end)`` (0-based, half-open; None: the sequence's own ends) of the sequence ``ident`` names.

    As ``stream_sequence``, for one region given as numbers.
    """
    seq = resolve_sequence(store, ident)
    region = Region(ident, start, end)
    asked = ident if start is None and end is None else f"{ident}:{start or 0}-" + ("" if end is None else str(end))
    _check_range(seq, region, asked)
    return "".join(piece for _, _, pieces in _stream(store, seq, [region], revcomp, STREAM_CHUNK) for piece in pieces)


def _stream(
    store: Store, seq: ResolvedSequence, regions: list[Region], revcomp: bool, chunk: int
) -> list[tuple[Region, int, Iterator[str]]]:
    # Read through a genome holding it, by that genome's digest: its data file, a remote genome's
    # fetch and the streaming are getseq's own (the ranges were checked here, in the id's terms).
    with gc_paused():
        streamed = store.genomes.sequences.stream(
            seq.genome, [Region(seq.name, r.start, r.end) for r in regions], by_digest=True, revcomp=revcomp,
            chunk=chunk)
    return [(region, size, pieces) for region, (size, pieces) in zip(regions, streamed)]


def _region(ident: str, text: str, one_based: bool) -> Region:
    if not _REGION.fullmatch(text.strip()):
        raise InvalidInputError(f"malformed region {text!r} of sequence {ident}: expected start-end or start")
    region = parse_locus(f"{ident}:{text.strip()}", one_based=one_based)
    return Region(ident, region.start, region.end)


def _check_range(seq: ResolvedSequence, region: Region, asked: str) -> None:
    """OutOfRangeError naming the region as it was written (``asked``), so 1-based ones need no note."""
    length = seq.length
    lo = region.start or 0
    hi = length if region.end is None else region.end
    if lo < 0 or hi < 0:
        raise OutOfRangeError(f"{asked}: coordinates must not be negative")
    if lo > length or hi > length:
        raise OutOfRangeError(f"{asked} is outside the sequence (length {length})")
    if lo > hi and not seq.circular:
        raise OutOfRangeError(f"{asked}: start is after end (the sequence is not circular)")


def _md5_in_genomes(txn: Txn, environment: Environment, md5: str) -> str | None:
    """The digest of a sequence with this MD5 in some genome (a walk of the genome view: one lookup per command)."""
    for record in all_genomes(txn, environment):
        if md5 in record.md5s:
            return strip_sq(record.sequences[record.md5s.index(md5)])
    return None


def _bare_name_hint(txn: Txn, environment: Environment, ident: str) -> str:
    """For a name that sequence aliases hold in some namespace: the ``ns:name`` forms to give instead."""
    namespace, sep, local = ident.partition(":")
    name = local if sep else ident
    if not name or is_checksum(ident):
        return ""
    found = [f"{other}:{name} (SQ.{target})" for other in alias_namespaces(txn, environment, SEQUENCE)
             if other != (namespace if sep else None)
             and (target := alias_target(txn, environment, SEQUENCE, other, name)) is not None]
    if not found:
        return ""
    shown = ", ".join(found[:5]) + (f" and {len(found) - 5} more" if len(found) > 5 else "")
    return f"; the sequence aliases named {name!r} are {shown}: give one as ns:NAME"
