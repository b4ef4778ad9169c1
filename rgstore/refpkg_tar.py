"""Read a tar (compressed or not, a file or a pipe) once, front to back, staging a package's files as they pass.

Its manifest is often its last member, so the members that may be the package's files are streamed
to the blob store as they pass (a bounded number, none sparse, none that would leave the disk short:
a stray may inflate to terabytes), and the checks run once the whole archive has been read (it was
listed, then rewound for the manifest and again for the members: a .tar.gz was inflated three times).
As for every container (``refpkg_archive``), nothing is extracted and a damaged archive is one
InvalidInputError. What listing holds in memory is bounded (tar metadata headers, member count),
since a tiny crafted .tar.gz can declare gigabytes of it.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import tarfile
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, NamedTuple

from .blobs import BlobInfo
from .diskspace import free_bytes
from .errors import InvalidInputError
from .refpkg_archive import (
    _CHUNK,
    _DAMAGE,
    MAX_MANIFEST_BYTES,
    Advance,
    _check_manifest_size,
    _norm,
    _OversizedHeader,
    _prefix,
    _reading,
)
from .refpkg_names import MANIFEST, is_safe_filename

__all__ = ["read_tar_once", "TarPackage"]

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
    names: tuple[str, ...] = ()
    """Bare names of the package folder's entries but CONTENTS.json, sorted (as ``PackageSource.member_names``)."""


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
            if path.is_file():  # zipfile found no index at the end of this file: it was cut short
                raise InvalidInputError(f"{path} is damaged (truncated or corrupt): a zip without its central directory")
            raise InvalidInputError(f"{_shown(path)} is a zip, which cannot be read from a pipe: import it from a file")
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
            if path.is_file():  # a file, or standard input redirected from one (a .zip would do there too)
                raise InvalidInputError(f"{_shown(path)} is not a refpkg directory, .tar.gz or .zip") from None
            # A pipe (`curl URL | rgstore refpkg import -` fed an HTML error page) can only carry a tar.
            raise InvalidInputError(f"{_shown(path)} is not a tar archive (plain, gzip, bzip2 or xz), the one form "
                                    "a package can come through a pipe in") from None
        except _DAMAGE as exc:
            raise InvalidInputError(f"{path} is damaged (truncated or corrupt): {exc}") from None
        with stream, tarchive:
            yield tarchive
            # What is left past the end-of-archive blocks is padding: the whole file was read.
            if once.direct:
                advance(max(os.fstat(raw.fileno()).st_size - once.pos, 0))


def _shown(path: Path) -> str:
    """How errors name ``path``: ``standard input`` for /dev/stdin (what `refpkg import -` reads), else the path."""
    return "standard input" if str(path) == "/dev/stdin" else str(path)


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
    shared: dict[str, str] = {}  # name -> the skipped name whose member it is a hard link to
    why = ""
    for name, member in members.items():
        bare = name[len(prefix):]
        if not name.startswith(prefix) or "/" in bare or bare == MANIFEST or bare not in names:
            continue
        files[bare] = None
        # `tar` stores a second name of one inode (a package copied with `cp -al`) as a hard link to the first
        source = _link_source(name, member, members, last)
        if members[source].isreg():
            if source in staged:
                files[bare] = staged[source]
            elif last[source] in skipped:
                shared[bare] = skipped[last[source]]
            else:
                skipped[last[source]] = bare
                why = why or held.get(source, f"{path}: its {MANIFEST} is met twice, naming files the first one did not"
                                      if source == name else f"{path}: {bare} is a hard link to {source}, which "
                                      "was not stored as it passed")
    files.update(_stage_again(path, skipped, stage, why) if skipped else {})
    files.update({bare: files[other] for bare, other in shared.items()})
    listed = sorted({name[len(prefix):].split("/", 1)[0] for name in members if name.startswith(prefix)} - {"", MANIFEST})
    return TarPackage(manifest=manifest[1], files=files, names=tuple(listed))


def _link_source(name: str, member: tarfile.TarInfo, members: dict[str, tarfile.TarInfo], last: dict[str, int]) -> str:
    """The name whose member holds ``name``'s bytes: the earlier member a hard link names, else ``name`` itself."""
    if member.islnk():
        source = _norm(member.linkname)
        if source in members and last[source] < last[name]:  # a name met again later is not what it linked to
            return source
    return name


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
