"""Write a package as a directory, .tar.gz or .zip: atomically, and verified against its blobs.

An archive can also go to a stream (``refpkg export --tar -``), front to back and never seeking:
it then has the same members, order and times as the file, and a failed write leaves the stream
without the archive's end, so a reader fails rather than take a short package whole.

Writing goes to a flock-held temp sibling that is renamed into place only when complete (a SIGKILLed
export's temps go at the next export to that name); every blob is hashed while it is copied, so a
corrupt blob fails the write. Archives hold one top-level folder (pplacer
and taxtastic expect exactly one directory entry). An exported directory gets the mode an ordinary
``mkdir`` would give it, its files those of an ordinary ``open``.
"""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import io
import os
import re
import secrets
import shutil
import tarfile
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from datetime import datetime, timezone
from pathlib import Path
from typing import IO

from .diskspace import refused_write
from .errors import IntegrityError, InvalidInputError
from .events import FileRef
from .files import FILE_MODE, mkstemp, remove_dead_temps
from .interrupts import deferred
from .refpkg_archive import _CHUNK, Advance, strip_archive_suffix
from .refpkg_names import MANIFEST

__all__ = ["stream_package", "write_package"]

_ZIP_EPOCH = 315532800  # 1980-01-01: the earliest time a zip entry can carry
_LEVEL = 1
"""Deflate level: on FASTA, level 1 is ~10x faster than 6 for ~13% more bytes (docs/benchmarks.md)."""

OpenBlob = Callable[[FileRef], IO[bytes]]


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
        """IntegrityError unless exactly the recorded bytes went through (a short blob named as the tar path names it)."""
        if self.size < ref.size:
            raise IntegrityError(f"blob {ref.sha256} of file {ref.name} is corrupt (shorter than recorded)")
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
    temp_name = re.compile(rf"\.{re.escape(dest.name)}\.tmp-(?:[0-9a-f]{{12}}|[a-z0-9_]{{8}})", re.DOTALL)
    remove_dead_temps(dest, lambda name: temp_name.fullmatch(name) is not None)  # a SIGKILLed export's
    tmp: Path | None = None
    held: int | None = None
    try:
        # A SIGTERM handled the moment the temp exists (CPython runs it right after the call that made it)
        # waits until its name is bound here, so the cleanup below removes it.
        with deferred():
            try:
                if fmt == "dir":
                    tmp = _mkdir_temp(dest)
                    held = os.open(tmp, os.O_RDONLY | os.O_DIRECTORY)
                else:
                    held, name = mkstemp(prefix=f".{dest.name}.tmp-", dir=dest.parent)
                    tmp = Path(name)
            except PermissionError as exc:  # the package is built beside ``dest``: name it, not the hidden temp
                raise PermissionError(exc.errno, f"cannot write {dest}: this user may not create files in "
                                      f"{dest.parent} ({exc.strerror})") from None
        # Held until the temp is renamed or removed (``held`` closes last), so another export's sweep of
        # a killed one's temps (above) leaves this one however long it stalls.
        fcntl.flock(held, fcntl.LOCK_EX)
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
    finally:
        if held is not None:
            os.close(held)


class _Sink:
    """A stream an archive goes to in one pass: no ``seek`` or ``tell`` (so zipfile writes data
    descriptors, the same bytes to a pipe as to a redirected file), and once ``cut`` every later
    write is dropped: the gzip trailer or zip central directory that closing would add never comes."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out, self.cut = out, False

    def write(self, data: bytes) -> int:
        if not self.cut:
            self.out.write(data)
        return len(data)

    def flush(self) -> None:
        if not self.cut:
            self.out.flush()

    def close(self) -> None:
        """Leave the stream open: its owner (the CLI's stdout) closes it."""


@contextmanager
def _cut_on_error(out: Path | _Sink) -> Iterator[None]:
    """Cut a stream the moment its archive fails, before the enclosing writers close (a file's temp is removed instead)."""
    try:
        yield
    except BaseException:
        if isinstance(out, _Sink):
            out.cut = True
        raise


def stream_package(
    out: IO[bytes], fmt: str, stem: str, manifest: bytes, files: Mapping[str, FileRef], open_blob: OpenBlob,
    mtime: datetime, advance: Advance,
) -> None:
    """Write a package as "tar" (.tar.gz) or "zip" to ``out`` front to back, in one top-level folder ``stem``.

    Every blob is verified as it goes; on a failure ``out`` holds a truncated archive (no gzip
    trailer, no zip central directory) and the error is raised. A directory cannot be streamed.
    """
    if fmt not in ("tar", "zip"):
        raise InvalidInputError(f"a package is streamed as a tar or zip archive, not as {fmt!r}")
    {"tar": _write_tar, "zip": _write_zip}[fmt](_Sink(out), stem, manifest, files, open_blob, mtime, advance)


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


def _write_tar(tmp: Path | _Sink, stem: str, manifest: bytes, files: Mapping[str, FileRef], open_blob: OpenBlob,
               mtime: datetime, advance: Advance) -> None:
    stamp = int(mtime.timestamp())

    def entry(name: str, size: int = 0) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = size, 0o644, stamp
        return info

    # The gzip header names no file and carries the package's time, not the temp file's name and
    # the clock: exporting the same package twice gives the same bytes (pipelines hash them).
    with open(tmp, "wb") if isinstance(tmp, Path) else nullcontext(tmp) as raw, \
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=_LEVEL,
                          mtime=min(max(stamp, 0), 0xFFFFFFFF)) as gz, \
            tarfile.open(fileobj=gz, mode="w") as tar, _cut_on_error(tmp):
        folder = entry(stem)
        folder.type, folder.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(folder)
        for filename, ref in files.items():
            with open_blob(ref) as fh:
                reader = _Verifying(fh, advance)
                try:
                    tar.addfile(entry(f"{stem}/{filename}", ref.size), reader)
                except (OSError, tarfile.TarError) as exc:
                    if isinstance(exc, OSError) and exc.errno is not None:
                        raise  # the write failed (a full disk, a reader gone), not the blob: tarfile's short read has no errno
                    raise IntegrityError(
                        f"blob {ref.sha256} of file {ref.name} is corrupt (shorter than recorded)"
                    ) from None
                reader.check(ref)
        tar.addfile(entry(f"{stem}/{MANIFEST}", len(manifest)), io.BytesIO(manifest))


def _write_zip(tmp: Path | _Sink, stem: str, manifest: bytes, files: Mapping[str, FileRef], open_blob: OpenBlob,
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

    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=_LEVEL) as archive, _cut_on_error(tmp):
        folder = zipfile.ZipInfo(f"{stem}/", date_time=stamp)
        folder.external_attr = (0o40755 << 16) | 0x10  # a directory, for unzip and pplacer
        archive.writestr(folder, b"")
        for filename, ref in files.items():
            # Cut inside the member: closing it on the way out would write its data descriptor (the
            # short bytes' CRC and size), and a streaming unzip would take the truncated member as whole.
            with open_blob(ref) as fh, archive.open(entry(f"{stem}/{filename}"), "w",
                                                    force_zip64=ref.size > 1 << 31) as out, _cut_on_error(tmp):
                reader = _Verifying(fh, advance)
                while chunk := reader.read(_CHUNK):
                    out.write(chunk)
                reader.check(ref)
        archive.writestr(entry(f"{stem}/{MANIFEST}"), manifest)
