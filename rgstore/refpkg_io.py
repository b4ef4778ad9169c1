"""Interchange with taxtastic: import and export packages as directories, .tar.gz and .zip.

Import reads CONTENTS.json and the files it names without ever extracting anything: archive
members are streamed into private temp files, directory members must be regular files (not
symlinks), and every file name must be a bare name. Every MD5 is verified (history files
too: a rollback must never reach a state whose files are missing). The history chain becomes
events: the oldest state, one update per later state, then one ``Undone`` per rolled-back
state, so rollback and rollforward after import behave as ``taxit`` would.

Export writes into a temp sibling and renames it into place, so a failed export leaves
nothing behind; every blob is verified against its sha256 while it is copied.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING

import msgspec

from .blobs import BlobInfo
from .environment import Txn
from .errors import ConflictError, IntegrityError, InvalidInputError, NotFoundError
from .events import FileRef, RefpkgImported, RefpkgUpdated, Undone
from .log import NewEvent
from .progress import ProgressFactory
from .refpkg_manifest import MAX_NESTING, Manifest, ManifestState, nesting, parse_manifest, render_manifest
from .refpkg_names import MANIFEST, check_filename, check_key, check_refpkg_name, is_safe_filename
from .views.refpkgs import refpkg_chain, refpkg_head, refpkg_log, refpkg_step, refpkg_stream

if TYPE_CHECKING:
    from .refpkgs import RefpkgInfo, Refpkgs

__all__ = ["ExportReport", "import_package", "export_package", "default_name", "FORMATS"]

FORMATS = ("dir", "tar", "zip")
_CHUNK = 1 << 20
_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")


class ExportReport(msgspec.Struct, frozen=True, kw_only=True):
    """What an export wrote: where, how many files (CONTENTS.json aside) and their bytes."""

    name: str
    path: str
    format: str
    files: int
    bytes: int
    history: bool


def default_name(source: Path) -> str:
    """A package name from its path: the basename without archive suffixes and ``.refpkg``."""
    base = source.name
    for suffix in _ARCHIVE_SUFFIXES:
        if base.lower().endswith(suffix):
            base = base[: -len(suffix)]
            break
    return base[: -len(".refpkg")] if base.endswith(".refpkg") else base


# --- reading packages -------------------------------------------------------------------------


class _Source:
    """A package being read: its manifest bytes and a way to copy one member to a local file."""

    def __init__(self, manifest: bytes) -> None:
        self.manifest = manifest

    def copy_member(self, name: str, dest: Path) -> Path | None:
        """Copy member ``name`` to ``dest`` (or return a path to read it from); None if absent."""
        raise NotImplementedError


class _DirSource(_Source):
    def __init__(self, root: Path) -> None:
        manifest = root / MANIFEST
        if not manifest.is_file():
            raise NotFoundError(f"couldn't find manifest file {MANIFEST} in {root}")
        super().__init__(manifest.read_bytes())
        self.root = root

    def copy_member(self, name: str, dest: Path) -> Path | None:
        path = self.root / name
        # A symlink could make us read (and store) any file on the machine.
        if path.is_symlink() or not path.is_file():
            return None
        return path


class _TarSource(_Source):
    def __init__(self, archive: tarfile.TarFile, prefix: str, manifest: bytes) -> None:
        super().__init__(manifest)
        self.archive, self.prefix = archive, prefix
        self.members = {_norm(m.name): m for m in archive.getmembers()}

    def copy_member(self, name: str, dest: Path) -> Path | None:
        member = self.members.get(self.prefix + name)
        if member is None or not member.isreg():
            return None
        fh = self.archive.extractfile(member)
        if fh is None:
            return None
        with fh, open(dest, "wb") as out:
            shutil.copyfileobj(fh, out, _CHUNK)
        return dest


class _ZipSource(_Source):
    def __init__(self, archive: zipfile.ZipFile, prefix: str, manifest: bytes) -> None:
        super().__init__(manifest)
        self.archive, self.prefix = archive, prefix
        self.members = {_norm(i.filename): i for i in archive.infolist()}

    def copy_member(self, name: str, dest: Path) -> Path | None:
        info = self.members.get(self.prefix + name)
        if info is None or info.is_dir():
            return None
        with self.archive.open(info) as fh, open(dest, "wb") as out:
            shutil.copyfileobj(fh, out, _CHUNK)
        return dest


def _norm(member: str) -> str:
    while member.startswith("./"):
        member = member[2:]
    return member


def _prefix(names: list[str], where: Path) -> str:
    """The directory holding CONTENTS.json inside an archive: the root or one top-level folder."""
    hits = [n for n in names if n == MANIFEST or (n.count("/") == 1 and n.endswith("/" + MANIFEST))]
    if len(hits) != 1:
        raise InvalidInputError(
            f"{where}: expected one {MANIFEST} at the top or in one top-level folder, found {len(hits)}"
        )
    return hits[0][: -len(MANIFEST)]


@contextmanager
def _open_source(path: Path) -> Iterator[_Source]:
    if path.is_dir():
        yield _DirSource(path)
        return
    if not path.is_file():
        raise NotFoundError(f"Reference package {path} does not exist.")
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            prefix = _prefix([_norm(i.filename) for i in archive.infolist()], path)
            manifest = next(i for i in archive.infolist() if _norm(i.filename) == prefix + MANIFEST)
            yield _ZipSource(archive, prefix, archive.read(manifest))
        return
    try:
        archive = tarfile.open(path, "r:*")
    except tarfile.TarError:
        raise InvalidInputError(f"{path} is not a refpkg directory, .tar.gz or .zip") from None
    with archive:
        prefix = _prefix([_norm(m.name) for m in archive.getmembers()], path)
        member = next(m for m in archive.getmembers() if _norm(m.name) == prefix + MANIFEST)
        fh = archive.extractfile(member) if member.isreg() else None
        if fh is None:
            raise InvalidInputError(f"{path}: {MANIFEST} is not a regular file")
        with fh:
            data = fh.read()
        yield _TarSource(archive, prefix, data)


# --- import -----------------------------------------------------------------------------------


def _states(manifest: Manifest, history: bool) -> list[ManifestState]:
    """The states to replay, oldest first: rollback states, the current one, then rollforwards."""
    if not history:
        return [manifest.current]
    return [*reversed(manifest.rollbacks), manifest.current, *manifest.rollforwards]


def _needed(states: list[ManifestState]) -> dict[str, tuple[str, str]]:
    """file name -> (md5, a key naming it), refusing unsafe names and one name with two contents."""
    needed: dict[str, tuple[str, str]] = {}
    for state in states:
        for key, (filename, md5) in state.files.items():
            check_key(key, "file")
            check_filename(filename, key)
            seen = needed.setdefault(filename, (md5, key))
            if seen[0] != md5:
                raise InvalidInputError(
                    f"file {filename} is recorded with two MD5 sums ({seen[0]} for key {seen[1]}, {md5} for key {key})"
                )
    return needed


def _diff(name: str, old: ManifestState, new: ManifestState, refs: dict[str, FileRef]) -> RefpkgUpdated:
    """The update event turning state ``old`` into ``new``."""
    files: dict[str, FileRef | None] = {k: None for k in old.files if k not in new.files}
    files.update({k: refs[fn] for k, (fn, md5) in new.files.items() if old.files.get(k) != (fn, md5)})
    metadata: dict[str, str | None] = {k: None for k in old.metadata if k not in new.metadata}
    metadata.update({k: v for k, v in new.metadata.items() if old.metadata.get(k) != v})
    return RefpkgUpdated(name=name, files=files, metadata=metadata, message=new.message)


def import_package(
    service: Refpkgs, source: Path, *, name: str | None, history: bool, progress: ProgressFactory
) -> RefpkgInfo:
    """Import a taxtastic package (directory, .tar.gz, .tgz or .zip) as a new refpkg.

    Every MD5 is verified; with ``history`` the rollback/rollforward chain is replayed as
    events, else only the current state (with its full log) is imported. A failed import
    leaves no event and no new blob.
    """
    name = check_refpkg_name(name if name is not None else default_name(source))
    with service.store.read() as txn:
        head = refpkg_head(txn, service.environment, name)
    if head is not None and head.current:  # checked again when committing; this saves the copying
        raise ConflictError(f"refpkg {name!r} already exists; import with --name NEW")
    with ExitStack() as stack:
        src = stack.enter_context(_open_source(source))
        manifest = parse_manifest(src.manifest)
        states = _states(manifest, history)
        needed = _needed(states)
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="rgstore-import-")))
        created = stack.enter_context(service.staging())
        blobs: dict[str, BlobInfo] = {}
        paths: dict[str, Path] = {}
        bar = progress("import files", total=len(needed), unit="file")
        for index, (filename, (md5, key)) in enumerate(needed.items()):
            local = src.copy_member(filename, tmp / str(index))
            if local is None:
                raise NotFoundError(f"File {filename} referred to by key {key} is missing from {source}")
            info = service.put(local, created)
            if info.md5 != md5:
                raise IntegrityError(f"File {filename} referred to by key {key} did not match its MD5 sum "
                                     f"(found: {info.md5}, expected {md5})")
            blobs[filename], paths[info.sha256] = info, local
            bar.update(1)
        bar.close()
        refs = {fn: FileRef(name=fn, sha256=i.sha256, md5=i.md5, size=i.size) for fn, i in blobs.items()}
        stream = refpkg_stream(name)
        floor, later = states[0], states[1:]
        depth = len(manifest.rollbacks) if history else 0
        first = RefpkgImported(
            name=name, files={k: refs[fn] for k, (fn, _md5) in floor.files.items()},
            metadata=floor.metadata, log=manifest.log[depth:], source=str(source),
        )
        events: list[NewEvent] = [NewEvent(stream=stream, event=first)]
        for old, new in zip(states, later):
            events.append(NewEvent(stream=stream, event=_diff(name, old, new, refs)))
        events += [NewEvent(stream=stream, event=Undone()) for _ in (manifest.rollforwards if history else [])]

        def command(txn: Txn) -> list[NewEvent]:
            head = refpkg_head(txn, service.environment, name)
            if head is not None and head.current:
                raise ConflictError(f"refpkg {name!r} already exists; import with --name NEW")
            return events

        service.transact(command, paths, created)
    return service.info(name)


# --- export -----------------------------------------------------------------------------------


class _Plan(msgspec.Struct, kw_only=True):
    manifest: Manifest
    files: dict[str, FileRef]
    time: datetime


def _state_of(files: dict[str, FileRef], metadata: dict[str, str], message: str) -> ManifestState:
    return ManifestState(files={k: (r.name, r.md5) for k, r in files.items()}, metadata=dict(metadata),
                         message=message)


def _plan(service: Refpkgs, name: str, history: bool) -> _Plan:
    env = service.environment
    with service.store.read() as txn:
        head, current = service.state(txn, name)
        log = refpkg_log(txn, env, name, current.seq)
        files = dict((r.name, r) for r in current.files.values())
        rollbacks: list[ManifestState] = []
        rollforwards: list[ManifestState] = []
        if history:
            for step in list(refpkg_chain(txn, env, name, current.seq))[1:]:
                rollbacks.append(_state_of(step.files, step.metadata, ""))
                files.update((r.name, r) for r in step.files.values())
            for seq in reversed(head.redo):
                step = refpkg_step(txn, env, name, seq)
                rollforwards.append(_state_of(step.files, step.metadata, step.log[0] if step.log else ""))
                files.update((r.name, r) for r in step.files.values())
    manifest = Manifest(current=_state_of(current.files, current.metadata, ""), log=log,
                        rollbacks=rollbacks, rollforwards=rollforwards)
    if nesting(manifest) > MAX_NESTING:
        raise InvalidInputError(
            f"refpkg {name!r} keeps {len(rollbacks)} rollback and {len(rollforwards)} rollforward states; "
            f"taxtastic cannot read CONTENTS.json nested more than {MAX_NESTING} deep: "
            "export with --no-history, or `rgstore refpkg strip` first"
        )
    for filename in files:
        if not is_safe_filename(filename):
            raise InvalidInputError(f"refusing to export unsafe file name {filename!r}")
    return _Plan(manifest=manifest, files=files, time=current.time)


class _Verifying(io.RawIOBase):
    """Reads a blob, hashing as it goes, so a corrupt blob is caught while it is copied."""

    def __init__(self, fh: IO[bytes]) -> None:
        self.fh, self.sha, self.size = fh, hashlib.sha256(), 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        data = self.fh.read(n)
        self.sha.update(data)
        self.size += len(data)
        return data

    def check(self, ref: FileRef) -> None:
        if self.sha.hexdigest() != ref.sha256 or self.size != ref.size:
            raise IntegrityError(f"blob {ref.sha256} of file {ref.name} is corrupt (checksum mismatch on export)")


def _open_blob(service: Refpkgs, ref: FileRef) -> IO[bytes]:
    path = service.store.blobs.path(ref.sha256)
    if not path.is_file():
        raise NotFoundError(f"blob {ref.sha256} of file {ref.name} is missing from the store")
    return open(path, "rb")


def export_package(
    service: Refpkgs, name: str, dest: Path, *, fmt: str, history: bool, progress: ProgressFactory
) -> ExportReport:
    """Write package ``name`` to ``dest`` (a new directory, or a .tar.gz / .zip file) for taxtastic."""
    if fmt not in FORMATS:
        raise InvalidInputError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    if dest.exists() or dest.is_symlink():
        raise ConflictError(f"{dest} already exists; export to a new path")
    plan = _plan(service, name, history)
    text = render_manifest(plan.manifest).encode()
    total = sum(r.size for r in plan.files.values())
    dest.parent.mkdir(parents=True, exist_ok=True)
    bar = progress("export", total=total, unit="B")
    try:
        if fmt == "dir":
            _write_dir(service, plan, text, dest, bar.update)
        else:
            _write_archive(service, plan, text, dest, fmt, bar.update)
    finally:
        bar.close()
    return ExportReport(name=name, path=str(dest), format=fmt, files=len(plan.files), bytes=total,
                        history=history)


def _write_dir(service: Refpkgs, plan: _Plan, text: bytes, dest: Path, advance: Callable[[int], object]) -> None:
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        for filename, ref in plan.files.items():
            target = tmp / filename
            with _open_blob(service, ref) as fh, open(target, "xb") as out:
                reader = _Verifying(fh)
                while chunk := reader.read(_CHUNK):
                    out.write(chunk)
                    advance(len(chunk))
                reader.check(ref)
        (tmp / MANIFEST).write_bytes(text)
        os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _stem(dest: Path) -> str:
    base = dest.name
    for suffix in _ARCHIVE_SUFFIXES:
        if base.lower().endswith(suffix):
            return base[: -len(suffix)] or "refpkg"
    return base


def _write_archive(service: Refpkgs, plan: _Plan, text: bytes, dest: Path, fmt: str, advance: Callable[[int], object]) -> None:
    stem, mtime = _stem(dest), plan.time.timestamp()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.tmp-", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        if fmt == "tar":
            with tarfile.open(tmp, "w:gz", compresslevel=6) as tar:
                folder = tarfile.TarInfo(stem)
                folder.type, folder.mode, folder.mtime = tarfile.DIRTYPE, 0o755, int(mtime)
                tar.addfile(folder)
                for filename, ref in plan.files.items():
                    info = tarfile.TarInfo(f"{stem}/{filename}")
                    info.size, info.mode, info.mtime = ref.size, 0o644, int(mtime)
                    with _open_blob(service, ref) as fh:
                        reader = _Verifying(fh)
                        try:
                            tar.addfile(info, _Counting(reader, advance))
                        except (OSError, tarfile.TarError):
                            raise IntegrityError(f"blob {ref.sha256} of file {ref.name} is truncated") from None
                        reader.check(ref)
                info = tarfile.TarInfo(f"{stem}/{MANIFEST}")
                info.size, info.mode, info.mtime = len(text), 0o644, int(mtime)
                tar.addfile(info, io.BytesIO(text))
        else:
            stamp = datetime.fromtimestamp(max(mtime, 315532800)).timetuple()[:6]
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
                folder = zipfile.ZipInfo(f"{stem}/", date_time=stamp)
                folder.external_attr = (0o40755 << 16) | 0x10
                archive.writestr(folder, b"")
                for filename, ref in plan.files.items():
                    info = zipfile.ZipInfo(f"{stem}/{filename}", date_time=stamp)
                    info.compress_type, info.external_attr = zipfile.ZIP_DEFLATED, 0o644 << 16
                    with _open_blob(service, ref) as fh, archive.open(info, "w", force_zip64=ref.size > 1 << 31) as out:
                        reader = _Verifying(fh)
                        while chunk := reader.read(_CHUNK):
                            out.write(chunk)
                            advance(len(chunk))
                        reader.check(ref)
                info = zipfile.ZipInfo(f"{stem}/{MANIFEST}", date_time=stamp)
                info.compress_type, info.external_attr = zipfile.ZIP_DEFLATED, 0o644 << 16
                archive.writestr(info, text)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class _Counting(io.RawIOBase):
    """Passes reads through, reporting progress."""

    def __init__(self, inner: _Verifying, advance: Callable[[int], object]) -> None:
        self.inner, self.advance = inner, advance

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        data = self.inner.read(n)
        self.advance(len(data))
        return data
