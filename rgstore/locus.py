"""Regions of sequences: ``seq``, ``seq:start``, ``seq:start-end`` loci and BED files.

Coordinates are 0-based and half-open, as in refgenie and BED (``chr1:0-10`` is the first ten
residues); ``None`` means the sequence's own start or end. Names may contain ``:`` (HLA
alleles do), so only a trailing ``:<digits>[-<digits>]`` is read as coordinates.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Container, Iterator
from pathlib import Path
from typing import BinaryIO, NamedTuple

from .errors import InvalidInputError
from .pathtext import given_path

__all__ = ["Region", "format_region", "parse_locus", "read_bed", "read_bed_rows"]

_BED_INT = re.compile(r"[0-9]+")
_COORDS = re.compile(r"^(?P<seq>.+):(?P<start>[0-9][0-9,]*)(?:-(?P<end>[0-9][0-9,]*))?$")
_ATTEMPTED_RANGE = re.compile(r":[0-9,.\- ]*[0-9][0-9,.\- ]*$")
"""After the last ':', only digits, commas, '-', '.' and spaces (with a digit): a mistyped range, not a name."""


class Region(NamedTuple):
    """A sequence name and optional 0-based half-open bounds; ``strand`` is a BED row's 6th column when read stranded.

    ``strand`` is None unless ``read_bed(..., strand=True)`` read the row: then ``+``, ``-``,
    ``.`` or ``""`` (no 6th column), and ``-`` means the reverse complement.
    """

    seq: str
    start: int | None = None
    end: int | None = None
    strand: str | None = None


def parse_locus(text: str, names: Container[str] = (), *, one_based: bool = False) -> Region:
    """``seq`` | ``seq:start`` | ``seq:start-end`` (commas allowed in numbers) -> Region (0-based, half-open).

    A ``text`` that is exactly one of ``names`` (the genome's sequence names) is that whole
    sequence, even when it looks like coordinates (an HLA record named ``HLA:01``). With
    ``one_based`` the text counts as samtools, IGV and the UCSC browser do (``chr1:1-10`` is the
    first ten residues, ``chr1:5-5`` one residue).
    """
    text = text.strip()
    if not text:
        raise InvalidInputError("empty locus: expected seq, seq:start or seq:start-end")
    if text in names:
        return Region(text)
    m = _COORDS.match(text)
    if m is None:
        # Not a sequence name of the genome, and after its last ':' an attempt at a range
        # (chr1:1.5-3, chr1: 1-3): a lookup as a name would only say the genome lacks it.
        if text.endswith(":") or re.search(r":[0-9,]*-$|:-", text) or _ATTEMPTED_RANGE.search(text):
            raise InvalidInputError(f"malformed locus {text!r}: expected seq, seq:start or seq:start-end")
        return Region(text)
    where = f"locus {text!r}"
    start = _coordinate(m["start"], where)
    end = _coordinate(m["end"], where) if m["end"] is not None else None
    if one_based:
        if start == 0:
            raise InvalidInputError(f"{where}: 1-based coordinates start at 1 (the first residue is {m['seq']}:1)")
        start -= 1
    return Region(m["seq"], start, end)


_MAX_DIGITS = 30
"""More digits than any sequence length needs; int() of 4,301 or more digits raises ValueError."""


def _coordinate(digits: str, where: str) -> int:
    """A plain-digit coordinate (commas allowed) as an int; InvalidInputError when it has absurdly many digits."""
    significant = digits.replace(",", "").lstrip("0")
    if len(significant) > _MAX_DIGITS:
        raise InvalidInputError(f"{where}: a coordinate with {len(significant):,} digits is too large for any sequence")
    return int(significant or "0")


def read_bed(path: Path | str, *, strand: bool = False) -> Iterator[Region]:
    """Regions of a BED file or ``-`` (standard input): first three columns; header, track, browser, blank lines skipped.

    See ``read_bed_rows``, which also says where each region was read.
    """
    for _, _, region in read_bed_rows(path, strand=strand):
        yield region


def read_bed_rows(path: Path | str, *, strand: bool = False) -> Iterator[tuple[str, int, Region]]:
    """(file as errors name it, line number, region) for each row of a BED file or ``-`` (standard input).

    Header, track, browser and blank lines are skipped; the first three columns are read.

    With ``strand`` the 6th column is read too (as ``bedtools getfasta -s`` does): ``+``, ``-``,
    ``.`` or none, kept in ``Region.strand``; any other value is an InvalidInputError naming the line.
    Pipes are read like files (``--bed <(bedtools merge ...)``, ``/dev/stdin``): workflows stream
    regions from the tool that computed them.
    """
    if str(path) == "-":
        yield from _bed_lines(sys.stdin.buffer, "<stdin>", strand)
        return
    path = given_path(path, "BED file")
    if path.is_dir():
        raise InvalidInputError(f"{path}: is a directory, not a BED file")
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        raise InvalidInputError(f"{path}: no such BED file") from None
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot read the BED file ({exc.strerror})") from None
    with fh:
        yield from _bed_lines(fh, str(path), strand)


_STRANDS = frozenset({"+", "-", ".", ""})


def _bed_lines(fh: BinaryIO, path: str, stranded: bool = False) -> Iterator[tuple[str, int, Region]]:
    """(path, line number, region) for each row of an open BED stream; errors name ``path`` and the line."""
    for number, raw in enumerate(fh, 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInputError(
                f"{path}: line {number}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})"
            ) from None
        if not line.strip() or line.startswith(("#", "track", "browser")):
            continue
        fields = line.rstrip("\r\n").split("\t")
        if len(fields) < 3:
            fields = line.split()
        if len(fields) < 3:
            raise InvalidInputError(f"{path}: line {number}: expected chrom, start and end columns")
        if fields[1].startswith("-") or fields[2].startswith("-"):
            raise InvalidInputError(f"{path}: line {number}: negative coordinate")
        # int() alone would also take '1_0', '+1' and non-ASCII digits.
        if not (_BED_INT.fullmatch(fields[1]) and _BED_INT.fullmatch(fields[2])):
            raise InvalidInputError(f"{path}: line {number}: start and end must be integers")
        where = f"{path}: line {number}"
        if not stranded:
            yield path, number, Region(fields[0], _coordinate(fields[1], where), _coordinate(fields[2], where))
            continue
        strand = fields[5].strip() if len(fields) > 5 else ""
        if strand not in _STRANDS:
            raise InvalidInputError(f"{where}: strand (6th column) must be +, - or ., not {strand!r}")
        yield path, number, Region(fields[0], _coordinate(fields[1], where), _coordinate(fields[2], where), strand)


def format_region(region: Region, length: int | None = None) -> str:
    """``seq:start-end`` with defaults filled from ``length`` when it is known."""
    start = region.start if region.start is not None else 0
    end = region.end if region.end is not None else length
    return f"{region.seq}:{start}-{end}" if end is not None else f"{region.seq}:{start}-"
