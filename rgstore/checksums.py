"""Upstream checksum files and the algorithms they use: NCBI ``md5checksums.txt`` and Ensembl ``CHECKSUMS``.

NCBI lists ``<md5><2 spaces>./<relative path>`` for every file of an assembly directory. Ensembl
lists BSD ``sum`` output, ``<16-bit checksum> <1 KiB blocks> <file name>``, separated by tabs in
some releases and spaces in others, so lines are split on any whitespace. The BSD sum is only 16
bits: it catches truncation and transfer damage, not tampering, which is why rgstore also records
its own sha256 of every file it caches.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from pathlib import Path

import msgspec

from .errors import IntegrityError, InvalidInputError

__all__ = [
    "Expected",
    "parse_md5checksums",
    "parse_ensembl_checksums",
    "bsd_sum",
    "bsd_sum_bytes",
    "BsdSum",
    "verify_file",
]

_MD5 = re.compile(r"^[0-9a-fA-F]{32}$")
_SUM_FIELD = re.compile(r"[0-9]{1,20}")
_CHUNK = 1 << 20


class Expected(msgspec.Struct, frozen=True, kw_only=True):
    """What an upstream checksum file promises for one file: ``md5:<hex>`` or ``sum:<checksum>/<blocks>``."""

    algorithm: str
    value: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.value}"

    def max_size(self) -> int | None:
        """The most bytes the promised file can hold (a ``sum``'s 1 KiB blocks, rounded up); None if no size is promised."""
        if self.algorithm != "sum":
            return None
        blocks = self.value.partition("/")[2]
        return int(blocks) * 1024 if blocks.isascii() and blocks.isdigit() and len(blocks) < 19 else None


class BsdSum:
    """An incremental BSD ``sum``: 16-bit rotating checksum plus the size in 1 KiB blocks (rounded up)."""

    __slots__ = ("checksum", "size")

    def __init__(self) -> None:
        self.checksum = 0
        self.size = 0

    def update(self, data: bytes) -> None:
        """Fold more bytes in (pure Python: about 5 MB/s, see ``bsd_sum`` for the fast path)."""
        c = self.checksum
        for byte in data:
            c = ((c >> 1) + ((c & 1) << 15) + byte) & 0xFFFF
        self.checksum = c
        self.size += len(data)

    @property
    def blocks(self) -> int:
        """Size in 1 KiB blocks, rounded up, as ``sum`` prints it."""
        return (self.size + 1023) // 1024

    def value(self) -> str:
        """``<checksum>/<blocks>``, the form ``Expected`` uses for ``sum``."""
        return f"{self.checksum}/{self.blocks}"


def bsd_sum_bytes(data: bytes) -> tuple[int, int]:
    """(checksum, 1 KiB blocks) of ``data`` by the BSD algorithm (``sum -r``)."""
    acc = BsdSum()
    acc.update(data)
    return acc.checksum, acc.blocks


def bsd_sum(path: Path) -> tuple[int, int]:
    """(checksum, 1 KiB blocks) of a file by the BSD algorithm.

    Uses coreutils ``sum -r`` when it is installed (C speed, the tool Ensembl itself uses) and a
    pure-Python loop otherwise; the test suite checks the two agree.
    """
    exe = shutil.which("sum")
    if exe is not None:
        out = subprocess.run([exe, "-r", str(path)], capture_output=True, check=False)
        fields = out.stdout.split()
        if out.returncode == 0 and len(fields) >= 2 and fields[0].isdigit() and fields[1].isdigit():
            return int(fields[0]), int(fields[1])
    acc = BsdSum()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            acc.update(chunk)
    return acc.checksum, acc.blocks


def parse_md5checksums(text: str, source: str = "md5checksums.txt") -> dict[str, Expected]:
    """File name (relative path, leading ``./`` removed) -> expected md5, from NCBI ``md5checksums.txt``."""
    out: dict[str, Expected] = {}
    for lineno, line in enumerate(_lines(text), 1):
        if not line.strip():
            continue
        fields = line.split(maxsplit=1)
        if len(fields) != 2 or not _MD5.match(fields[0]):
            raise InvalidInputError(f"{source} line {lineno}: expected '<md5>  ./<file>', got {line[:80]!r}")
        name = fields[1].strip()
        if line.lstrip()[32:34] == " *":  # `md5sum -b` (a mirror's own list) marks each name with '*'
            name = name.removeprefix("*")
        name = name.removeprefix("./")
        _add_once(out, name, Expected(algorithm="md5", value=fields[0].lower()), source, lineno)
    return out


def _lines(text: str) -> list[str]:
    """The lines of a checksum file, without the UTF-8 byte order mark an editor or mirror may have put first."""
    # A BOM glued to the first md5 or sum made a well-formed line 1 "malformed" (shown as '\ufeff068c...').
    return text.removeprefix("\ufeff").splitlines()


def _add_once(out: dict[str, Expected], name: str, expected: Expected, source: str, lineno: int) -> None:
    """Record ``name``'s sum; a second, different sum for it is an error (no listing may silently win)."""
    known = out.setdefault(name, expected)
    if known != expected:
        raise InvalidInputError(
            f"{source} line {lineno}: lists {name} again with a different checksum "
            f"({expected.value} after {known.value}); refusing to guess which is right"
        )


def parse_ensembl_checksums(text: str, source: str = "CHECKSUMS") -> dict[str, Expected]:
    """File name -> expected BSD sum (``sum:<checksum>/<blocks>``), from an Ensembl ``CHECKSUMS`` file."""
    out: dict[str, Expected] = {}
    for lineno, line in enumerate(_lines(text), 1):
        if not line.strip():
            continue
        fields = line.split()
        # str.isdigit() also takes '²' and int() refuses 4,301+ digits: both would be a traceback.
        if len(fields) != 3 or not _SUM_FIELD.fullmatch(fields[0]) or not _SUM_FIELD.fullmatch(fields[1]):
            raise InvalidInputError(
                f"{source} line {lineno}: expected '<sum> <blocks> <file>', got {line[:80]!r}"
            )
        _add_once(out, fields[2], Expected(algorithm="sum", value=f"{int(fields[0])}/{int(fields[1])}"), source, lineno)
    return out


def verify_file(path: Path, expected: Expected, *, md5: str | None = None, what: str = "") -> None:
    """Raise IntegrityError unless ``path`` matches ``expected`` (``md5`` may be passed if already known)."""
    label = what or path.name
    if expected.algorithm == "md5":
        actual = md5 if md5 is not None else _md5_file(path)
        if actual != expected.value:
            raise IntegrityError(
                f"checksum mismatch for {label}: upstream says md5 {expected.value}, got {actual}; "
                "nothing was cached"
            )
    elif expected.algorithm == "sum":
        checksum, blocks = bsd_sum(path)
        actual = f"{checksum}/{blocks}"
        if actual != expected.value:
            raise IntegrityError(
                f"checksum mismatch for {label}: upstream CHECKSUMS says sum {expected.value}, "
                f"got {actual}; nothing was cached"
            )
    else:
        raise InvalidInputError(f"unknown checksum algorithm {expected.algorithm!r} for {label}")


def _md5_file(path: Path) -> str:
    md5 = hashlib.md5()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            md5.update(chunk)
    return md5.hexdigest()
