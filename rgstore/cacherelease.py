"""The NCBI annotation release a GTF holds, read from its header, and the refusal of a request for another.

NCBI re-annotates an accession in place: ``genomes/all/<accession>`` serves whichever release is
current, and its GTF says which in a header line, e.g. ``#!annotation-source NCBI RefSeq
GCF_000001405.40-RS_2023_10`` (newer) or ``#!annotation-source NCBI Homo sapiens Updated
Annotation Release 105.20220307`` / ``... Annotation Release 110`` (older). Only the leading
``#`` lines are read (a few hundred bytes of a gzip stream). A GTF whose header names no
release (``#!annotation-source NCBI RefSeq`` alone, or no such line) gives "".
"""

from __future__ import annotations

import gzip
import re
import zlib
from pathlib import Path

from .errors import ConflictError, IntegrityError

__all__ = ["gtf_release", "release_mismatch"]

_SOURCE = "#!annotation-source"
_RS = re.compile(r"(?:^|[\s-])(RS_\d{4}_\d{2})(?:\s|$)", re.IGNORECASE | re.ASCII)
_NUMBERED = re.compile(r"\bAnnotation\s+Release\s+(\d{1,4}(?:\.\d{8})?)(?:\s|$)", re.IGNORECASE | re.ASCII)
_MAX_HEADER_LINES = 1000
"""Header lines read at most: NCBI GTFs have about five; a file of comments alone is not read whole."""


def _release_of(text: str) -> str:
    """The release an ``#!annotation-source`` value names, canonical as requests spell it ("" if none)."""
    rs = _RS.search(text)
    if rs is not None:
        return rs.group(1).upper()
    numbered = _NUMBERED.search(text)
    return numbered.group(1) if numbered is not None else ""


def gtf_release(path: Path) -> str:
    """The annotation release a GTF (plain or gzip) names in its ``#!annotation-source`` header line, or ""."""
    with open(path, "rb") as probe:
        gzipped = probe.read(2) == b"\x1f\x8b"
    try:
        with (gzip.open(path, "rb") if gzipped else open(path, "rb")) as fh:
            for _ in range(_MAX_HEADER_LINES):
                line = fh.readline(1 << 16)
                if not line.startswith(b"#"):
                    return ""  # the first feature row (or the end): the header is over
                text = line.decode("utf-8", "replace").strip()
                if text.startswith(_SOURCE):
                    return _release_of(text.removeprefix(_SOURCE))
    except (EOFError, OSError, zlib.error) as exc:  # checked against its checksum before: damage since
        raise IntegrityError(f"{path.name} does not decompress ({exc}); nothing was cached") from None
    return ""


def release_mismatch(accession: str, requested: str, held: str, *, cached_key: str = "") -> ConflictError:
    """The one-line refusal of a request for release ``requested`` of data holding ``held``.

    ``cached_key``: the level-2 entry that holds it (refused from the cache); "" for a fresh
    download (nothing was cached).
    """
    if cached_key:
        return ConflictError(
            f"the cached NCBI download of {accession} holds annotation release {held}, not {requested}: "
            f"ask for --release {held}, or run `rgstore cache evict {cached_key[:12]}` to fetch the "
            "release NCBI holds now"
        )
    return ConflictError(
        f"NCBI now holds annotation release {held} of {accession}, not {requested} (genomes/all serves "
        f"only an accession's current annotation): ask for --release {held}; nothing was cached"
    )
