"""The NCBI annotation release a GTF holds, read from its header, and the refusal of a request for another.

NCBI re-annotates an accession in place: ``genomes/all/<accession>`` serves whichever release is
current, and its GTF says which in a header line, e.g. ``#!annotation-source NCBI RefSeq
GCF_000001405.40-RS_2023_10`` (newer) or ``#!annotation-source NCBI Homo sapiens Updated
Annotation Release 105.20220307`` / ``... Annotation Release 110`` (older). Only the leading
``#`` lines are read (a few hundred bytes of a gzip stream). A GTF whose header names no
release (``#!annotation-source NCBI RefSeq`` alone, or no such line) gives "".

The newer form also names the assembly accession the annotation is of (``GCF_000001405.40`` above):
a fresh download whose header names another accession than the request is refused
(``accession_mismatch``), exactly, version included (the release name pins one assembly
version). The older form names none, and then nothing is compared.

Entries inserted by an rgstore that did not record the release (``annotation_release == ""``)
have theirs read from their cached GTF when a request needs it (``cached_release``), remembered
per process by entry key and the GTF's recorded sha256, so hits do not read it again.
"""

from __future__ import annotations

import gzip
import re
import zlib
from pathlib import Path

from .cacheupstream import LOCAL_NAMES
from .errors import ConflictError, IntegrityError
from .events import FileRef

__all__ = ["gtf_release", "gtf_source", "cached_release", "release_mismatch", "accession_mismatch"]

_SOURCE = "#!annotation-source"
_BUILD = "#!genome-build-accession"
_RS = re.compile(r"(?:^|[\s-])(RS_\d{4}_\d{2})(?:\s|$)", re.IGNORECASE | re.ASCII)
_ACCESSION = re.compile(r"(?:^|\s)(GC[AF]_\d{9}\.\d+)(?:-|\s|$)", re.IGNORECASE | re.ASCII)
_NUMBERED = re.compile(r"\bAnnotation\s+Release\s+(\d{1,4}(?:\.\d{8})?)(?:\s|$)", re.IGNORECASE | re.ASCII)
_MAX_HEADER_LINES = 1000
"""Header lines read at most: NCBI GTFs have about five; a file of comments alone is not read whole."""
_GTF_FILES = (f"raw/{LOCAL_NAMES['annotation']}.gz", f"decompressed/{LOCAL_NAMES['annotation']}")
"""A level-2 entry's GTF as downloaded, then decompressed, in the order they are read."""
_READ: dict[tuple[str, str], str] = {}
"""(entry key, recorded sha256 of its raw GTF) -> the release its header names: read once per process."""
_READ_MAX = 4096
"""Entries remembered at most (a store has a handful of level-2 entries; a server may open several stores)."""


def _release_of(text: str) -> str:
    """The release an ``#!annotation-source`` value names, canonical as requests spell it ("" if none)."""
    rs = _RS.search(text)
    if rs is not None:
        return rs.group(1).upper()
    numbered = _NUMBERED.search(text)
    return numbered.group(1) if numbered is not None else ""


def gtf_release(path: Path) -> str:
    """The annotation release a GTF (plain or gzip) names in its ``#!annotation-source`` header line, or ""."""
    return gtf_source(path)[0]


def gtf_source(path: Path) -> tuple[str, str]:
    """(release, assembly accession) a GTF's header names; "" for what it names not.

    The release comes from ``#!annotation-source``; the accession from that line where it names one,
    else from ``#!genome-build-accession NCBI_Assembly:GCF_...``, which NCBI GTFs of every era carry.
    """
    with open(path, "rb") as probe:
        gzipped = probe.read(2) == b"\x1f\x8b"
    release = source_accession = build_accession = ""
    try:
        with (gzip.open(path, "rb") if gzipped else open(path, "rb")) as fh:
            for _ in range(_MAX_HEADER_LINES):
                line = fh.readline(1 << 16)
                if not line.startswith(b"#"):
                    break  # the first feature row (or the end): the header is over
                text = line.decode("utf-8", "replace").strip()
                if text.startswith(_SOURCE):
                    value = text.removeprefix(_SOURCE)
                    found = _ACCESSION.search(value)
                    release, source_accession = _release_of(value), found.group(1).upper() if found else ""
                elif text.startswith(_BUILD):
                    found = _ACCESSION.search(text.removeprefix(_BUILD).replace(":", " "))
                    build_accession = found.group(1).upper() if found else ""
    except (EOFError, OSError, zlib.error) as exc:  # checked against its checksum before: damage since
        raise IntegrityError(f"{path.name} does not decompress ({exc}); nothing was cached") from None
    return release, source_accession or build_accession


def cached_release(directory: Path, files: dict[str, FileRef], key: str) -> str:
    """The release a level-2 entry's cached GTF names, for an entry whose insert did not record it ("" if unknown).

    Only a file whose size is the one recorded is read; one that is missing, cut short or does not
    decompress is passed over, and an entry with neither readable gives "" (not remembered: a
    mirror may fetch its files later). Never writes anything: hits are served on read paths.
    """
    raw = files.get(_GTF_FILES[0])
    if raw is None:
        return ""
    memo = (key, raw.sha256)
    known = _READ.get(memo)  # one lookup: a server's other thread may clear the dict in between
    if known is not None:
        return known
    for name in _GTF_FILES:
        ref, path = files.get(name), directory / name
        try:
            if ref is None or path.stat().st_size != ref.size:
                continue
            held = gtf_release(path)
        except (OSError, IntegrityError):
            continue
        if len(_READ) >= _READ_MAX:
            _READ.clear()
        _READ[memo] = held
        return held
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


def accession_mismatch(requested: str, held: str) -> ConflictError:
    """The one-line refusal of a fresh NCBI GTF for assembly ``requested`` whose header names assembly ``held``."""
    return ConflictError(
        f"the NCBI GTF fetched for {requested} is annotation of assembly {held} (its #!annotation-source "
        f"header names {held}), not of {requested}: check --assembly and --base-url; nothing was cached"
    )
