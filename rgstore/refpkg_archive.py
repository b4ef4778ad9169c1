"""Package containers on disk: read a directory, .tar.gz or .zip; write one atomically and verified.

Reading never extracts: a member is looked up by a name that has already been checked to be a
bare file name, must be a regular file (a symlink could point anywhere on the machine), and is
streamed in pieces straight to its reader (the blob store): a package is never copied to a temp
file first, which would double its disk writes and hold a second copy in $TMPDIR. Writing goes to a temp sibling that is renamed into place
only when complete; every blob is hashed while it is copied, so a corrupt blob fails the write.
Archives hold one top-level folder (pplacer and taxtastic expect exactly one directory entry).
A damaged archive (truncated, bad CRC, broken compression) is one InvalidInputError, wherever
the damage is met: listing the members or reading one. What listing holds in memory is bounded
(tar metadata headers, member count), since a tiny crafted .tar.gz can declare gigabytes of it;
zip names Info-ZIP stored as UTF-8 without the flag are read as UTF-8. An exported directory gets the mode an
ordinary ``mkdir`` would give it, its files those of an ordinary ``open``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import lzma
import os
import secrets
import shutil
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from .diskspace import refused_write
from .errors import IntegrityError, InvalidInputError, NotFoundError
from .events import FileRef
from .files import FILE_MODE, mkstemp, read_chunks
from .interrupts import deferred
from .refpkg_names import MANIFEST

__all__ = ["PackageSource", "open_package", "write_package", "strip_archive_suffix", "ARCHIVE_SUFFIXES"]

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


class _TarSource(PackageSource):
    def __init__(self, path: Path, archive: tarfile.TarFile, members: dict[str, tarfile.TarInfo],
                 prefix: str, manifest: bytes) -> None:
        super().__init__(manifest)
        self.path, self.archive, self.members, self.prefix = path, archive, members, prefix

    def member_chunks(self, name: str) -> Iterator[bytes] | None:
        member = self.members.get(self.prefix + name)
        if member is None or not member.isreg():
            return None
        return self._chunks(member)

    def read_order(self, names: Iterable[str]) -> list[str]:
        # A compressed tar only reads forwards: each member before the last one read means inflating
        # the stream again from its start (a package with history read in its own order took 5x tar's time).
        rank = {member: index for index, member in enumerate(self.members)}
        return sorted(names, key=lambda name: rank.get(self.prefix + name, len(rank)))

    def member_size(self, name: str) -> int:
        member = self.members.get(self.prefix + name)
        return member.size if member is not None else 0

    def _chunks(self, member: tarfile.TarInfo) -> Iterator[bytes]:
        with _reading(self.path):
            fh = self.archive.extractfile(member)
            if fh is None:  # isreg() members always have one
                raise InvalidInputError(f"{self.path}: {member.name} is not a regular file")
            with fh:
                while chunk := fh.read(_CHUNK):
                    yield chunk


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
    """Open a package directory, .tar.gz/.tgz/.tar or .zip for reading."""
    if path.is_dir():
        yield _DirSource(path)
    elif not path.is_file():
        raise NotFoundError(f"Reference package {path} does not exist.")
    elif zipfile.is_zipfile(path):
        with _reading(path):
            zarchive = zipfile.ZipFile(path)
        with zarchive:
            infos = {_norm(_zip_name(i)): i for i in zarchive.infolist()}
            prefix = _prefix(list(infos), path)
            _check_manifest_size(infos[prefix + MANIFEST].file_size, path)
            with _reading(path):
                manifest = zarchive.read(infos[prefix + MANIFEST])
            yield _ZipSource(path, zarchive, infos, prefix, manifest)
    else:
        with _open_tar(path) as tarchive:
            with _reading(path):  # listing reads the whole stream: a truncated one fails here
                members = _tar_members(tarchive, path)
            prefix = _prefix(list(members), path)
            member = members[prefix + MANIFEST]
            if not member.isreg():
                raise InvalidInputError(f"{path}: {MANIFEST} is not a regular file")
            _check_manifest_size(member.size, path)
            with _reading(path):
                fh = tarchive.extractfile(member)
                if fh is None:
                    raise InvalidInputError(f"{path}: {MANIFEST} is not a regular file")
                with fh:
                    manifest = fh.read()
            yield _TarSource(path, tarchive, members, prefix, manifest)


def _tar_members(tarchive: tarfile.TarFile, path: Path) -> dict[str, tarfile.TarInfo]:
    members: dict[str, tarfile.TarInfo] = {}
    for count, member in enumerate(tarchive, start=1):
        if count > MAX_MEMBERS:
            raise InvalidInputError(f"{path} lists over {MAX_MEMBERS:,} members, which no refpkg has")
        members[_norm(member.name)] = member
    return members


def _open_tar(path: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(path, "r:*", tarinfo=_BoundedTarInfo)
    except _OversizedHeader as exc:
        raise InvalidInputError(f"{path}: {exc}, which no refpkg needs") from None
    except tarfile.TarError:
        raise InvalidInputError(f"{path} is not a refpkg directory, .tar.gz or .zip") from None
    except _DAMAGE as exc:
        raise InvalidInputError(f"{path} is damaged (truncated or corrupt): {exc}") from None


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
