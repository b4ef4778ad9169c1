"""Regions of a stored collection's sequences, checked and laid out for refget's ``POST /collection/{d}/regions``.

refget's server (``refgenie/refget``, ``refget/router.py``) takes a JSON list of ``{chrom, start,
end}`` (0-based, half-open, as BED) and answers ``[{chrom_name, start, end, sequence}]`` in the same
order; it answers 404 for any failure. Here every region is checked against the genome before a
base is read, and a failure says which region and why, with the status the refget sequence routes
give the same fault: an unknown collection or sequence name 404; a region that is not an object of
a string ``chrom`` and integer ``start``/``end`` 422; a negative coordinate or a ``start`` past the
sequence's end 400; an ``end`` past it, or ``start > end`` on a sequence the genome does not record
as circular 416 (a circular one wraps: ``seq[start:] + seq[:end]``, as ``getseq`` reads it). More
than ``MAX_REGIONS`` regions, or more than ``MAX_REGION_BASES`` bases in all, is 413 before
anything is read: the answer is built in memory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from .errors import InvalidInputError, NotFoundError, OutOfRangeError
from .suggest import did_you_mean
from .views.aliasnames import DIGEST_RE
from .views.genomes import genome_record

if TYPE_CHECKING:
    from .store import Store

__all__ = ["MAX_REGIONS", "MAX_REGION_BASES", "MalformedRegionsError", "PlannedRegion", "RegionsTooLargeError",
           "plan_regions"]

MAX_REGIONS = 10_000
"""Regions one request may ask for (refget sets none)."""
MAX_REGION_BASES = 100_000_000
"""Bases one request may ask for in all: the answer (about this many bytes) is built whole in memory."""


class MalformedRegionsError(InvalidInputError):
    """The posted regions are not a list of ``{chrom: str, start: int, end: int}`` objects: 422."""

    http_status = 422


class RegionsTooLargeError(InvalidInputError):
    """More regions, or more bases in all, than one request may ask for: 413."""

    http_status = 413


class PlannedRegion(msgspec.Struct, frozen=True):
    """One checked region: as asked, plus the sequence it reads and the [lo, hi) spans of it (two for a wrap)."""

    chrom: str
    start: int
    end: int
    sequence: str
    """The sequence's bare sha512t24u digest (no ``SQ.``)."""
    spans: tuple[tuple[int, int], ...]

    @property
    def size(self) -> int:
        """Bases this region reads."""
        return sum(hi - lo for lo, hi in self.spans)


def plan_regions(store: Store, digest: str, regions: Any) -> list[PlannedRegion]:
    """Every region of ``regions`` (parsed JSON) checked against collection ``digest``, in order; see the module text.

    Nothing is read: the caller reads each region's spans from its sequence's data file.
    """
    checked = _shape(regions)
    with store.read() as txn:
        record = genome_record(txn, store.environment, digest) if DIGEST_RE.fullmatch(digest) else None
    if record is None:
        raise NotFoundError(f"no sequence collection {digest!r} in this store")
    position = dict(zip(record.names, range(len(record.names))))
    circular = frozenset(record.circular)
    out, total = [], 0
    for at, (chrom, start, end) in enumerate(checked):
        where = f"region {at} ({chrom}:{start}-{end})"
        index = position.get(chrom)
        if index is None:
            hint = did_you_mean(chrom, record.names)
            raise NotFoundError(f"{where}: collection {digest} has no sequence {chrom!r}" + (f" ({hint})" if hint else ""))
        length = record.lengths[index]
        if start < 0 or end < 0:
            raise InvalidInputError(f"{where}: coordinates must not be negative (0-based, half-open)")
        if start > length:
            raise InvalidInputError(f"{where}: start is beyond the end of {chrom} (length {length})")
        if end > length:
            raise OutOfRangeError(f"{where}: end is beyond the end of {chrom} (length {length})")
        if start <= end:
            spans: tuple[tuple[int, int], ...] = ((start, end),)
        elif chrom in circular:
            spans = ((start, length), (0, end))
        else:
            raise OutOfRangeError(f"{where}: start is after end, and {chrom} is not circular in this collection")
        region = PlannedRegion(chrom, start, end, record.sequences[index].removeprefix("SQ."), spans)
        total += region.size
        if total > MAX_REGION_BASES:
            raise RegionsTooLargeError(f"the regions ask for more than {MAX_REGION_BASES:,} bases in all "
                                       f"(past it at region {at}); ask in smaller requests")
        out.append(region)
    return out


def _shape(regions: Any) -> list[tuple[str, int, int]]:
    """(chrom, start, end) of each posted region; MalformedRegionsError or RegionsTooLargeError otherwise."""
    if not isinstance(regions, list):
        raise MalformedRegionsError(f"post a JSON list of {{chrom, start, end}} objects, not {_kind(regions)}")
    if len(regions) > MAX_REGIONS:
        raise RegionsTooLargeError(f"{len(regions):,} regions posted; at most {MAX_REGIONS:,} per request")
    out: list[tuple[str, int, int]] = []
    for at, region in enumerate(regions):
        if not isinstance(region, dict):
            raise MalformedRegionsError(f"region {at} is {_kind(region)}, not a {{chrom, start, end}} object")
        chrom, start, end = region.get("chrom"), region.get("start"), region.get("end")
        if not isinstance(chrom, str):
            raise MalformedRegionsError(f"region {at}: chrom must be a string, not {_kind(chrom)}")
        # type() is int: not bool (an int subclass), not 1.0.
        if type(start) is not int:
            raise MalformedRegionsError(f"region {at}: start must be an integer, not {_kind(start)}")
        if type(end) is not int:
            raise MalformedRegionsError(f"region {at}: end must be an integer, not {_kind(end)}")
        out.append((chrom, start, end))
    return out


def _kind(value: Any) -> str:
    """What a JSON value is, for a message: ``a string``, ``null``, ``1.5``."""
    if value is None:
        return "missing or null"
    if isinstance(value, (bool, int, float)):
        return repr(value).lower() if isinstance(value, bool) else repr(value)
    names: dict[type, str] = {str: "a string", list: "a list", dict: "an object"}
    return names.get(type(value), type(value).__name__)
