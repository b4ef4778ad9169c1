"""Package containers on disk: read a directory or .zip, and what every container shares.

Reading never extracts: a member is looked up by a name that has already been checked to be a
bare file name, must be a regular file (a symlink could point anywhere on the machine), and is
streamed in pieces straight to its reader (the blob store): a package is never copied to a temp
file first, which would double its disk writes and hold a second copy in $TMPDIR. A tar is read
once, front to back, by ``refpkg_tar``; a package is written by ``refpkg_export``.
A damaged archive (truncated, bad CRC, broken compression) is one InvalidInputError, wherever
the damage is met: listing the members or reading one. Zip names Info-ZIP stored as UTF-8
without the flag are read as UTF-8.
"""

from __future__ import annotations

import gzip
import lzma
import os
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import InvalidInputError, NotFoundError
from .files import read_chunks
from .pathtext import path_text
from .refpkg_names import MANIFEST

__all__ = ["PackageSource", "open_package", "package_kind", "strip_archive_suffix", "ARCHIVE_SUFFIXES"]

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")
_READ_ONLY_SUFFIXES = (".tar.bz2", ".tbz2", ".tar.xz", ".txz")  # tars import reads (``refpkg_tar``), export never writes
_CHUNK = 1 << 20

Advance = Callable[[int], object]

_DAMAGE: tuple[type[BaseException], ...] = (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, gzip.BadGzipFile, lzma.LZMAError,
           NotImplementedError, RuntimeError)
"""What reading a damaged archive raises: a truncated gzip stream is an EOFError, a bad CRC a
BadZipFile or BadGzipFile, an unknown zip compression NotImplementedError, an encrypted zip
member RuntimeError."""
try:  # Python 3.14's tarfile "r:*" opens .tar.zst too, and a corrupt one raises compression.zstd's own error
    from compression.zstd import ZstdError  # type: ignore[import-not-found, unused-ignore]

    _DAMAGE = (*_DAMAGE, ZstdError)
except ImportError:
    pass


def strip_archive_suffix(name: str) -> str:
    """``name`` without a trailing .tar.gz, .tgz, .tar or .zip, or a bzip2 or xz tar's suffix (any case)."""
    for suffix in ARCHIVE_SUFFIXES + _READ_ONLY_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


# --- reading ----------------------------------------------------------------------------------


@contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Turn the errors of a damaged archive into one InvalidInputError line."""
    try:
        yield
    except _OversizedHeader as exc:
        raise InvalidInputError(f"{path}: {exc}, which no refpkg needs") from None
    except _DAMAGE as exc:
        raise InvalidInputError(f"{path} is damaged (truncated or corrupt): {exc}") from None


class PackageSource:
    """A package being read: its CONTENTS.json bytes and its members by bare file name."""

    def __init__(self, manifest: bytes) -> None:
        self.manifest = manifest

    def member_chunks(self, name: str) -> Iterator[bytes] | None:
        """The bytes of member ``name``, streamed in pieces (never extracted to a file); None if it
        is absent or not a regular file. Each call reads the member afresh."""
        raise NotImplementedError

    def read_order(self, names: Iterable[str]) -> list[str]:
        """``names`` in the order that reads the source fastest (for a tar, the order of its members)."""
        return list(names)

    def member_size(self, name: str) -> int:
        """Bytes member ``name`` holds, as the source declares them (0 if absent): for progress only."""
        return 0

    def member_names(self) -> list[str]:
        """Bare names of the package folder's entries but CONTENTS.json, sorted (files, folders, links alike)."""
        return []


MAX_MANIFEST_BYTES = 1 << 30
"""taxtastic's CONTENTS.json grows with every step it can roll back (18.8 MB after 1,000 updates);
a larger one is an archive built to exhaust memory, not a package."""


class _OversizedHeader(Exception):
    """A tar member's metadata is larger than ``refpkg_tar.MAX_HEADER_BYTES`` (``_reading`` makes it one line)."""


def _check_manifest_size(size: int, where: Path) -> None:
    if size > MAX_MANIFEST_BYTES:
        raise InvalidInputError(
            f"{where}: {MANIFEST} is {size:,} bytes, over the {MAX_MANIFEST_BYTES:,}-byte limit for a package manifest"
        )


class _DirSource(PackageSource):
    def __init__(self, root: Path) -> None:
        manifest = root / MANIFEST
        if manifest.is_symlink():  # as every file it names: a package's bytes are its own, never read through a link
            raise NotFoundError(f"manifest file {MANIFEST} in {root} is not a regular file "
                                "(symlinks and folders are refused)")
        if not manifest.is_file():
            raise NotFoundError(f"couldn't find manifest file {MANIFEST} in {root}")
        _check_manifest_size(manifest.stat().st_size, root)
        super().__init__(manifest.read_bytes())
        self.root = root

    def member_chunks(self, name: str) -> Iterator[bytes] | None:
        path = self.root / name
        return None if path.is_symlink() or not path.is_file() else read_chunks(path)

    def member_size(self, name: str) -> int:
        try:
            return (self.root / name).stat().st_size
        except OSError:
            return 0

    def member_names(self) -> list[str]:
        return sorted(name for name in os.listdir(self.root) if name != MANIFEST)


class _ZipSource(PackageSource):
    def __init__(self, path: Path, archive: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo],
                 prefix: str, manifest: bytes) -> None:
        super().__init__(manifest)
        self.path, self.archive, self.members, self.prefix = path, archive, members, prefix

    def member_chunks(self, name: str) -> Iterator[bytes] | None:
        info = self.members.get(self.prefix + name)
        if info is None or info.is_dir() or (info.external_attr >> 16) & 0o170000 == 0o120000:
            return None  # absent, a folder, or a symlink entry
        return self._chunks(info)

    def member_size(self, name: str) -> int:
        info = self.members.get(self.prefix + name)
        return info.file_size if info is not None else 0

    def member_names(self) -> list[str]:
        return sorted({name[len(self.prefix):].split("/", 1)[0] for name in self.members
                       if name.startswith(self.prefix)} - {"", MANIFEST})

    def _chunks(self, info: zipfile.ZipInfo) -> Iterator[bytes]:
        with _reading(self.path), self.archive.open(info) as fh:  # a bad CRC raises at the member's end
            while chunk := fh.read(_CHUNK):
                yield chunk


def _norm(member: str) -> str:
    while member.startswith("./"):
        member = member[2:]
    return member


def _zip_name(info: zipfile.ZipInfo) -> str:
    """A zip member's name as its maker meant it, though zipfile reads one without the UTF-8 flag as cp437.

    Info-ZIP's ``zip`` (how a package folder is usually zipped on Linux) stores a name's UTF-8 bytes
    without the flag, so ``café.nwk`` would be listed as ``caf├⌐.nwk`` and reported missing.
    """
    if info.flag_bits & 0x800:
        return info.filename
    try:
        return info.filename.encode("cp437").decode("utf-8")
    except UnicodeError:  # not UTF-8 bytes: a real cp437 name (old DOS and Windows tools)
        return info.filename


def _prefix(names: list[str], where: Path) -> str:
    """Where CONTENTS.json sits inside an archive: at the top, or in one top-level folder."""
    hits = [n for n in names if n == MANIFEST or (n.count("/") == 1 and n.endswith("/" + MANIFEST))]
    if len(hits) != 1:
        # `tar czf p.tar.gz /abs/p.refpkg`, `zip -r p.zip refs/p.refpkg`: the package folder sits deeper
        deeper = [n for n in names if n.endswith("/" + MANIFEST)] if not hits else []
        hint = f" (one is deeper, at {deeper[0]}: archive the package's folder from the folder holding it)" \
            if len(deeper) == 1 else ""
        raise InvalidInputError(
            f"{where}: expected one {MANIFEST} at the top or in one top-level folder, found {len(hits)}{hint}"
        )
    return hits[0][: -len(MANIFEST)]


@contextmanager
def open_package(path: Path) -> Iterator[PackageSource]:
    """Open a package directory or .zip for reading (a tar is read once, by ``read_tar_once``)."""
    kind = package_kind(path)
    if kind == "dir":
        yield _DirSource(path)
        return
    if kind != "zip":
        raise AssertionError(f"{path} is a tar: read it with read_tar_once")
    with _reading(path):
        zarchive = zipfile.ZipFile(path)
    with zarchive:
        infos = {_norm(_zip_name(i)): i for i in zarchive.infolist()}
        prefix = _prefix(list(infos), path)
        _check_manifest_size(infos[prefix + MANIFEST].file_size, path)
        with _reading(path):
            manifest = zarchive.read(infos[prefix + MANIFEST])
        yield _ZipSource(path, zarchive, infos, prefix, manifest)


def package_kind(path: Path) -> str:
    """"dir", "zip" or "tar" (any other file, compressed or not, and a pipe); NotFoundError if nothing is there."""
    if path.is_dir():
        return "dir"
    if path.is_file():
        return "zip" if zipfile.is_zipfile(path) else "tar"
    if _is_pipe(path):  # `import /dev/stdin`, `import <(curl ...)`: only a tar can be read front to back
        return "tar"
    if path.exists():  # /dev/null and other devices: there, but nothing a package is read from
        mode = path.stat().st_mode
        kind = ("a character device" if stat.S_ISCHR(mode) else "a block device" if stat.S_ISBLK(mode)
                else "not a file, directory or pipe")
        raise InvalidInputError(f"{path_text(path)} is {kind}, not a package")
    raise NotFoundError(f"Reference package {path} does not exist.")


def _is_pipe(path: Path) -> bool:
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)
