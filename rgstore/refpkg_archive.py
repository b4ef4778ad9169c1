"""Package containers on disk: read a directory, .tar.gz or .zip; write one atomically and verified.

Reading never extracts: a member is looked up by a name that has already been checked to be a
bare file name, must be a regular file (a symlink could point anywhere on the machine), and is
streamed in pieces straight to its reader (the blob store): a package is never copied to a temp
file first, which would double its disk writes and hold a second copy in $TMPDIR. A tar (compressed
or not, a file or a pipe) is read once, front to back: its manifest is often its last member, so
the members that may be the package's files are streamed to the blob store as they pass (a bounded
number, none sparse, none that would leave the disk short: a stray may inflate to terabytes), and the
checks run once the whole archive has been read (it was listed, then rewound for the manifest and
again for the members: a .tar.gz was inflated three times). Writing goes to a temp sibling that is renamed into place
only when complete; every blob is hashed while it is copied, so a corrupt blob fails the write.
Archives hold one top-level folder (pplacer and taxtastic expect exactly one directory entry).
A damaged archive (truncated, bad CRC, broken compression) is one InvalidInputError, wherever
the damage is met: listing the members or reading one. What listing holds in memory is bounded
(tar metadata headers, member count), since a tiny crafted .tar.gz can declare gigabytes of it;
zip names Info-ZIP stored as UTF-8 without the flag are read as UTF-8. An exported directory gets the mode an
ordinary ``mkdir`` would give it, its files those of an ordinary ``open``.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import os
import secrets
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, NamedTuple

from .blobs import BlobInfo
from .diskspace import free_bytes, refused_write
from .errors import IntegrityError, InvalidInputError, NotFoundError
from .events import FileRef
from .files import FILE_MODE, mkstemp, read_chunks
from .interrupts import deferred
from .refpkg_names import MANIFEST, is_safe_filename

__all__ = ["PackageSource", "open_package", "package_kind", "read_tar_once", "TarPackage", "write_package",
           "strip_archive_suffix", "ARCHIVE_SUFFIXES"]

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")
_CHUNK = 1 << 20
_ZIP_EPOCH = 315532800  # 1980-01-01: the earliest time a zip entry can carry
_LEVEL = 1
"""Deflate level: on FASTA, level 1 is ~10x faster than 6 for ~13% more bytes (docs/benchmarks.md)."""

OpenBlob = Callable[[FileRef], IO[bytes]]
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
    """``name`` without a trailing .tar.gz, .tgz, .tar or .zip (any case)."""
    for suffix in ARCHIVE_SUFFIXES:
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


MAX_MANIFEST_BYTES = 1 << 30
"""taxtastic's CONTENTS.json grows with every step it can roll back (18.8 MB after 1,000 updates);
a larger one is an archive built to exhaust memory, not a package."""


MAX_HEADER_BYTES = 1 << 20
"""Most bytes tarfile may read to parse one member's metadata (GNU long names, pax records, sparse
maps), which it holds in memory: a header's declared size costs nothing to inflate from a tiny
.tar.gz, so a hostile one would otherwise take gigabytes of memory before any member is read."""
MAX_MEMBERS = 100_000
"""Most members a package archive may list: every member's header is kept in memory while listing
(~400 bytes each), and a .tar.gz packs millions of empty ones into a few megabytes."""
MAX_AHEAD = 1_000
"""Most members of a tar stored ahead of its CONTENTS.json, in case it names them: each is a blob written
and fsynced, then deleted if it is not named (5,000 tiny members in a 100 KB .tar.gz took 11.6 s where
skipping them took 0.7 s). Later ones are read again from a file if named; a pipe cannot be."""
AHEAD_RESERVE = 1 << 30
"""Free bytes a member stored ahead of CONTENTS.json must leave on the store's disk: it may be a stray the
manifest never names (a .tar.gz of a few MB inflates a 50 GB member), which must not fill the disk."""


class _OversizedHeader(Exception):
    """A tar member's metadata is larger than ``MAX_HEADER_BYTES`` (``_reading`` makes it one line)."""


class _CappedReader:
    """``fileobj`` for tarfile while it parses one member's metadata: refuses to read past a budget."""

    def __init__(self, fileobj: Any, budget: int) -> None:
        self.fileobj, self.left = fileobj, budget

    def read(self, size: int = -1) -> bytes:
        if size < 0 or size > self.left:
            raise _OversizedHeader(f"a tar member's metadata is over the {MAX_HEADER_BYTES:,}-byte limit")
        self.left -= size
        data: bytes = self.fileobj.read(size)
        return data

    def tell(self) -> int:
        return int(self.fileobj.tell())

    def seek(self, *args: int) -> int:
        return int(self.fileobj.seek(*args))


class _BoundedTarInfo(tarfile.TarInfo):
    """A TarInfo whose metadata headers (long names, pax records, sparse maps) are read within a budget."""

    def _proc_member(self, archive: tarfile.TarFile) -> tarfile.TarInfo:
        # tarfile reads a metadata header whole (or a sparse map block by block) before the member it
        # describes, trusting its declared size; a nested header shares the budget through the wrapper.
        if self.type not in _METADATA_TYPES:
            return super()._proc_member(archive)  # type: ignore[misc, no-any-return]
        real = archive.fileobj
        archive.fileobj = _CappedReader(real, MAX_HEADER_BYTES)  # type: ignore[assignment]
        try:
            return super()._proc_member(archive)  # type: ignore[misc, no-any-return]
        finally:
            archive.fileobj = real


_METADATA_TYPES = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.GNUTYPE_SPARSE,
                   tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE)


def _check_manifest_size(size: int, where: Path) -> None:
    if size > MAX_MANIFEST_BYTES:
        raise InvalidInputError(
            f"{where}: {MANIFEST} is {size:,} bytes, over the {MAX_MANIFEST_BYTES:,}-byte limit for a package manifest"
        )


class _DirSource(PackageSource):
    def __init__(self, root: Path) -> None:
        manifest = root / MANIFEST
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
        raise InvalidInputError(
            f"{where}: expected one {MANIFEST} at the top or in one top-level folder, found {len(hits)}"
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
    raise NotFoundError(f"Reference package {path} does not exist.")


def _is_pipe(path: Path) -> bool:
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


# --- reading a tar once -----------------------------------------------------------------------

Reader = Callable[[], Iterable[bytes]]
"""Reads one member's bytes from the start, in pieces."""
Stage = Callable[[Reader], BlobInfo]
"""Stores one member: ``read()`` is called at once (the live stream), and again only should the blob
need storing again (a re-read of the archive)."""
Wanted = Callable[[bytes], Collection[str] | None]
"""The bare file names a CONTENTS.json names (None: it cannot tell, say it does not parse)."""


class TarPackage(NamedTuple):
    """A tar read once: its CONTENTS.json and what became of each file that manifest names."""

    manifest: bytes
    files: dict[str, BlobInfo | None]
    """File name -> its staged blob, or None if that member is not a regular file; names the archive
    lacks are absent (all are when ``wanted`` cannot tell: the caller refuses that manifest). In the
    archive's order (a name met twice is at its first place, with its last member)."""


class _Backwards(tarfile.ReadError):
    """The archive asked to be read backwards (a header claiming a negative size, say)."""


class _Once:
    """The file under a tar read once, front to back: a seek may only skip ahead; counts the bytes passed."""

    def __init__(self, fh: IO[bytes], advance: Advance) -> None:
        self.fh, self.advance, self.pos, self.head = fh, advance, 0, b""
        self.direct = fh.seekable()

    def seekable(self) -> bool:
        """True: a seek ahead works on a pipe too (bz2 and lzma refuse to seek at all on a stream that says False)."""
        return True

    def magic(self) -> bytes:
        """The first block (a plain tar's first header), read now and handed out again by the next reads."""
        self.head = self.fh.read(512)
        return self.head

    def read(self, size: int | None = -1) -> bytes:
        head, self.head = self.head, b""
        if size is None or size < 0:
            data = head + self.fh.read()
        else:
            data = head[:size]
            self.head = head[size:]
            if len(data) < size:
                data += self.fh.read(size - len(data))
        self.pos += len(data)
        self.advance(len(data))
        return data

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        target = offset if whence == os.SEEK_SET else self.pos + offset if whence == os.SEEK_CUR else -1
        if target < self.pos:
            raise _Backwards("the archive asks to be read backwards")
        if self.direct and not self.head:  # a plain tar's unwanted member on disk: skipped, not read
            self.fh.seek(target)
            self.advance(target - self.pos)
            self.pos = target
        while self.pos < target and self.read(min(target - self.pos, _CHUNK)):
            pass
        return self.pos


class _Plain:
    """An uncompressed tar's stream as the decompressors give theirs: a context manager that leaves the file open."""

    def __init__(self, once: _Once) -> None:
        self.read, self.tell, self.seek = once.read, once.tell, once.seek

    def __enter__(self) -> _Plain:
        return self

    def __exit__(self, *_exc: object) -> None:
        pass


def _decompressors() -> list[tuple[bytes, Callable[[Any], Any], tuple[type[BaseException], ...]]]:
    """(magic, opener, what opening a tar through it raises when it is no such stream), as tarfile's "r:*" tries them."""
    found: list[tuple[bytes, Callable[[Any], Any], tuple[type[BaseException], ...]]] = [
        (b"\x1f\x8b", lambda fh: gzip.GzipFile(fileobj=fh, mode="rb"), (OSError,)),
        (b"BZh", lambda fh: bz2.BZ2File(fh, "rb"), (OSError, EOFError)),
        (b"\xfd7zXZ\x00", lambda fh: lzma.LZMAFile(fh, "rb"), (lzma.LZMAError, EOFError)),
    ]
    try:  # Python 3.14's tarfile opens .tar.zst too
        from compression import zstd  # type: ignore[import-not-found, unused-ignore]

        found.append((b"\x28\xb5\x2f\xfd", lambda fh: zstd.ZstdFile(fh, "rb"), (zstd.ZstdError, EOFError)))
    except ImportError:
        pass
    return found


@contextmanager
def _tar_once(path: Path, advance: Advance) -> Iterator[tarfile.TarFile]:
    """``path`` (a file or a pipe) open as a tar that may only be read forwards, decompressed as its first bytes say."""
    with open(path, "rb", buffering=_CHUNK) as raw:
        once = _Once(raw, advance)
        magic = once.magic()
        if magic.startswith(b"PK\x03\x04"):  # a zip on a pipe: its index is at its end
            raise InvalidInputError(f"{path} is a zip, which cannot be read from a pipe: import it from a file")
        opener: Callable[[Any], Any] = _Plain
        not_this: tuple[type[BaseException], ...] = ()
        for prefix, make, errors in () if _is_tar_header(magic) else _decompressors():
            if magic.startswith(prefix):
                opener, not_this = make, errors
        not_tar: tuple[type[BaseException], ...] = (tarfile.TarError, *not_this)
        try:
            stream = opener(once)
            tarchive = tarfile.open(fileobj=stream, mode="r:", tarinfo=_BoundedTarInfo)
        except _OversizedHeader as exc:
            raise InvalidInputError(f"{path}: {exc}, which no refpkg needs") from None
        except not_tar:
            raise InvalidInputError(f"{path} is not a refpkg directory, .tar.gz or .zip") from None
        except _DAMAGE as exc:
            raise InvalidInputError(f"{path} is damaged (truncated or corrupt): {exc}") from None
        with stream, tarchive:
            yield tarchive
            # What is left past the end-of-archive blocks is padding: the whole file was read.
            if once.direct:
                advance(max(os.fstat(raw.fileno()).st_size - once.pos, 0))


def _is_tar_header(block: bytes) -> bool:
    """Whether ``block`` is a tar header with a valid checksum: a plain tar whose first member's name
    starts like a compressed stream ("BZh1.refpkg/...") is still a plain tar, as tarfile's "r:*" finds."""
    try:
        tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        return False
    return True


def _listing(path: Path, tarchive: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    """The members as they stream past (a damaged archive is one InvalidInputError, wherever it is met)."""
    with _reading(path):
        yield from tarchive


def _member_chunks(path: Path, tarchive: tarfile.TarFile, member: tarfile.TarInfo) -> Iterator[bytes]:
    """The bytes of ``member``, the one streaming past, in pieces."""
    with _reading(path):
        fh = tarchive.extractfile(member)
        if fh is None:  # isreg() members always have one
            raise InvalidInputError(f"{path}: {member.name} is not a regular file")
        with fh:
            while chunk := fh.read(_CHUNK):
                yield chunk


def read_tar_once(path: Path, *, stage: Stage, wanted: Wanted, advance: Advance, room: Path) -> TarPackage:
    """Read a tar (.tar, .tar.gz/.tgz, .tar.bz2, .tar.xz; a file or a pipe) front to back once, staging its files.

    Each member that may be one of the package's files (a regular file, bare-named, at the top or
    in a top-level folder) is handed to ``stage`` as it streams past; once CONTENTS.json has been
    read, only the files ``wanted`` says it names are. Ahead of it, at most ``MAX_AHEAD`` members are,
    each only if it leaves ``AHEAD_RESERVE`` bytes free on the disk of ``room`` (the blob store); a
    member held back that the manifest names is read in a second pass (a pipe: InvalidInputError).
    The caller drops what it staged but the result does not name. ``advance`` is told the archive's
    bytes as they are read. The checks are those of the other containers: the listing's limits, one
    CONTENTS.json at the top or in one folder, a regular manifest within its size limit, a member
    named twice counting as its last.
    """
    members: dict[str, tarfile.TarInfo] = {}  # as a listing: a name met twice keeps its first place, its last member
    last: dict[str, int] = {}  # name -> position of its last member
    staged: dict[str, BlobInfo] = {}
    held: dict[str, str] = {}  # name -> why its last member was not stored ahead of CONTENTS.json
    ahead = 0  # members stored before any CONTENTS.json said which it names
    hits: set[str] = set()  # names of the CONTENTS.json candidates (of any type): more than one is an error
    manifest: tuple[str, bytes] | None = None
    want: tuple[str, Collection[str]] | None = None  # (folder, file names) of the manifest read so far
    with _tar_once(path, advance) as tarchive:
        for position, member in enumerate(_listing(path, tarchive)):
            if position == MAX_MEMBERS:
                raise InvalidInputError(f"{path} lists over {MAX_MEMBERS:,} members, which no refpkg has")
            name = _norm(member.name)
            members[name], last[name] = member, position
            staged.pop(name, None)
            held.pop(name, None)
            folder, _, bare = name.rpartition("/")
            if bare == MANIFEST and "/" not in folder:
                hits.add(name)
            # Past a second CONTENTS.json candidate the archive is refused below: nothing more is stored.
            if not member.isreg() or "/" in folder or len(hits) > 1:
                continue
            prefix = folder + "/" if folder else ""
            if bare == MANIFEST:
                if manifest is not None and manifest[0] == name:
                    manifest = None
                if member.size <= MAX_MANIFEST_BYTES:  # else the checks below refuse it
                    manifest = (name, b"".join(_member_chunks(path, tarchive, member)))
                    names = wanted(manifest[1])
                    want = None if names is None else (prefix, names)
            elif is_safe_filename(bare) and (want is None or (prefix == want[0] and bare in want[1])):
                why = None if want is not None else _not_ahead(path, bare, member, ahead, room)
                if why is not None:
                    held[name] = why
                    continue
                ahead += want is None
                staged[name] = stage(_first_then_again(path, tarchive, member, position))
        prefix = _prefix(list(members), path)
        member = members[prefix + MANIFEST]
        if not member.isreg():
            raise InvalidInputError(f"{path}: {MANIFEST} is not a regular file")
        _check_manifest_size(member.size, path)
        if manifest is None or manifest[0] != prefix + MANIFEST:
            raise AssertionError("the one regular CONTENTS.json within its limit was not kept")
    names = wanted(manifest[1])
    if names is None:  # the caller refuses this manifest: no file is looked for, nor read again
        return TarPackage(manifest=manifest[1], files={})
    files: dict[str, BlobInfo | None] = {}
    skipped: dict[int, str] = {}  # position -> name: named, but its member was not stored as it passed
    why = ""
    for name, member in members.items():
        bare = name[len(prefix):]
        if not name.startswith(prefix) or "/" in bare or bare == MANIFEST or bare not in names:
            continue
        files[bare] = None
        if member.isreg():
            if name in staged:
                files[bare] = staged[name]
            else:
                skipped[last[name]] = bare
                why = why or held.get(name, f"{path}: its {MANIFEST} is met twice, naming files the first one did not")
    files.update(_stage_again(path, skipped, stage, why) if skipped else {})
    return TarPackage(manifest=manifest[1], files=files)


def _not_ahead(path: Path, bare: str, member: tarfile.TarInfo, ahead: int, room: Path) -> str | None:
    """Why member ``bare`` is not stored ahead of CONTENTS.json (None: it is)."""
    size = member.size
    if member.issparse():  # a few KB of tar can declare terabytes of holes, which reading fills with zeros
        return (f"{path}: {bare} is a sparse file ({size:,} bytes with its holes) ahead of its {MANIFEST}, "
                "which is not stored unread")
    if ahead >= MAX_AHEAD:
        return f"{path}: {bare} comes after {MAX_AHEAD:,} files ahead of its {MANIFEST}, more than are stored unread"
    free = free_bytes(room)
    if free is not None and size > free - AHEAD_RESERVE:
        return (f"{path}: {bare} ({size:,} bytes) comes ahead of its {MANIFEST}, and storing it unread would leave "
                f"under {AHEAD_RESERVE:,} bytes free on the store's disk ({free:,} free)")
    return None


def _first_then_again(path: Path, tarchive: tarfile.TarFile, member: tarfile.TarInfo, position: int) -> Reader:
    """The member streaming past on the first call; read anew from the archive's start on a later one."""
    calls = [0]

    def read() -> Iterable[bytes]:
        calls[0] += 1
        if calls[0] == 1:
            return _member_chunks(path, tarchive, member)
        return _again(path, position)

    return read


def _again(path: Path, position: int) -> Iterator[bytes]:
    """Member number ``position`` of the tar at ``path``, read from the archive's start (a pipe is read once)."""
    if not path.is_file():
        raise InvalidInputError(f"{path} is a pipe, and it cannot be read again for a file stored from it "
                                "that vanished before the import committed (a concurrent gc?): import it again")
    with _tar_once(path, lambda _n: None) as tarchive:
        for index, member in enumerate(_listing(path, tarchive)):
            if index == position:
                yield from _member_chunks(path, tarchive, member)
                return
    raise InvalidInputError(f"{path} changed while it was imported")


def _stage_again(path: Path, wanted: dict[int, str], stage: Stage, why: str) -> dict[str, BlobInfo]:
    """Stage the members at these positions in a second pass (``why`` they were not as they passed, for a pipe)."""
    if not path.is_file():
        raise InvalidInputError(f"{why}; a pipe cannot be read again: import it from a file")
    out: dict[str, BlobInfo] = {}
    with _tar_once(path, lambda _n: None) as tarchive:
        for position, member in enumerate(_listing(path, tarchive)):
            if position in wanted:
                out[wanted[position]] = stage(_first_then_again(path, tarchive, member, position))
            if position >= max(wanted):
                break
    if len(out) != len(wanted):
        raise InvalidInputError(f"{path} changed while it was imported")
    return out


# --- writing ----------------------------------------------------------------------------------


class _Verifying(io.RawIOBase):
    """Reads a blob, hashing as it goes and reporting progress, so corruption is caught mid-copy."""

    def __init__(self, fh: IO[bytes], advance: Advance) -> None:
        self.fh, self.advance, self.sha, self.size = fh, advance, hashlib.sha256(), 0

    def readable(self) -> bool:
        return True

    def read(self, n: int | None = -1) -> bytes:
        data = self.fh.read(-1 if n is None else n)
        self.sha.update(data)
        self.size += len(data)
        self.advance(len(data))
        return data

    def check(self, ref: FileRef) -> None:
        """IntegrityError unless exactly the recorded bytes went through."""
        if self.sha.hexdigest() != ref.sha256 or self.size != ref.size:
            raise IntegrityError(
                f"blob {ref.sha256} of file {ref.name} is corrupt (checksum mismatch on export)"
            )


def write_package(
    dest: Path, fmt: str, manifest: bytes, files: Mapping[str, FileRef], open_blob: OpenBlob,
    mtime: datetime, advance: Advance,
) -> None:
    """Write a package (``files``: file name -> blob) as a directory, "tar" (.tar.gz) or "zip"."""
    writer = {"dir": _write_dir, "tar": _write_tar, "zip": _write_zip}[fmt]
    tmp: Path | None = None
    try:
        # A SIGTERM handled the moment the temp exists (CPython runs it right after the call that made it)
        # waits until its name is bound here, so the cleanup below removes it.
        with deferred():
            if fmt == "dir":
                tmp = _mkdir_temp(dest)
            else:
                fd, name = mkstemp(prefix=f".{dest.name}.tmp-", dir=dest.parent)
                os.close(fd)
                tmp = Path(name)
        writer(tmp, strip_archive_suffix(dest.name) or "refpkg", manifest, files, open_blob, mtime, advance)
        os.rename(tmp, dest)
    except BaseException as exc:
        if tmp is None:
            raise
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        refused = refused_write(exc, dest.parent, dest.name)
        if refused is not None:
            raise refused from None
        raise


def _mkdir_temp(dest: Path) -> Path:
    """A new empty sibling of ``dest`` made by a plain ``mkdir``, so it gets 0777 minus the umask
    (``tempfile.mkdtemp`` makes 0700, which the rename would carry into the export)."""
    while True:
        tmp = dest.parent / f".{dest.name}.tmp-{secrets.token_hex(6)}"
        try:
            tmp.mkdir()
        except FileExistsError:
            continue
        return tmp


def _write_dir(tmp: Path, _stem: str, manifest: bytes, files: Mapping[str, FileRef], open_blob: OpenBlob,
               _mtime: datetime, advance: Advance) -> None:
    for filename, ref in files.items():
        with open_blob(ref) as fh, open(tmp / filename, "xb") as out:
            os.fchmod(out.fileno(), FILE_MODE)  # the mode every file rgstore publishes has
            reader = _Verifying(fh, advance)
            while chunk := reader.read(_CHUNK):
                out.write(chunk)
            reader.check(ref)
    (tmp / MANIFEST).write_bytes(manifest)


def _write_tar(tmp: Path, stem: str, manifest: bytes, files: Mapping[str, FileRef], open_blob: OpenBlob,
               mtime: datetime, advance: Advance) -> None:
    stamp = int(mtime.timestamp())

    def entry(name: str, size: int = 0) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = size, 0o644, stamp
        return info

    # The gzip header names no file and carries the package's time, not the temp file's name and
    # the clock: exporting the same package twice gives the same bytes (pipelines hash them).
    with open(tmp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=_LEVEL,
                                              mtime=min(max(stamp, 0), 0xFFFFFFFF)) as gz, \
            tarfile.open(fileobj=gz, mode="w") as tar:
        folder = entry(stem)
        folder.type, folder.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(folder)
        for filename, ref in files.items():
            with open_blob(ref) as fh:
                reader = _Verifying(fh, advance)
                try:
                    tar.addfile(entry(f"{stem}/{filename}", ref.size), reader)
                except (OSError, tarfile.TarError):
                    raise IntegrityError(
                        f"blob {ref.sha256} of file {ref.name} is corrupt (shorter than recorded)"
                    ) from None
                reader.check(ref)
        tar.addfile(entry(f"{stem}/{MANIFEST}", len(manifest)), io.BytesIO(manifest))


def _write_zip(tmp: Path, stem: str, manifest: bytes, files: Mapping[str, FileRef], open_blob: OpenBlob,
               mtime: datetime, advance: Advance) -> None:
    # ZIP entries carry a wall-clock time from 1980 on with no zone: written in UTC (as wheels and
    # reproducible-build tools do), so the same package gives the same bytes in every time zone.
    stamp = max(datetime.fromtimestamp(max(mtime.timestamp(), _ZIP_EPOCH), timezone.utc).timetuple()[:6],
                (1980, 1, 1, 0, 0, 0))

    def entry(name: str) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(name, date_time=stamp)
        info.compress_type, info.external_attr = zipfile.ZIP_DEFLATED, 0o644 << 16
        # ZipFile's own compresslevel only reaches entries it creates; this is public as
        # ``compress_level`` from Python 3.13.
        info._compresslevel = _LEVEL  # type: ignore[attr-defined]
        return info

    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=_LEVEL) as archive:
        folder = zipfile.ZipInfo(f"{stem}/", date_time=stamp)
        folder.external_attr = (0o40755 << 16) | 0x10  # a directory, for unzip and pplacer
        archive.writestr(folder, b"")
        for filename, ref in files.items():
            with open_blob(ref) as fh, archive.open(entry(f"{stem}/{filename}"), "w",
                                                    force_zip64=ref.size > 1 << 31) as out:
                reader = _Verifying(fh, advance)
                while chunk := reader.read(_CHUNK):
                    out.write(chunk)
                reader.check(ref)
        archive.writestr(entry(f"{stem}/{MANIFEST}"), manifest)
